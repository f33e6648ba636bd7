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


# === Per-character losses and their breakdown ===
def test_char_losses_are_the_per_character_terms_of_evaluate(tiny_model):
    losses = evaluation.char_losses(tiny_model, TEXT)
    assert losses.shape == (len(TEXT) - 1,) and (losses > 0).all()
    assert evaluation.EvalResult.from_losses(losses) == evaluate(tiny_model, TEXT)


def test_loss_by_word_novelty_splits_characters_and_loss():
    text = "int foo_bar(x);\nint baz;"
    losses = np.arange(1, len(text), dtype=np.float64)  # the loss of character i is i: easy to sum by hand
    known, unseen, between = evaluation.loss_by_word_novelty(text, losses, known_text="int x = foo_bar;")
    # By hand: known words "int", "foo_bar", "x", "int"; unseen "baz"; the first character "i" is not scored.
    word_spans = {"int": [(0, 3), (16, 19)], "foo_bar": [(4, 11)], "x": [(12, 13)], "baz": [(20, 23)]}
    known_positions = [i for word in ("int", "foo_bar", "x") for a, b in word_spans[word] for i in range(max(a, 1), b)]
    unseen_positions = list(range(20, 23))
    assert known.char_fraction == pytest.approx(len(known_positions) / len(losses))
    assert unseen.char_fraction == pytest.approx(3 / len(losses))
    assert known.nats_per_char == pytest.approx(np.mean(known_positions))
    assert unseen.nats_per_char == pytest.approx(np.mean(unseen_positions))
    assert unseen.loss_fraction == pytest.approx(sum(unseen_positions) / losses.sum())
    assert known.char_fraction + unseen.char_fraction + between.char_fraction == pytest.approx(1.0)
    assert known.loss_fraction + unseen.loss_fraction + between.loss_fraction == pytest.approx(1.0)


def test_loss_by_word_novelty_needs_one_loss_per_scored_character():
    with pytest.raises(ValueError, match="one per character but the first"):
        evaluation.loss_by_word_novelty("abc", np.ones(3), known_text="abc")


# === Dynamic evaluation ===
def test_dynamic_evaluation_at_rate_zero_is_static_evaluation(tiny_model, monkeypatch):
    static = evaluation.char_losses(tiny_model, TEXT)
    for segment in (5, 128):
        monkeypatch.setattr(evaluation, "SEGMENT", segment)
        np.testing.assert_allclose(evaluation.char_losses(tiny_model, TEXT, dynamic_lr=0.0), static, rtol=1e-4)


def test_dynamic_evaluation_learns_a_repeated_text_and_leaves_the_model_alone(tiny_model, monkeypatch):
    monkeypatch.setattr(evaluation, "SEGMENT", 14)
    text = "Zoe\nMaria\nEve\n" * 20  # 14 characters: each segment repeats the one before
    weights = [w.copy() for w in tiny_model.model.get_weights()]
    static = evaluation.char_losses(tiny_model, text)
    dynamic = evaluation.char_losses(tiny_model, text, dynamic_lr=1.0)
    # The first segment is scored before any update; later ones by weights that learnt the earlier repeats.
    np.testing.assert_allclose(dynamic[:14], static[:14], rtol=1e-4)
    assert dynamic[-14:].mean() < static[-14:].mean() - 0.5
    assert tiny_model.evaluate(text, dynamic_lr=1.0).nats_per_char == pytest.approx(dynamic.mean(), rel=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(weights, tiny_model.model.get_weights()))


def test_dynamic_evaluation_rejects_a_negative_rate(tiny_model):
    with pytest.raises(CharzooError, match="learning rate must be a finite number >= 0") as info:
        evaluate(tiny_model, TEXT, dynamic_lr=-0.1)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_dynamic_evaluation_carries_every_cells_state(cell, monkeypatch):
    from charzoo.models import CharRNN
    from charzoo.vocab import Vocab
    from charzoo.zoo import CharModel

    keras.utils.set_random_seed(1)
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(vocab_size=len(vocab), cell=cell, layers=2, hidden=8, embedding_dim=4)
    model.build_for_loading()
    charmodel = CharModel(model, vocab)
    monkeypatch.setattr(evaluation, "SEGMENT", 9)
    np.testing.assert_allclose(evaluation.char_losses(charmodel, TEXT, dynamic_lr=0.0),
                               evaluation.char_losses(charmodel, TEXT), rtol=1e-4)
