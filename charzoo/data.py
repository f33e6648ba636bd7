"""Corpora: read and check a text file, split it, and stream random windows through tf.data."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import numpy as np

from charzoo.errors import CharzooError
from charzoo.vocab import Vocab


def read_corpus(path: str | Path, *, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of a corpus file; a clear `CharzooError` for missing, empty, binary or mis-encoded files."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise CharzooError(f"corpus {path} does not exist", exit_code=2) from e
    except IsADirectoryError as e:
        raise CharzooError(f"corpus {path} is a directory; pass a text file", exit_code=2) from e
    except OSError as e:
        raise CharzooError(f"cannot read corpus {path}: {e.strerror}", exit_code=2) from e
    return decode_corpus(raw, name=str(path), encoding=encoding, errors=errors)


def decode_corpus(raw: bytes, *, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode corpus bytes, rejecting empty and binary data."""
    if not raw.strip():
        raise CharzooError(f"corpus {name} is empty", exit_code=2)
    if b"\x00" in raw[:1 << 20] and not encoding.lower().startswith("utf-16"):
        at = raw.index(b"\x00")
        raise CharzooError(f"corpus {name} looks binary (NUL byte at offset {at}); pass a text file", exit_code=2)
    try:
        codecs.lookup(encoding)
        codecs.lookup_error(errors)
    except LookupError as e:
        raise CharzooError(f"{e}; see Python's codecs documentation for valid names", exit_code=2) from e
    try:
        text = raw.decode(encoding, errors)
    except UnicodeDecodeError as e:
        raise CharzooError(
            f"corpus {name} is not valid {encoding}: byte 0x{raw[e.start]:02x} at offset {e.start}; "
            f"pass --encoding, or --errors replace to substitute U+FFFD",
            exit_code=2,
        ) from e
    return text.removeprefix("\ufeff")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): the first `1 - val_fraction` of the characters and the rest."""
    if not 0.0 <= val_fraction < 1.0:
        raise CharzooError(f"val_fraction must be in [0, 1), got {val_fraction!r}", exit_code=2)
    cut = len(text) - int(round(len(text) * val_fraction))
    return text[:cut], text[cut:]


def compact_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """`ids` in the smallest unsigned dtype that holds them: a 100 MB corpus stays ~100 MB in memory."""
    dtype = np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32
    return ids.astype(dtype)


def make_dataset(
    ids: np.ndarray,
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    steps: int | None = None,
):
    """A `tf.data.Dataset` of `(inputs, targets)` int32 batches of shape (batch_size, seq_len).

    Each batch holds random windows of `seq_len + 1` ids. Window offsets are a
    stateless function of `(seed, step)`, so a run resumed at `start_step` sees
    exactly the batches an uninterrupted run would have seen. Nothing but the
    compact id array itself is materialised.
    """
    import tensorflow as tf

    if len(ids) < seq_len + 1:
        raise CharzooError(
            f"text of {len(ids)} characters is shorter than one window of seq_len + 1 = {seq_len + 1}; "
            f"use a longer text or a smaller --seq-len",
            exit_code=2,
        )
    table = tf.constant(ids)
    n_starts = len(ids) - seq_len  # valid window starts: 0 .. len - seq_len - 1
    offsets = tf.range(seq_len + 1, dtype=tf.int64)

    def windows(step):
        starts = tf.random.stateless_uniform(
            [batch_size], seed=tf.stack([tf.cast(seed, tf.int64), step]), maxval=n_starts, dtype=tf.int64
        )
        batch = tf.cast(tf.gather(table, starts[:, None] + offsets[None, :]), tf.int32)  # (B, T + 1)
        return batch[:, :-1], batch[:, 1:]

    stop = None if steps is None else start_step + steps
    steps_ds = tf.data.Dataset.range(start_step, stop) if stop is not None else tf.data.Dataset.range(start_step, 2**62)
    return steps_ds.map(windows, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def text_dataset(text: str, vocab: Vocab, *, seq_len: int, batch_size: int, seed: int = 0):
    """The training pipeline's `(ids, next_ids)` windows for a string, encoded with `vocab`."""
    return make_dataset(compact_ids(vocab.encode(text), len(vocab)), seq_len=seq_len, batch_size=batch_size, seed=seed)
