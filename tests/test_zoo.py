"""Model directories: exact round trip, one-line errors for broken directories, atomic and shareable saves."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from charzoo import cards
from charzoo._keras import keras
from charzoo.errors import CharzooError
from charzoo.models import CharRNN
from charzoo.zoo import CONFIG_FILE, MODEL_FILES, VOCAB_FILE, WEIGHTS_FILE, load_dir, save_pretrained


def logits(charmodel, text: str = "Maria\nJohn\n") -> np.ndarray:
    return keras.ops.convert_to_numpy(charmodel.model(charmodel.vocab.encode(text)[None, :]))


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    """A copy of the tiny model directory that a test may break."""
    return shutil.copytree(tiny_model_dir, tmp_path / "copy")


def load_error(directory) -> CharzooError:
    with pytest.raises(CharzooError) as info:
        load_dir(directory)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, message
    return info.value


def test_save_load_round_trip_gives_identical_logits(tiny_model, tmp_path):
    saved = save_pretrained(tiny_model, tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == sorted(MODEL_FILES)
    loaded = load_dir(saved)
    np.testing.assert_array_equal(logits(loaded), logits(tiny_model))
    assert loaded.vocab == tiny_model.vocab and loaded.config == tiny_model.config
    assert loaded.metadata["params"] == sum(int(np.prod(w.shape)) for w in tiny_model.model.weights)
    assert loaded.path == saved
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["class_name"] == "charzoo>CharRNN" and config["config"] == tiny_model.config.to_dict()


def test_save_refuses_a_non_empty_directory(tiny_model, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(CharzooError, match="is not empty") as info:
        save_pretrained(tiny_model, tmp_path / "full")
    assert info.value.exit_code == 2
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_missing_directory(tmp_path):
    error = load_error(tmp_path / "nowhere")
    assert "does not exist" in str(error) and error.exit_code == 2


@pytest.mark.parametrize("name", [CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE])
def test_missing_file(model_copy, name):
    (model_copy / name).unlink()
    assert name in str(load_error(model_copy))


def test_truncated_weights(model_copy):
    weights = model_copy / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert WEIGHTS_FILE in str(load_error(model_copy))


@pytest.mark.parametrize("name", [CONFIG_FILE, VOCAB_FILE])
def test_truncated_json(model_copy, name):
    text = (model_copy / name).read_text()
    (model_copy / name).write_text(text[: len(text) // 2])
    assert "unreadable or truncated" in str(load_error(model_copy))


def test_vocab_of_a_different_size_than_config(model_copy):
    vocab = json.loads((model_copy / VOCAB_FILE).read_text())
    vocab["chars"] = vocab["chars"][:-1]
    (model_copy / VOCAB_FILE).write_text(json.dumps(vocab))
    assert "different models" in str(load_error(model_copy))


def test_weights_of_a_model_with_another_hidden_size(model_copy, tiny_model):
    config = tiny_model.config
    other = CharRNN(vocab_size=config.vocab_size, cell=config.cell, layers=config.layers, hidden=config.hidden * 2,
                    embedding_dim=config.embedding_dim)
    other.build_for_loading()
    other.save_weights(model_copy / WEIGHTS_FILE)
    assert "does not match" in str(load_error(model_copy))


def test_unknown_config_keys(model_copy):
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    config["config"]["attention_heads"] = 4
    (model_copy / CONFIG_FILE).write_text(json.dumps(config))
    assert "unknown keys: attention_heads" in str(load_error(model_copy))


def test_config_of_another_class_or_value(model_copy):
    config = json.loads((model_copy / CONFIG_FILE).read_text())
    (model_copy / CONFIG_FILE).write_text(json.dumps({**config, "class_name": "keras>Sequential"}))
    assert "not a charzoo model config" in str(load_error(model_copy))
    (model_copy / CONFIG_FILE).write_text(json.dumps({**config, "config": {**config["config"], "hidden": 0}}))
    assert "got 0" in str(load_error(model_copy))


def test_failed_save_leaves_nothing_behind(tiny_model, tmp_path, monkeypatch):
    def broken_card(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cards, "model_card", broken_card)
    parent = tmp_path / "models"
    parent.mkdir()
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tiny_model, parent / "m")
    assert list(parent.iterdir()) == []  # neither the target nor a temp directory


def test_failed_overwrite_keeps_the_old_weights_and_leaves_no_temp_file(tiny_model, tmp_path, monkeypatch):
    saved = save_pretrained(tiny_model, tmp_path / "m")
    before = sorted(p.name for p in saved.iterdir()), (saved / WEIGHTS_FILE).read_bytes()

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(type(tiny_model.model), "save_weights", disk_full)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tiny_model, saved, overwrite=True)  # a training run's final save goes this way
    assert (sorted(p.name for p in saved.iterdir()), (saved / WEIGHTS_FILE).read_bytes()) == before


def test_saved_files_are_world_readable(tiny_model, tmp_path):
    old_umask = os.umask(0o022)
    os.umask(old_umask)
    if old_umask & 0o044:
        pytest.skip(f"umask {old_umask:03o} withholds read permission on purpose")
    saved = save_pretrained(tiny_model, tmp_path / "shared")
    assert stat.S_IMODE(saved.stat().st_mode) & 0o555 == 0o555
    for path in saved.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o444 == 0o444, path.name
