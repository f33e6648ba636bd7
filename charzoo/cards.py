"""Model cards: the README.md of a model directory, readable on the Hub and in a terminal."""

from __future__ import annotations

import json
import re
from typing import Any

from charzoo.evaluation import nats_to_bits
from charzoo.models import ModelConfig


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string or number is valid YAML


def front_matter(config: ModelConfig, metadata: dict[str, Any]) -> str:
    corpus = metadata.get("corpus") or {}
    lines = [
        "---",
        "library_name: keras",
        "pipeline_tag: text-generation",
        "tags:",
        "- charzoo",
        "- char-rnn",
        f"- {config.cell}",
        f"license: {_yaml_scalar(metadata.get('license', 'other'))}",
    ]
    if corpus.get("name"):
        lines += ["datasets:", f"- {_yaml_scalar(corpus['name'])}"]
    if metadata.get("base_model"):
        lines.append(f"base_model: {_yaml_scalar(metadata['base_model'])}")
    if metadata.get("val_loss") is not None:
        name = metadata.get("name") or "charzoo-model"
        lines += [
            "model-index:",
            f"- name: {_yaml_scalar(name)}",
            "  results:",
            "  - task:",
            "      type: text-generation",
            "    dataset:",
            f"      name: {_yaml_scalar(corpus.get('name', 'unknown'))}",
            f"      type: {_yaml_scalar(corpus.get('name', 'unknown'))}",
            "      split: validation",
            "    metrics:",
            "    - type: bits_per_character",
            f"      value: {nats_to_bits(metadata['val_loss']):.4f}",
            "    - type: nats_per_character",
            f"      value: {metadata['val_loss']:.4f}",
        ]
    lines.append("---")
    return "\n".join(lines)


def model_card(config: ModelConfig, metadata: dict[str, Any]) -> str:
    """The model card: YAML front matter for the Hub, then a plain-text-friendly Markdown body."""
    corpus = metadata.get("corpus") or {}
    name = metadata.get("name") or "charzoo model"
    title = f"# {name}: a character-level {config.cell.upper()} language model"
    rows = [
        ("architecture", f"{config.layers} x {config.hidden} {config.cell.upper()}, embedding {config.embedding_dim}, "
         f"dropout {config.dropout}"),
        ("vocabulary", f"{config.vocab_size} characters"),
        ("parameters", f"{metadata.get('params', 0):,}"),
        ("training data", f"{corpus.get('name', 'unknown')} ({corpus.get('chars', 0):,} chars, "
         f"sha256 {corpus.get('sha256', 'unknown')})"),
        ("steps trained", f"{metadata.get('steps', 0):,}"),
    ]
    if metadata.get("val_loss") is not None:
        rows.append(("val loss", f"{metadata['val_loss']:.4f} nats/char = {nats_to_bits(metadata['val_loss']):.4f} bits/char"))
    if metadata.get("base_model"):
        rows.append(("fine-tuned from", str(metadata["base_model"])))
    table = "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    # A Hub repo or a zoo model (one from a recipe) can be pulled by name; any other model is a directory.
    pullable = metadata.get("repo_id") or (metadata.get("name") if metadata.get("recipe") else None)
    ref = pullable or f"path/to/{metadata.get('name') or 'model'}"
    usage = (
        "```\n"
        + (f"charzoo pull {ref}\n" if pullable else "")
        + f"charzoo sample {ref} --prime \"The \" --length 300 --temperature 0.8\n"
        "```\n\n"
        "```python\n"
        "import charzoo\n"
        f"model = charzoo.load({ref!r})\n"
        "print(model.sample(prime=\"The \", length=300)[0])\n"
        "```"
    )
    parts = [front_matter(config, metadata), "", title, "", table, "", "## Usage", "", usage]
    if metadata.get("command"):
        parts += ["", "## Training", "", f"```\n{metadata['command']}\n```"]
    for temperature, text in sorted((metadata.get("samples") or {}).items()):
        parts += ["", f"## Sample at temperature {temperature}", "", "```", text, "```"]
    return "\n".join(parts) + "\n"


def card_for_repo(existing: str | None, config: ModelConfig, metadata: dict[str, Any], repo_id: str) -> str:
    """The card to publish at `repo_id`.

    charzoo's own card (or none) is written afresh, with usage lines that name the
    repo. A card someone edited keeps its body under refreshed front matter.
    """
    published = {**metadata, "repo_id": repo_id}
    ours = [model_card(config, metadata), model_card(config, published)]
    pulled_from = re.search(r"^charzoo pull (\S+)$", existing or "", re.MULTILINE)
    if pulled_from:  # the card of another repo, as a model pulled from it and pushed here arrives
        ours.append(model_card(config, {**metadata, "repo_id": pulled_from.group(1)}))
    if existing is None or existing in ours:
        return model_card(config, published)
    return front_matter(config, published) + "\n" + _card_body(existing)


def _card_body(card: str) -> str:
    """`card` without its YAML front matter (the lines from a leading '---' to the next '---')."""
    lines = card.splitlines(keepends=True)
    if lines and lines[0].strip() == "---":
        for end, line in enumerate(lines[1:], start=1):
            if line.strip() == "---":
                return "".join(lines[end + 1:])
    return card
