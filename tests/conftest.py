"""Shared fixtures: real corpora from ../shared, tiny real Keras models trained on them."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import contextlib
from pathlib import Path

import pytest
from hub_server import HubServer

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


# huggingface_hub reads HF_ENDPOINT and HF_HOME once, on first use, and any test may use it first;
# so the loopback Hub is bound and the environment set before any test runs. It serves once `hub` starts it.
_HUB_ROOT = Path(tempfile.mkdtemp(prefix="charzoo-test-hub-"))
atexit.register(shutil.rmtree, _HUB_ROOT, True)
_HUB = HubServer(_HUB_ROOT / "repos")
os.environ.update(HF_ENDPOINT=_HUB.url, HF_HOME=str(_HUB_ROOT / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_TELEMETRY="1")
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "CHARZOO_ZOO"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def hub() -> HubServer:
    """The Hub-compatible server on loopback that this process's huggingface_hub talks to.

    In-process tests share its HF_HOME and keep apart by repo name; tests that need
    their own HF_HOME or HF_HUB_OFFLINE run the CLI in a subprocess.
    """
    _HUB.start()
    yield _HUB
    _HUB.close()


@contextlib.contextmanager
def interrupt_after_first_checkpoint():
    """Simulate Ctrl-C right after a training run writes its first checkpoint."""
    from charzoo import training

    save_checkpoint = training.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        save_checkpoint(*args, **kwargs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "save_checkpoint", save_then_interrupt)
        yield
