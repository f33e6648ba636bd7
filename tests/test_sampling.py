"""Sampling: seeds, streams, stop strings, streaming callbacks, greedy and nucleus filtering, bad options."""

from __future__ import annotations

import numpy as np
import pytest

from charzoo._keras import keras
from charzoo.errors import CharzooError
from charzoo.sampling import next_char_probs, sample_text


def test_same_seed_same_text_other_seed_other_text(tiny_model):
    first = sample_text(tiny_model, length=200, temperature=1.0, seed=11)
    assert sample_text(tiny_model, length=200, temperature=1.0, seed=11) == first
    assert sample_text(tiny_model, length=200, temperature=1.0, seed=12) != first
    assert len(first) == 1 and len(first[0]) == 200 and set(first[0]) <= set(tiny_model.vocab.chars)


def test_num_streams_are_generated_together_and_differ(tiny_model):
    streams = sample_text(tiny_model, prime="Ma", length=80, temperature=1.0, num=5, seed=0)
    assert len(streams) == 5 and all(len(s) == 80 for s in streams)
    assert len(set(streams)) == 5


@pytest.mark.parametrize("stop", ["\n", "a", "an"])
def test_stop_string_ends_each_stream_and_is_excluded(tiny_model, stop):
    options = {"prime": "Jo", "length": 120, "temperature": 1.0, "num": 6, "seed": 3}
    unstopped = sample_text(tiny_model, **options)
    stopped = sample_text(tiny_model, stop=stop, **options)
    # every stream draws from the same random numbers, so a stopped stream is the unstopped one cut at `stop`
    assert stopped == [text.split(stop)[0] for text in unstopped]
    assert any(stop in text for text in unstopped)  # the stop string really did occur


@pytest.mark.parametrize("stop", [None, "\n", "ne"])
def test_on_text_pieces_concatenate_to_the_result(tiny_model, stop):
    pieces: list[str] = []
    (text,) = sample_text(tiny_model, length=150, temperature=1.0, seed=5, stop=stop, on_text=pieces.append)
    assert "".join(pieces) == text
    assert all(pieces)
    if len(text) > 10:
        assert len(pieces) > 1  # streamed as it is produced, not all at the end


def greedy_from_keras(charmodel, prime: str, length: int) -> str:
    """Greedy decoding by re-running the Keras model on the whole text for every character."""
    ids = list(charmodel.vocab.encode(prime))
    for _ in range(length):
        logits = keras.ops.convert_to_numpy(charmodel.model(np.array([ids], dtype="int32")))
        ids.append(int(np.argmax(logits[0, -1])))
    return charmodel.vocab.decode(ids[len(prime):])


def test_top_k_1_is_greedy_decoding(tiny_model):
    expected = greedy_from_keras(tiny_model, "Ann", 25)
    for seed in (0, 1):
        assert sample_text(tiny_model, prime="Ann", length=25, top_k=1, temperature=1.3, seed=seed) == [expected]


def test_top_k_keeps_the_k_likeliest():
    logits = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))
    probs = next_char_probs(logits, 1.0, 2, None)
    np.testing.assert_allclose(probs, [[0.0, 4 / 7, 0.0, 3 / 7]])


@pytest.mark.parametrize(
    "top_p, kept",
    [(0.3, [0]), (0.7, [0, 1]), (0.85, [0, 1, 2]), (0.99, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    p = np.array([0.5, 0.3, 0.15, 0.05])
    order = np.array([2, 0, 3, 1])  # scrambled positions, and a second row in reverse
    rows = np.log(np.stack([p[order], p[order][::-1]]))
    probs = next_char_probs(rows, 1.0, None, top_p)
    for row, positions in zip(probs, (order, order[::-1])):
        expected = np.zeros(4)
        expected[kept] = p[kept] / p[kept].sum()
        np.testing.assert_allclose(row, expected[positions], atol=1e-12)  # row[j] is the char at p[positions[j]]


def test_temperature_sharpens_and_flattens():
    logits = np.log(np.array([[0.6, 0.3, 0.1]]))
    cold, hot = next_char_probs(logits, 0.5, None, None), next_char_probs(logits, 2.0, None, None)
    assert cold[0, 0] > 0.6 > hot[0, 0]
    np.testing.assert_allclose(cold.sum(), 1.0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"temperature": 0.0}, "temperature must be > 0, got 0.0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"top_k": 0}, "top-k must be >= 1, got 0"),
        ({"top_p": 1.5}, r"top-p must be in \(0, 1\], got 1.5"),
        ({"top_p": 0.0}, r"top-p must be in \(0, 1\]"),
        ({"length": 0}, "length must be >= 1"),
        ({"num": 0}, "num must be >= 1"),
        ({"prime": "Zoe漢"}, "'漢' at position 3 is not in the model's vocabulary"),
    ],
)
def test_bad_options_are_exit_2_errors(tiny_model, options, message):
    with pytest.raises(CharzooError, match=message) as info:
        sample_text(tiny_model, **options)
    assert info.value.exit_code == 2
