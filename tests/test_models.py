"""CharRNN and its NumPy twin: same logits and state for every cell, config round trip, bad configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charzoo._keras import keras
from charzoo.errors import CharzooError
from charzoo.models import CharRNN, ModelConfig, NumpyCharRNN

VOCAB_SIZE = 11


def randomized_model(cell: str, seed: int = 0) -> CharRNN:
    """A 2-layer model whose every weight, biases included, is random (not the zero/one initial biases)."""
    model = CharRNN(vocab_size=VOCAB_SIZE, cell=cell, layers=2, hidden=8, embedding_dim=4)
    model.build_for_loading()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_forward_equals_keras_with_state_across_two_chunks(cell):
    model = randomized_model(cell)
    ids = np.random.default_rng(1).integers(0, VOCAB_SIZE, size=(3, 12)).astype("int32")  # (B, T)

    keras_first, keras_state = model(ids[:, :5], return_state=True)
    keras_second, keras_state = model(ids[:, 5:], initial_state=keras_state, return_state=True)
    net = NumpyCharRNN(model)
    numpy_first, numpy_state = net(ids[:, :5])
    numpy_second, numpy_state = net(ids[:, 5:], numpy_state)

    np.testing.assert_allclose(numpy_first, keras.ops.convert_to_numpy(keras_first), atol=1e-5)
    np.testing.assert_allclose(numpy_second, keras.ops.convert_to_numpy(keras_second), atol=1e-5)
    assert len(numpy_state) == 2 and [len(s) for s in numpy_state] == [len(s) for s in keras_state]
    for numpy_layer, keras_layer in zip(numpy_state, keras_state):
        for a, b in zip(numpy_layer, keras_layer):
            np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), atol=1e-5)
    # carrying the state across chunks is the same as one call on the whole sequence
    whole = keras.ops.convert_to_numpy(model(ids))
    np.testing.assert_allclose(np.concatenate([numpy_first, numpy_second], axis=1), whole, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_step_equals_keras_one_character_at_a_time(cell):
    model = randomized_model(cell)
    ids = np.random.default_rng(2).integers(0, VOCAB_SIZE, size=(3, 6)).astype("int32")
    net = NumpyCharRNN(model)
    state, logits = net.zero_state(3), []
    for t in range(ids.shape[1]):
        step_logits, state = net.step(ids[:, t], state)
        logits.append(step_logits)
    whole = keras.ops.convert_to_numpy(model(ids))  # (B, T, V)
    np.testing.assert_allclose(np.stack(logits, axis=1), whole, atol=1e-5)


def test_lstm_state_is_h_and_c_and_others_h_only():
    for cell, n in (("lstm", 2), ("gru", 1), ("rnn", 1)):
        state = NumpyCharRNN(randomized_model(cell)).zero_state(batch=4)
        assert [len(s) for s in state] == [n, n]
        assert state[0][0].shape == (4, 8)


def test_get_config_from_config_round_trip():
    model = CharRNN(vocab_size=VOCAB_SIZE, cell="gru", layers=3, hidden=16, embedding_dim=5, dropout=0.25)
    config = model.get_config()
    assert {k: config[k] for k in ModelConfig.__dataclass_fields__} == model.config.to_dict()
    clone = CharRNN.from_config(json.loads(json.dumps(config)))  # config.json-safe
    assert clone.config == model.config
    assert clone.get_config() == config
    # registered serializable: Keras can rebuild it by name
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(rebuilt, CharRNN) and rebuilt.config == model.config


def test_from_config_rebuilds_identical_logits():
    model = randomized_model("lstm")
    clone = CharRNN.from_config(model.get_config())
    clone.build_for_loading()
    clone.set_weights(model.get_weights())
    ids = np.arange(6, dtype="int32")[None, :]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(clone(ids)), keras.ops.convert_to_numpy(model(ids))
    )


@pytest.mark.parametrize(
    "kwargs, quoted",
    [
        ({"cell": "xyz"}, "'xyz'"),
        ({"hidden": 0}, "hidden must be a positive integer, got 0"),
        ({"layers": -1}, "layers must be a positive integer, got -1"),
        ({"embedding_dim": 2.5}, "got 2.5"),
        ({"layers": True}, "got True"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ],
)
def test_invalid_config_quotes_the_value(kwargs, quoted):
    with pytest.raises(CharzooError) as info:
        CharRNN(vocab_size=VOCAB_SIZE, **kwargs)
    assert info.value.exit_code == 2
    assert quoted in str(info.value)
