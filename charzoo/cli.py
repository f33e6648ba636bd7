"""The `charzoo` command line: parse, call the library, print.

Only the standard library, typer and `charzoo.errors` are imported at module
level; each command imports what it needs, so `charzoo --help` never loads
TensorFlow.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, get_type_hints

import typer

from charzoo.errors import CharzooError

app = typer.Typer(
    name="charzoo",
    help="A zoo of character-level recurrent language models: train, sample, evaluate, share.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Cell(str, enum.Enum):
    lstm = "lstm"
    gru = "gru"
    rnn = "rnn"


class Split(str, enum.Enum):
    all = "all"
    val = "val"


class Strategy(str, enum.Enum):
    mirrored = "mirrored"
    multiworker = "multiworker"


ModelArg = Annotated[str, typer.Argument(
    help="Model directory, zoo name, or Hub repo id owner/name[@revision]; the --out of a run still training "
         "gives its last checkpoint.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _command_line() -> str:
    return "charzoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _unescape(text: str) -> str:
    """`text` with the escapes \\n, \\t, \\r and \\\\ a shell passes literally turned into those characters."""
    import re

    return re.sub(r"\\([ntr\\])", lambda match: _ESCAPES[match.group(1)], text)


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


# The flags `train` and `finetune` share, defined once: name -> (type, default, help). The first group are
# `TrainConfig` fields, the rest keywords of `charzoo.training.train`; a command receives them as one dict.
_TRAINING_FLAGS: dict[str, tuple[Any, Any, str]] = {
    "seq_len": (int, 128, "Characters per training window."),
    "batch_size": (int, 64, "Windows per batch."),
    "steps": (Optional[int], None, "Optimizer steps in total."),
    "epochs": (Optional[float], None, "Passes over the training split (instead of --steps)."),
    "lr": (float, 2e-3, "Peak learning rate (cosine decay to lr/10)."),
    "val_fraction": (float, 0.1, "Last fraction of the corpus held out for validation."),
    "sample_every": (int, 500, "Print and log a sample every N steps."),
    "checkpoint_every": (int, 500, "Validate and checkpoint every N steps."),
    "patience": (Optional[int], None, "Stop early after P checkpoints without a better val loss."),
    "seed": (int, 0, "Random seed (weights, data order, samples)."),
    "carry_state": (bool, False, "Carry the recurrent state from batch to batch (char-rnn's truncated BPTT)."),
    "resume": (bool, False, "Continue from the checkpoint in --out, with its settings (--steps may lengthen it)."),
    "force": (bool, False, "Replace a model already in --out."),
    "encoding": (str, "utf-8", "Text encoding of the corpus."),
    "errors": (str, "strict", "Decoding errors: strict, or replace to substitute U+FFFD."),
}
_RUN_FLAGS = ("resume", "force", "encoding", "errors")
# The commands that read a text to score or inspect take the same decoding flags.
EncodingOpt = Annotated[str, typer.Option(help=_TRAINING_FLAGS["encoding"][2])]
ErrorsOpt = Annotated[str, typer.Option(help=_TRAINING_FLAGS["errors"][2])]


def _flag_name(name: str, kind: Any) -> list[str]:
    return [f"--{name.replace('_', '-')}"] if kind is bool else []


def _training_flags(**defaults: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared training flags after its own; it receives their values as `training`.

    `defaults` changes a flag's default for this command (finetune's lower --lr).
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()
               if p.name != "training"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(name, default),
                              # a bool is a plain flag (--resume), not a --resume/--no-resume pair
                              annotation=Annotated[kind, typer.Option(*_flag_name(name, kind), help=text)])
            for name, (kind, default, text) in _TRAINING_FLAGS.items()
        ]

        @functools.wraps(command)
        def run(**values: Any) -> None:
            command(training={name: values.pop(name) for name in _TRAINING_FLAGS}, **values)

        run.__signature__ = inspect.Signature(own + shared)  # what typer reads to build the options
        run.__annotations__ = {p.name: p.annotation for p in own + shared}
        return run

    return decorate


def _train_keywords(training: dict[str, Any]) -> dict[str, Any]:
    """Keywords for `charzoo.training.train` from the shared flags: a `TrainConfig` and the run options."""
    from charzoo.training import TrainConfig

    config = {k: v for k, v in training.items() if k not in _RUN_FLAGS}
    return {"train_config": TrainConfig(**config), **{k: training[k] for k in _RUN_FLAGS}}


@app.command(rich_help_panel="Models")
@_training_flags()
def train(
    corpus: Annotated[Path, typer.Argument(help="UTF-8 text file to train on.")],
    out: Annotated[Path, typer.Option(help="Output model directory (checkpoints and samples go here too).")],
    cell: Annotated[Optional[Cell], typer.Option(help="Recurrent cell; default lstm.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Stacked recurrent layers; default 2.")] = None,
    hidden: Annotated[Optional[int], typer.Option(help="Units per recurrent layer; default 512.")] = None,
    embedding_dim: Annotated[Optional[int], typer.Option(help="Character embedding size; default 64.")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout after each recurrent layer; default 0.0.")] = None,
    strategy: Annotated[Optional[Strategy], typer.Option(
        help="tf.distribute: mirrored (this machine's devices) or multiworker (one process per TF_CONFIG task)."
    )] = None,
    *,
    training: dict[str, Any],
) -> None:
    """Train a char-RNN on a text file, with checkpoints and samples as it learns."""
    import contextlib

    from charzoo.distribute import make_strategy

    # The strategy first: a multi-worker one must exist before anything starts TensorFlow.
    scope = make_strategy(strategy.value).scope() if strategy else contextlib.nullcontext()
    from charzoo.training import train as train_model

    model_config = {
        "cell": cell.value if cell else None, "layers": layers, "hidden": hidden,
        "embedding_dim": embedding_dim, "dropout": dropout,
    }
    with scope:
        result = train_model(
            corpus, out, model_config=model_config, metadata={"name": out.name, "command": _command_line()},
            **_train_keywords(training),
        )
    val = result.metadata.get("val_loss")
    typer.echo(f"saved {out}" + ("" if val is None else f" (val {val:.4f} nats/char)"))


@app.command(rich_help_panel="Models")
def sample(
    model: ModelArg = "shakespeare",
    prime: Annotated[str, typer.Option(help="Text that conditions the model; printed once.")] = "",
    length: Annotated[int, typer.Option(help="Characters to generate per stream.")] = 500,
    temperature: Annotated[float, typer.Option(help="Sampling temperature, > 0.")] = 0.8,
    top_k: Annotated[Optional[int], typer.Option(help="Sample among the K likeliest characters (1: greedy).")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample among the likeliest characters with mass P.")] = None,
    num: Annotated[int, typer.Option(help="Streams generated together in one batch.")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="Random seed for reproducible output.")] = None,
    stop: Annotated[Optional[str], typer.Option(help="End a stream at this string, e.g. '\\n'.")] = None,
) -> None:
    """Generate text from a model."""
    from charzoo.sampling import check_sampling_options, sample_text
    from charzoo.zoo import load

    check_sampling_options(temperature, top_k, top_p, length, num, seed)
    stop = _unescape(stop) if stop else None  # allow --stop "\n"
    charmodel = load(model, on_source=_report_source)
    charmodel.vocab.encode(prime)  # reject unknown characters before printing anything
    if num == 1:
        typer.echo(prime, nl=False)
        sample_text(charmodel, prime=prime, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                    seed=seed, stop=stop, on_text=lambda s: (sys.stdout.write(s), sys.stdout.flush()))
        typer.echo()
        return
    texts = sample_text(charmodel, prime=prime, length=length, temperature=temperature, top_k=top_k,
                        top_p=top_p, num=num, seed=seed, stop=stop)
    separator = "\n" if stop is not None else "\n\n"  # names come one per line; passages need a gap
    typer.echo(separator.join(prime + text for text in texts))


@app.command("eval", rich_help_panel="Models")
def eval_(
    model: ModelArg,
    textfile: Annotated[Path, typer.Argument(help="UTF-8 text to score.")],
    split: Annotated[Split, typer.Option(help="Score all of the text, or its last --val-fraction.")] = Split.all,
    val_fraction: Annotated[float, typer.Option(help="Validation fraction for --split val.")] = 0.1,
    dynamic_lr: Annotated[
        Optional[float],
        typer.Option(help="Dynamic evaluation: after scoring each 128 characters, one SGD step on them at this rate."),
    ] = None,
    breakdown: Annotated[
        bool,
        typer.Option(help="With --split val: the loss in words the training split has, in words it lacks, between words."),
    ] = False,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = "strict",
    json_: JsonOpt = False,
) -> None:
    """Nats and bits per character of a model on a text (one stream, state carried)."""
    from dataclasses import asdict

    from charzoo.data import read_corpus, split_text
    from charzoo.evaluation import EvalResult, char_losses, check_dynamic_lr, loss_by_word_novelty
    from charzoo.zoo import load

    if breakdown and split is not Split.val:
        raise CharzooError("--breakdown needs --split val: the rest of the file is the training text", exit_code=2)
    if dynamic_lr is not None:
        check_dynamic_lr(dynamic_lr)
    text = read_corpus(textfile, encoding=encoding, errors=errors)
    if split is Split.val:
        training_text, text = split_text(text, val_fraction)
    charmodel = load(model, on_source=_report_source)
    # A model with an unknown character (finetune --vocab-policy unk) scores what it cannot spell as that.
    losses = char_losses(charmodel, text, map_unknown=charmodel.vocab.unknown is not None, dynamic_lr=dynamic_lr)
    result = EvalResult.from_losses(losses)
    shares = loss_by_word_novelty(text, losses, training_text) if breakdown else []
    if json_:
        extra = {"dynamic_lr": dynamic_lr} if dynamic_lr is not None else {}
        if breakdown:
            extra["breakdown"] = [asdict(share) for share in shares]
        _print_json({**result.to_json(), **extra})
        return
    how = "" if dynamic_lr is None else f" (dynamic evaluation, lr {dynamic_lr:g})"
    typer.echo(f"{result.chars} chars: {result.nats_per_char:.4f} nats/char, {result.bits_per_char:.4f} bits/char{how}")
    for share in shares:
        typer.echo(
            f"  {share.label}: {share.char_fraction:.1%} of characters, {share.loss_fraction:.1%} of the loss,"
            f" {share.nats_per_char:.3f} nats/char"
        )


@app.command(rich_help_panel="Models")
def info(model: ModelArg, json_: JsonOpt = False) -> None:
    """Architecture, parameter count and metadata of a model."""
    from charzoo.zoo import count_params, load

    charmodel = load(model, on_source=_report_source)
    data = {
        "config": {k: v for k, v in charmodel.config.to_dict().items()},
        "params": count_params(charmodel.model),
        "metadata": {k: v for k, v in charmodel.metadata.items() if k != "history"},
    }
    if json_:
        _print_json(data)
        return
    c = data["config"]
    meta = charmodel.metadata
    typer.echo(f"{charmodel.path}")
    typer.echo(f"  {c['layers']} x {c['hidden']} {c['cell']}, embedding {c['embedding_dim']}, dropout {c['dropout']}, "
               f"vocabulary {c['vocab_size']}, {data['params']:,} parameters")
    corpus = meta.get("corpus") or {}
    if corpus:
        typer.echo(f"  trained on {corpus.get('name')} ({corpus.get('chars', 0):,} chars) for {meta.get('steps', 0):,} steps")
    if meta.get("val_loss") is not None:
        from charzoo.evaluation import nats_to_bits

        typer.echo(f"  val {meta['val_loss']:.4f} nats/char, {nats_to_bits(meta['val_loss']):.4f} bits/char")
        if meta.get("dynamic_eval"):
            dynamic = meta["dynamic_eval"]
            typer.echo(f"  val under dynamic evaluation (--dynamic-lr {dynamic['lr']:g}): {dynamic['val_loss']:.4f} nats/char")


@app.command(rich_help_panel="Zoo")
def recipe(
    recipe_file: Annotated[Path, typer.Argument(help="Recipe file, e.g. recipes/shakespeare.toml.")],
    data: Annotated[Path, typer.Option(help="The recipe's corpus file (checked against its sha256).")],
    out: Annotated[Path, typer.Option(help="Output model directory.")],
    quick: Annotated[bool, typer.Option(help="Whole recipe on a small slice for a few steps (seconds).")] = False,
    steps: Annotated[Optional[int], typer.Option(help="Override the recipe's step count.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipe's batch size (e.g. on a GPU).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    force: Annotated[bool, typer.Option(help="Replace a model already in --out.")] = False,
) -> None:
    """Train a zoo model from its recipe: check the corpus, train, evaluate, write the model card."""
    from charzoo.recipes import load_recipe, run_recipe

    overrides = {key: value for key, value in {"steps": steps, "batch_size": batch_size}.items() if value is not None}
    result = run_recipe(load_recipe(recipe_file), data, out, quick=quick, resume=resume, force=force,
                        overrides=overrides or None)
    meta = result.metadata
    typer.echo(f"saved {out}: val {meta['val_loss']:.4f} nats/char after {meta['steps']} steps")
    if "novelty" in meta:
        typer.echo(f"{meta['novelty']['novel_fraction']:.1%} of {meta['novelty']['samples']} sampled names are new")


# === Hub commands (pull, push, list) ===


@app.command(rich_help_panel="Hub")
def pull(
    model: ModelArg,
    revision: Annotated[Optional[str], typer.Option(help="Branch, tag or commit of a Hub repo id.")] = None,
    force: Annotated[bool, typer.Option(help="Download again even if the cache has the files.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Fetch a model (zoo name or Hub repo id) into the local cache and print its directory."""
    from charzoo.hub import pull as pull_model

    result = pull_model(model, revision=revision, force=force, on_source=_report_source)
    if json_:
        _print_json(result.to_json())
    else:
        typer.echo(str(result.path))


@app.command(rich_help_panel="Hub")
def push(
    directory: Annotated[Path, typer.Argument(help="Model directory to publish.")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo id owner/name.")],
    revision: Annotated[Optional[str], typer.Option(help="Branch to commit to (created if needed); default main.")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    message: Annotated[Optional[str], typer.Option(help="Commit message.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Publish a model directory to the Hugging Face Hub with its model card, in one commit."""
    from charzoo.hub import push as push_model

    result = push_model(directory, repo_id, revision=revision, private=private or None, message=message)
    if json_:
        _print_json(result.to_json())
    else:
        typer.echo(f"pushed {result.repo_id}@{result.revision}: commit {result.commit}\n{result.url}")


@app.command("list", rich_help_panel="Hub")
def list_(json_: JsonOpt = False) -> None:
    """The zoo: each pretrained model's corpus, size and validation loss, and whether it is cached or bundled."""
    from charzoo.hub import zoo_table

    rows = zoo_table()
    if json_:
        _print_json(rows)
        return
    header = ("name", "corpus", "params", "val nats", "val bpc", "size", "here")
    table = [header] + [(
        r["name"], r["corpus"], f"{r['params']:,}" if r["params"] else "-",
        f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "-",
        f"{r['val_bpc']:.4f}" if r["val_bpc"] is not None else "-",
        f"{r['size'] / 1e6:.1f} MB" if r["size"] else "-",
        ", ".join(k for k in ("cached", "bundled") if r[k]) or ("-" if r["available"] else "not trained yet"),
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# === Fine-tuning (finetune) ===


class VocabPolicy(str, enum.Enum):
    extend = "extend"
    strict = "strict"
    unk = "unk"


# Accepted only to be refused with a reason: a fine-tune has its base model's architecture (--dropout aside).
_ArchitectureFlag = Annotated[Optional[str], typer.Option(hidden=True)]


@app.command(rich_help_panel="Models")
@_training_flags(lr=5e-4)
def finetune(
    base: ModelArg,
    corpus: Annotated[Path, typer.Argument(help="UTF-8 text file to fine-tune on.")],
    out: Annotated[Path, typer.Option(help="Output model directory; never the base model's own.")],
    vocab_policy: Annotated[VocabPolicy, typer.Option(
        help="Characters the base lacks: append them (extend), refuse them (strict), or map them to one (unk)."
    )] = VocabPolicy.extend,
    freeze_embedding: Annotated[bool, typer.Option(help="Keep the base's character embedding.")] = False,
    freeze_layers: Annotated[int, typer.Option(help="Keep the first N recurrent layers of the base.")] = 0,
    cell: _ArchitectureFlag = None,
    layers: _ArchitectureFlag = None,
    hidden: _ArchitectureFlag = None,
    embedding_dim: _ArchitectureFlag = None,
    dropout: Annotated[
        Optional[float], typer.Option(help="Dropout after each recurrent layer, if not the base's (it has no weights).")
    ] = None,
    *,
    training: dict[str, Any],
) -> None:
    """Fine-tune a pretrained model on new text, growing its vocabulary by the text's new characters."""
    architecture = {"cell": cell, "layers": layers, "hidden": hidden, "embedding-dim": embedding_dim}
    given = [f"--{name}" for name, value in architecture.items() if value is not None]
    if given:
        raise CharzooError(
            f"{', '.join(given)}: finetune keeps the base model's architecture (only --dropout may change); "
            f"drop the flag, or train a new model with `charzoo train`",
            exit_code=2,
        )
    from charzoo.finetuning import finetune as finetune_model

    result = finetune_model(
        base, corpus, out=out, vocab_policy=vocab_policy.value, freeze_embedding=freeze_embedding,
        freeze_layers=freeze_layers, dropout=dropout, metadata={"command": _command_line()},
        on_source=_report_source, **training,
    )
    meta = result.metadata
    added = meta["finetune"]["added_chars"]
    typer.echo(f"saved {out} (fine-tuned from {meta['base_model']}, {len(added)} new characters"
               + ("" if meta.get("val_loss") is None else f", val {meta['val_loss']:.4f} nats/char") + ")")


# === TensorFlow export (export) ===
class ExportFormat(str, enum.Enum):
    savedmodel = "savedmodel"


@app.command(rich_help_panel="Models")
def export(
    model: ModelArg,
    out_dir: Annotated[Path, typer.Argument(help="New directory for the export.")],
    format_: Annotated[ExportFormat, typer.Option("--format", help="Export format.")] = ExportFormat.savedmodel,
    max_length: Annotated[int, typer.Option(help="Most characters one `generate` call may produce.")] = 10_000,
) -> None:
    """Export a model as a TensorFlow SavedModel: generate, score and logits signatures, no charzoo needed."""
    from charzoo.export import export_savedmodel
    from charzoo.zoo import load

    del format_  # SavedModel is the only format so far
    path = export_savedmodel(load(model, on_source=_report_source), out_dir, max_length=max_length)
    typer.echo(f"exported {path} (signatures: serving_default, generate, score)")


# === Visualisation (viz, neurons) ===


class Feature(str, enum.Enum):
    quotes = "quotes"
    brackets = "brackets"
    line_position = "line-position"
    url = "url"
    wiki_link = "wiki-link"


TextFileArg = Annotated[Path, typer.Argument(help="UTF-8 text to run through the model.")]


@app.command(rich_help_panel="Insight")
def viz(
    model: ModelArg,
    textfile: TextFileArg,
    out: Annotated[Path, typer.Option(help="HTML file to write (self-contained: opens from disk).")],
    max_chars: Annotated[int, typer.Option(help="Characters of the text to show, from the start.")] = 3000,
    layer: Annotated[Optional[int], typer.Option(help="Show only this layer (0-based); default all.")] = None,
    units: Annotated[Optional[int], typer.Option(help="Units in the shortlist; default 10.")] = None,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = "strict",
) -> None:
    """Write an HTML report: the model's guesses for each next character, its neurons, and its training."""
    from charzoo.data import read_corpus
    from charzoo.viz import write_report
    from charzoo.zoo import load

    text = read_corpus(textfile, encoding=encoding, errors=errors)
    write_report(load(model, on_source=_report_source), text, out, max_chars=max_chars, layer=layer, units=units)
    typer.echo(f"wrote {out}")


@app.command(rich_help_panel="Insight")
def neurons(
    model: ModelArg,
    textfile: TextFileArg,
    feature: Annotated[Optional[Feature], typer.Option(help="Rank units for this feature only.")] = None,
    top: Annotated[int, typer.Option(help="How many units to print.")] = 10,
    max_chars: Annotated[int, typer.Option(help="Characters of the text to analyse, from the start.")] = 20000,
    encoding: EncodingOpt = "utf-8",
    errors: ErrorsOpt = "strict",
    json_: JsonOpt = False,
) -> None:
    """Rank hidden units by how well they track quotes, brackets, line position, URLs and wiki links."""
    from charzoo.data import read_corpus
    from charzoo.viz import rank_neurons
    from charzoo.zoo import load

    text = read_corpus(textfile, encoding=encoding, errors=errors)
    scores = rank_neurons(load(model, on_source=_report_source), text, feature=feature.value if feature else None,
                          top=top, max_chars=max_chars)
    if json_:
        _print_json([s.to_json() for s in scores])
        return
    typer.echo(f"{'layer':>5} {'unit':>5}  {'feature':<13} {'r':>6}")
    for s in scores:
        typer.echo(f"{s.layer:>5} {s.unit:>5}  {s.feature:<13} {s.correlation:+.3f}")


def _report_source(message: str) -> None:
    typer.echo(message, err=True)


def main() -> None:
    """Entry point: run the app; a `CharzooError` becomes one line on stderr and its exit code."""
    try:
        result = app(standalone_mode=False)
    except CharzooError as e:
        typer.echo(f"charzoo: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors: exit 2
        e.show()
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        result = 130
    if result == 130:  # typer turns a Ctrl-C inside a command into exit code 130
        typer.echo("charzoo: interrupted", err=True)
    sys.exit(result if isinstance(result, int) else 0)
