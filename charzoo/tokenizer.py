"""A TensorFlow tokenizer for a model's vocabulary: strings -> ids and ids -> strings, in graphs.

`CharTokenizer` is a Keras layer built only from TensorFlow string and lookup
ops, so the same object works in `tf.data.Dataset.map`, inside a Keras model
(TensorFlow backend) and in an exported SavedModel, where charzoo is not installed.

Characters outside the vocabulary follow the vocabulary's policy: they become
the unknown id when the vocabulary has an unknown character, and are dropped
otherwise (a graph cannot raise a readable error per character, and an id of -1
would crash the embedding lookup downstream).
"""

from __future__ import annotations

from typing import Any

from charzoo._keras import keras
from charzoo.vocab import Vocab


@keras.saving.register_keras_serializable(package="charzoo")
class CharTokenizer(keras.layers.Layer):
    """Strings to int32 ids (`call`) and ids back to strings (`detokenize`).

    Args:
        chars: the vocabulary's characters in id order (`Vocab.chars`).
        unknown: the vocabulary's unknown character, or None.

    Example:
        >>> tokenizer = CharTokenizer.from_vocab(charmodel.vocab)
        >>> tokenizer(tf.constant(["ab", "abc"]))          # RaggedTensor (2, None) of int32
        >>> tokenizer.detokenize(tokenizer(["ab"]))         # [b"ab"]
        >>> dataset.map(lambda text, label: (tokenizer(text).to_tensor(), label))
    """

    def __init__(self, chars: list[str] | tuple[str, ...], unknown: str | None = None, **kwargs: Any):
        super().__init__(trainable=False, dtype="int32", **kwargs)
        import tensorflow as tf

        # === Config ===
        self.vocab = Vocab(tuple(chars), unknown)
        # === Lookups ===
        self.lookup_table = self.vocab.tf_lookup_table()  # code point -> id
        self.code_points = tf.constant([ord(c) for c in self.vocab.chars], tf.int32)

    @classmethod
    def from_vocab(cls, vocab: Vocab, **kwargs: Any) -> CharTokenizer:
        return cls(vocab.chars, vocab.unknown, **kwargs)

    def call(self, strings):
        """Ids of `strings`: a RaggedTensor (B, None) for a batch, a 1-D tensor for one string."""
        import tensorflow as tf

        points = tf.strings.unicode_decode(strings, "UTF-8", errors="replace")  # (B, None) int32
        ids = self.lookup_table.lookup(tf.cast(points, tf.int64))
        if self.vocab.unknown is None:
            ids = tf.ragged.boolean_mask(ids, ids >= 0) if isinstance(ids, tf.RaggedTensor) else ids[ids >= 0]
        return tf.cast(ids, tf.int32)

    def detokenize(self, ids):
        """Strings of `ids` (..., T), dense or ragged; the last axis is joined."""
        import tensorflow as tf

        return tf.strings.unicode_encode(tf.gather(self.code_points, ids), "UTF-8")

    def compute_output_spec(self, strings):
        return keras.KerasTensor(tuple(strings.shape) + (None,), dtype="int32", ragged=True)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return {**config, "chars": list(self.vocab.chars), "unknown": self.vocab.unknown}
