"""Corpora on disk, the train/val split, and the tf.data window pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from charzoo.data import compact_ids, make_dataset, read_corpus, split_text, stream_layout, window_batches
from charzoo.errors import CharzooError


def corpus_error(tmp_path, content: bytes | None, **kwargs) -> CharzooError:
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CharzooError) as info:
        read_corpus(path, **kwargs)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)
    return info.value


def test_missing_corpus(tmp_path):
    assert "does not exist" in str(corpus_error(tmp_path, None))


def test_directory_corpus(tmp_path):
    with pytest.raises(CharzooError, match="is a directory") as info:
        read_corpus(tmp_path)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("content", [b"", b"  \n\n\t "])
def test_empty_corpus(tmp_path, content):
    assert "is empty" in str(corpus_error(tmp_path, content))


def test_binary_corpus(tmp_path):
    assert "looks binary (NUL byte at offset 3)" in str(corpus_error(tmp_path, b"PK\x03\x00\x14\x00 zip-like"))


def test_invalid_utf8_reports_the_byte_offset(tmp_path):
    message = str(corpus_error(tmp_path, "héllo ".encode() + b"\xff world"))
    assert "byte 0xff at offset 7" in message  # é is two bytes
    assert "--errors replace" in message


def test_errors_replace_substitutes_u_fffd(tmp_path):
    (tmp_path / "corpus.txt").write_bytes(b"ab\xffcd")
    assert read_corpus(tmp_path / "corpus.txt", errors="replace") == "ab\ufffdcd"


def test_other_encodings_and_bom(tmp_path):
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    assert read_corpus(tmp_path / "latin.txt", encoding="latin-1") == "café"
    (tmp_path / "bom.txt").write_bytes("\ufeffhello".encode())
    assert read_corpus(tmp_path / "bom.txt") == "hello"
    assert "unknown encoding" in str(corpus_error(tmp_path, b"text", encoding="no-such-codec"))
    assert "not a text encoding" in str(corpus_error(tmp_path, b"text", encoding="base64"))


@pytest.mark.parametrize("encoding", ["utf-16", "UTF16", "utf_16_le", "utf-32"])
def test_wide_encodings_are_not_taken_for_binary(tmp_path, encoding):
    (tmp_path / "wide.txt").write_bytes("naïve text\n".encode(encoding))
    assert read_corpus(tmp_path / "wide.txt", encoding=encoding) == "naïve text\n"


def test_split_text_takes_the_last_fraction_for_validation():
    text = "0123456789" * 10
    train, val = split_text(text, 0.1)
    assert (train, val) == (text[:90], text[90:])
    assert split_text(text, 0.0) == (text, "")
    with pytest.raises(CharzooError, match=r"got 1\.0") as info:
        split_text(text, 1.0)
    assert info.value.exit_code == 2


def test_compact_ids_picks_the_smallest_dtype():
    ids = np.array([0, 3, 1], dtype=np.int32)
    assert compact_ids(ids, 65).dtype == np.uint8
    assert compact_ids(ids, 752).dtype == np.uint16
    assert compact_ids(ids, 70_000).dtype == np.int32
    np.testing.assert_array_equal(compact_ids(ids, 752), ids)


def positions(n: int) -> np.ndarray:
    """Ids that equal their own position, so a window reveals exactly where it was cut."""
    return np.arange(n, dtype=np.uint16)


def test_dataset_shapes_and_dtypes():
    dataset = make_dataset(positions(500), seq_len=16, batch_size=4, seed=0, steps=3)
    batches = list(dataset)
    assert len(batches) == 3
    for inputs, targets in batches:
        assert inputs.shape == (4, 16) and targets.shape == (4, 16)
        assert inputs.dtype.name == "int32" and targets.dtype.name == "int32"


def test_windows_are_contiguous_slices_with_targets_shifted_by_one():
    n, seq_len = 300, 20
    for inputs, targets in make_dataset(positions(n), seq_len=seq_len, batch_size=32, seed=7, steps=5):
        inputs, targets = inputs.numpy(), targets.numpy()
        starts = inputs[:, :1]
        np.testing.assert_array_equal(inputs, starts + np.arange(seq_len))
        np.testing.assert_array_equal(targets, inputs + 1)
        assert starts.min() >= 0 and targets.max() <= n - 1


def test_every_window_start_is_reachable():
    # 3 possible starts (0, 1, 2) for 6 ids and seq_len 3: all of them show up
    starts = {int(x[0, 0]) for x, _ in make_dataset(positions(6), seq_len=3, batch_size=1, seed=0, steps=60)}
    assert starts == {0, 1, 2}


def test_batches_are_a_function_of_seed_and_step():
    ids = positions(5000)
    from_zero = [x.numpy() for x, _ in make_dataset(ids, seq_len=8, batch_size=6, seed=3, steps=6)]
    for k in (1, 4):
        resumed = next(iter(make_dataset(ids, seq_len=8, batch_size=6, seed=3, start_step=k, steps=1)))[0].numpy()
        np.testing.assert_array_equal(resumed, from_zero[k])
    again = [x.numpy() for x, _ in make_dataset(ids, seq_len=8, batch_size=6, seed=3, steps=6)]
    np.testing.assert_array_equal(np.stack(again), np.stack(from_zero))
    other_seed = next(iter(make_dataset(ids, seq_len=8, batch_size=6, seed=4, steps=1)))[0].numpy()
    assert not np.array_equal(other_seed, from_zero[0])
    assert not np.array_equal(from_zero[0], from_zero[1])


def test_pydataset_yields_the_tf_data_batches():
    # JAX and PyTorch train from the PyDataset: a run sees the same data on any backend
    ids = positions(5000)
    expected = [(x.numpy(), y.numpy()) for x, y in make_dataset(ids, seq_len=8, batch_size=6, seed=3, start_step=2, steps=4)]
    batches = window_batches(ids, seq_len=8, batch_size=6, seed=3, start_step=2, steps=4)
    assert len(batches) == 4
    for (x, y), (want_x, want_y) in zip((batches[i] for i in range(4)), expected, strict=True):
        assert x.dtype.name == "int32"
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
    with pytest.raises(IndexError):
        batches[4]
    with pytest.raises(CharzooError, match="shorter than one window"):
        window_batches(positions(8), seq_len=8, batch_size=2, seed=0, steps=1)


def test_unbounded_dataset_keeps_going():
    dataset = make_dataset(positions(100), seq_len=8, batch_size=2, seed=0)
    assert len(list(dataset.take(50))) == 50


def test_text_shorter_than_one_window():
    with pytest.raises(CharzooError, match=r"shorter than one window of seq_len \+ 1 = 11") as info:
        make_dataset(positions(10), seq_len=10, batch_size=2, seed=0)
    assert info.value.exit_code == 2


def test_text_dataset_windows_are_slices_of_the_string():
    from charzoo.data import text_dataset
    from charzoo.vocab import Vocab

    text = "the quick brown fox jumps over the lazy dog\n" * 20
    vocab = Vocab.from_text(text)
    inputs, targets = next(iter(text_dataset(text, vocab, seq_len=12, batch_size=4, seed=3)))
    for row_in, row_out in zip(inputs.numpy(), targets.numpy()):
        window = vocab.decode(row_in) + vocab.decode(row_out)[-1]
        assert window in text and vocab.decode(row_out) == window[1:]


def test_contiguous_batches_continue_each_row_where_the_last_batch_ended():
    n, seq_len, batch_size = 1000, 10, 4
    span, per_pass = stream_layout(n, seq_len, batch_size)
    assert (span, per_pass) == (250, 24)
    batches = [x.numpy() for x, _ in make_dataset(positions(n), seq_len=seq_len, batch_size=batch_size, seed=2,
                                                   steps=3 * per_pass, contiguous=True)]
    for step, inputs in enumerate(batches):
        np.testing.assert_array_equal(inputs, inputs[:, :1] + np.arange(seq_len))  # windows are slices
        stream = inputs[:, 0] // span
        np.testing.assert_array_equal(stream, np.arange(batch_size))  # row b stays in stream b
        assert np.all(inputs[:, -1] + 1 < (stream + 1) * span)  # the last target too
        if (step + 1) % per_pass:
            np.testing.assert_array_equal(batches[step + 1][:, 0], inputs[:, 0] + seq_len)  # and goes on from here
    offsets = [int(batches[k * per_pass][0, 0]) for k in range(3)]  # each pass starts at its own offset
    assert all(0 <= o < seq_len for o in offsets) and len(set(offsets)) > 1


def test_contiguous_batches_are_the_same_on_every_input_pipeline():
    ids = positions(5000)
    expected = [x.numpy() for x, _ in make_dataset(ids, seq_len=8, batch_size=6, seed=3, steps=9, contiguous=True)]
    resumed = window_batches(ids, seq_len=8, batch_size=6, seed=3, start_step=4, steps=5, contiguous=True)
    for index in range(5):
        np.testing.assert_array_equal(resumed[index][0], expected[4 + index])


def test_contiguous_batches_need_streams_of_two_windows():
    with pytest.raises(CharzooError, match="streams of at least 2 x seq_len = 20 characters") as info:
        make_dataset(positions(200), seq_len=10, batch_size=16, seed=0, contiguous=True)
    assert info.value.exit_code == 2 and "--carry-state" in str(info.value)
