"""Evaluation: the chunked, stateful NumPy pass equals one full-sequence Keras call."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charzoo import evaluation
from charzoo._keras import keras
from charzoo.errors import CharzooError
from charzoo.evaluation import evaluate

TEXT = "Maria\nJohn\nAnnabelle\nZoe\nChristopher\nEve\n" * 3


def keras_cross_entropy(charmodel, text: str) -> float:
    """Mean -log p(next char) from one Keras call on the whole text, the first character unscored."""
    ids = charmodel.vocab.encode(text)
    logits = keras.ops.convert_to_numpy(charmodel.model(ids[None, :-1]))[0].astype(np.float64)  # (T, V)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(len(ids) - 1), ids[1:]].mean())


def test_equals_cross_entropy_of_one_keras_call(tiny_model):
    result = evaluate(tiny_model, TEXT)
    assert result.chars == len(TEXT) - 1
    assert result.nats_per_char == pytest.approx(keras_cross_entropy(tiny_model, TEXT), rel=1e-5)
    assert result.bits_per_char == pytest.approx(result.nats_per_char / math.log(2))
    assert result.to_json() == {"chars": result.chars, "nats_per_char": result.nats_per_char,
                                "bits_per_char": result.bits_per_char}


@pytest.mark.parametrize("chunk", [1, 7, 64, len(TEXT) - 1])
def test_invariant_to_chunk_size(tiny_model, monkeypatch, chunk):
    reference = evaluate(tiny_model, TEXT).nats_per_char
    monkeypatch.setattr(evaluation, "CHUNK", chunk)
    assert evaluate(tiny_model, TEXT).nats_per_char == pytest.approx(reference, rel=1e-6)


def test_two_characters_score_one(tiny_model):
    result = evaluate(tiny_model, "Ma")
    assert result.chars == 1
    assert result.nats_per_char == pytest.approx(keras_cross_entropy(tiny_model, "Ma"), rel=1e-5)


def test_too_short_text(tiny_model):
    with pytest.raises(CharzooError, match="at least 2 characters") as info:
        evaluate(tiny_model, "M")
    assert info.value.exit_code == 2


def test_unknown_characters_are_an_error(tiny_model):
    with pytest.raises(CharzooError, match="'漢' at position 4") as info:
        evaluate(tiny_model, "Mari漢")
    assert info.value.exit_code == 2
