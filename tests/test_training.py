"""Training: it learns, checkpoints, resumes exactly, logs samples, carries state, and refuses to clobber a model."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest

from charzoo.data import read_corpus, sha256_file, split_text
from charzoo.errors import CharzooError
from charzoo.models import CharRNN, ModelConfig
from charzoo.training import OLD_CHECKPOINT_DIR, CarriedState, TrainConfig, load_checkpoint, train
from charzoo.zoo import CHECKPOINT_DIR, MODEL_FILES, SAMPLES_FILE, WEIGHTS_FILE, load, load_dir, load_weights
from conftest import TINY, interrupt_after_first_checkpoint

RESUME_CONFIG = TrainConfig(seq_len=32, batch_size=16, steps=40, checkpoint_every=20, sample_every=20, seed=5)


def unigram_entropy(text: str) -> float:
    """Nats per char of the best model that ignores context."""
    _, counts = np.unique(list(text), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def logged_samples(out) -> list[tuple[int, str]]:
    return [(r["step"], r["sample"]) for r in map(json.loads, (out / SAMPLES_FILE).read_text().splitlines())]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, names_path):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    return out, train(names_path, out, model_config=TINY, train_config=RESUME_CONFIG, verbose=0)


def interrupt(out, names_path) -> CharzooError:
    """Run the same training into `out`, stopped by Ctrl-C right after its first checkpoint."""
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError) as info:
            train(names_path, out, model_config=TINY, train_config=RESUME_CONFIG, verbose=0)
    return info.value


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, names_path):
    """(out, the CharzooError raised) of an interrupted run; `test_resumed_run_...` finishes it."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    return out, interrupt(out, names_path)


def test_val_loss_falls_well_below_unigram_entropy(tmp_path, names_path):
    config = TrainConfig(seq_len=32, batch_size=32, steps=300, lr=1e-2, checkpoint_every=300, sample_every=300)
    result = train(names_path, tmp_path / "names", model_config=TINY, train_config=config, verbose=0)
    val_text = split_text(read_corpus(names_path), 0.1)[1]
    entropy = unigram_entropy(val_text)
    assert result.metadata["val_loss"] < entropy - 0.4, (result.metadata["val_loss"], entropy)
    assert result.evaluate(val_text).nats_per_char == pytest.approx(result.metadata["val_loss"])


def test_keyboard_interrupt_leaves_the_last_checkpoint_and_exits_130(interrupted):
    out, error = interrupted
    assert error.exit_code == 130
    assert "\n" not in str(error) and "20 of 40 steps" in str(error) and "--resume" in str(error)
    state = json.loads((out / CHECKPOINT_DIR / "state.json").read_text())
    assert state["step"] == 20
    assert not (out / "config.json").exists()  # no model directory until training finishes
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp dirs left behind
    model = CharRNN.from_model_config(ModelConfig(**state["model_config"]))
    load_weights(model, out / CHECKPOINT_DIR / WEIGHTS_FILE)  # the checkpoint is whole


def test_interrupted_run_is_not_overwritten_without_resume(interrupted, names_path):
    out, _ = interrupted
    with pytest.raises(CharzooError, match="--resume to continue it or --force") as info:
        train(names_path, out, model_config=TINY, train_config=RESUME_CONFIG, verbose=0)
    assert info.value.exit_code == 2


def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(uninterrupted, interrupted, names_path):
    out, _ = interrupted
    resumed = train(names_path, out, train_config=RESUME_CONFIG, resume=True, verbose=0)
    _, reference = uninterrupted
    for a, b in zip(resumed.model.get_weights(), reference.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(resumed.model.optimizer.iterations.numpy()) == 40
    assert resumed.metadata["steps"] == 40
    assert [h["step"] for h in resumed.metadata["history"]] == [20, 40]
    # samples depend only on the weights, so the resumed run logs the same ones
    reference_out, _ = uninterrupted
    assert logged_samples(out) == logged_samples(reference_out)


def test_samples_jsonl_logs_step_loss_and_sample(uninterrupted):
    out, result = uninterrupted
    records = [json.loads(line) for line in (out / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records] == [20, 40]
    for record in records:
        assert set(record) == {"step", "loss", "sample"}
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert len(record["sample"]) == 200 and set(record["sample"]) <= set(result.vocab.chars)


def test_finished_run_is_a_complete_model_directory(uninterrupted, names_path):
    out, result = uninterrupted
    assert all((out / name).is_file() for name in MODEL_FILES)
    meta = result.metadata
    assert meta["steps"] == 40 and meta["corpus"]["sha256"] == sha256_file(names_path)
    assert meta["corpus"]["name"] == "names"
    assert math.isfinite(meta["train_loss"]) and math.isfinite(meta["val_loss"])
    assert load_dir(out).config == result.config


def test_a_corpus_is_named_by_its_folder_only_in_char_rnns_layout(names_path, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "poems.txt").write_text(names_path.read_text())
    result = train(tmp_path / "data" / "poems.txt", tmp_path / "out", model_config=TINY,
                   train_config=TrainConfig(seq_len=8, batch_size=2, steps=1), verbose=0)
    assert result.metadata["corpus"]["name"] == "poems"  # names_path, .../names/input.txt, is "names" (above)


def test_refuses_an_out_that_holds_a_model_unless_forced(uninterrupted, names_path, tmp_path):
    out, _ = uninterrupted
    before = (out / WEIGHTS_FILE).read_bytes()
    with pytest.raises(CharzooError, match="already holds a model") as info:
        train(names_path, out, model_config=TINY, train_config=RESUME_CONFIG, verbose=0)
    assert info.value.exit_code == 2
    assert (out / WEIGHTS_FILE).read_bytes() == before

    forced = tmp_path / "forced"
    short = TrainConfig(seq_len=8, batch_size=2, steps=2, sample_every=1)
    train("ab" * 200, forced, model_config=TINY, train_config=short, verbose=0)
    (forced / "notes.txt").write_text("the user's, not the run's")
    result = train("xyz" * 200, forced, model_config=TINY, force=True, train_config=short, verbose=0)
    assert result.vocab.chars == ("x", "y", "z")
    assert load_dir(forced).vocab == result.vocab and load_checkpoint(forced).vocab == result.vocab
    samples = [s for _, s in logged_samples(forced)]
    assert samples and all(set(s) <= set("xyz") for s in samples)  # no sample of the old run is left
    assert (forced / "notes.txt").read_text() == "the user's, not the run's"  # --force removes the run's files only


def test_resume_checks_the_corpus_and_the_model_flags(interrupted, names_path, tmp_path):
    out, _ = interrupted
    other = tmp_path / "other.txt"
    other.write_text("some other text\n" * 100)
    with pytest.raises(CharzooError, match="corpus differs"):
        train(other, out, resume=True, verbose=0)
    with pytest.raises(CharzooError, match="trained with hidden=32, not 64") as info:
        train(names_path, out, model_config={"hidden": 64}, resume=True, verbose=0)
    assert info.value.exit_code == 2


def test_only_a_resume_puts_back_a_checkpoint_that_a_crash_left_half_saved(names_path, tmp_path):
    out = tmp_path / "run"
    interrupt(out, names_path)
    (out / CHECKPOINT_DIR).rename(out / OLD_CHECKPOINT_DIR)  # a crash between save_checkpoint's two renames
    with pytest.raises(CharzooError, match="no checkpoint"):
        load_checkpoint(out)  # a reader, say `charzoo eval` on a run still training, moves nothing
    assert (out / OLD_CHECKPOINT_DIR).is_dir() and not (out / CHECKPOINT_DIR).exists()
    resumed = train(names_path, out, train_config=RESUME_CONFIG, resume=True, verbose=0)
    assert [h["step"] for h in resumed.metadata["history"]] == [20, 40]
    assert not (out / OLD_CHECKPOINT_DIR).exists()


def test_samples_logged_after_the_checkpoint_are_not_logged_twice(uninterrupted, names_path, tmp_path):
    out = tmp_path / "run"
    interrupt(out, names_path)
    with open(out / SAMPLES_FILE, "a") as f:  # Ctrl-C came after a sample at step 30, before the next checkpoint
        f.write(json.dumps({"step": 30, "loss": 1.0, "sample": "from before the Ctrl-C"}) + "\n")
    train(names_path, out, train_config=RESUME_CONFIG, resume=True, verbose=0)
    assert logged_samples(out) == logged_samples(uninterrupted[0])


def test_resume_keeps_the_schedule(interrupted, names_path):
    with pytest.raises(CharzooError, match="give --steps, not --epochs") as info:
        train(names_path, interrupted[0], train_config=TrainConfig(epochs=2), resume=True, verbose=0)
    assert info.value.exit_code == 2


def test_resume_without_a_checkpoint(tmp_path, names_path):
    with pytest.raises(CharzooError, match="no checkpoint") as info:
        train(names_path, tmp_path / "empty", resume=True, verbose=0)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"batch_size": -4}, "batch_size must be a positive integer, got -4"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"steps": 5, "epochs": 1.0}, "either steps or epochs"),
    ],
)
def test_bad_train_config(kwargs, message):
    with pytest.raises(CharzooError, match=message) as info:
        TrainConfig(**kwargs)
    assert info.value.exit_code == 2


def test_corpus_shorter_than_one_window(tmp_path):
    with pytest.raises(CharzooError, match="shorter than one window") as info:
        train("tiny text\n", tmp_path / "out", model_config=TINY, train_config=TrainConfig(seq_len=32, steps=1))
    assert info.value.exit_code == 2


def carried_state_error(steps: int) -> float:
    """Largest gap between the state `CarriedState` carries after `steps` training steps and the state of
    reading each stream straight through from the start of the last pass, from a zero state (learning
    rate 0 keeps the weights fixed). A pass here is 65 steps."""
    from charzoo._keras import keras
    from charzoo.data import stream_batch, stream_layout, window_batches

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=2000).astype(np.int32)
    seq_len, batch_size = 10, 3
    per_pass = stream_layout(len(ids), seq_len, batch_size)[1]
    model = CharRNN(vocab_size=7, **TINY)
    model.build_for_loading()
    trainer = CarriedState(model, batch_size, per_pass)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = window_batches(ids, seq_len=seq_len, batch_size=batch_size, seed=1, steps=steps, contiguous=True)
    trainer.fit(batches, epochs=1, verbose=0, shuffle=False)
    trainer.evaluate(batches, verbose=0)  # scoring starts from a zero state and leaves the carried one alone
    carried = [keras.ops.convert_to_numpy(v) for layer in trainer.state_variables for v in layer]

    positions, first = np.arange(len(ids)), (steps - 1) // per_pass * per_pass  # the first step of the last pass
    starts = stream_batch(positions, seq_len=seq_len, batch_size=batch_size, seed=1, step=first)[:, 0]
    streams = np.stack([ids[start:start + (steps - first) * seq_len] for start in starts])
    _, state = model(streams, return_state=True)
    straight = [keras.ops.convert_to_numpy(v) for layer in state for v in layer]
    assert all(np.abs(c).max() > 0 for c in carried)
    return max(float(np.abs(c - s).max()) for c, s in zip(carried, straight, strict=True))


@pytest.mark.parametrize("steps", [5, 68])  # within the first pass; 3 steps into the second
def test_carried_state_is_the_state_of_reading_each_stream_straight_through(steps):
    assert carried_state_error(steps) < 1e-5


@pytest.fixture(scope="module")
def carried_uninterrupted(tmp_path_factory, names_path):
    out = tmp_path_factory.mktemp("carried") / "run"
    return train(names_path, out, model_config=TINY, train_config=replace(RESUME_CONFIG, carry_state=True), verbose=0)


def test_carried_state_run_resumes_exactly(carried_uninterrupted, names_path, tmp_path):
    out = tmp_path / "run"
    config = replace(RESUME_CONFIG, carry_state=True)
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError):
            train(names_path, out, model_config=TINY, train_config=config, verbose=0)
    state = json.loads((out / CHECKPOINT_DIR / "state.json").read_text())
    trainer = CarriedState(CharRNN.from_model_config(ModelConfig(**state["model_config"])), config.batch_size, 1000)
    trainer.build_for_loading()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checkpoint holds optimizer variables too
        trainer.load_weights(out / CHECKPOINT_DIR / WEIGHTS_FILE)
    assert int(trainer.batches.numpy()) == 20
    assert all(np.abs(v.numpy()).max() > 0 for layer in trainer.state_variables for v in layer)
    resumed = train(names_path, out, resume=True, verbose=0)  # from the checkpoint's carried state
    assert resumed.metadata["training"]["carry_state"] is True
    for a, b in zip(resumed.model.get_weights(), carried_uninterrupted.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_carried_state_trains_a_plain_model_directory(carried_uninterrupted, uninterrupted):
    _, windows = uninterrupted
    assert carried_uninterrupted.config == windows.config
    assert len(carried_uninterrupted.model.weights) == len(windows.model.weights)
    assert math.isfinite(carried_uninterrupted.metadata["val_loss"])


def test_carried_state_needs_long_enough_streams_and_no_strategy(tmp_path):
    import tensorflow as tf

    config = TrainConfig(seq_len=32, batch_size=64, steps=1, carry_state=True)
    with pytest.raises(CharzooError, match="streams of at least 2 x seq_len = 64") as info:
        train("abcdefgh" * 500, tmp_path / "short", model_config=TINY, train_config=config)
    assert info.value.exit_code == 2 and not (tmp_path / "short").exists()
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        with pytest.raises(CharzooError, match="does not run under a distribution strategy"):
            train("abcdefgh" * 5000, tmp_path / "mirrored", model_config=TINY, train_config=config)
    assert not (tmp_path / "mirrored").exists()


def test_resuming_a_carried_state_run_under_a_strategy_is_refused_untouched(carried_uninterrupted, names_path,
                                                                           tmp_path):
    import tensorflow as tf

    out = tmp_path / "run"
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError):
            train(names_path, out, model_config=TINY, train_config=replace(RESUME_CONFIG, carry_state=True), verbose=0)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        with pytest.raises(CharzooError, match="does not run under a distribution strategy") as info:
            train(names_path, out, resume=True, verbose=0)  # the checkpoint's config carries the state
    assert info.value.exit_code == 2 and sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_epochs_of_a_carried_state_run_are_passes_over_the_streams():
    from charzoo.data import stream_layout

    config = TrainConfig(seq_len=32, batch_size=16, epochs=2.5, carry_state=True)
    assert config.total_steps(50_000) == math.ceil(2.5 * stream_layout(50_000, 32, 16)[1])


@pytest.mark.parametrize("run", ["uninterrupted", "carried_uninterrupted"])
def test_the_last_checkpoint_of_a_run_loads_as_its_final_model(run, request):
    result = request.getfixturevalue(run)
    out, result = result if isinstance(result, tuple) else (result.path, result)
    checkpoint = load_checkpoint(out)  # a carried-state checkpoint holds the wrapper: its model comes out of it
    assert checkpoint.metadata["steps"] == 40 and checkpoint.config == result.config
    assert checkpoint.vocab.chars == result.vocab.chars
    for a, b in zip(checkpoint.model.get_weights(), result.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_still_training_loads_from_its_checkpoint_but_is_no_model_directory(uninterrupted, names_path, tmp_path):
    _, final = uninterrupted
    out = tmp_path / "run"
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError):
            train(names_path, out, model_config=TINY, train_config=RESUME_CONFIG, verbose=0)
    said = []
    charmodel = load(out, on_source=said.append)
    assert charmodel.metadata["steps"] == 20 and [h["step"] for h in charmodel.metadata["history"]] == [20]
    assert said == [f"{out} has not finished training: using its checkpoint at step 20"]
    assert any(not np.array_equal(a, b) for a, b in zip(charmodel.model.get_weights(), final.model.get_weights()))
    direct = CharRNN.from_model_config(charmodel.config)
    load_weights(direct, out / CHECKPOINT_DIR / WEIGHTS_FILE)
    for a, b in zip(charmodel.model.get_weights(), direct.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    val_text = split_text(read_corpus(names_path), 0.1)[1]
    assert charmodel.evaluate(val_text).nats_per_char < math.log(len(charmodel.vocab))  # 20 steps beat uniform
    with pytest.raises(CharzooError, match="is not a model directory"):
        load_dir(out)  # what push and the registry read: only a finished model
