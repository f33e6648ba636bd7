"""Training with Keras `fit`: checkpoints, exact resume, sample evolution, nats and bits per char.

A run writes into its output directory:

    checkpoint/      weights, optimizer state and run state of the last finished round
    samples.jsonl    one short sample every `sample_every` steps: {"step", "loss", "sample"}
    config.json ...  the model directory itself, when training ends

Training proceeds in rounds of `checkpoint_every` steps (one Keras "epoch"
each), and each round ends with validation and an atomic checkpoint. Each batch
is random windows that start from a zero state, or, with `carry_state`, the
next window of each of `batch_size` streams, started from the state the last
batch ended in (`CarriedState`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from charzoo._keras import keras, quiet_fd2
from charzoo.data import cached_ids, read_corpus, sha256_file, split_text, stream_layout
from charzoo.evaluation import nats_to_bits
from charzoo.distribute import active_strategy, is_chief, prepare_for_fit, windows_dataset
from charzoo.errors import CharzooError
from charzoo.models import CharRNN, ModelConfig
from charzoo.vocab import Vocab
from charzoo.zoo import (
    CHECKPOINT_DIR, IDS_CACHE_DIR, MODEL_FILES, OPTIONAL_FILES, SAMPLES_FILE, STATE_FILE, WEIGHTS_FILE, CharModel,
    is_model_dir, load_weights, save_pretrained, write_json, write_text,
)

OPTIMIZER_FILE = "optimizer.npz"
OLD_CHECKPOINT_DIR = ".checkpoint.old"  # the previous checkpoint, for the moment save_checkpoint swaps them


@dataclass(frozen=True)
class TrainConfig:
    """How to train; the same names are used by recipes and CLI flags."""

    seq_len: int = 128
    batch_size: int = 64
    steps: int | None = None  # total optimizer steps; default: derived from `epochs`
    epochs: float | None = None  # passes over the training split; default 1 when `steps` is unset
    lr: float = 2e-3  # peak learning rate; cosine decay to lr / 10 after a short warm-up
    val_fraction: float = 0.1  # the last 10% of the corpus, as char-rnn does
    sample_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    clipnorm: float = 5.0  # char-rnn's gradient clip
    patience: int | None = None  # stop after this many rounds without a better val loss
    freeze_embedding: bool = False  # fine-tuning: keep the character embedding as it is
    freeze_layers: int = 0  # fine-tuning: keep the first N recurrent layers as they are
    carry_state: bool = False  # char-rnn's truncated BPTT: each batch starts from the state the last one ended in

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "sample_every", "checkpoint_every", "steps", "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise CharzooError(f"{name} must be a positive integer, got {value!r}", exit_code=2)
        for name in ("freeze_embedding", "carry_state"):
            if not isinstance(getattr(self, name), bool):
                raise CharzooError(f"{name} must be true or false, got {getattr(self, name)!r}", exit_code=2)
        if isinstance(self.freeze_layers, bool) or not isinstance(self.freeze_layers, int) or self.freeze_layers < 0:
            raise CharzooError(f"freeze_layers must be a non-negative integer, got {self.freeze_layers!r}", exit_code=2)
        if self.epochs is not None and not self.epochs > 0:
            raise CharzooError(f"epochs must be positive, got {self.epochs!r}", exit_code=2)
        if self.steps is not None and self.epochs is not None:
            raise CharzooError("give either steps or epochs, not both", exit_code=2)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise CharzooError(f"seed must be an integer in [0, 2**32), got {self.seed!r}", exit_code=2)
        if not self.lr > 0:
            raise CharzooError(f"lr must be positive, got {self.lr!r}", exit_code=2)
        if not 0.0 <= self.val_fraction < 1.0:
            raise CharzooError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}", exit_code=2)

    def total_steps(self, train_chars: int) -> int:
        if self.steps is not None:
            return self.steps
        if self.carry_state:  # an epoch is a pass over the streams
            per_epoch = stream_layout(train_chars, self.seq_len, self.batch_size)[1]
        else:
            per_epoch = train_chars / (self.batch_size * self.seq_len)
        return max(1, math.ceil((self.epochs or 1.0) * per_epoch))


class BitsPerChar(keras.metrics.Mean):
    """Cross-entropy in bits per character, next to the loss in nats."""

    def __init__(self, name: str = "bpc", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        nats = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(nats_to_bits(nats), sample_weight=sample_weight)


class SampleEvolution(keras.callbacks.Callback):
    """Every `every` steps, print a short sample and append it to `samples.jsonl`.

    Args:
        charmodel: the model being trained, with its vocabulary (the `CharRNN`, not a training wrapper).
        path: the JSON-lines file to append `{"step", "loss", "sample"}` to.
        every: interval in optimizer steps.
        length: characters per sample.
        seed: sampling seed, fixed so samples differ only by the weights.
    """

    def __init__(self, charmodel: CharModel, path: Path, every: int, length: int = 200, seed: int = 0):
        super().__init__()
        self.charmodel, self.path, self.every, self.length, self.seed = charmodel, Path(path), every, length, seed

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        # First: under JAX, reading `self.model` copies the weights that `fit` holds back into the variables.
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every:
            return
        from charzoo.sampling import sample_text

        text = sample_text(self.charmodel, length=self.length, temperature=0.8, seed=self.seed)[0]
        loss = float(logs["loss"]) if "loss" in logs else None
        at = f"step {step}" if loss is None else f"step {step} (loss {loss:.3f})"
        print(f"\n--- sample at {at} ---\n{text}\n---", flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "loss": loss, "sample": text}, ensure_ascii=False) + "\n")


class CarriedState(keras.Model):
    """Trains `model` with its recurrent state carried from batch to batch (truncated BPTT).

    Row b of each batch must continue row b of the previous one, except every
    `batches_per_pass` steps, where the state starts again from zero (`stream_batch`).
    Gradients flow back `seq_len` steps, but the state, and with it what the model
    can remember, runs through the whole stream, as in char-rnn, and as
    `charzoo eval` then scores. The state and a batch counter live in non-trainable
    variables updated by the training step, so the same code runs on every backend
    and a checkpoint holds them. Evaluation (`training=False`, as for the
    validation during `fit` that `patience` watches) starts from a zero state and
    leaves the carried one alone.

    Args:
        model: the char-RNN to train; it holds every trainable weight.
        batch_size: rows per batch, fixed for the run.
        batches_per_pass: steps between two zero states.
    """

    def __init__(self, model: CharRNN, batch_size: int, batches_per_pass: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.charrnn, self.batches_per_pass = model, batches_per_pass
        config = model.config
        self.state_variables = [
            [self.add_weight(shape=(batch_size, config.hidden), initializer="zeros", trainable=False,
                             name=f"state_{layer}_{index}") for index in range(config.states_per_layer)]
            for layer in range(config.layers)
        ]
        self.batches = self.add_weight(shape=(), dtype="int32", initializer="zeros", trainable=False, name="batches")

    def call(self, ids, training=False):
        if not training:
            return self.charrnn(ids)
        keep = keras.ops.cast(keras.ops.not_equal(keras.ops.mod(self.batches, self.batches_per_pass), 0), "float32")
        start = [[keep * v for v in layer] for layer in self.state_variables]
        logits, end = self.charrnn(ids, initial_state=start, training=True, return_state=True)
        for variables, values in zip(self.state_variables, end):
            for variable, value in zip(variables, values):
                variable.assign(keras.ops.stop_gradient(value))
        self.batches.assign(self.batches + 1)
        return logits

    def build_for_loading(self) -> None:
        """Build the wrapper too, so a checkpoint's `.weights.h5` can load into it."""
        self(np.zeros((1, 1), dtype="int32"))


class _OneRound(keras.callbacks.Callback):
    """End `fit` after one epoch: each round is its own call, followed by a checkpoint."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def _optimizer(config: TrainConfig, total_steps: int):
    warmup = min(100, total_steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.lr / 10 if warmup else config.lr,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.1,
        warmup_target=config.lr if warmup else None,
        warmup_steps=warmup,
    )
    return keras.optimizers.Adam(learning_rate=schedule, global_clipnorm=config.clipnorm)


def freeze(model: CharRNN, config: TrainConfig) -> None:
    """Mark the embedding and the first `freeze_layers` recurrent layers untrainable, as `config` asks."""
    if config.freeze_layers > model.config.layers:
        raise CharzooError(
            f"--freeze-layers {config.freeze_layers} is more than the model's {model.config.layers} recurrent "
            f"layers; use at most {model.config.layers}",
            exit_code=2,
        )
    model.embedding.trainable = not config.freeze_embedding
    for index, layer in enumerate(model.recurrent):
        layer.trainable = index >= config.freeze_layers


def compile_model(model: CharRNN | CarriedState, config: TrainConfig, total_steps: int) -> None:
    model.compile(
        optimizer=_optimizer(config, total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[BitsPerChar()],
        jit_compile=False if keras.backend.backend() == "tensorflow" else "auto",  # XLA measured no faster on TF CPU
    )


# === Checkpoints ===
def save_checkpoint(model: CharRNN | CarriedState, out: Path, state: dict[str, Any]) -> None:
    """Write weights, optimizer state and run state to `out/checkpoint` atomically."""
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".checkpoint.tmp-"))
    try:
        model.save_weights(tmp / WEIGHTS_FILE)
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)}
        np.savez(tmp / OPTIMIZER_FILE, **arrays)
        write_json(tmp / STATE_FILE, state)
        final = out / CHECKPOINT_DIR
        old = out / OLD_CHECKPOINT_DIR
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _recover_checkpoint(out: Path) -> None:
    """Put back the previous checkpoint when a crash came between the two renames of `save_checkpoint`.

    Only the run that owns `out` may do this, when it resumes: a reader (`charzoo eval` on a run still
    training) could otherwise move a checkpoint back while the trainer is between the renames.
    """
    old = out / OLD_CHECKPOINT_DIR
    if not (out / CHECKPOINT_DIR / STATE_FILE).is_file() and (old / STATE_FILE).is_file():
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
        os.rename(old, out / CHECKPOINT_DIR)


def _forget_samples_after(path: Path, step: int) -> None:
    """Drop the samples logged after the checkpoint a run resumes from: it logs those steps again."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) < len(lines):
        write_text(path, "".join(kept))


def read_checkpoint_state(out: Path) -> dict[str, Any]:
    path = out / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise CharzooError(f"no checkpoint in {out}; start a new run without --resume", exit_code=2)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CharzooError(f"checkpoint state {path} is unreadable: {e}") from e


def load_checkpoint(out: str | Path) -> CharModel:
    """The model of a run's last checkpoint, to score or sample a run before it finishes.

    Its metadata has the run's `steps` so far, `history` and `training` config.
    """
    out = Path(out)
    state = read_checkpoint_state(out)
    try:
        model = CharRNN.from_model_config(ModelConfig(**state["model_config"]))
        vocab, training = Vocab.from_json(state["vocab"]), state["train_config"]
        # A carried-state checkpoint holds the wrapper's weights, the model's among them.
        holder = CarriedState(model, training["batch_size"], 1) if training.get("carry_state") else model
        metadata = {"name": out.name, "steps": state["step"], "history": state["history"], "training": training}
    except (KeyError, TypeError, ValueError) as e:
        raise CharzooError(f"checkpoint state {out / CHECKPOINT_DIR / STATE_FILE} is incomplete: {e!r}") from e
    load_weights(holder, out / CHECKPOINT_DIR / WEIGHTS_FILE)
    return CharModel(model, vocab, metadata, out)


def restore_checkpoint(model: CharRNN | CarriedState, out: Path) -> None:
    """Load weights and optimizer state written by `save_checkpoint` into a compiled model."""
    model.optimizer.build(model.trainable_variables)  # first: the .h5 of a compiled model holds optimizer variables too
    load_weights(model, out / CHECKPOINT_DIR / WEIGHTS_FILE)
    with np.load(out / CHECKPOINT_DIR / OPTIMIZER_FILE, allow_pickle=False) as arrays:
        values = [arrays[f"v{i}"] for i in range(len(arrays.files))]
    if len(values) != len(model.optimizer.variables):
        raise CharzooError(f"optimizer state in {out / CHECKPOINT_DIR} does not match the model")
    for variable, value in zip(model.optimizer.variables, values):
        variable.assign(value)


# What a run writes into --out; `force` removes these and nothing else.
RUN_ENTRIES = (*MODEL_FILES, *OPTIONAL_FILES, CHECKPOINT_DIR, OLD_CHECKPOINT_DIR, IDS_CACHE_DIR)


def prepare_output(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse to clobber a different model unless asked; with `force`, remove the old run's files.

    Only a run's own files go: `--out .` with `--force` never deletes anything else in the directory.
    """
    if out.exists() and not out.is_dir():
        raise CharzooError(f"--out {out} exists and is not a directory", exit_code=2)
    if resume:
        _recover_checkpoint(out)
        return
    occupied = out.exists() and (is_model_dir(out) or (out / CHECKPOINT_DIR).exists())
    if occupied and not force:
        raise CharzooError(
            f"{out} already holds a model or checkpoint; pass --resume to continue it or --force to replace it",
            exit_code=2,
        )
    if force:
        for entry in (out / name for name in RUN_ENTRIES):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def check_windows(train_chars: int, val_chars: int, config: TrainConfig) -> int:
    """The number of whole validation windows; an error when either split is shorter than one window,
    or, with `carry_state`, when the training split's streams are shorter than two."""
    window = config.seq_len + 1
    if train_chars < window:
        raise CharzooError(
            f"training split has {train_chars} characters, shorter than one window of {window}; "
            f"use a longer text or a smaller --seq-len",
            exit_code=2,
        )
    if config.val_fraction > 0 and val_chars < window:
        raise CharzooError(
            f"validation split has {val_chars} characters, shorter than one window of {window}; "
            f"use a smaller --seq-len or a larger --val-fraction",
            exit_code=2,
        )
    if config.carry_state:
        stream_layout(train_chars, config.seq_len, config.batch_size)
    return val_chars // window


def _text_and_sha(corpus: str | Path, encoding: str, errors: str) -> tuple[str, str, str]:
    """(text, sha256, name) of a corpus given as a path or as the text itself."""
    if isinstance(corpus, Path):
        # char-rnn's data/<name>/input.txt layout names a corpus by its folder; any other file by its own name
        name = corpus.parent.name if corpus.name == "input.txt" and corpus.parent.name else corpus.stem
        return read_corpus(corpus, encoding=encoding, errors=errors), sha256_file(corpus), name
    if not corpus.strip():
        raise CharzooError("corpus text is empty", exit_code=2)
    return corpus, hashlib.sha256(corpus.encode("utf-8")).hexdigest(), "text"


def train(
    corpus: str | Path,
    out: str | Path,
    *,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    force: bool = False,
    encoding: str = "utf-8",
    errors: str = "strict",
    metadata: dict[str, Any] | None = None,
    verbose: int | str = "auto",
    init: CharModel | None = None,
) -> CharModel:
    """Train a char-RNN on `corpus` (a file path or the text itself) into the model directory `out`.

    Args:
        model_config: `ModelConfig` fields except `vocab_size`, which comes from the corpus.
        train_config: a `TrainConfig`; defaults train one epoch.
        resume: continue from `out/checkpoint` with its weights, optimizer state and step.
        force: replace whatever `out` holds.
        metadata: extra fields for `metadata.json` (name, license, command, ...).
        verbose: Keras progress output (1: bar, 2: a line per round, 0: silent).
        init: a model to start from (fine-tuning) instead of fresh weights; its vocabulary is used.

    Returns:
        The trained model, also saved in `out`.
    """
    out = checkpoint_source = Path(out)  # --resume reads the chief's checkpoint, on every worker
    strategy = active_strategy()
    scratch = None if strategy is None or is_chief(strategy) else tempfile.TemporaryDirectory(prefix="charzoo-worker-")
    if scratch is not None:
        out = Path(scratch.name)  # a worker trains in step with the chief but keeps nothing
    train_config = train_config or TrainConfig()
    _check_carry_state(train_config, strategy)
    text, sha256, corpus_name = _text_and_sha(Path(corpus) if isinstance(corpus, os.PathLike) else corpus, encoding, errors)
    if resume and train_config.epochs is not None:
        raise CharzooError("a resumed run keeps its schedule; give --steps, not --epochs, to lengthen it", exit_code=2)
    if not resume:  # check what can be checked before touching --out, so bad input leaves nothing behind
        val_chars = int(round(len(text) * train_config.val_fraction))  # as split_text cuts, without copying
        check_windows(len(text) - val_chars, val_chars, train_config)
        if init is None:
            ModelConfig(vocab_size=1, **{k: v for k, v in (model_config or {}).items() if v is not None})
    prepare_output(out, resume=resume, force=force)

    state: dict[str, Any] = {}
    if resume:
        state = read_checkpoint_state(checkpoint_source)
        if state["corpus_sha256"] != sha256:
            raise CharzooError(
                f"corpus differs from the one the checkpoint in {out} was trained on "
                f"(sha256 {sha256[:12]}… vs {state['corpus_sha256'][:12]}…)",
                exit_code=2,
            )
        stored = ModelConfig(**state["model_config"])
        for key, value in (model_config or {}).items():
            if value is not None and getattr(stored, key) != value:
                raise CharzooError(
                    f"the checkpoint was trained with {key}={getattr(stored, key)!r}, not {value!r}; "
                    f"drop that flag when resuming",
                    exit_code=2,
                )
        vocab = Vocab.from_json(state["vocab"])
        config = stored
        saved_train = TrainConfig(**state["train_config"])
        _forget_samples_after(out / SAMPLES_FILE, state["step"])
        # A resumed run keeps the settings it started with (data, schedule, reporting); only --steps may
        # lengthen it.
        train_config = replace(saved_train, steps=train_config.steps or saved_train.steps, epochs=None)
        _check_carry_state(train_config, strategy)
    elif init is not None:
        vocab, config = init.vocab, init.config
    else:
        vocab = Vocab.from_text(text)
        fields = {k: v for k, v in (model_config or {}).items() if v is not None}
        config = ModelConfig(vocab_size=len(vocab), **fields)

    ids = cached_ids(text, vocab, out / IDS_CACHE_DIR)  # memory-mapped: batches read windows from the map
    train_ids, val_ids = split_text(ids, train_config.val_fraction)
    val_text, corpus_chars = split_text(text, train_config.val_fraction)[1], len(text)
    del text  # only the validation text is kept, for the final evaluation
    total = train_config.total_steps(len(train_ids))
    if not resume:
        train_config = replace(train_config, steps=total, epochs=None)
    val_windows = check_windows(len(train_ids), len(val_ids), train_config)

    with quiet_fd2():  # on JAX or PyTorch, Keras seeds (and so imports) TensorFlow too where it is installed
        keras.utils.set_random_seed(train_config.seed)
    if init is not None and not resume:
        model = init.model
    else:
        model = CharRNN.from_model_config(config)
        model.build_for_loading()
    freeze(model, train_config)  # before compiling: the optimizer holds state for trainable weights only
    trainer = model
    if train_config.carry_state:
        batches_per_pass = stream_layout(len(train_ids), train_config.seq_len, train_config.batch_size)[1]
        trainer = CarriedState(model, train_config.batch_size, batches_per_pass)  # checkpoints hold its state too
    compile_model(trainer, train_config, total)
    prepare_for_fit(trainer)
    step = 0
    history: list[dict[str, Any]] = state.get("history", [])
    if resume:
        restore_checkpoint(trainer, checkpoint_source)
        step = int(state["step"])

    val_steps = min(16, max(1, val_windows // train_config.batch_size)) if val_windows else 0
    val_data = (
        windows_dataset(val_ids, seq_len=train_config.seq_len, batch_size=train_config.batch_size,
                        seed=train_config.seed + 1, steps=val_steps)
        if val_steps else None
    )
    callbacks = [SampleEvolution(CharModel(model, vocab), out / SAMPLES_FILE, train_config.sample_every,
                                 seed=train_config.seed)]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    run_state = {
        "model_config": config.to_dict(),
        "train_config": asdict(train_config),
        "vocab": vocab.to_json(),
        "corpus_sha256": sha256,
    }
    started = time.time()
    elapsed_before = float(state.get("train_seconds", 0.0))
    rounds = math.ceil(total / train_config.checkpoint_every)
    try:
        while step < total:
            n = min(train_config.checkpoint_every, total - step)
            round_index = step // train_config.checkpoint_every
            logs = trainer.fit(
                windows_dataset(train_ids, seq_len=train_config.seq_len, batch_size=train_config.batch_size,
                                seed=train_config.seed, start_step=step, steps=n, contiguous=train_config.carry_state),
                epochs=rounds, initial_epoch=round_index, steps_per_epoch=n,  # progress shows "Epoch k/rounds"
                validation_data=val_data, callbacks=[*callbacks, _OneRound()], verbose=verbose, shuffle=False,
            ).history
            step += n
            history.append({"step": step, **{k: float(v[-1]) for k, v in logs.items()}})
            seconds = elapsed_before + time.time() - started
            save_checkpoint(trainer, out, {**run_state, "step": step, "history": history, "train_seconds": seconds})
            if _patience_exhausted(history, train_config.patience):
                print(f"early stop at step {step}: val loss has not improved for {train_config.patience} rounds")
                break
    except KeyboardInterrupt:
        done = read_checkpoint_state(out)["step"] if (out / CHECKPOINT_DIR).exists() else 0
        raise CharzooError(
            f"interrupted; the last checkpoint ({done} of {total} steps, {rounds} rounds) is in "
            f"{out / CHECKPOINT_DIR}; continue with --resume",
            exit_code=130,
        ) from None

    from charzoo.evaluation import evaluate
    from charzoo.sampling import sample_text

    result = CharModel(model, vocab)
    train_seconds = elapsed_before + time.time() - started
    val = evaluate(result, val_text, map_unknown=True) if len(val_text) > 1 else None  # as the training ids are
    result.metadata = {
        **(metadata or {}),
        "corpus": {"name": (metadata or {}).get("corpus_name", corpus_name), "sha256": sha256, "chars": corpus_chars},
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "train_loss": history[-1].get("loss") if history else None,
        "val_loss": None if val is None else val.nats_per_char,
        "val_chars": None if val is None else val.chars,
        "val_fraction": train_config.val_fraction,
        "training": asdict(train_config),
        "history": history,
        "samples": {str(t): sample_text(result, length=300, temperature=t, seed=train_config.seed)[0] for t in (0.5, 1.0)},
        **_versions(),
    }
    result.metadata.pop("corpus_name", None)
    save_pretrained(result, out, overwrite=True)
    if scratch is not None:
        scratch.cleanup()
    return result


def _check_carry_state(config: TrainConfig, strategy) -> None:
    if config.carry_state and strategy is not None:
        raise CharzooError("--carry-state does not run under a distribution strategy; train without --strategy",
                           exit_code=2)


def _patience_exhausted(history: list[dict[str, Any]], patience: int | None) -> bool:
    losses = [h["val_loss"] for h in history if "val_loss" in h]
    if patience is None or len(losses) <= patience:
        return False
    return min(losses[-patience:]) >= min(losses[:-patience])


def _versions() -> dict[str, Any]:
    import charzoo

    return {
        "charzoo_version": charzoo.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
