"""Recipes: what varies per corpus, as TOML data, and the one runner that trains a zoo model from it.

A recipe file (`recipes/<name>.toml`) has four tables:

    name = "shakespeare"          # the zoo name
    [corpus]  name, source, sha256, license (a Hub licence id), license_note
              # checked before training; the text itself is never committed
    [model]   ModelConfig fields except vocab_size
    [train]   TrainConfig fields
    [quick]   TrainConfig/ModelConfig overrides and `chars`, for a seconds-long end-to-end run

Unknown keys and wrong types are errors that name the key.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charzoo.errors import CharzooError
from charzoo.evaluation import SEGMENT, nats_to_bits

if TYPE_CHECKING:
    from charzoo.zoo import CharModel

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MODEL_KEYS = {"cell": str, "layers": int, "hidden": int, "embedding_dim": int, "dropout": float}
TRAIN_KEYS = {
    "seq_len": int, "batch_size": int, "steps": int, "epochs": float, "lr": float, "val_fraction": float,
    "sample_every": int, "checkpoint_every": int, "seed": int, "clipnorm": float, "patience": int,
    "carry_state": bool,
}
CORPUS_KEYS = {"name": str, "source": str, "sha256": str, "license": str, "license_note": str}
QUICK_KEYS = {**MODEL_KEYS, **TRAIN_KEYS, "chars": int}
NOVELTY_SAMPLES = 1000  # names sampled to measure how many are invented


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe file: see the module docstring for its tables."""

    name: str
    path: Path
    corpus: dict[str, str]
    model: dict[str, Any]
    train: dict[str, Any]
    quick: dict[str, Any] = field(default_factory=dict)
    novelty: bool = False  # a list corpus (names): also measure how many samples are not in the training list


def _check_table(table: Any, allowed: dict[str, type], where: str, path: Path) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CharzooError(f"{path}: [{where}] must be a table", exit_code=2)
    for key, value in table.items():
        if key not in allowed:
            raise CharzooError(f"{path}: unknown key {where}.{key}; known: {', '.join(sorted(allowed))}", exit_code=2)
        expected = allowed[key]
        if expected is bool:
            ok = isinstance(value, bool)
        elif expected is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, expected) and not isinstance(value, bool)
        if not ok:
            raise CharzooError(
                f"{path}: {where}.{key} must be {expected.__name__}, got {value!r}", exit_code=2
            )
    return {k: float(v) if allowed[k] is float else v for k, v in table.items()}


def load_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CharzooError(f"recipe {path} does not exist; recipes live in recipes/<name>.toml", exit_code=2) from e
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CharzooError(f"recipe {path} is not valid TOML: {e}", exit_code=2) from e
    top = {"name", "corpus", "model", "train", "quick", "novelty"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise CharzooError(f"{path}: unknown key {unknown[0]}; known: {', '.join(sorted(top))}", exit_code=2)
    if not isinstance(data.get("name"), str):
        raise CharzooError(f"{path}: name must be a string", exit_code=2)
    if not isinstance(data.get("novelty", False), bool):
        raise CharzooError(f"{path}: novelty must be true or false, got {data['novelty']!r}", exit_code=2)
    corpus = _check_table(data.get("corpus", {}), CORPUS_KEYS, "corpus", path)
    missing = sorted(set(CORPUS_KEYS) - set(corpus))
    if missing:
        raise CharzooError(f"{path}: corpus.{missing[0]} is missing", exit_code=2)
    return Recipe(
        name=data["name"],
        path=path,
        corpus=corpus,
        model=_check_table(data.get("model", {}), MODEL_KEYS, "model", path),
        train=_check_table(data.get("train", {}), TRAIN_KEYS, "train", path),
        quick=_check_table(data.get("quick", {}), QUICK_KEYS, "quick", path),
        novelty=data.get("novelty", False),
    )


def verify_corpus(recipe: Recipe, data: Path) -> str:
    """The sha256 of `data`, which must be the recipe's corpus."""
    return check_corpus_file(data, sha256=recipe.corpus["sha256"], name=recipe.corpus["name"],
                             source=recipe.corpus["source"])


def check_corpus_file(data: str | Path, *, sha256: str, name: str, source: str | None = None) -> str:
    """The sha256 of `data`, which must exist and be the corpus `name` with that `sha256`."""
    from charzoo.data import sha256_file

    get = f"; get it from {source}" if source else ""
    if not Path(data).is_file():
        raise CharzooError(f"corpus {data} does not exist{get + ' and pass its path' if source else ''}", exit_code=2)
    sha = sha256_file(data)
    if sha != sha256:
        raise CharzooError(
            f"{data} is not the {name} corpus (sha256 {sha[:16]}…, expected {sha256[:16]}…){get}", exit_code=2
        )
    return sha


def novelty(charmodel, training_text: str, *, samples: int = NOVELTY_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Sample one-line entries (names) and count how many are not in the training list."""
    from charzoo.sampling import sample_text

    known = {line.strip() for line in training_text.splitlines() if line.strip()}
    drawn = [s.strip() for s in sample_text(charmodel, length=40, temperature=1.0, num=samples, seed=seed, stop="\n")]
    drawn = [s for s in drawn if s]
    invented = [s for s in drawn if s not in known]
    return {
        "samples": len(drawn),
        "novel_fraction": len(invented) / max(1, len(drawn)),
        "examples": list(dict.fromkeys(invented))[:24],
    }


def run_recipe(
    recipe: Recipe,
    data: str | Path,
    out: str | Path,
    *,
    quick: bool = False,
    resume: bool = False,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    verbose: int | str = "auto",
) -> CharModel:
    """Check the corpus, train, evaluate the val split and write the model directory with its card."""
    from charzoo.data import read_corpus, split_text
    from charzoo.training import TrainConfig, train

    data, out = Path(data), Path(out)
    sha = verify_corpus(recipe, data)
    model_config = dict(recipe.model)
    train_options = dict(recipe.train)
    for key, value in {**(recipe.quick if quick else {}), **(overrides or {})}.items():
        if key in MODEL_KEYS:
            model_config[key] = value
        elif key in TRAIN_KEYS:
            train_options[key] = value
    text = read_corpus(data)
    if quick:
        text = text[: recipe.quick.get("chars", 20_000)]
    command = f"charzoo recipe {shlex.quote(str(recipe.path))} --data {shlex.quote(str(data))} --out {shlex.quote(str(out))}"
    command += " --quick" * quick + "".join(f" --{k.replace('_', '-')} {v}" for k, v in (overrides or {}).items())
    from charzoo._keras import keras

    if keras.backend.backend() != "tensorflow":
        command = f"KERAS_BACKEND={keras.backend.backend()} {command}"
    metadata = {
        "name": recipe.name,
        "license": recipe.corpus["license"],
        "license_note": recipe.corpus["license_note"],
        "recipe": recipe.path.name,
        "corpus_name": recipe.corpus["name"],
        "corpus_source": recipe.corpus["source"],
        "command": command,
        "eval_command": f"charzoo eval {out} {data} --split val",
        "hardware": _hardware(),
    }
    result = train(
        text if quick else data, out, model_config=model_config, train_config=TrainConfig(**train_options),
        resume=resume, force=force, metadata=metadata, verbose=verbose,
    )
    result.metadata["corpus"]["sha256"] = sha  # the file's, also for a --quick slice
    if recipe.novelty:
        train_text = split_text(text, result.metadata["val_fraction"])[0]
        result.metadata["novelty"] = novelty(result, train_text, samples=100 if quick else NOVELTY_SAMPLES)
    from charzoo.zoo import save_pretrained

    save_pretrained(result, out, overwrite=True)
    return result


def record_dynamic_eval(directory: str | Path, data: str | Path, *, lr: float | None = None) -> float:
    """Measure the model in `directory` on its corpus's val split under dynamic evaluation; store it in metadata.json.

    `data` must be the whole corpus the model was trained on: its sha256 and length are
    checked against the metadata. Slow on a CPU (about 1,500 characters a second for a
    2 x 512 LSTM under JAX, 400 under TensorFlow: `bench/dynamic_eval.py`), so it runs
    when a model is published, not at the end of every training run.
    """
    from charzoo.data import read_corpus, split_text
    from charzoo.evaluation import DYNAMIC_LR, check_dynamic_lr, evaluate
    from charzoo.zoo import METADATA_FILE, load_dir, write_json

    directory, lr = Path(directory), DYNAMIC_LR if lr is None else lr
    check_dynamic_lr(lr)
    charmodel = load_dir(directory)
    metadata = dict(charmodel.metadata)
    corpus = metadata.get("corpus") or {}
    if not corpus.get("sha256") or metadata.get("val_fraction") is None:
        raise CharzooError(f"{directory}/metadata.json records no corpus sha256 or val_fraction to check against",
                           exit_code=2)
    check_corpus_file(data, sha256=corpus["sha256"], name=corpus.get("name", "training"))
    text = read_corpus(data)
    if len(text) != corpus.get("chars"):
        raise CharzooError(f"{directory} was trained on {corpus.get('chars')} characters of {data}, not all "
                           f"{len(text)} (a --quick run?); its val split is not this file's", exit_code=2)
    val_text = split_text(text, metadata["val_fraction"])[1]
    # as training's val loss and `charzoo eval` score it: a vocabulary's unknown character stands for what it lacks
    val_loss = evaluate(charmodel, val_text, map_unknown=True, dynamic_lr=lr).nats_per_char
    metadata["dynamic_eval"] = {"lr": lr, "val_loss": val_loss}
    write_json(directory / METADATA_FILE, metadata)
    return val_loss


def _hardware() -> str:
    import os
    import platform

    from charzoo._keras import keras

    backend = keras.backend.backend()
    where = f"{os.cpu_count()} CPU cores ({platform.machine()})"
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            where = f"1 {device.device_kind} ({device.platform.upper()})"
    return f"{where}, Keras {keras.__version__} on {backend}"


ANCHORS = {
    "shakespeare": "nanoGPT's char-level transformer: 1.47 nats/char on the same last-10% split.",
    "warpeace": "Karpathy, Johnson & Fei-Fei (2015), best LSTM: 1.077 nats/char (80/10/10 split).",
    "linux": "Karpathy, Johnson & Fei-Fei (2015), best LSTM: 0.84 nats/char (80/10/10 split, larger corpus).",
}
BARS = {"shakespeare": 1.50, "warpeace": 1.35, "paulgraham": 1.40, "linux": 1.10, "latex": 1.10, "wikipedia": 1.60}


def model_card_section(name: str, metadata: dict[str, Any], config: dict[str, Any], path: str) -> str:
    """One MODEL_CARDS.md section; every number comes from `metadata.json` with the command that measures it."""
    corpus = metadata["corpus"]
    val = metadata["val_loss"]
    hours = metadata.get("train_seconds", 0) / 3600
    lines = [
        f"## {name}",
        "",
        f"- **Data**: {corpus['name']}, {corpus['chars']:,} characters, sha256 `{corpus['sha256']}`; "
        f"source: {metadata.get('corpus_source', 'unknown')}. Licence: {metadata.get('license_note', metadata.get('license'))}.",
        f"- **Architecture**: {config['layers']} x {config['hidden']} {config['cell'].upper()}, embedding "
        f"{config['embedding_dim']}, dropout {config['dropout']}, vocabulary {config['vocab_size']}: "
        f"{metadata['params']:,} parameters.",
        f"- **Training**: {metadata['steps']:,} steps of {metadata['training']['batch_size']} x "
        f"{metadata['training']['seq_len']} characters"
        + (", the state carried from batch to batch" if metadata["training"].get("carry_state") else "")
        + f", {hours:.2f} h on {metadata.get('hardware', 'unknown hardware')}:",
        f"  `{metadata.get('command', '')}`",
        f"- **Validation** (last {metadata['val_fraction']:.0%}, {metadata['val_chars']:,} characters): "
        f"**{val:.4f} nats/char, {nats_to_bits(val):.4f} bits/char**"
        + (f" (bar: {BARS[name]:.2f}, {'met' if val <= BARS[name] else 'not met'})" if name in BARS else "") + ":",
        f"  `charzoo eval {path} <corpus file> --split val`",
    ]
    if "dynamic_eval" in metadata:
        dynamic = metadata["dynamic_eval"]
        lines += [
            f"- **Dynamic evaluation** (one SGD step at rate {dynamic['lr']:g} after scoring each {SEGMENT} characters, "
            f"Krause et al. 2018; not what the bar measures): {dynamic['val_loss']:.4f} nats/char, "
            f"{nats_to_bits(dynamic['val_loss']):.4f} bits/char:",
            f"  `charzoo eval {path} <corpus file> --split val --dynamic-lr {dynamic['lr']:g}`",
        ]
    if name in ANCHORS:
        lines.append(f"- **For context**: {ANCHORS[name]}")
    if "novelty" in metadata:
        nov = metadata["novelty"]
        lines += [
            f"- **Invented names**: {nov['novel_fraction']:.1%} of {nov['samples']:,} sampled names are not in the "
            f"training list: `charzoo sample {path} --num {NOVELTY_SAMPLES} --length 40 --temperature 1.0 "
            f"--seed 0 --stop '\\n'`",
            "",
            "| invented names (not in the training data) | | | |",
            "|---|---|---|---|",
        ]
        examples = nov["examples"]
        lines += ["| " + " | ".join(examples[i : i + 4]) + " |" for i in range(0, len(examples), 4)]
    for temperature, text in sorted(metadata.get("samples", {}).items()):
        lines += [
            "",
            f"Sample at temperature {temperature} (`charzoo sample {path} --length 300 --temperature {temperature} "
            f"--seed {metadata['training']['seed']}`):",
            "",
            "```",
            text,
            "```",
        ]
    return "\n".join(lines)


def model_cards(pretrained: Path) -> str:
    """MODEL_CARDS.md for every model directory under `pretrained/`."""
    import json

    sections = []
    for directory in sorted(p for p in Path(pretrained).iterdir() if (p / "metadata.json").is_file()):
        metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))["config"]
        sections.append(model_card_section(directory.name, metadata, config, f"pretrained/{directory.name}"))
    header = (
        "# charzoo model cards\n\n"
        "Generated from each `pretrained/<name>/metadata.json` by `python recipes/publish.py`; the numbers are\n"
        "those `charzoo eval` measured at the end of training (dynamic evaluation: when the model was published,\n"
        "`python recipes/publish.py DIR --data CORPUS`), and the command beside each reproduces it.\n"
        "Validation is always the last 10% of the corpus file, scored as one stream (first character unscored).\n"
    )
    return header + "\n" + "\n\n".join(sections) + "\n"
