"""The bundled zoo models: each loads by its zoo name and keeps the loss it was published with."""

from __future__ import annotations

import json

import pytest

from charzoo.data import read_corpus, split_text
from charzoo.evaluation import DYNAMIC_LR, evaluate
from charzoo.registry import read_registry
from charzoo.zoo import load

from conftest import CORPORA, ROOT

# Nats/char on the first 5,000 characters of each corpus's validation split (its last 10%),
# measured when the model was published; a change to the weights, the vocabulary or the
# evaluation code that moves them is caught here.
PINNED = {
    "shakespeare": 1.2465236083935531,
    "names": 1.5875671451371425,
    "warpeace": 1.1389823957589706,
    "paulgraham": 1.212562290296788,
    "latex": 0.5830976755810389,
    "linux": 1.0534289814168194,
    "wikipedia": 1.711845763174595,
}
# The same under dynamic evaluation (`DYNAMIC_LR`) on the first 2,000 characters: the two models whose
# static loss misses its bar, where adapting to the held-out text matters most.
PINNED_DYNAMIC = {"linux": 1.0343011769912451, "wikipedia": 1.6838978128967923}
BUNDLED = sorted(name for name, entry in read_registry().items() if entry.files)


def test_every_bundled_model_is_pinned():
    assert set(BUNDLED) == set(PINNED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_keeps_its_loss(name):
    charmodel = load(name)
    assert charmodel.path == ROOT / "pretrained" / name
    corpus = json.loads((charmodel.path / "metadata.json").read_text())["corpus"]["name"]
    text = split_text(read_corpus(CORPORA / corpus / "input.txt"), 0.1)[1][:5000]
    assert evaluate(charmodel, text).nats_per_char == pytest.approx(PINNED[name], abs=1e-5)


@pytest.mark.parametrize("name", sorted(PINNED_DYNAMIC))
def test_bundled_model_keeps_its_dynamic_evaluation_loss(name):
    charmodel = load(name)
    text = split_text(read_corpus(CORPORA / charmodel.metadata["corpus"]["name"] / "input.txt"), 0.1)[1][:2000]
    dynamic = evaluate(charmodel, text, dynamic_lr=DYNAMIC_LR).nats_per_char
    assert dynamic == pytest.approx(PINNED_DYNAMIC[name], abs=1e-5)
    assert dynamic < evaluate(charmodel, text).nats_per_char


def test_readme_zoo_table_matches_the_metadata():
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\|[^|]*\| (\d+\.\d{3})", readme, flags=re.M))
    assert set(rows) == set(BUNDLED)
    for name, shown in rows.items():
        metadata = json.loads((ROOT / "pretrained" / name / "metadata.json").read_text())
        assert shown == f"{metadata['val_loss']:.3f}", name
