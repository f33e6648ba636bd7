"""Shared fixtures: real corpora from ../shared, tiny real Keras models trained on them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
NAMES = CORPORA / "names" / "input.txt"

TINY = {"cell": "lstm", "layers": 1, "hidden": 32, "embedding_dim": 8}


@pytest.fixture(scope="session")
def names_path() -> Path:
    if not NAMES.is_file():
        pytest.fail(f"the names corpus is missing at {NAMES}; tests expect ../shared/corpora beside the checkout")
    return NAMES


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, names_path) -> Path:
    """A 1 x 32 LSTM trained for 60 steps on the names corpus, saved as a model directory."""
    from charzoo.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "names-tiny"
    train(names_path, out, model_config=TINY,
          train_config=TrainConfig(seq_len=32, batch_size=16, steps=60, checkpoint_every=30, sample_every=30),
          metadata={"name": "names-tiny", "license": "other"}, verbose=0)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from charzoo.zoo import load_dir

    return load_dir(tiny_model_dir)


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """A Hub-compatible server on loopback, with this process's huggingface_hub pointed at it.

    huggingface_hub reads HF_ENDPOINT and HF_HOME once, when its constants are first
    imported, so they are set here for the whole session; tests keep apart by repo
    name, and tests that need their own HF_HOME or HF_HUB_OFFLINE run the CLI in a subprocess.
    """
    import sys

    from hub_server import HubServer

    server = HubServer(tmp_path_factory.mktemp("hub-repos")).start()
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and constants.ENDPOINT != server.url:
        pytest.fail("huggingface_hub was used before the `hub` fixture, so it cannot be pointed at the test Hub")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_ENDPOINT", server.url)
        env.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
        env.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        env.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "CHARZOO_ZOO"):
            env.delenv(name, raising=False)
        yield server
    server.close()
