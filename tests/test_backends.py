"""A model trained under JAX (as the zoo's GPU runs are) loads and evaluates identically under TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from charzoo.data import read_corpus, split_text
from charzoo.evaluation import evaluate
from charzoo.recipes import load_recipe
from charzoo.zoo import load_dir

from conftest import CORPORA, ROOT

pytest.importorskip("jax", reason="the test extra installs jax[cpu]")

def test_jax_trained_recipe_loads_and_scores_the_same_under_tensorflow(tmp_path):
    out, probe = tmp_path / "names-jax", tmp_path / "probe.npy"
    script = (
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as on the GPU machine: training under JAX must not need TensorFlow\n"
        "import numpy as np\n"
        "from charzoo.recipes import load_recipe, run_recipe\n"
        "result = run_recipe(load_recipe(sys.argv[1]), sys.argv[2], sys.argv[3], quick=True, verbose=0)\n"
        "ids = result.vocab.encode('Anna\\nBob\\nCarla\\n')[None, :]\n"
        "np.save(sys.argv[4], np.asarray(result.model(ids, training=False)))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "recipes" / "names.toml"), str(CORPORA / "names" / "input.txt"),
         str(out), str(probe)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]

    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["backend"] == "jax"
    assert metadata["command"].startswith("KERAS_BACKEND=jax charzoo recipe ")
    charmodel = load_dir(out)  # this process runs Keras on TensorFlow
    ids = charmodel.vocab.encode("Anna\nBob\nCarla\n")[None, :]
    np.testing.assert_allclose(np.asarray(charmodel.model(ids, training=False)), np.load(probe), atol=1e-5)
    quick_slice = read_corpus(CORPORA / "names" / "input.txt")[: load_recipe(ROOT / "recipes" / "names.toml").quick["chars"]]
    val_text = split_text(quick_slice, metadata["val_fraction"])[1]
    assert evaluate(charmodel, val_text, map_unknown=True).nats_per_char == pytest.approx(metadata["val_loss"], abs=1e-6)


def test_export_under_another_backend_is_a_one_line_error(tiny_model_dir, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    script = "import sys; sys.modules['tensorflow'] = None; from charzoo.cli import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", script, "export", str(tiny_model_dir), str(tmp_path / "export")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "charzoo: error: export writes a TensorFlow SavedModel and needs the TensorFlow backend, not 'jax'; "
        "unset KERAS_BACKEND (a model trained under any backend exports)"
    ]
    assert not (tmp_path / "export").exists()


def test_training_under_jax_is_as_quiet_as_under_tensorflow(tmp_path):
    # Keras seeds TensorFlow too when it is installed, and TensorFlow's import prints to fd 2
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "charzoo", "recipe", str(ROOT / "recipes" / "names.toml"),
         "--data", str(CORPORA / "names" / "input.txt"), "--out", str(tmp_path / "names"), "--quick"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "oneDNN" not in run.stderr and "cudart" not in run.stderr and "absl" not in run.stderr
    assert "saved" in run.stdout


def test_carried_state_under_jax_is_the_state_of_reading_each_stream_straight_through():
    # JAX runs the training step as a pure function: the carried state must come back out of it
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    script = ("import sys; sys.modules['tensorflow'] = None\n"
              "from test_training import carried_state_error; print(carried_state_error(68))\n")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.strip().splitlines()[-1]) < 1e-5
