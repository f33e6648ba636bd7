"""Evaluation: nats and bits per character of a model on a text, as one continuous stream."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from charzoo.errors import CharzooError
from charzoo.models import NumpyCharRNN, step_threads

CHUNK = 2048  # characters per forward call; the state carries across chunks


@dataclass(frozen=True)
class EvalResult:
    chars: int  # characters scored (all but the first)
    nats_per_char: float

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2.0)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bits_per_char": self.bits_per_char}


def log_probs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) for each position of logits (T, V)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z[np.arange(len(targets)), targets] - np.log(np.exp(z).sum(axis=-1))


def evaluate(charmodel, text: str, *, map_unknown: bool = False) -> EvalResult:
    """Cross-entropy of `charmodel` on `text`, the first character unscored.

    The text runs through the model as one stream, with the recurrent state
    carried from chunk to chunk, so every character is predicted from all of
    the text before it.
    """
    ids = charmodel.vocab.encode(text, map_unknown=map_unknown)
    if len(ids) < 2:
        raise CharzooError("text to evaluate needs at least 2 characters", exit_code=2)
    net = NumpyCharRNN(charmodel.model)
    state, total = None, 0.0
    with step_threads():
        for start in range(0, len(ids) - 1, CHUNK):
            targets = ids[start + 1 : start + CHUNK + 1]
            inputs = ids[start : start + len(targets)]
            logits, state = net(inputs[None, :], state)
            total -= float(log_probs(logits[0], targets).sum())
    return EvalResult(chars=len(ids) - 1, nats_per_char=total / (len(ids) - 1))
