"""Model directories: save a model with its vocabulary, metadata and card; load one back.

A model directory is laid out like a KerasHub preset and like its Hub repo:

    config.json        {"format_version", "class_name", "config": ModelConfig fields}
    model.weights.h5   Keras weights
    vocab.json         the characters, in id order
    metadata.json      versions, parameter count, corpus, steps, losses, date, command
    README.md          the model card

Loading reads JSON and HDF5 only: nothing from the directory is unpickled or run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from charzoo.errors import CharzooError
from charzoo.evaluation import EvalResult
from charzoo.models import CharRNN, ModelConfig
from charzoo.vocab import Vocab

FORMAT_VERSION = 1
CLASS_NAME = "charzoo>CharRNN"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
VOCAB_FILE = "vocab.json"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, METADATA_FILE, CARD_FILE)
SAMPLES_FILE = "samples.jsonl"  # sample evolution during training
OPTIONAL_FILES = (SAMPLES_FILE,)  # published with the model when present: `charzoo viz` shows them
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"  # in CHECKPOINT_DIR: step, history, model and training config, vocabulary
IDS_CACHE_DIR = "ids-cache"  # the corpus as memory-mapped compact ids, written once per run



def published_files(directory: Path) -> list[str]:
    """The files of model directory `directory` that bundling and pushing publish: the model's, and its log."""
    return [f for f in (*MODEL_FILES, *OPTIONAL_FILES) if (Path(directory) / f).is_file()]


@dataclass
class CharModel:
    """A trained char-RNN with everything needed to use it: Keras model, vocabulary, metadata."""

    model: CharRNN
    vocab: Vocab
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def sample(self, **options: Any) -> list[str]:
        """Generate text; see `charzoo.sampling.sample_text` for the options."""
        from charzoo.sampling import sample_text

        return sample_text(self, **options)

    def evaluate(self, text: str, *, dynamic_lr: float | None = None) -> EvalResult:
        """Nats and bits per character on `text`; see `charzoo.evaluation.evaluate`."""
        from charzoo.evaluation import evaluate

        return evaluate(self, text, dynamic_lr=dynamic_lr)

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        return save_pretrained(self, directory, overwrite=overwrite)


def count_params(model: CharRNN) -> int:
    if not model.built:
        model.build_for_loading()
    return int(sum(np.prod(w.shape) for w in model.weights))


_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file in the same directory, then rename)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_text(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def replace_atomically(path: Path, write: Callable[[str], Any], suffix: str = ".tmp") -> None:
    """Have `write` fill a temp file beside `path`, then rename it over `path`; on failure remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; a model directory is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_model_files(charmodel: CharModel, directory: Path) -> None:
    """Write the five model files into an existing `directory`, each atomically, config.json last."""
    from charzoo.cards import model_card

    model = charmodel.model
    if not model.built:
        model.build_for_loading()
    metadata = {**charmodel.metadata, "params": count_params(model)}
    if getattr(model, "optimizer", None) is not None:
        # A compiled model's .h5 would carry the optimizer's slots too (3x the size for Adam); a model
        # directory holds the model alone, so save an uncompiled twin with the same weights.
        twin = CharRNN.from_model_config(charmodel.config)
        twin.build_for_loading()
        twin.set_weights(model.get_weights())
        model = twin
    replace_atomically(directory / WEIGHTS_FILE, model.save_weights, suffix=".tmp.weights.h5")  # Keras wants that suffix
    write_json(directory / VOCAB_FILE, charmodel.vocab.to_json())
    write_json(directory / METADATA_FILE, metadata)
    write_text(directory / CARD_FILE, model_card(charmodel.config, metadata))
    write_json(
        directory / CONFIG_FILE,
        {"format_version": FORMAT_VERSION, "class_name": CLASS_NAME, "config": charmodel.config.to_dict()},
    )
    charmodel.metadata = metadata


def save_pretrained(charmodel: CharModel, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Save a model directory.

    A new directory is built beside its target and renamed into place, so it
    appears whole or not at all. Into an existing directory (`overwrite=True`,
    e.g. a training run's output) each file is replaced atomically.
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise CharzooError(f"{directory} exists and is not a directory", exit_code=2)
        if any(directory.iterdir()) and not overwrite:
            raise CharzooError(f"{directory} is not empty; choose a new directory or pass --force", exit_code=2)
        _write_model_files(charmodel, directory)
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
        try:
            _write_model_files(charmodel, tmp)
            os.chmod(tmp, _DIR_MODE)
            os.rename(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    charmodel.path = directory
    return directory


def is_model_dir(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def is_run_in_progress(path: Path) -> bool:
    """A training `--out` with a checkpoint and none of the model files the end of training writes."""
    path = Path(path)
    return (path / CHECKPOINT_DIR / STATE_FILE).is_file() and not any((path / name).exists() for name in MODEL_FILES)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CharzooError(f"{path.parent} is not a complete model directory: {path.name} is missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CharzooError(f"{what} {path} is unreadable or truncated: {e}") from e


def read_config(directory: Path) -> ModelConfig:
    data = read_json(directory / CONFIG_FILE, "model config")
    if not isinstance(data, dict) or data.get("class_name") != CLASS_NAME or not isinstance(data.get("config"), dict):
        raise CharzooError(f"{directory / CONFIG_FILE} is not a charzoo model config")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CharzooError(f"{directory} has format version {data['format_version']}; upgrade charzoo to load it")
    fields = set(ModelConfig.__dataclass_fields__)
    unknown = sorted(set(data["config"]) - fields)
    if unknown:
        raise CharzooError(f"{directory / CONFIG_FILE} has unknown keys: {', '.join(unknown)}")
    try:
        return ModelConfig(**data["config"])
    except TypeError as e:
        raise CharzooError(f"{directory / CONFIG_FILE} is incomplete: {e}") from e


def load_dir(directory: str | Path) -> CharModel:
    """Load a model directory; any missing, truncated or mismatched file is a one-line `CharzooError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CharzooError(f"model directory {directory} does not exist", exit_code=2)
    if not is_model_dir(directory):
        raise CharzooError(f"{directory} is not a model directory (no {CONFIG_FILE})", exit_code=2)
    config = read_config(directory)
    vocab = Vocab.from_json(read_json(directory / VOCAB_FILE, "vocabulary"))
    if len(vocab) != config.vocab_size:
        raise CharzooError(
            f"{directory}: {VOCAB_FILE} has {len(vocab)} characters but {CONFIG_FILE} says vocab_size "
            f"{config.vocab_size}; the files come from different models"
        )
    metadata = read_json(directory / METADATA_FILE, "metadata") if (directory / METADATA_FILE).exists() else {}
    model = CharRNN.from_model_config(config)
    load_weights(model, directory / WEIGHTS_FILE)
    return CharModel(model, vocab, metadata, directory)


def load_weights(model: CharRNN, path: Path) -> None:
    """Load `.weights.h5` into `model`, turning Keras's shape errors and warnings into one line."""
    if not path.is_file():
        raise CharzooError(f"{path.parent} is not a complete model directory: {path.name} is missing")
    model.build_for_loading()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Keras only warns when some variables could not be loaded
            model.load_weights(path)
    except (ValueError, OSError, KeyError, UserWarning) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CharzooError(f"{path} does not match {CONFIG_FILE} or is corrupt: {first_line[:200]}") from e


def load(
    name_or_path: str | Path, *, revision: str | None = None, on_source: Callable[[str], None] | None = None
) -> CharModel:
    """Load a model from a local directory, the zoo, or the Hugging Face Hub.

    Args:
        name_or_path: a model directory, a zoo name (`shakespeare`), or a Hub repo id `owner/name[@revision]`;
            or the `--out` of a run still training, whose last checkpoint then loads.
        revision: branch, tag or commit of a Hub repo id.
        on_source: called with one line saying where a zoo or Hub model came from.
    """
    from charzoo.hub import pull

    directory = pull(str(name_or_path), revision=revision, on_source=on_source).path
    if is_run_in_progress(directory):
        from charzoo.training import load_checkpoint

        charmodel = load_checkpoint(directory)
        if on_source is not None:
            on_source(f"{directory} has not finished training: using its checkpoint at step {charmodel.metadata['steps']:,}")
        return charmodel
    return load_dir(directory)
