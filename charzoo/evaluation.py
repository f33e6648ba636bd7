"""Evaluation: nats and bits per character of a model on a text, as one continuous stream.

`evaluate` scores with fixed weights (the zoo's numbers); with `dynamic_lr` it is
dynamic evaluation (Krause et al., 2018): after scoring each segment the model
takes a gradient step on it, so it learns the names and identifiers of the text
it is reading. `loss_by_word_novelty` splits a loss between words the training
text contains, words it does not, and the characters between words.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from charzoo.errors import CharzooError

if TYPE_CHECKING:
    from charzoo.zoo import CharModel

CHUNK = 2048  # characters per forward call; the state carries across chunks
SEGMENT = 128  # characters per dynamic-evaluation update, the training windows' length
# The zoo's dynamic-evaluation rate: the best of 0.01, 0.03, 0.1 and 0.3 on the first 20,480 characters of
# shakespeare's val split (1.3431 nats/char against 1.3931 static), then used unchanged for every model.
DYNAMIC_LR = 0.1


def nats_to_bits(nats: float) -> float:
    """A loss in nats (natural log) in bits (log base 2)."""
    return nats / math.log(2.0)


def check_dynamic_lr(lr: float) -> None:
    """Reject a dynamic-evaluation rate that is negative or not finite."""
    if not (math.isfinite(lr) and lr >= 0):
        raise CharzooError(f"dynamic evaluation learning rate must be a finite number >= 0, got {lr!r}", exit_code=2)


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Cross-entropy of a model on a text: `chars` characters scored, their mean loss."""

    chars: int  # characters scored (all but the first)
    nats_per_char: float

    @property
    def bits_per_char(self) -> float:
        return nats_to_bits(self.nats_per_char)

    @classmethod
    def from_losses(cls, losses: np.ndarray) -> EvalResult:
        """The mean of per-character losses, as `char_losses` returns them."""
        return cls(chars=len(losses), nats_per_char=float(losses.sum()) / len(losses))

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "bits_per_char": self.bits_per_char}


def log_probs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) for each position of logits (T, V)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    return z[np.arange(len(targets)), targets] - np.log(np.exp(z).sum(axis=-1))


def char_losses(
    charmodel: CharModel, text: str, *, map_unknown: bool = False, dynamic_lr: float | None = None
) -> np.ndarray:
    """-log p of each character of `text` but the first, given all the text before it.

    The text runs through the model as one stream, with the recurrent state
    carried from chunk to chunk. With `dynamic_lr`, see `_dynamic_char_losses`.
    """
    ids = charmodel.vocab.encode(text, map_unknown=map_unknown)
    if len(ids) < 2:
        raise CharzooError("text to evaluate needs at least 2 characters", exit_code=2)
    if dynamic_lr is not None:
        return _dynamic_char_losses(charmodel, ids, lr=dynamic_lr)
    from charzoo.models import NumpyCharRNN, step_threads

    net = NumpyCharRNN(charmodel.model)
    state, losses = None, []
    with step_threads():
        for start in range(0, len(ids) - 1, CHUNK):
            targets = ids[start + 1 : start + CHUNK + 1]
            inputs = ids[start : start + len(targets)]
            logits, state = net(inputs[None, :], state)
            losses.append(-log_probs(logits[0], targets))
    return np.concatenate(losses)


def evaluate(
    charmodel: CharModel, text: str, *, map_unknown: bool = False, dynamic_lr: float | None = None
) -> EvalResult:
    """Cross-entropy of `charmodel` on `text`, the first character unscored."""
    return EvalResult.from_losses(char_losses(charmodel, text, map_unknown=map_unknown, dynamic_lr=dynamic_lr))


def _dynamic_char_losses(charmodel: CharModel, ids: np.ndarray, *, lr: float) -> np.ndarray:
    """Dynamic evaluation: score each `SEGMENT`, then take one SGD step on its mean loss.

    A segment is scored before the model learns from it, so no character is
    predicted by weights that have seen it; the state carries on as in `evaluate`.
    The adaptation runs on a copy (without dropout): `charmodel` is left unchanged.
    With `lr=0` this is static evaluation.
    """
    from charzoo._keras import keras
    from charzoo.models import CharRNN

    check_dynamic_lr(lr)
    config = charmodel.config
    net = CharRNN.from_model_config(dataclasses.replace(config, dropout=0.0))
    net.build_for_loading()
    net.set_weights(charmodel.model.get_weights())
    # The state goes in and out as tensors, so one graph serves every backend and segment.
    id_input = keras.Input(batch_shape=(1, None), dtype="int32")
    state_inputs = [
        [keras.Input(batch_shape=(1, config.hidden)) for _ in range(config.states_per_layer)]
        for _ in range(config.layers)
    ]
    logits, states = net(id_input, initial_state=state_inputs, return_state=True)
    inputs = [id_input, *(s for layer in state_inputs for s in layer)]
    reader = keras.Model(inputs, [logits, *(s for layer in states for s in layer)])
    learner = keras.Model(inputs, logits)
    learner.compile(
        optimizer=keras.optimizers.SGD(lr), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    state = [np.zeros((1, config.hidden), np.float32) for _ in inputs[1:]]
    losses = []
    for start in range(0, len(ids) - 1, SEGMENT):
        targets = ids[start + 1 : start + SEGMENT + 1][None, :]
        segment = [ids[start : start + targets.shape[1]][None, :], *state]
        logits, *next_state = reader.predict_on_batch(segment)
        losses.append(-log_probs(np.asarray(logits)[0], targets[0]))
        if lr > 0 and start + SEGMENT < len(ids) - 1:
            learner.train_on_batch(segment, targets)
        state = [np.asarray(s) for s in next_state]
    losses = np.concatenate(losses)
    if not np.isfinite(losses).all():
        raise CharzooError(f"dynamic evaluation diverged at learning rate {lr:g}; try a smaller one", exit_code=2)
    return losses


@dataclasses.dataclass(frozen=True)
class LossShare:
    """One group of characters in `loss_by_word_novelty`: its share of the characters and of the loss."""

    label: str
    char_fraction: float  # of the scored characters
    loss_fraction: float  # of the total loss
    nats_per_char: float  # mean loss of these characters


WORD = re.compile(r"\w+")  # identifiers in code, words in prose


def loss_by_word_novelty(text: str, losses: np.ndarray, known_text: str) -> list[LossShare]:
    """Split the loss of `text` (`losses` from `char_losses`) by the words `known_text` has.

    Characters fall in three groups: inside a word of `known_text` (typically the
    training split), inside a word it never contains, and between words. A model
    with fixed weights cannot know an unseen identifier; this shows what they cost.
    """
    if len(losses) != len(text) - 1:
        raise ValueError(
            f"{len(losses)} losses for a text of {len(text)} characters; expected one per character but the first"
        )
    known = set(WORD.findall(known_text))
    group = np.full(len(text), 2, dtype=np.int8)  # 0: known word, 1: unseen word, 2: between words
    for match in WORD.finditer(text):
        group[match.start() : match.end()] = 0 if match.group() in known else 1
    group, total = group[1:], float(losses.sum())
    shares = []
    for index, label in enumerate(("in words the training text has", "in words it does not have", "between words")):
        mask = group == index
        count = int(mask.sum())
        shares.append(
            LossShare(
                label=label,
                char_fraction=count / len(losses),
                loss_fraction=float(losses[mask].sum()) / total if total else 0.0,
                nats_per_char=float(losses[mask].mean()) if count else 0.0,
            )
        )
    return shares
