"""Characters <-> integer ids, for NumPy and for tf.data.

A vocabulary is the sorted list of distinct Unicode code points of a text, so
building it is deterministic. Ids of existing characters never change: new
characters are only ever appended (see `Vocab.extend`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from charzoo.errors import CharzooError

FORMAT_VERSION = 1
UNKNOWN_CHAR = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER stands for every unknown character
CHUNK_CHARS = 1 << 22  # characters per NumPy pass over a long text: bounds the uint32/int64 temporaries


def describe_char(char: str) -> str:
    """A readable name for a character in error messages: 'a', '\\n', U+00E9."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    name = unicodedata.name(char, "")
    return f"{char!r} (U+{ord(char):04X}{' ' + name if name else ''})"


def code_points(text: str) -> np.ndarray:
    """The Unicode code points of `text` as uint32, without a Python list per char."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass(frozen=True)
class Vocab:
    """An ordered tuple of characters; a character's id is its index.

    Args:
        chars: the characters, each a single code point, without duplicates.
        unknown: the character that stands for characters outside the vocabulary
            (`UNKNOWN_CHAR`), or None when unknown characters are an error.
    """

    chars: tuple[str, ...]
    unknown: str | None = None

    def __post_init__(self) -> None:
        if any(len(c) != 1 for c in self.chars):
            raise CharzooError("vocabulary entries must be single characters")
        if len(set(self.chars)) != len(self.chars):
            raise CharzooError("vocabulary has duplicate characters")
        if self.unknown is not None and self.unknown not in self.chars:
            raise CharzooError(f"unknown character {describe_char(self.unknown)} is not in the vocabulary")
        points = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        order = np.argsort(points, kind="stable")
        object.__setattr__(self, "_sorted_points", points[order])
        object.__setattr__(self, "_sorted_ids", order.astype(np.int32))

    # === Construction ===
    @classmethod
    def from_text(cls, text: str, *, unknown: bool = False) -> Vocab:
        """The sorted distinct characters of `text` (plus `UNKNOWN_CHAR` when `unknown`)."""
        chars = {chr(p) for start in range(0, len(text), CHUNK_CHARS)
                 for p in np.unique(code_points(text[start : start + CHUNK_CHARS]))}
        if unknown:
            chars.add(UNKNOWN_CHAR)
        return cls(tuple(sorted(chars)), UNKNOWN_CHAR if unknown else None)

    def extend(self, text: str) -> Vocab:
        """This vocabulary with the characters of `text` it lacks appended in sorted order."""
        return Vocab(self.chars + tuple(self.missing(text)), self.unknown)

    def missing(self, text: str) -> list[str]:
        """The sorted distinct characters of `text` that are not in the vocabulary."""
        points = np.unique(code_points(text))
        known = np.isin(points, self._sorted_points)
        return [chr(p) for p in points[~known]]

    # === Properties ===
    def __len__(self) -> int:
        return len(self.chars)

    @property
    def unknown_id(self) -> int | None:
        return None if self.unknown is None else self.chars.index(self.unknown)

    # === NumPy encode/decode ===
    def encode(self, text: str, *, map_unknown: bool = False) -> np.ndarray:
        """`text` as int32 ids.

        Characters outside the vocabulary raise a `CharzooError` naming the first
        one and its position, unless `map_unknown` is set and the vocabulary has an
        unknown character, which they are then mapped to.
        """
        points = code_points(text)
        pos = np.searchsorted(self._sorted_points, points)
        pos = np.minimum(pos, len(self._sorted_points) - 1)
        found = self._sorted_points[pos] == points if len(self.chars) else np.zeros(len(points), bool)
        ids = self._sorted_ids[pos] if len(self.chars) else np.zeros(len(points), np.int32)
        if not found.all():
            if map_unknown and self.unknown is not None:
                ids = np.where(found, ids, self.unknown_id).astype(np.int32)
            else:
                at = int(np.argmin(found))
                char = chr(int(points[at]))
                hint = (
                    "remove it, or map unknown characters (map_unknown=True)"
                    if self.unknown is not None
                    else "remove it: this vocabulary has no unknown character to stand for it"
                )
                raise CharzooError(
                    f"character {describe_char(char)} at position {at} is not in the model's vocabulary "
                    f"({len(self)} characters); {hint}",
                    exit_code=2,
                )
        return ids.astype(np.int32, copy=False)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise CharzooError(f"id out of range for a vocabulary of {len(self)} characters")
        return "".join(self.chars[i] for i in ids)

    # === TensorFlow encode, for tf.data ===
    def tf_lookup_table(self):
        """A `tf.lookup.StaticHashTable` from code point to id (-1, or the unknown id, when absent)."""
        import tensorflow as tf

        default = -1 if self.unknown_id is None else self.unknown_id
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([ord(c) for c in self.chars], tf.int64),
                tf.range(len(self.chars), dtype=tf.int64),
            ),
            default_value=tf.constant(default, tf.int64),
        )

    # === JSON ===
    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "chars": list(self.chars), "unknown": self.unknown}

    @classmethod
    def from_json(cls, data: Any) -> Vocab:
        if not isinstance(data, dict) or not isinstance(data.get("chars"), list):
            raise CharzooError("vocab.json is not a charzoo vocabulary (expected an object with a 'chars' list)")
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise CharzooError(
                f"vocab.json has format version {data['format_version']}; upgrade charzoo to read it"
            )
        return cls(tuple(data["chars"]), data.get("unknown"))
