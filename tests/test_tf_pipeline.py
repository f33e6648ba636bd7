"""tf.data helpers, the memory-mapped id cache, CharTokenizer, and the README's Keras example."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np

from conftest import ROOT


def test_cached_ids_are_written_once_and_memory_mapped(tmp_path):
    from charzoo.data import cached_ids
    from charzoo.vocab import Vocab

    text = "abracadabra\n" * 100
    vocab = Vocab.from_text(text)
    ids = cached_ids(text, vocab, tmp_path)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, vocab.encode(text))
    (cache,) = tmp_path.iterdir()
    assert cache.stat().st_size == len(text)
    written = cache.stat().st_mtime_ns
    np.testing.assert_array_equal(cached_ids(text, vocab, tmp_path), ids)
    assert cache.stat().st_mtime_ns == written  # reused, not rewritten
    cached_ids(text, vocab.extend("z"), tmp_path)  # another vocabulary gets its own file
    assert len(list(tmp_path.iterdir())) == 2


def test_cached_ids_map_unknown_characters(tmp_path):
    from charzoo.data import cached_ids
    from charzoo.vocab import Vocab

    vocab = Vocab.from_text("abc", unknown=True)
    np.testing.assert_array_equal(cached_ids("abzc", vocab, tmp_path), vocab.encode("ab\ufffdc"))


def test_file_dataset_reads_windows_of_the_file(tmp_path):
    from charzoo.data import file_dataset
    from charzoo.vocab import Vocab

    text = "".join(chr(ord("a") + i % 26) for i in range(5000))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text)
    dataset = file_dataset(tmp_path / "corpus.txt", vocab, seq_len=16, batch_size=4, seed=1,
                           cache_dir=tmp_path / "cache")
    for inputs, targets in dataset.take(3):
        assert inputs.shape == (4, 16) and inputs.dtype.name == "int32"
        for row, next_row in zip(inputs.numpy(), targets.numpy()):
            start = text.index(vocab.decode(row))
            assert vocab.decode(next_row) == text[start + 1 : start + 17]
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_global_batch_splits_over_input_pipelines_and_replicas():
    import tensorflow as tf

    from charzoo.data import make_dataset

    ids = np.random.default_rng(0).integers(0, 40, 3000).astype(np.uint8)
    single = [x.numpy() for x, _ in make_dataset(ids, seq_len=8, batch_size=8, seed=3, start_step=2, steps=2)]
    for pipelines in (1, 2):
        slices = []
        for pipeline in range(pipelines):
            context = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline,
                                                 num_replicas_in_sync=4)
            batches = make_dataset(ids, seq_len=8, batch_size=8, seed=3, start_step=2, steps=2,
                                   input_context=context)
            slices.append([x.numpy() for x, _ in batches])
        per_pipeline = 4 // pipelines  # replicas fed by one pipeline, one element each per step
        for step, expected in enumerate(single):
            got = [s[step * per_pipeline + r] for s in slices for r in range(per_pipeline)]
            assert all(g.shape == (2, 8) for g in got)
            np.testing.assert_array_equal(np.concatenate(got), expected)


def test_tokenizer_round_trips_and_matches_vocab_encode():
    import tensorflow as tf

    from charzoo.tokenizer import CharTokenizer
    from charzoo.vocab import Vocab

    vocab = Vocab.from_text("hello world\nçà")
    tokenizer = CharTokenizer.from_vocab(vocab)
    ids = tokenizer(tf.constant(["hello", "çà world", ""]))
    assert [row.tolist() for row in ids.numpy()] == [vocab.encode(t).tolist() for t in ("hello", "çà world", "")]
    assert tokenizer(tf.constant("hello")).numpy().tolist() == vocab.encode("hello").tolist()
    assert tokenizer.detokenize(ids).numpy().tolist() == ["hello".encode(), "çà world".encode(), b""]
    dense = tf.constant([vocab.encode("hello"), vocab.encode("world")])
    assert tokenizer.detokenize(dense).numpy().tolist() == [b"hello", b"world"]

    pipeline = tf.data.Dataset.from_tensor_slices(["hello", "world"]).batch(2).map(lambda t: tokenizer(t).to_tensor())
    np.testing.assert_array_equal(next(iter(pipeline)).numpy(), dense.numpy())


def test_tokenizer_follows_the_unknown_policy_and_round_trips_its_config():
    import tensorflow as tf

    from charzoo.tokenizer import CharTokenizer
    from charzoo.vocab import Vocab

    strict = CharTokenizer.from_vocab(Vocab.from_text("abc"))
    assert strict(tf.constant(["aXbé"])).numpy()[0].tolist() == [0, 1]  # no unknown character: dropped
    with_unknown = Vocab.from_text("abc", unknown=True)
    mapped = CharTokenizer.from_vocab(with_unknown)(tf.constant(["aXb"])).numpy()[0].tolist()
    assert mapped == [0, with_unknown.unknown_id, 1]
    clone = CharTokenizer.from_config(CharTokenizer.from_vocab(with_unknown).get_config())
    assert clone.vocab == with_unknown


def test_tokenizer_is_a_keras_layer_on_strings():
    import tensorflow as tf

    from charzoo._keras import keras
    from charzoo.tokenizer import CharTokenizer
    from charzoo.vocab import Vocab

    tokenizer = CharTokenizer.from_vocab(Vocab.from_text("abc"))
    strings = keras.Input(shape=(), dtype="string")
    lengths = keras.layers.Lambda(lambda ids: tf.cast(ids.row_lengths(), "float32"), output_shape=())(tokenizer(strings))
    model = keras.Model(strings, lengths)
    assert model(tf.constant(["abc", "a", ""])).numpy().tolist() == [3.0, 1.0, 0.0]


def test_training_reads_a_memory_mapped_id_cache(tiny_model_dir, names_path):
    from charzoo.zoo import IDS_CACHE_DIR

    (cache,) = (tiny_model_dir / IDS_CACHE_DIR).iterdir()
    assert cache.stat().st_size == len(names_path.read_text(encoding="utf-8").removeprefix("\ufeff"))


def readme_block(heading: str) -> str:
    """The first ```python block after `heading` in README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_keras_example_runs(tmp_path, monkeypatch, tiny_model_dir, names_path):
    """The README's tf.data and Keras block, verbatim: the classifier head learns, the LM stays frozen."""
    from charzoo.zoo import load_dir

    shutil.copytree(tiny_model_dir, tmp_path / "runs" / "names")
    os.symlink(names_path, tmp_path / "names.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    scope: dict = {}
    exec(compile(readme_block("### tf.data and Keras"), "README.md", "exec"), scope)

    inputs, targets = next(iter(scope["windows"]))
    assert inputs.shape == (32, 64) and targets.shape == (32, 64)
    lm, classifier, history = scope["lm"], scope["classifier"], scope["history"]
    for trained, saved in zip(lm.model.get_weights(), load_dir(tmp_path / "runs" / "names").model.get_weights()):
        np.testing.assert_array_equal(trained, saved)  # frozen: the language model did not change
    assert len(classifier.trainable_weights) == 2  # only the Dense head trains
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    predictions = classifier.predict(next(iter(scope["data"]))[0], verbose=0)
    assert predictions.shape == (32, 1) and ((predictions > 0) & (predictions < 1)).all()
