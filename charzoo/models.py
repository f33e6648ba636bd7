"""The char-RNN: embedding -> stacked recurrent layers -> logits over the vocabulary.

`CharRNN` is a Keras 3 subclassed model written with backend-agnostic layers, so
it trains under TensorFlow or JAX and its weights load under either.
`NumpyCharRNN` runs the same math in NumPy from those weights; sampling and
evaluation use it because one stream at a time is several times faster there
than through a framework call per character.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from charzoo._keras import keras
from charzoo.errors import CharzooError

CELLS = ("lstm", "gru", "rnn")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a `CharRNN`; the same names are used in JSON, recipes and CLI flags."""

    vocab_size: int
    cell: str = "lstm"  # "lstm" | "gru" | "rnn"; lstm keeps Keras gate order i, f, c, o
    layers: int = 2
    hidden: int = 512  # units per recurrent layer
    embedding_dim: int = 64
    dropout: float = 0.0  # after each recurrent layer, as in char-rnn

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise CharzooError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}", exit_code=2)
        for name in ("vocab_size", "layers", "hidden", "embedding_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CharzooError(f"{name} must be a positive integer, got {value!r}", exit_code=2)
        if not 0.0 <= self.dropout < 1.0:
            raise CharzooError(f"dropout must be in [0, 1), got {self.dropout!r}", exit_code=2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def states_per_layer(self) -> int:
        """Recurrent state tensors each layer carries: [h, c] for an LSTM, [h] otherwise."""
        return 2 if self.cell == "lstm" else 1


_RECURRENT_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}


@keras.saving.register_keras_serializable(package="charzoo")
class CharRNN(keras.Model):
    """A character-level recurrent language model.

    Args:
        vocab_size: number of characters.
        cell: "lstm", "gru" or "rnn".
        layers: number of stacked recurrent layers.
        hidden: units per recurrent layer.
        embedding_dim: size of the character embedding.
        dropout: dropout rate after each recurrent layer (training only).

    Example:
        >>> model = CharRNN(vocab_size=65, layers=1, hidden=32)
        >>> logits = model(ids)                                  # (B, T, V)
        >>> logits, state = model(ids, return_state=True)        # state: one list per layer
        >>> logits, state = model(next_ids, initial_state=state, return_state=True)
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        layers: int = 2,
        hidden: int = 512,
        embedding_dim: int = 64,
        dropout: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.config = ModelConfig(vocab_size, cell, layers, hidden, embedding_dim, dropout)
        # === Layers ===
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.recurrent = [
            _RECURRENT_LAYERS[cell](hidden, return_sequences=True, return_state=True, name=f"{cell}_{i}")
            for i in range(layers)
        ]
        self.dropouts = [keras.layers.Dropout(dropout, name=f"dropout_{i}") for i in range(layers)]
        self.head = keras.layers.Dense(vocab_size, name="logits")

    def call(self, ids, initial_state=None, training=False, return_state=False):
        x = self.embedding(ids)  # (B, T, E)
        states = []
        for i, (layer, dropout) in enumerate(zip(self.recurrent, self.dropouts)):
            outputs = layer(x, initial_state=None if initial_state is None else initial_state[i], training=training)
            x, layer_state = outputs[0], list(outputs[1:])  # (B, T, H); [h] or [h, c]
            states.append(layer_state)
            x = dropout(x, training=training)
        logits = self.head(x)  # (B, T, V)
        return (logits, states) if return_state else logits

    def build_for_loading(self) -> None:
        """Create the weights by calling the model once, so `.weights.h5` can load into it."""
        self(np.zeros((1, 1), dtype="int32"))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CharRNN:
        return cls(**config)

    @classmethod
    def from_model_config(cls, config: ModelConfig) -> CharRNN:
        return cls(**config.to_dict())


def _other_runnable_threads() -> int:
    """Threads of other processes running or ready to run now (Linux); elsewhere the load average."""
    try:
        with open("/proc/loadavg") as f:
            system = int(f.read().split()[3].split("/")[0])
        ours = 0
        for task in os.listdir("/proc/self/task"):  # this process's threads (TensorFlow's may still spin)
            with open(f"/proc/self/task/{task}/stat") as f:
                ours += f.read().rpartition(")")[2].split()[0] == "R"
        return max(0, system - ours)
    except (OSError, ValueError, IndexError):
        return round(os.getloadavg()[0])


@contextlib.contextmanager
def step_threads() -> Iterator[None]:
    """NumPy's BLAS threads for a step-by-step loop (sampling, evaluation): all of them on an idle CPU, one on a busy one.

    Measured on 2 cores, 2 x 512 LSTM steps: idle, two threads beat one (7.1k vs 4.5k chars/s for one
    stream, 19k vs 11k for 64); while other processes held the cores, BLAS threads waiting on each
    other made a step 10-100x slower than one thread.
    """
    if _other_runnable_threads() < max(1, (os.cpu_count() or 1) // 2):
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings, unlike 1 / (1 + exp(-x))


class NumpyCharRNN:
    """The forward pass of a `CharRNN` in NumPy, for stateful sampling and evaluation.

    The input projection of a whole chunk is one matrix product per layer; only
    the recurrent product runs step by step.
    """

    def __init__(self, model: CharRNN):
        if not model.built:
            model.build_for_loading()
        self.config = model.config
        embedding = keras.ops.convert_to_numpy(model.embedding.embeddings).astype(np.float32)
        self.layer_weights = [
            [keras.ops.convert_to_numpy(w).astype(np.float32) for w in layer.weights] for layer in model.recurrent
        ]
        kernel, _, bias = self.layer_weights[0]
        # The first layer's input projection of every character, looked up instead of computed: (V, G * H)
        self.input_table = embedding @ kernel + (bias[0] if bias.ndim == 2 else bias)
        self.head_kernel, self.head_bias = (keras.ops.convert_to_numpy(w) for w in model.head.weights)
        # For `step`: an upper layer's [input; recurrent] kernels stacked, so [x, h] takes one product.
        self.stacked_kernels = [np.concatenate([w[0], w[1]]) for w in self.layer_weights[1:]]

    def zero_state(self, batch: int) -> list[list[np.ndarray]]:
        return [
            [np.zeros((batch, self.config.hidden), np.float32) for _ in range(self.config.states_per_layer)]
            for _ in self.layer_weights
        ]

    def hidden_states(self, ids: np.ndarray, state: list[list[np.ndarray]] | None = None):
        """Run `ids` (B, T); return each layer's outputs [(B, T, H)] and the final state."""
        ids = np.asarray(ids)
        state = self.zero_state(ids.shape[0]) if state is None else state
        run = _STEP_FUNCTIONS[self.config.cell]
        outputs, new_state = [], []
        for index, (weights, layer_state) in enumerate(zip(self.layer_weights, state)):
            kernel, recurrent_kernel, bias = weights
            input_bias = bias[0] if bias.ndim == 2 else bias  # GRU (reset_after): [input bias, recurrent bias]
            projected = self.input_table[ids] if index == 0 else outputs[-1] @ kernel + input_bias  # (B, T, G * H)
            x, layer_state = run(projected, recurrent_kernel, bias, layer_state)
            outputs.append(x)
            new_state.append(layer_state)
        return outputs, new_state

    def step(self, ids: np.ndarray, state: list[list[np.ndarray]]):
        """Logits (B, V) for one character per stream, ids (B,), and the new state: sampling's hot path.

        The same math as `__call__` for a sequence of one, in 2-D arrays and with one matrix
        product per layer: a third faster per character for an LSTM (measured, 2 x 512).
        """
        if self.config.cell != "lstm":
            logits, state = self(ids[:, None], state)
            return logits[:, 0], state
        x, new_state = None, []
        for index, (h, c) in enumerate(state):
            if index == 0:
                z = self.input_table[ids] + h @ self.layer_weights[0][1]
            else:
                z = np.concatenate([x, h], axis=1) @ self.stacked_kernels[index - 1] + self.layer_weights[index][2]
            x, c = _lstm_cell(z, c)
            new_state.append([x, c])
        return x @ self.head_kernel + self.head_bias, new_state

    def __call__(self, ids: np.ndarray, state: list[list[np.ndarray]] | None = None):
        """Logits (B, T, V) for `ids` (B, T), and the state after the last step."""
        outputs, state = self.hidden_states(ids, state)
        return outputs[-1] @ self.head_kernel + self.head_bias, state


def _lstm_cell(z: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step from the pre-activations z (B, 4H), Keras gate order i, f, c, o: (h, c)."""
    units = c.shape[-1]
    # sigmoid(x) = (1 + tanh(x / 2)) / 2, so one tanh serves all four gates
    gates = np.tanh(z * _gate_scale(units))
    sig = 0.5 * gates + 0.5
    c = sig[:, units : 2 * units] * c + sig[:, :units] * gates[:, 2 * units : 3 * units]
    return sig[:, 3 * units :] * np.tanh(c), c


@functools.lru_cache(maxsize=8)
def _gate_scale(units: int) -> np.ndarray:
    return np.repeat(np.array([0.5, 0.5, 1.0, 0.5], np.float32), units)


def _run_lstm(projected, recurrent_kernel, bias, state):
    """LSTM steps over `projected` inputs (B, T, 4H), which hold the bias."""
    h, c = state
    out = np.empty(projected.shape[:2] + (h.shape[-1],), np.float32)
    for t in range(projected.shape[1]):
        h, c = _lstm_cell(projected[:, t] + h @ recurrent_kernel, c)
        out[:, t] = h
    return out, [h, c]


def _run_gru(projected, recurrent_kernel, bias, state):
    """GRU steps (reset_after, as Keras): `projected` (B, T, 3H) holds the input bias; gates z, r, h."""
    (h,) = state
    out = np.empty(projected.shape[:2] + (h.shape[-1],), np.float32)
    for t in range(projected.shape[1]):
        xz, xr, xh = np.split(projected[:, t], 3, axis=-1)
        rz, rr, rh = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
        z = _sigmoid(xz + rz)
        r = _sigmoid(xr + rr)
        h = z * h + (1.0 - z) * np.tanh(xh + r * rh)
        out[:, t] = h
    return out, [h]


def _run_simple_rnn(projected, recurrent_kernel, bias, state):
    """Simple RNN steps: `projected` (B, T, H) holds the bias."""
    (h,) = state
    out = np.empty(projected.shape[:2] + (h.shape[-1],), np.float32)
    for t in range(projected.shape[1]):
        h = np.tanh(projected[:, t] + h @ recurrent_kernel)
        out[:, t] = h
    return out, [h]


_STEP_FUNCTIONS = {"lstm": _run_lstm, "gru": _run_gru, "rnn": _run_simple_rnn}
