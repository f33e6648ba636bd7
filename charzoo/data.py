"""Corpora: read and check a text file, split it, and stream training windows.

Windows are drawn at random (`window_batch`), or, for training that carries the
recurrent state across batches, read in order from contiguous streams
(`stream_batch`, as char-rnn's loader does).

Training reads ids from a memory-mapped cache file (`cached_ids`) written once
per corpus and vocabulary, so training keeps no int32 or window copies of a
large corpus in memory.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TypeVar

import numpy as np

from charzoo.errors import CharzooError
from charzoo.vocab import CHUNK_CHARS, Vocab

Split = TypeVar("Split", str, np.ndarray)


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
    try:
        codecs.lookup_error(errors)
        ascii_compatible = "a".encode(encoding) == b"a"  # UTF-16 and UTF-32 text is full of NUL bytes
    except LookupError as e:
        raise CharzooError(f"{e}; see Python's codecs documentation for valid names", exit_code=2) from e
    if ascii_compatible and b"\x00" in raw[:1 << 20]:
        at = raw.index(b"\x00")
        raise CharzooError(f"corpus {name} looks binary (NUL byte at offset {at}); pass a text file", exit_code=2)
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


def split_text(text: Split, val_fraction: float = 0.1) -> tuple[Split, Split]:
    """(train, val): the first `1 - val_fraction` of the characters (or ids) and the rest."""
    if not 0.0 <= val_fraction < 1.0:
        raise CharzooError(f"val_fraction must be in [0, 1), got {val_fraction!r}", exit_code=2)
    cut = len(text) - int(round(len(text) * val_fraction))
    return text[:cut], text[cut:]


def id_dtype(vocab_size: int) -> type:
    """The smallest unsigned dtype that holds every id of a vocabulary."""
    return np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32


def compact_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """`ids` in the smallest unsigned dtype that holds them: a 100 MB corpus stays ~100 MB in memory."""
    return ids.astype(id_dtype(vocab_size))


def cached_ids(text: str, vocab: Vocab, cache_dir: str | Path) -> np.memmap:
    """The ids of `text` (unknown characters mapped), memory-mapped from a cache file in `cache_dir`.

    The file is named after a hash of the text and the vocabulary, written once
    (chunk by chunk, to a temp file renamed into place) and reused afterwards.
    """
    cache_dir = Path(cache_dir)
    digest = hashlib.sha256(json.dumps(vocab.to_json(), ensure_ascii=False).encode("utf-8"))
    for start in range(0, len(text), CHUNK_CHARS):
        digest.update(text[start : start + CHUNK_CHARS].encode("utf-8", "surrogatepass"))
    dtype = np.dtype(id_dtype(len(vocab)))
    path = cache_dir / f"ids-{digest.hexdigest()[:20]}.{dtype.name}"
    if not (path.is_file() and path.stat().st_size == len(text) * dtype.itemsize):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for start in range(0, len(text), CHUNK_CHARS):
                    chunk = vocab.encode(text[start : start + CHUNK_CHARS], map_unknown=True)
                    f.write(chunk.astype(dtype).tobytes())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return np.memmap(path, dtype=dtype, mode="r", shape=(len(text),))


def window_batch(ids: np.ndarray, *, seq_len: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The int32 windows (batch_size, seq_len + 1) of training step `step`: a stateless function of `(seed, step)`.

    Every input pipeline (tf.data, a Keras `PyDataset`, each replica of a
    distributed run) draws its batches here, so a run sees the same data on any
    backend, and a run resumed at some step sees what an uninterrupted one would.
    """
    starts = np.random.default_rng([seed, step]).integers(0, len(ids) - seq_len, size=batch_size)
    return ids[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)


def stream_batch(ids: np.ndarray, *, seq_len: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The int32 windows (batch_size, seq_len + 1) of step `step` for state-carrying training.

    `ids` is cut into `batch_size` contiguous streams, and row b of consecutive
    steps reads consecutive windows of stream b, so within a pass the state one
    batch ends in is the right one to start the next from. A pass is
    `stream_layout(...)[1]` steps; each begins again at the start of the streams,
    at a random offset below `seq_len` (a function of `(seed, pass)`), so the
    window boundaries move from pass to pass, and its first batch starts from a
    zero state. Like `window_batch`, a batch is a stateless function of `(seed, step)`.
    """
    span, per_pass = stream_layout(len(ids), seq_len, batch_size)
    epoch, index = divmod(step, per_pass)
    offset = int(np.random.default_rng([seed, epoch]).integers(0, seq_len))
    starts = np.arange(batch_size) * span + offset + index * seq_len
    return ids[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)


def stream_layout(chars: int, seq_len: int, batch_size: int) -> tuple[int, int]:
    """(characters per stream, batches per pass) of `stream_batch`; an error when a stream is too short."""
    span = chars // batch_size  # a row's last target is at most the last character of its stream
    if span < 2 * seq_len:
        raise CharzooError(
            f"carrying the state needs streams of at least 2 x seq_len = {2 * seq_len} characters, and "
            f"{chars} characters make {batch_size} streams of {span}; use a longer text, a smaller "
            f"--batch-size or --seq-len, or train without --carry-state",
            exit_code=2,
        )
    return span, span // seq_len - 1  # one window kept free for the offset


def _check_window(ids: np.ndarray, seq_len: int) -> None:
    if len(ids) < seq_len + 1:
        raise CharzooError(
            f"text of {len(ids)} characters is shorter than one window of seq_len + 1 = {seq_len + 1}; "
            f"use a longer text or a smaller --seq-len",
            exit_code=2,
        )


def make_dataset(
    ids: np.ndarray,
    *,
    seq_len: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    steps: int | None = None,
    contiguous: bool = False,
    input_context=None,
):
    """A `tf.data.Dataset` of `(inputs, targets)` int32 batches of shape (batch_size, seq_len).

    Batches are `window_batch(ids, step=start_step), window_batch(ids, step=start_step + 1), ...`
    (`stream_batch` when `contiguous`), read from `ids` (an array or a `np.memmap`)
    batch by batch; nothing else is copied.

    With a `tf.distribute.InputContext` (from `distribute_datasets_from_function`),
    `batch_size` is the global batch and the dataset yields, one after another,
    this input pipeline's per-replica slices of each global batch, so N replicas
    together see exactly the batches of a single-process run.
    """
    import tensorflow as tf

    read_batch = _batch_reader(ids, seq_len, batch_size, contiguous)
    replicas, first = 1, 0  # per-replica slices this pipeline yields per step, and the index of its first
    if input_context is not None:
        replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        first = input_context.input_pipeline_id * replicas
        if batch_size % input_context.num_replicas_in_sync:
            raise CharzooError(
                f"batch size {batch_size} does not split evenly over {input_context.num_replicas_in_sync} "
                f"replicas; use a multiple of {input_context.num_replicas_in_sync}",
                exit_code=2,
            )
    per_replica = batch_size // (input_context.num_replicas_in_sync if input_context else 1)

    def read_windows(step: np.ndarray) -> np.ndarray:
        batch = read_batch(ids, seq_len=seq_len, batch_size=batch_size, seed=seed, step=int(step))
        return batch[first * per_replica : (first + replicas) * per_replica]

    def windows(step):
        batch = tf.numpy_function(read_windows, [step], tf.int32, stateful=False)
        batch = tf.reshape(batch, [replicas, per_replica, seq_len + 1])
        return batch[:, :, :-1], batch[:, :, 1:]

    stop = 2**62 if steps is None else start_step + steps
    batches = tf.data.Dataset.range(start_step, stop).map(windows, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.unbatch().prefetch(tf.data.AUTOTUNE)


def _batch_reader(ids: np.ndarray, seq_len: int, batch_size: int, contiguous: bool):
    """`stream_batch` or `window_batch`, after checking that `ids` holds a batch of it."""
    if contiguous:
        stream_layout(len(ids), seq_len, batch_size)
        return stream_batch
    _check_window(ids, seq_len)
    return window_batch


def window_batches(
    ids: np.ndarray, *, seq_len: int, batch_size: int, seed: int, start_step: int = 0, steps: int,
    contiguous: bool = False,
):
    """`make_dataset`'s batches as a `keras.utils.PyDataset`, for backends without tf.data (JAX, PyTorch)."""
    from charzoo._keras import keras

    read_batch = _batch_reader(ids, seq_len, batch_size, contiguous)

    class WindowBatches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            if not 0 <= index < steps:
                raise IndexError(index)
            batch = read_batch(ids, seq_len=seq_len, batch_size=batch_size, seed=seed, step=start_step + index)
            return batch[:, :-1], batch[:, 1:]

    return WindowBatches()


def file_dataset(
    path: str | Path,
    vocab: Vocab,
    *,
    seq_len: int,
    batch_size: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    encoding: str = "utf-8",
):
    """The training pipeline's `(ids, next_ids)` windows over a text file, encoded with `vocab`.

    The ids are written once to a cache file in `cache_dir` (default:
    `$XDG_CACHE_HOME/charzoo/ids`) and memory-mapped, so batches never copy the
    whole corpus; the text itself is read once to hash and encode it. Characters
    outside `vocab` become its unknown character; a vocabulary without one rejects them.
    """
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "charzoo" / "ids"
    ids = cached_ids(read_corpus(path, encoding=encoding), vocab, cache_dir or default_cache)
    return make_dataset(ids, seq_len=seq_len, batch_size=batch_size, seed=seed)


def text_dataset(text: str, vocab: Vocab, *, seq_len: int, batch_size: int, seed: int = 0):
    """The training pipeline's `(ids, next_ids)` windows for a string, encoded with `vocab`."""
    return make_dataset(compact_ids(vocab.encode(text), len(vocab)), seq_len=seq_len, batch_size=batch_size, seed=seed)
