"""Vocab: deterministic build, full Unicode, unknown characters, JSON, and the tf.data encode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from charzoo.data import read_corpus
from charzoo.errors import CharzooError
from charzoo.vocab import UNKNOWN_CHAR, Vocab
from conftest import CORPORA

# CJK, an emoji outside the BMP, a combining acute accent, a zero-width joiner sequence, RTL text
UNICODE_TEXT = "漢字かな 😀 e\u0301 👩\u200d💻 שלום\n"


def test_from_text_is_sorted_and_independent_of_text_order():
    vocab = Vocab.from_text("banana\ncab")
    assert vocab.chars == ("\n", "a", "b", "c", "n")
    assert Vocab.from_text("cab\nbanana") == vocab


def test_full_unicode_is_one_id_per_code_point_and_round_trips():
    vocab = Vocab.from_text(UNICODE_TEXT)
    assert len(vocab) == len(set(UNICODE_TEXT))  # code points: e + U+0301 are two entries
    assert "\u0301" in vocab.chars and "😀" in vocab.chars
    assert list(vocab.chars) == sorted(vocab.chars)
    ids = vocab.encode(UNICODE_TEXT)
    assert ids.dtype == np.int32 and len(ids) == len(UNICODE_TEXT)
    assert vocab.decode(ids) == UNICODE_TEXT


def test_wikipedia_corpus_has_752_code_points_and_round_trips():
    text = read_corpus(CORPORA / "wikipedia" / "input.txt")
    vocab = Vocab.from_text(text)
    assert len(vocab) == 752
    assert vocab.decode(vocab.encode(text)) == text


def test_unknown_character_error_names_the_character_and_position():
    vocab = Vocab.from_text("abc")
    with pytest.raises(CharzooError) as info:
        vocab.encode("abcax")
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "'x'" in message and "position 4" in message and "\n" not in message


def test_unknown_whitespace_character_is_shown_with_its_code_point():
    with pytest.raises(CharzooError, match=r"'\\t' \(U\+0009\) at position 1"):
        Vocab.from_text("ab").encode("a\tb")


def test_map_unknown_uses_the_unknown_id():
    vocab = Vocab.from_text("abc", unknown=True)
    assert vocab.unknown == UNKNOWN_CHAR and vocab.chars[vocab.unknown_id] == UNKNOWN_CHAR
    ids = vocab.encode("a漢c", map_unknown=True)
    assert ids.tolist() == [vocab.chars.index("a"), vocab.unknown_id, vocab.chars.index("c")]
    assert vocab.decode(ids) == f"a{UNKNOWN_CHAR}c"
    with pytest.raises(CharzooError, match="position 1"):
        vocab.encode("a漢c")  # mapping is opt-in


def test_map_unknown_without_an_unknown_character_still_errors():
    with pytest.raises(CharzooError, match="no unknown character") as info:
        Vocab.from_text("abc").encode("abz", map_unknown=True)
    assert info.value.exit_code == 2


def test_extend_keeps_existing_ids_and_appends_sorted():
    vocab = Vocab.from_text("dog")
    extended = vocab.extend("cat dog")
    assert extended.chars[: len(vocab)] == vocab.chars
    assert extended.chars[len(vocab) :] == (" ", "a", "c", "t")
    assert extended.encode("god").tolist() == vocab.encode("god").tolist()
    assert vocab.extend("good") == vocab


def test_invalid_vocabularies_are_rejected():
    with pytest.raises(CharzooError, match="duplicate"):
        Vocab(("a", "a"))
    with pytest.raises(CharzooError, match="single characters"):
        Vocab(("ab",))
    with pytest.raises(CharzooError, match="not in the vocabulary"):
        Vocab(("a",), unknown=UNKNOWN_CHAR)


def test_decode_rejects_ids_out_of_range():
    with pytest.raises(CharzooError, match="out of range"):
        Vocab.from_text("ab").decode([0, 2])


def test_json_round_trip():
    vocab = Vocab.from_text(UNICODE_TEXT, unknown=True)
    assert Vocab.from_json(json.loads(json.dumps(vocab.to_json(), ensure_ascii=False))) == vocab


def test_from_json_rejects_non_vocabulary_json():
    with pytest.raises(CharzooError, match="not a charzoo vocabulary"):
        Vocab.from_json({"chars": "abc"})
    with pytest.raises(CharzooError, match="upgrade charzoo"):
        Vocab.from_json({"chars": ["a"], "format_version": 99})


@pytest.mark.parametrize("unknown", [False, True])
def test_tf_lookup_in_a_tf_data_map_equals_numpy_encode(unknown):
    import tensorflow as tf

    vocab = Vocab.from_text(UNICODE_TEXT + "plain ascii", unknown=unknown)
    lines = [UNICODE_TEXT, "plain ascii", "e\u0301😀"]
    table = vocab.tf_lookup_table()

    def encode(line):
        return tf.cast(table.lookup(tf.cast(tf.strings.unicode_decode(line, "UTF-8"), tf.int64)), tf.int32)

    encoded = [ids.numpy() for ids in tf.data.Dataset.from_tensor_slices(lines).map(encode)]
    for line, ids in zip(lines, encoded):
        np.testing.assert_array_equal(ids, vocab.encode(line))
    absent = table.lookup(tf.constant([ord("Z")], tf.int64)).numpy().tolist()
    assert absent == [vocab.unknown_id if unknown else -1]
