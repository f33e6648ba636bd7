"""`charzoo export`: a SavedModel whose signatures agree with charzoo, loadable without charzoo."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

MAX_LENGTH = 64


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charzoo", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir) -> Path:
    out = tmp_path_factory.mktemp("export") / "names"
    result = run_cli("export", str(tiny_model_dir), str(out), "--format", "savedmodel", "--max-length", str(MAX_LENGTH))
    assert result.returncode == 0, result.stderr
    assert f"exported {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def loaded(exported):
    import tensorflow as tf

    return tf.saved_model.load(str(exported))


def generate(loaded, primes, length, temperature, seed=0) -> list[str]:
    import tensorflow as tf

    outputs = loaded.signatures["generate"](prime=tf.constant(primes, tf.string), length=tf.constant(length, tf.int32),
                                            temperature=tf.constant(temperature, tf.float32),
                                            seed=tf.constant(seed, tf.int32))
    return [t.decode("utf-8") for t in outputs["text"].numpy()]


def test_signatures_and_their_types(loaded):
    signatures = loaded.signatures
    assert set(signatures) == {"serving_default", "generate", "score"}
    inputs = signatures["generate"].structured_input_signature[1]
    assert {k: (v.dtype.name, v.shape.as_list()) for k, v in inputs.items()} == {
        "prime": ("string", [None]), "length": ("int32", []), "temperature": ("float32", []), "seed": ("int32", []),
    }
    assert signatures["score"].structured_outputs["nats_per_char"].dtype.name == "float32"
    assert signatures["serving_default"].structured_input_signature[1]["ids"].shape.as_list() == [None, None]


def test_score_equals_evaluate(loaded, tiny_model):
    import tensorflow as tf

    from charzoo.evaluation import evaluate

    texts = ["Anna\nBob\nCharlotte\n", "Zo", "x" * 300]
    scores = loaded.signatures["score"](text=tf.constant(texts))["nats_per_char"].numpy()
    for text, score in zip(texts, scores):
        assert abs(score - evaluate(tiny_model, text).nats_per_char) < 1e-4


def test_score_drops_unknown_characters_and_is_nan_below_two(loaded, tiny_model):
    import tensorflow as tf

    from charzoo.evaluation import evaluate

    assert tiny_model.vocab.unknown is None and tiny_model.vocab.missing("€✓") == ["€", "✓"]
    scores = loaded.signatures["score"](text=tf.constant(["An€na✓", "A", ""]))["nats_per_char"].numpy()
    assert abs(scores[0] - evaluate(tiny_model, "Anna").nats_per_char) < 1e-4
    assert np.isnan(scores[1:]).all()


def test_greedy_generate_equals_sample_text_top_k_1(loaded, tiny_model):
    from charzoo.sampling import sample_text

    primes = ["Ann", "", "Ma\nJo", "q"]
    expected = [sample_text(tiny_model, prime=p, length=40, top_k=1, seed=0)[0] for p in primes]
    assert generate(loaded, primes, 40, 1e-6) == expected


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_greedy_generate_equals_sample_text_for_each_cell(cell, tmp_path):
    """Random weights, scaled up for sharp and varied predictions: greedy text that is not one repeated character."""
    import tensorflow as tf

    from charzoo._keras import keras
    from charzoo.export import export_savedmodel
    from charzoo.models import CharRNN
    from charzoo.sampling import sample_text
    from charzoo.vocab import Vocab
    from charzoo.zoo import CharModel

    keras.utils.set_random_seed(1)
    vocab = Vocab.from_text("abcdefghij \n")
    model = CharRNN(vocab_size=len(vocab), cell=cell, layers=2, hidden=16, embedding_dim=8)
    model.build_for_loading()
    model.set_weights([w * 3 for w in model.get_weights()])
    charmodel = CharModel(model, vocab)
    primes = ["abc", "", "j\nh", "a"]
    expected = [sample_text(charmodel, prime=p, length=40, top_k=1)[0] for p in primes]
    assert len(set("".join(expected))) > 3
    loaded = tf.saved_model.load(str(export_savedmodel(charmodel, tmp_path / "export")))
    assert generate(loaded, primes, 40, 1e-6) == expected


def test_generate_samples_reproducibly_by_seed(loaded, tiny_model):
    texts = generate(loaded, ["Ann", "Ann", "Ann"], 30, 1.0, seed=7)
    assert all(len(t) == 30 and not tiny_model.vocab.missing(t) for t in texts)
    assert len(set(texts)) > 1  # each stream draws its own characters
    assert generate(loaded, ["Ann", "Ann", "Ann"], 30, 1.0, seed=7) == texts
    assert generate(loaded, ["Ann", "Ann", "Ann"], 30, 1.0, seed=8) != texts
    assert len(generate(loaded, ["An€", "✓"], 5, 1.0)) == 2  # unknown characters: no crash
    assert generate(loaded, [], 5, 1.0) == []


def test_serving_default_returns_the_keras_logits(loaded, tiny_model):
    import tensorflow as tf

    ids = tiny_model.vocab.encode("Anna\nBob")[None, :]
    logits = loaded.signatures["serving_default"](ids=tf.constant(ids))["logits"].numpy()
    assert logits.shape == (1, ids.shape[1], len(tiny_model.vocab))
    np.testing.assert_allclose(logits, tiny_model.model(ids).numpy(), atol=1e-5)


@pytest.mark.parametrize(("length", "temperature", "message"), [
    (0, 1.0, "length must be > 0"),
    (-3, 1.0, "length must be > 0"),
    (MAX_LENGTH + 1, 1.0, f"length must be <= {MAX_LENGTH}"),
    (5, 0.0, "temperature must be > 0"),
    (5, -1.0, "temperature must be > 0"),
])
def test_bad_generate_arguments_raise_invalid_argument(loaded, length, temperature, message):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        generate(loaded, ["Ann"], length, temperature)


def saved_model_cli(directory: Path, signature: str, inputs: str, outdir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`saved_model_cli run` in an isolated interpreter: site-packages on the path, but not the editable charzoo."""
    script = (
        "import sys\n"
        f"sys.path.append({sysconfig.get_paths()['purelib']!r})\n"
        "try:\n"
        "    import charzoo\n"
        "    sys.exit('charzoo is importable')\n"
        "except ImportError:\n"
        "    pass\n"
        "from tensorflow.python.tools.saved_model_cli import main\n"
        f"sys.argv = ['saved_model_cli', 'run', '--dir', {str(directory)!r}, '--tag_set', 'serve',\n"
        f"            '--signature_def', {signature!r}, '--input_exprs', {inputs!r}, '--outdir', {str(outdir)!r}]\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_saved_model_cli_runs_where_charzoo_is_not_importable(exported, tiny_model, tmp_path):
    from charzoo.evaluation import evaluate
    from charzoo.sampling import sample_text

    result = saved_model_cli(exported, "score", 'text=["Anna\\nBob", "Zoe"]', tmp_path / "score", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = np.load(tmp_path / "score" / "nats_per_char.npy")
    assert abs(scores[0] - evaluate(tiny_model, "Anna\nBob").nats_per_char) < 1e-4
    assert abs(scores[1] - evaluate(tiny_model, "Zoe").nats_per_char) < 1e-4

    inputs = 'prime=["Ann", ""];length=25;temperature=0.00001;seed=0'
    result = saved_model_cli(exported, "generate", inputs, tmp_path / "generate", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    texts = np.load(tmp_path / "generate" / "text.npy", allow_pickle=True)  # strings: an object array
    texts = [t.decode("utf-8") for t in texts]
    assert texts == [sample_text(tiny_model, prime=p, length=25, top_k=1)[0] for p in ("Ann", "")]


def test_export_of_a_broken_model_directory_is_one_line_and_leaves_nothing(tiny_model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.weights.h5").write_bytes(b"not hdf5")
    out = tmp_path / "exports" / "broken"
    out.parent.mkdir()
    result = run_cli("export", str(broken), str(out))
    assert result.returncode == 1
    assert result.stderr.startswith("charzoo: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []


def test_export_refuses_a_non_empty_directory(tiny_model, tmp_path):
    from charzoo.errors import CharzooError
    from charzoo.export import export_savedmodel

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(CharzooError, match="not an empty directory"):
        export_savedmodel(tiny_model, tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_a_failed_export_leaves_no_half_written_directory(tiny_model, tmp_path, monkeypatch):
    import tensorflow as tf

    from charzoo.export import export_savedmodel

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export_savedmodel(tiny_model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
