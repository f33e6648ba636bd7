"""Export a model as a TensorFlow SavedModel whose signatures take and return plain tensors.

The SavedModel needs TensorFlow only (not charzoo, not Keras) to load and run,
so it serves from TF Serving, `saved_model_cli` or `tf.saved_model.load`:

    generate(prime: string[B], length: int32[], temperature: float32[], seed: int32[]) -> {"text": string[B]}
        `length` characters after each prime, sampled statefully in one `tf.while_loop`.
        A temperature below `GREEDY_TEMPERATURE` picks the likeliest character (greedy,
        as `sample_text(top_k=1)`); an empty prime starts as `sample_text` does.
    score(text: string[B]) -> {"nats_per_char": float32[B]}
        cross-entropy of each text, first character unscored, as `charzoo.evaluation.evaluate`;
        NaN for a text of fewer than 2 characters.
    serving_default(ids: int32[B, T]) -> {"logits": float32[B, T, V]}

Characters outside the vocabulary become its unknown character, or are dropped
when it has none (see `charzoo.tokenizer`). `length` <= 0 or above the export's
`max_length`, and `temperature` <= 0, fail with an `InvalidArgumentError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from charzoo._keras import keras  # before TensorFlow: it imports it quietly
from charzoo.errors import CharzooError
from charzoo.tokenizer import CharTokenizer
from charzoo.zoo import _DIR_MODE, CharModel

if keras.backend.backend() != "tensorflow":  # the export traces the Keras model into a TF graph
    raise CharzooError(
        f"export writes a TensorFlow SavedModel and needs the TensorFlow backend, not "
        f"{keras.backend.backend()!r}; unset KERAS_BACKEND (a model trained under any backend exports)",
        exit_code=2,
    )

import tensorflow as tf  # noqa: E402  (isort: skip)

GREEDY_TEMPERATURE = 1e-4  # generate takes the argmax below this temperature
DEFAULT_MAX_LENGTH = 10_000  # characters one generate call may produce


class CharRNNModule(tf.Module):
    """A `CharRNN` and its tokenizer with the three signatures of a charzoo SavedModel."""

    def __init__(self, charmodel: CharModel, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__(name="charzoo")
        if not charmodel.model.built:
            charmodel.model.build_for_loading()
        # Track the plain tf.Variables and the lookup table, not the Keras objects: Keras 3 variables save
        # as wrappers that TF1-style loaders such as `saved_model_cli run` cannot find.
        object.__setattr__(self, "model", charmodel.model)
        object.__setattr__(self, "tokenizer", CharTokenizer.from_vocab(charmodel.vocab))
        self.weights = [w.value for w in charmodel.model.weights]
        self.table = self.tokenizer.lookup_table
        self.max_length = max_length
        vocab = charmodel.vocab
        self.start_id = vocab.chars.index("\n" if "\n" in vocab.chars else vocab.chars[0])  # as sample_text

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")])
    def logits(self, ids):
        return {"logits": self.model(ids)}  # (B, T, V)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        ids = self.tokenizer(text)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        padded = tf.pad(ids.to_tensor(), [[0, 0], [0, 1]])  # (B, T + 1): at least one step, even for ""
        log_probs = tf.nn.log_softmax(self.model(padded)[:, :-1])  # (B, T, V)
        targets = tf.gather(log_probs, padded[:, 1:], batch_dims=2)  # (B, T): log p of each next char
        scored = tf.range(tf.shape(targets)[1])[None, :] < (lengths - 1)[:, None]
        nats = -tf.reduce_sum(tf.where(scored, targets, 0.0), axis=1)
        counts = tf.cast(lengths - 1, tf.float32)
        return {"nats_per_char": tf.where(lengths >= 2, nats / tf.maximum(counts, 1.0), float("nan"))}

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prime"),
        tf.TensorSpec([], tf.int32, name="length"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="seed"),
    ])
    def generate(self, prime, length, temperature, seed):
        checks = [
            tf.debugging.assert_positive(length, message="length must be > 0"),
            tf.debugging.assert_less_equal(
                length, self.max_length, message=f"length must be <= {self.max_length}, this export's --max-length"
            ),
            tf.debugging.assert_positive(
                temperature, message=f"temperature must be > 0 (below {GREEDY_TEMPERATURE}: greedy)"
            ),
        ]
        with tf.control_dependencies(checks):
            length = tf.identity(length)
        ids = self.tokenizer(prime)
        # An empty prime (or one of unknown characters only) starts from the start character instead.
        empty = tf.RaggedTensor.from_tensor(tf.expand_dims(ids.row_lengths() == 0, 1))
        with_start = tf.concat([tf.fill([ids.nrows(), 1], self.start_id), ids], axis=1)
        ids = tf.ragged.boolean_mask(with_start, tf.concat([empty, tf.ones_like(ids, tf.bool)], axis=1))
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,) prime lengths, >= 1
        primes = tf.pad(ids.to_tensor(), [[0, 0], [0, 1]])  # (B, P + 1): a column even for an empty batch
        batch, prime_len = tf.shape(primes)[0], tf.shape(primes)[1]
        # Step i feeds prime character i while a row still has some, then its own last pick.
        steps = tf.reduce_max(tf.concat([lengths, [1]], 0)) - 1 + length
        units, per_layer = self.model.config.hidden, 2 if self.model.config.cell == "lstm" else 1
        state = [[tf.zeros([batch, units]) for _ in range(per_layer)] for _ in range(self.model.config.layers)]

        def step(i, inputs, state, picks):
            logits, state = self.model(inputs[:, None], initial_state=state, return_state=True)
            logits = logits[:, -1]  # (B, V)
            sampled = tf.random.stateless_categorical(
                logits / tf.maximum(temperature, GREEDY_TEMPERATURE), 1, seed=tf.stack([seed, i]), dtype=tf.int32
            )[:, 0]
            pick = tf.where(temperature < GREEDY_TEMPERATURE, tf.argmax(logits, -1, output_type=tf.int32), sampled)
            next_prime = primes[:, tf.minimum(i + 1, prime_len - 1)]
            return i + 1, tf.where(i + 1 < lengths, next_prime, pick), state, picks.write(i, pick)

        _, _, _, picks = tf.while_loop(
            lambda i, *_: i < steps, step, [0, primes[:, 0], state, tf.TensorArray(tf.int32, size=steps)]
        )
        picks = tf.transpose(picks.stack())  # (B, steps)
        generated = tf.gather(picks, (lengths - 1)[:, None] + tf.range(length)[None, :], batch_dims=1)  # (B, length)
        return {"text": self.tokenizer.detokenize(generated)}


def export_savedmodel(charmodel: CharModel, out_dir: str | Path, *, max_length: int = DEFAULT_MAX_LENGTH) -> Path:
    """Write `charmodel` as a SavedModel to the new directory `out_dir`, whole or not at all."""
    out_dir = Path(out_dir)
    if max_length < 1:
        raise CharzooError(f"--max-length must be >= 1, got {max_length}", exit_code=2)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CharzooError(f"{out_dir} already exists and is not an empty directory; choose a new OUT_DIR", exit_code=2)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        module = CharRNNModule(charmodel, max_length)
        signatures = {"serving_default": module.logits, "generate": module.generate, "score": module.score}
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        os.chmod(tmp, _DIR_MODE)  # mkdtemp creates 0700; an export is meant to be shared
        os.replace(tmp, out_dir)  # replaces an empty directory too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir

