"""Fine-tuning: continue training a pretrained model on new text, growing its vocabulary when the text needs it.

The base model is never changed. Its weights are copied into a new model whose
embedding and output layer may have more rows: characters of the new text that
the base vocabulary lacks are appended (ids of existing characters never
change), or mapped to one unknown character, or refused, as `vocab_policy`
says. Training is `charzoo.training.train` started from those weights, so
checkpoints, `resume`, early stopping and samples work as they do there.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from charzoo._keras import keras
from charzoo.data import read_corpus, sha256_file
from charzoo.errors import CharzooError
from charzoo.models import CharRNN
from charzoo.training import TrainConfig, freeze, train
from charzoo.vocab import UNKNOWN_CHAR, Vocab, describe_char
from charzoo.zoo import WEIGHTS_FILE, CharModel, load

FINETUNE_LR = 5e-4  # a quarter of training's 2e-3: large first steps would undo what the base model knows
VOCAB_POLICIES = ("extend", "strict", "unk")
LISTED_CHARS = 20  # new characters named in a `strict` error before "and N more"


def adapt_vocab(vocab: Vocab, text: str, policy: str) -> Vocab:
    """The vocabulary to fine-tune on `text` with, starting from the base model's `vocab`.

    extend: the text's new characters appended. strict: `vocab` itself, or an
    error naming the new characters. unk: `vocab` with an unknown character
    (appended if it has none) that the new characters map to.
    """
    if policy not in VOCAB_POLICIES:
        raise CharzooError(f"vocab policy must be one of {', '.join(VOCAB_POLICIES)}, got {policy!r}", exit_code=2)
    missing = vocab.missing(text)
    if not missing or policy == "extend":
        return vocab.extend(text)
    if policy == "strict" or len(missing) == len(set(text)):  # unk on a text of nothing but unknowns: no signal
        listed = ", ".join(describe_char(c) for c in missing[:LISTED_CHARS])
        more = f" and {len(missing) - LISTED_CHARS} more" if len(missing) > LISTED_CHARS else ""
        share = "all of its characters" if len(missing) == len(set(text)) else f"{len(missing)} characters"
        other = "" if policy == "unk" else " or unk to map them to one unknown character"
        raise CharzooError(
            f"the corpus has {share} outside the base model's vocabulary: {listed}{more}; "
            f"use --vocab-policy extend to add them{other}",
            exit_code=2,
        )
    if vocab.unknown is not None:
        return vocab
    chars = vocab.chars if UNKNOWN_CHAR in vocab.chars else vocab.chars + (UNKNOWN_CHAR,)
    return Vocab(chars, UNKNOWN_CHAR)


def resize_vocab(charmodel: CharModel, vocab: Vocab, *, dropout: float | None = None) -> CharModel:
    """A copy of `charmodel` whose embedding and output layer cover `vocab`, which extends its vocabulary.

    `dropout`, if given, replaces the base's rate: it has no weights, so it is the
    one part of the architecture a fine-tune may change (more of it for a small text).

    Every existing weight is copied exactly. A new character's embedding row and
    output kernel column are the mean of the existing ones, and its output bias
    is the smallest existing bias. Its logit is then the known characters' mean
    logit lowered by the spread of their biases, so in every context it starts
    less likely than the average known character, low but finite, and training
    moves it from there.
    """
    old_vocab, old_model = charmodel.vocab, charmodel.model
    if vocab.chars[: len(old_vocab)] != old_vocab.chars:
        raise ValueError("the new vocabulary must keep the old characters and their ids")
    added = len(vocab) - len(old_vocab)
    rate = old_model.config.dropout if dropout is None else dropout
    model = CharRNN.from_model_config(replace(old_model.config, vocab_size=len(vocab), dropout=rate))
    model.build_for_loading()
    for old_layer, layer in zip(old_model.recurrent, model.recurrent):
        for old_weight, weight in zip(old_layer.weights, layer.weights):
            weight.assign(old_weight)
    embedding = keras.ops.convert_to_numpy(old_model.embedding.embeddings)  # (V, E)
    kernel = keras.ops.convert_to_numpy(old_model.head.kernel)  # (H, V)
    bias = keras.ops.convert_to_numpy(old_model.head.bias)  # (V,)
    model.embedding.embeddings.assign(np.concatenate([embedding, _repeat_mean(embedding, 0, added)], axis=0))
    model.head.kernel.assign(np.concatenate([kernel, _repeat_mean(kernel, 1, added)], axis=1))
    model.head.bias.assign(np.concatenate([bias, np.full(added, bias.min(), bias.dtype)]))
    return CharModel(model, vocab)


def _repeat_mean(weights: np.ndarray, axis: int, count: int) -> np.ndarray:
    return np.repeat(weights.mean(axis=axis, keepdims=True), count, axis=axis).astype(weights.dtype)


def base_reference(base: str | Path | CharModel, charmodel: CharModel, source: list[str]) -> dict[str, Any]:
    """Metadata naming the base model: `base_model` (repo id, zoo name or local path) and how to get it again."""
    reference: dict[str, Any] = {}
    if isinstance(base, CharModel):  # already loaded: named by where it was loaded from, if anywhere
        base = charmodel.path or charmodel.metadata.get("repo_id") or charmodel.metadata.get("name") or "unnamed"
    local = Path(base).is_dir()
    name, _, revision = str(base).partition("@")
    reference["base_model"] = str(Path(base).resolve()) if local else charmodel.metadata.get("repo_id") or name
    if not local:
        reference["base_model_revision"] = revision or _snapshot_commit(charmodel.path)
    if charmodel.path is not None and (charmodel.path / WEIGHTS_FILE).is_file():
        reference["base_model_weights_sha256"] = sha256_file(charmodel.path / WEIGHTS_FILE)
    if source:
        reference["base_model_source"] = " ".join(source)
    return reference


def _snapshot_commit(path: Path | None) -> str | None:
    """The commit of a Hugging Face cache snapshot directory (`.../snapshots/<commit>`), else None."""
    if path is not None and path.parent.name == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", path.name):
        return path.name
    return None


def _refuse_overwriting(base_dir: Path | None, out: Path) -> None:
    if base_dir is None:
        return
    base_dir, target = base_dir.resolve(), out.resolve()
    if target == base_dir or target in base_dir.parents:
        raise CharzooError(
            f"--out {out} {'is' if target == base_dir else 'contains'} the base model {base_dir}; "
            f"a fine-tune never overwrites its base, so choose another --out",
            exit_code=2,
        )


def finetune(
    base: str | Path | CharModel,
    text_or_path: str | os.PathLike,
    *,
    out: str | Path,
    vocab_policy: str = "extend",
    freeze_embedding: bool = False,
    freeze_layers: int = 0,
    dropout: float | None = None,
    resume: bool = False,
    force: bool = False,
    encoding: str = "utf-8",
    errors: str = "strict",
    metadata: dict[str, Any] | None = None,
    verbose: int | str = "auto",
    on_source: Callable[[str], None] | None = None,
    **training_options: Any,
) -> CharModel:
    """Fine-tune the model `base` on new text into the model directory `out`; `base` itself is never changed.

    Args:
        base: any model form `charzoo.zoo.load` accepts (model directory, zoo name, Hub repo id), or a
            loaded `CharModel`.
        text_or_path: the new text itself (str) or a path to a text file.
        out: the output model directory; it may not be, or contain, the base model's directory.
        vocab_policy: "extend" (append new characters), "strict" (refuse them) or "unk" (map them to one
            unknown character).
        freeze_embedding: keep the base's character embedding (new characters keep their initial rows).
        freeze_layers: keep the first N recurrent layers.
        dropout: the dropout rate to fine-tune with, if not the base's.
        resume, force, encoding, errors, metadata, verbose: as for `charzoo.training.train`.
        on_source: called with the line saying where the base model came from.
        **training_options: `TrainConfig` fields (steps, lr, patience, ...); lr defaults to 5e-4.

    Returns:
        The fine-tuned model, also saved in `out`; its metadata records `base_model` and the corpus sha256.
    """
    out = Path(out)
    unknown = sorted(set(training_options) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CharzooError(f"unknown training option {unknown[0]!r}; see charzoo.training.TrainConfig", exit_code=2)
    train_config = TrainConfig(
        **{"lr": FINETUNE_LR, **training_options}, freeze_embedding=freeze_embedding, freeze_layers=freeze_layers
    )
    corpus = Path(text_or_path) if isinstance(text_or_path, os.PathLike) else text_or_path
    text = read_corpus(corpus, encoding=encoding, errors=errors) if isinstance(corpus, Path) else corpus
    source: list[str] = []

    def record_source(line: str) -> None:
        source.append(line)
        if on_source is not None:
            on_source(line)

    base_model = base if isinstance(base, CharModel) else load(base, on_source=record_source)
    _refuse_overwriting(base_model.path, out)
    vocab = adapt_vocab(base_model.vocab, text, vocab_policy)
    start = resize_vocab(base_model, vocab, dropout=dropout)
    freeze(start.model, train_config)  # checks --freeze-layers before anything is written
    details = {
        "vocab_policy": vocab_policy,
        "base_vocab_size": len(base_model.vocab),
        "added_chars": list(vocab.chars[len(base_model.vocab) :]),
    }
    return train(
        corpus, out, train_config=train_config, init=start, resume=resume, force=force, encoding=encoding,
        errors=errors, verbose=verbose, model_config={"dropout": dropout},  # a resume checks it against the checkpoint
        metadata={"name": out.name, **base_reference(base, base_model, source), "finetune": details,
                  **(metadata or {})},
    )
