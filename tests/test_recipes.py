"""Recipes: every zoo recipe parses, checks its corpus and runs end to end with --quick."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from charzoo.errors import CharzooError
from charzoo.recipes import load_recipe, model_cards

from conftest import CORPORA, ROOT

RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
ZOO = {"shakespeare", "warpeace", "paulgraham", "wikipedia", "latex", "linux", "names"}
CORPUS_DIRS = {"shakespeare": "tinyshakespeare"}


def corpus_file(name: str) -> Path:
    return CORPORA / CORPUS_DIRS.get(name, name) / "input.txt"


def test_every_zoo_model_has_a_recipe():
    assert {load_recipe(p).name for p in RECIPES} == ZOO


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_matches_its_corpus_and_fits_the_bundle(path):
    from charzoo.data import sha256_file
    from charzoo.models import CharRNN
    from charzoo.zoo import count_params

    recipe = load_recipe(path)
    assert sha256_file(corpus_file(recipe.name)) == recipe.corpus["sha256"]
    distinct = len(set(corpus_file(recipe.name).read_text(encoding="utf-8")))
    params = count_params(CharRNN(vocab_size=distinct, **recipe.model))
    assert params * 4 < 16 * 2**20  # float32 weights under the 16 MB bundle limit


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_quick_recipe_runs_end_to_end(path, tmp_path):
    from charzoo.recipes import run_recipe
    from charzoo.zoo import load_dir

    recipe = load_recipe(path)
    out = tmp_path / recipe.name
    result = run_recipe(recipe, corpus_file(recipe.name), out, quick=True, verbose=0)
    loaded = load_dir(out)
    assert loaded.metadata["steps"] == recipe.quick["steps"]
    assert loaded.metadata["corpus"]["sha256"] == recipe.corpus["sha256"]
    assert loaded.metadata["command"].startswith(f"charzoo recipe {path}")
    assert 0 < loaded.metadata["val_loss"] < 10
    assert result.metadata["val_loss"] == loaded.metadata["val_loss"]
    assert (out / "README.md").read_text(encoding="utf-8").startswith("---\n")
    if recipe.novelty:
        assert 0 <= loaded.metadata["novelty"]["novel_fraction"] <= 1


def test_recipe_refuses_a_different_corpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "charzoo", "recipe", str(ROOT / "recipes" / "linux.toml"),
         "--data", str(corpus_file("names")), "--out", str(tmp_path / "x"), "--quick"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "is not the linux corpus" in result.stderr and "sha256" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "body, message",
    [
        ('name = "x"\n[corpus]\nname="a"\nsource="b"\nsha256="c"\nlicense="d"\nlicense_note="e"\n[model]\nhiden = 3\n',
         "unknown key model.hiden"),
        ('name = "x"\n[corpus]\nname="a"\nsource="b"\nsha256="c"\nlicense="d"\nlicense_note="e"\n[train]\nsteps = "9"\n',
         "train.steps must be int"),
        ('name = "x"\n[corpus]\nname="a"\nsource="b"\nsha256="c"\nlicense="d"\nlicense_note="e"\n[train]\ncarry_state = 1\n',
         "train.carry_state must be bool"),
        ('name = "x"\n[corpus]\nname="a"\n', "corpus.license is missing"),
        ('name = "x"\nnovelty = "false"\n', "novelty must be true or false"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_bad_recipe_names_the_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(CharzooError, match=re.escape(message)) as info:
        load_recipe(path)
    assert info.value.exit_code == 2


def test_model_cards_match_metadata():
    """Every number in MODEL_CARDS.md is the one in the bundled model's metadata.json."""
    pretrained = ROOT / "pretrained"
    bundled = sorted(p for p in pretrained.iterdir() if (p / "metadata.json").is_file())
    cards = (ROOT / "MODEL_CARDS.md").read_text(encoding="utf-8")
    assert cards == model_cards(pretrained)
    for directory in bundled:
        metadata = json.loads((directory / "metadata.json").read_text())
        section = cards.split(f"## {directory.name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"{metadata['val_loss']:.4f} nats/char" in section
        assert f"{metadata['params']:,} parameters" in section
        assert f"{metadata['steps']:,} steps" in section
        assert f"charzoo eval pretrained/{directory.name}" in section
        if "dynamic_eval" in metadata:
            assert f"{metadata['dynamic_eval']['val_loss']:.4f} nats/char" in section
        assert ("the state carried from batch to batch" in section) == metadata["training"].get("carry_state", False)


def test_record_dynamic_eval_writes_metadata_and_checks_the_corpus(tiny_model_dir, names_path, tmp_path):
    import shutil

    from charzoo.evaluation import DYNAMIC_LR
    from charzoo.recipes import model_card_section, record_dynamic_eval
    from charzoo.zoo import load_dir

    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    static = json.loads((directory / "metadata.json").read_text())["val_loss"]
    assert record_dynamic_eval(directory, names_path, lr=0.0) == pytest.approx(static, rel=1e-4)
    adapted = record_dynamic_eval(directory, names_path)
    metadata = load_dir(directory).metadata
    assert metadata["dynamic_eval"] == {"lr": DYNAMIC_LR, "val_loss": adapted} and metadata["val_loss"] == static
    config = json.loads((directory / "config.json").read_text())["config"]
    section = model_card_section("names", {**metadata, "val_chars": 1, "steps": 1}, config, "pretrained/names")
    assert f"{adapted:.4f} nats/char" in section and f"--dynamic-lr {DYNAMIC_LR:g}`" in section
    other = tmp_path / "other.txt"
    other.write_text("not the names corpus\n" * 50, encoding="utf-8")
    with pytest.raises(CharzooError, match="is not the names corpus") as info:
        record_dynamic_eval(directory, other)
    assert info.value.exit_code == 2
    assert load_dir(directory).metadata["dynamic_eval"]["val_loss"] == adapted  # untouched by the failed call
    quick = {**metadata, "corpus": {**metadata["corpus"], "chars": 20_000}}  # as a --quick run records it
    (directory / "metadata.json").write_text(json.dumps(quick))
    with pytest.raises(CharzooError, match="a --quick run") as info:
        record_dynamic_eval(directory, names_path)
    assert info.value.exit_code == 2


def test_record_dynamic_eval_scores_unknown_characters_as_training_did(tiny_model_dir, names_path, tmp_path):
    # a model fine-tuned with --vocab-policy unk meets characters outside its vocabulary in its own val split
    from charzoo.finetuning import finetune
    from charzoo.recipes import record_dynamic_eval

    corpus = tmp_path / "accented.txt"
    corpus.write_text(names_path.read_text(encoding="utf-8")[:6000] + "Zoë\nJosé\nÅsa\n" * 40, encoding="utf-8")
    result = finetune(tiny_model_dir, corpus, out=tmp_path / "unk", vocab_policy="unk", seq_len=32, batch_size=16,
                      steps=4, checkpoint_every=4, sample_every=4, verbose=0)
    assert result.vocab.unknown is not None and "ë" not in result.vocab.chars
    assert record_dynamic_eval(tmp_path / "unk", corpus, lr=0.0) == pytest.approx(result.metadata["val_loss"], rel=1e-4)
