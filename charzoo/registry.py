"""The zoo registry: which pretrained models exist, where each lives, and what its files hash to.

`charzoo/registry.json` maps each zoo name to its Hub repo (`repo_id` and the pinned
commit `revision`), its corpus, the sha256 of every model file, and the numbers
`charzoo list` shows. The bundled copy of a model is `pretrained/<name>/`, installed
as the package `charzoo.pretrained`. An entry without files is a model that is not
trained yet; an entry without a revision is not published on the Hub yet.

`CHARZOO_ZOO=DIR` replaces both with `DIR/registry.json` and `DIR/<name>/`: a private
zoo, or a test's. Importing this module never loads TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from charzoo.data import sha256_file
from charzoo.errors import CharzooError

ZOO_ENV = "CHARZOO_ZOO"
REGISTRY_FILE = "registry.json"
ZOO_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")  # `shakespeare`, `shakespeare_gru_2x512`


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model, as `registry.json` records it."""

    name: str
    repo_id: str
    revision: str | None = None  # the pinned Hub commit; None until published
    corpus: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256; empty until trained
    params: int | None = None
    val_loss: float | None = None  # nats per character on the corpus's validation split
    size: int | None = None  # bytes, all files together

    @property
    def available(self) -> bool:
        return bool(self.files)

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "name"}


def _zoo_override() -> Path | None:
    value = os.environ.get(ZOO_ENV)
    return Path(value).expanduser() if value else None


def registry_path() -> Path:
    override = _zoo_override()
    return override / REGISTRY_FILE if override else Path(str(importlib.resources.files("charzoo"))) / REGISTRY_FILE


def pretrained_dir() -> Path:
    """Where bundled copies live: `pretrained/` in the package, or the `CHARZOO_ZOO` directory."""
    return _zoo_override() or Path(str(importlib.resources.files("charzoo.pretrained")))


def read_registry() -> dict[str, ZooEntry]:
    path = registry_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: ZooEntry(name=name, **entry) for name, entry in data.items()}
    except FileNotFoundError as e:
        raise CharzooError(f"the zoo registry {path} is missing; reinstall charzoo or fix ${ZOO_ENV}") from e
    except (OSError, ValueError, TypeError) as e:
        raise CharzooError(f"the zoo registry {path} is unreadable: {e}") from e


def lookup(name: str) -> ZooEntry:
    """The registry entry for `name`; an unknown name is an error suggesting the closest ones."""
    registry = read_registry()
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, registry, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(registry)};"
    raise CharzooError(
        f"unknown model '{name}': not a model directory or zoo name; {hint} see `charzoo list`", exit_code=2
    )


def bundled_dir(name: str) -> Path | None:
    """The bundled copy of zoo model `name`, if this installation ships one."""
    directory = pretrained_dir() / name
    return directory if directory.is_dir() and any(directory.iterdir()) else None


def corrupt_files(directory: Path, entry: ZooEntry) -> list[str]:
    """The files of `entry` that are missing from `directory` or differ from their registered sha256."""
    return [
        name for name, sha in entry.files.items()
        if not (directory / name).is_file() or sha256_file(directory / name) != sha
    ]


def register_bundled(
    name: str, directory: str | Path, *, repo_id: str | None = None, revision: str | None = None
) -> ZooEntry:
    """Make `directory` the bundled copy of zoo model `name` and record it in the registry.

    The model files are copied to `pretrained/<name>/` (unless `directory` is already
    that), hashed, and written to the registry with the parameter count, validation
    loss and size, each step atomically. Pass `revision` (the commit `charzoo push`
    printed for these same files) so Hub downloads are pinned to it; without it the
    entry keeps its previous repo id, and its previous revision only while the files
    are the same: a retrained model is not on the Hub until it is pushed again.
    """
    from charzoo.zoo import MODEL_FILES, load_dir, published_files, write_json

    if not ZOO_NAME.match(name):
        raise CharzooError(f"zoo name '{name}' must be lowercase words joined by '_'", exit_code=2)
    charmodel = load_dir(directory)  # only a model that loads is registered
    missing = [f for f in MODEL_FILES if not (Path(directory) / f).is_file()]
    if missing:
        raise CharzooError(f"{directory} lacks {', '.join(missing)}; save it with charzoo first", exit_code=2)
    target = pretrained_dir() / name
    present = published_files(Path(directory))
    if not target.exists() or not target.samefile(directory):
        _replace_dir(target, [Path(directory) / f for f in present])
    registry = read_registry()
    previous = registry.get(name) or ZooEntry(name=name, repo_id=f"charzoo/{name}")
    files = {f: sha256_file(target / f) for f in present}
    registry[name] = ZooEntry(
        name=name,
        repo_id=repo_id or previous.repo_id,
        revision=revision or (previous.revision if files == previous.files else None),
        corpus=(charmodel.metadata.get("corpus") or {}).get("name") or previous.corpus,
        files=files,
        params=charmodel.metadata.get("params"),
        val_loss=charmodel.metadata.get("val_loss"),
        size=sum((target / f).stat().st_size for f in files),
    )
    write_json(registry_path(), {n: e.to_json() for n, e in registry.items()})
    return registry[name]


def _replace_dir(target: Path, files: list[Path]) -> None:
    """Fill a fresh directory beside `target` with `files`, then swap it in, so `target` is never half-written."""
    fresh = target.parent / f".{target.name}.new-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    fresh.mkdir(parents=True)
    try:
        for path in files:
            shutil.copy2(path, fresh / path.name)
        if target.exists():
            os.rename(target, old)
        os.rename(fresh, target)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
