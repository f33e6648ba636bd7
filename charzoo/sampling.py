"""Stateful sampling: O(1) work per character, many streams in one batch.

The prime conditions the recurrent state once; each new character then costs
one NumPy step of the model (see `NumpyCharRNN`), never a pass over the text.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from charzoo.errors import CharzooError
from charzoo.models import NumpyCharRNN, step_threads


def check_sampling_options(
    temperature: float, top_k: int | None, top_p: float | None, length: int, num: int, seed: int | None = None
) -> None:
    if not temperature > 0:
        raise CharzooError(f"temperature must be > 0, got {temperature!r}; use --top-k 1 for greedy", exit_code=2)
    if top_k is not None and top_k < 1:
        raise CharzooError(f"top-k must be >= 1, got {top_k!r}", exit_code=2)
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise CharzooError(f"top-p must be in (0, 1], got {top_p!r}", exit_code=2)
    if length < 1:
        raise CharzooError(f"length must be >= 1, got {length!r}", exit_code=2)
    if num < 1:
        raise CharzooError(f"num must be >= 1, got {num!r}", exit_code=2)
    if seed is not None and seed < 0:
        raise CharzooError(f"seed must be >= 0, got {seed!r}", exit_code=2)


def next_char_probs(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Probabilities (B, V) from logits (B, V) after temperature, top-k and top-p filtering."""
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z -= z.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1)
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least the top character)
        keep_sorted = np.cumsum(sorted_probs, axis=-1) - sorted_probs < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One id per row of `probs` (B, V)."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), probs.shape[-1] - 1)


def sample_text(
    charmodel,
    *,
    prime: str = "",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    num: int = 1,
    seed: int | None = None,
    stop: str | None = None,
    on_text: Callable[[str], None] | None = None,
) -> list[str]:
    """Generate `num` continuations of `prime`, together in one batch.

    Args:
        charmodel: a `CharModel` (from `charzoo.load` or training).
        prime: text that conditions the state; it is not repeated in the result.
        length: characters to generate per stream.
        temperature: > 0; lower is more conservative.
        top_k: sample only among the k likeliest characters (1 is greedy).
        top_p: sample only among the likeliest characters whose mass reaches p.
        num: number of streams.
        seed: makes the result reproducible.
        stop: end a stream where it produces this string (the string is not included).
        on_text: called with each piece of stream 0 as it is produced, for streaming output.

    Returns:
        One generated string per stream.
    """
    check_sampling_options(temperature, top_k, top_p, length, num, seed)
    vocab = charmodel.vocab
    prime_ids = vocab.encode(prime) if prime else None
    if prime_ids is None:
        # With no prime, start as after a line break (or the first character), which is not emitted.
        start = "\n" if "\n" in vocab.chars else vocab.chars[0]
        prime_ids = vocab.encode(start)
    # A stop string with characters outside the vocabulary can never be produced.
    stop_ids = vocab.encode(stop) if stop and not vocab.missing(stop) else None
    with step_threads():
        net = NumpyCharRNN(charmodel.model)
        rng = np.random.default_rng(seed)
        logits, state = net(np.repeat(prime_ids[None, :], num, axis=0))
        logits = logits[:, -1]  # (B, V)
        drawn = np.empty((num, length), dtype=np.int32)
        ends = np.full(num, length)  # where each stream ends; `length` while it runs
        emitted = 0  # characters of stream 0 already passed to on_text
        hold = len(stop_ids) - 1 if stop_ids is not None else 0  # may still turn out to start the stop string
        for t in range(length):
            ids = draw(next_char_probs(logits, temperature, top_k, top_p), rng)
            drawn[:, t] = ids
            if stop_ids is not None and t + 1 >= len(stop_ids):
                hit = (ends == length) & (drawn[:, t + 1 - len(stop_ids) : t + 1] == stop_ids).all(axis=1)
                ends[hit] = t + 1 - len(stop_ids)
            if on_text is not None:
                safe = ends[0] if ends[0] < length else t + 1 - hold
                if safe > emitted:
                    on_text(vocab.decode(drawn[0, emitted:safe]))
                    emitted = safe
            if (ends < length).all():
                break
            logits, state = net.step(ids, state)
        if on_text is not None and min(ends[0], t + 1) > emitted:
            on_text(vocab.decode(drawn[0, emitted : min(ends[0], t + 1)]))
        return [vocab.decode(row[:end]) for row, end in zip(drawn, ends)]
