"""The `charzoo` command line: lazy start-up, end-to-end commands, quiet stderr, one-line errors, Ctrl-C.

Where the real process matters (start-up imports, TensorFlow's noise on fd 2, signals) the tests run
`python -m charzoo` in a subprocess; the many bad-input cases call `charzoo.cli.main()` in-process, which is
the same entry point minus the interpreter start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from charzoo import cli
from charzoo.models import CharRNN, ModelConfig
from charzoo.sampling import sample_text
from charzoo.zoo import (
    CHECKPOINT_DIR, CONFIG_FILE, MODEL_FILES, SAMPLES_FILE, VOCAB_FILE, WEIGHTS_FILE, load_dir, load_weights,
)

from conftest import ROOT

TINY_FLAGS = ["--layers", "1", "--hidden", "32", "--embedding-dim", "8", "--seq-len", "32", "--batch-size", "16"]
TF_NOISE = ("oneDNN", "cudart", "cuda_", "cpu_feature_guard", "cuInit", "TF-TRT", "absl::", "All log messages before")


def subprocess_env() -> dict[str, str]:
    """The user's environment: without the test suite's TF_CPP_MIN_LOG_LEVEL, so any noise would show."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def charzoo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charzoo", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=timeout)


def assert_quiet(stderr: str) -> None:
    noisy = [line for line in stderr.splitlines() if any(marker in line for marker in TF_NOISE)]
    assert not noisy, noisy


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `charzoo.cli.main()` as `charzoo ARGS`: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["charzoo", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line_error(result: tuple[int, str, str], exit_code: int, fragment: str) -> None:
    code, _, err = result
    assert code == exit_code, err
    assert err.startswith("charzoo: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory, names_path) -> tuple[Path, subprocess.CompletedProcess]:
    """A tiny model trained by `python -m charzoo train`, and that process's result."""
    out = tmp_path_factory.mktemp("cli") / "names-cli"
    run = charzoo("train", names_path, "--out", out, *TINY_FLAGS, "--steps", "20", "--checkpoint-every", "10",
                  "--sample-every", "10", "--seed", "1")
    assert run.returncode == 0, run.stderr
    return out, run


# === Start-up: no TensorFlow for --help ===
def test_importing_the_cli_does_not_import_tensorflow():
    check = "import charzoo.cli, sys; assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)"
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["sample", "--help"], ["eval", "--help"]])
def test_help_runs_without_importing_tensorflow(args):
    script = (
        "import sys\n"
        f"sys.argv = ['charzoo', *{args!r}]\n"
        "from charzoo import cli\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "loaded = {'tensorflow', 'keras'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    wide = {**subprocess_env(), "COLUMNS": "200"}  # at 80 columns rich may shorten long flag names
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=wide)
    assert run.returncode == 0, run.stderr
    assert "Usage" in run.stdout and run.stderr == ""
    if args[0] == "train":
        assert all(flag in run.stdout for flag in ("--hidden", "--embedding-dim", "--checkpoint-every", "--resume"))


def test_python_m_charzoo_help_lists_the_commands():
    run = charzoo("--help", timeout=60)
    assert run.returncode == 0 and run.stderr == ""
    assert all(command in run.stdout for command in ("train", "sample", "eval", "info"))


# === End to end on a tiny model ===
def test_train_writes_a_model_directory_quietly(cli_model):
    out, run = cli_model
    assert all((out / name).is_file() for name in MODEL_FILES)
    assert [json.loads(line)["step"] for line in (out / SAMPLES_FILE).read_text().splitlines()] == [10, 20]
    assert "--- sample at step 10" in run.stdout and run.stdout.rstrip().splitlines()[-1].startswith(f"saved {out}")
    assert_quiet(run.stderr)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["steps"] == 20 and metadata["command"].startswith("charzoo train ")
    card = (out / "README.md").read_text()  # a local model is no zoo name: its card does not say to pull it
    assert "charzoo pull" not in card and "charzoo sample path/to/names-cli --prime" in card


def test_sample_streams_prime_then_text(cli_model, monkeypatch, capsys):
    out, _ = cli_model
    code, stdout, stderr = run_main(monkeypatch, capsys, "sample", out, "--prime", "Ma", "--length", "40",
                                    "--seed", "4")
    assert code == 0 and stderr == ""
    expected = sample_text(load_dir(out), prime="Ma", length=40, seed=4)[0]
    assert stdout == "Ma" + expected + "\n"


def test_sample_several_streams_with_stop(cli_model, monkeypatch, capsys):
    out, _ = cli_model
    code, stdout, _ = run_main(monkeypatch, capsys, "sample", out, "--prime", "J", "--num", "4", "--stop", "\\n",
                               "--length", "30", "--seed", "2", "--temperature", "1.0")
    assert code == 0
    lines = stdout.rstrip("\n").split("\n")
    expected = sample_text(load_dir(out), prime="J", num=4, stop="\n", length=30, seed=2, temperature=1.0)
    assert lines == ["J" + text for text in expected]


def test_eval_json_keys_and_val_split(cli_model, names_path, monkeypatch, capsys):
    out, _ = cli_model
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path, "--json")
    assert code == 0
    whole = json.loads(stdout)
    assert set(whole) == {"chars", "nats_per_char", "bits_per_char"}
    assert whole["chars"] == len(names_path.read_text(encoding="utf-8")) - 1
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path, "--split", "val", "--json")
    val = json.loads(stdout)
    assert code == 0 and val["chars"] == pytest.approx(whole["chars"] / 10, abs=2)
    assert val["nats_per_char"] == pytest.approx(json.loads((out / "metadata.json").read_text())["val_loss"])
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path)
    assert code == 0 and "nats/char" in stdout and "bits/char" in stdout


def test_eval_breakdown_and_dynamic_evaluation(cli_model, names_path, monkeypatch, capsys):
    out, _ = cli_model
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path, "--split", "val", "--breakdown", "--json")
    report = json.loads(stdout)
    assert code == 0 and [share["label"] for share in report["breakdown"]] == [
        "in words the training text has", "in words it does not have", "between words"]
    assert sum(share["loss_fraction"] for share in report["breakdown"]) == pytest.approx(1.0)
    mean = sum(share["char_fraction"] * share["nats_per_char"] for share in report["breakdown"])
    assert mean == pytest.approx(report["nats_per_char"])
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path, "--split", "val", "--dynamic-lr", "0")
    assert code == 0 and "(dynamic evaluation, lr 0)" in stdout
    assert f"{report['nats_per_char']:.4f} nats/char" in stdout
    code, stdout, _ = run_main(monkeypatch, capsys, "eval", out, names_path, "--split", "val", "--dynamic-lr", "0.5",
                               "--breakdown", "--json")
    adapted = json.loads(stdout)
    assert code == 0 and adapted["dynamic_lr"] == 0.5 and len(adapted["breakdown"]) == 3
    assert adapted["nats_per_char"] < report["nats_per_char"]
    assert_one_line_error(run_main(monkeypatch, capsys, "eval", out, names_path, "--breakdown"), 2, "--breakdown needs")
    assert_one_line_error(run_main(monkeypatch, capsys, "eval", out, names_path, "--dynamic-lr", "-1"), 2,
                          "learning rate must be a finite number >= 0")


@pytest.mark.parametrize("given, meant", [("\\n", "\n"), ("\\t|", "\t|"), ("\\", "\\"), ("\\x", "\\x"),
                                          ("é\\n", "é\n"), ("a\\\\nb", "a\\nb")])
def test_stop_strings_take_shell_escapes_and_keep_other_text(given, meant):
    assert cli._unescape(given) == meant


def test_recipe_rejects_zero_steps_instead_of_ignoring_them(names_path, tmp_path, monkeypatch, capsys):
    result = run_main(monkeypatch, capsys, "recipe", ROOT / "recipes" / "names.toml", "--data", names_path,
                      "--out", tmp_path / "run", "--quick", "--steps", "0")
    assert_one_line_error(result, 2, "steps must be a positive integer")
    assert not (tmp_path / "run").exists()


def test_eval_viz_and_neurons_decode_a_latin1_text_when_told(cli_model, tmp_path, monkeypatch, capsys):
    out, _ = cli_model
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Anna\nMaria\nJosé\n".encode("latin-1") * 10)
    for command in (["eval", out, latin1], ["neurons", out, latin1, "--top", "1"],
                    ["viz", out, latin1, "--out", tmp_path / "report.html"]):
        assert_one_line_error(run_main(monkeypatch, capsys, *command), 2, "pass --encoding")
        code, stdout, err = run_main(monkeypatch, capsys, *command, "--encoding", "latin-1", "--errors", "strict")
        # Decoded, the text gets past reading: eval refuses the "é" the names model never saw, the
        # visualisations show it as unknown.
        assert "pass --encoding" not in err and "Traceback" not in err
        assert (code, err.count("'é'")) == ((2, 1) if command[0] == "eval" else (0, 0)), err
    # Replaced, the bad byte is U+FFFD, which the model does not know: still one line, no traceback.
    assert_one_line_error(run_main(monkeypatch, capsys, "eval", out, latin1, "--errors", "replace"), 2, "'\ufffd'")


def test_info_json_has_exactly_the_contract_keys(cli_model, monkeypatch, capsys):
    out, _ = cli_model
    code, stdout, _ = run_main(monkeypatch, capsys, "info", out, "--json")
    assert code == 0
    data = json.loads(stdout)
    assert set(data) == {"config", "params", "metadata"}
    assert data["config"] == {"cell": "lstm", "layers": 1, "hidden": 32, "embedding_dim": 8, "dropout": 0.0,
                              "vocab_size": load_dir(out).config.vocab_size}
    assert data["params"] == data["metadata"]["params"] > 0
    code, stdout, _ = run_main(monkeypatch, capsys, "info", out)
    assert code == 0 and "1 x 32 lstm" in stdout


def test_info_shows_the_dynamic_evaluation_a_zoo_model_records(monkeypatch, capsys):
    code, stdout, _ = run_main(monkeypatch, capsys, "info", "linux")
    dynamic = json.loads((ROOT / "pretrained" / "linux" / "metadata.json").read_text())["dynamic_eval"]
    assert code == 0
    assert f"val under dynamic evaluation (--dynamic-lr {dynamic['lr']:g}): {dynamic['val_loss']:.4f} nats/char" in stdout


# === Bad input: one line on stderr, the right exit code, no traceback, nothing written ===
@pytest.fixture
def corpora(tmp_path) -> dict[str, Path]:
    files = {"empty": b"", "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00", "latin1": "Zoë\n".encode("latin-1") * 50,
             "short": b"Ann\nBob\n"}
    for name, content in files.items():
        (tmp_path / f"{name}.txt").write_bytes(content)
    return {name: tmp_path / f"{name}.txt" for name in files}


@pytest.mark.parametrize(
    "corpus, flags, fragment",
    [
        ("missing", [], "does not exist"),
        ("empty", [], "is empty"),
        ("binary", [], "looks binary (NUL byte at offset 7)"),
        ("latin1", [], "not valid utf-8: byte 0xeb at offset 2"),
        ("short", [], "shorter than one window"),
        ("names", ["--steps", "0"], "steps must be a positive integer, got 0"),
        ("names", ["--hidden", "-5"], "hidden must be a positive integer, got -5"),
        ("names", ["--batch-size", "-1"], "batch_size must be a positive integer, got -1"),
        ("names", ["--carry-state", "--batch-size", "4096"], "carrying the state needs streams of at least"),
        ("names", ["--seed", "-1"], "seed must be an integer in [0, 2**32), got -1"),
    ],
)
def test_bad_training_input(corpus, flags, fragment, corpora, names_path, tmp_path, monkeypatch, capsys):
    path = names_path if corpus == "names" else corpora.get(corpus, tmp_path / "missing.txt")
    out = tmp_path / "out"
    result = run_main(monkeypatch, capsys, "train", path, "--out", out, *TINY_FLAGS, "--steps", "5", *flags)
    assert_one_line_error(result, 2, fragment)
    assert not out.exists()


def test_bad_input_from_a_real_process(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n" * 100)
    run = charzoo("train", tmp_path / "bad.txt", "--out", tmp_path / "out", "--steps", "5")
    assert run.returncode == 2
    assert run.stderr == "charzoo: error: corpus {} is not valid utf-8: byte 0xe9 at offset 3; pass --encoding, " \
                         "or --errors replace to substitute U+FFFD\n".format(tmp_path / "bad.txt")


def test_out_that_holds_a_model_is_refused(cli_model, names_path, monkeypatch, capsys):
    out, _ = cli_model
    before = (out / WEIGHTS_FILE).read_bytes()
    result = run_main(monkeypatch, capsys, "train", names_path, "--out", out, *TINY_FLAGS, "--steps", "5")
    assert_one_line_error(result, 2, "pass --resume to continue it or --force to replace it")
    assert (out / WEIGHTS_FILE).read_bytes() == before


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--temperature", "0"], "temperature must be > 0, got 0.0"),
        (["--top-p", "1.5"], "top-p must be in (0, 1], got 1.5"),
        (["--top-k", "0"], "top-k must be >= 1, got 0"),
        (["--seed", "-3"], "seed must be >= 0, got -3"),
        (["--prime", "Ma漢"], "'漢' at position 2 is not in the model's vocabulary"),
    ],
)
def test_bad_sampling_options(cli_model, flags, fragment, monkeypatch, capsys):
    out, _ = cli_model
    result = run_main(monkeypatch, capsys, "sample", out, "--length", "5", *flags)
    assert_one_line_error(result, 2, fragment)
    assert result[1] == ""  # nothing printed before the error


def break_weights(directory: Path) -> None:
    data = (directory / WEIGHTS_FILE).read_bytes()
    (directory / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def break_vocab(directory: Path) -> None:
    vocab = json.loads((directory / VOCAB_FILE).read_text())
    (directory / VOCAB_FILE).write_text(json.dumps({**vocab, "chars": vocab["chars"] + ["漢"]}))


@pytest.mark.parametrize(
    "damage, exit_code, fragment",
    [
        (None, 2, "broken"),  # the directory itself is missing: the message names it
        (lambda d: (d / CONFIG_FILE).unlink(), 2, "is not a model directory"),
        (lambda d: (d / VOCAB_FILE).unlink(), 1, "vocab.json is missing"),
        (break_weights, 1, "does not match config.json or is corrupt"),
        (break_vocab, 1, "the files come from different models"),
    ],
)
def test_broken_model_directory(cli_model, damage, exit_code, fragment, names_path, tmp_path, monkeypatch, capsys):
    out, _ = cli_model
    broken = tmp_path / "broken"
    if damage is not None:
        shutil.copytree(out, broken)
        damage(broken)
    for command in (["sample", broken, "--length", "5"], ["eval", broken, names_path], ["info", broken]):
        assert_one_line_error(run_main(monkeypatch, capsys, *command), exit_code, fragment)


def test_eval_of_a_missing_text(cli_model, tmp_path, monkeypatch, capsys):
    out, _ = cli_model
    assert_one_line_error(run_main(monkeypatch, capsys, "eval", out, tmp_path / "none.txt"), 2, "does not exist")


# === Ctrl-C ===
def press_ctrl_c(args: list, ready: Callable[[], bool], tmp_path: Path) -> tuple[int, str]:
    """Run `charzoo ARGS`, send SIGINT once `ready()` holds: (exit code, stderr)."""
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(stdout, "w") as out_file, open(stderr, "w") as err_file:
        # A shell's background jobs (as CI may run us) inherit SIGINT ignored; the user's Ctrl-C is not.
        process = subprocess.Popen([sys.executable, "-m", "charzoo", *map(str, args)], stdout=out_file,
                                   stderr=err_file, env=subprocess_env(),
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 240
            while not ready():
                assert process.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, "not ready within 240 s"
                time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            return process.wait(timeout=120), stderr.read_text()
        finally:
            if process.poll() is None:
                process.kill()


def test_ctrl_c_during_sampling_says_interrupted(cli_model, tmp_path):
    out, _ = cli_model
    code, message = press_ctrl_c(["sample", out, "--length", "100000000"],
                                 lambda: (tmp_path / "stdout.txt").stat().st_size > 0, tmp_path)
    assert (code, message) == (130, "charzoo: interrupted\n")


def test_ctrl_c_during_training_keeps_the_checkpoint_and_resume_continues(names_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "interrupted"
    code, message = press_ctrl_c(["train", names_path, "--out", out, *TINY_FLAGS, "--steps", "100000",
                                  "--checkpoint-every", "15", "--sample-every", "100000"],
                                 lambda: (out / CHECKPOINT_DIR / "state.json").exists(), tmp_path)
    assert code == 130
    assert message.startswith("charzoo: error: interrupted; the last checkpoint (") and message.count("\n") == 1
    assert "of 100000 steps" in message and "continue with --resume" in message and "Traceback" not in message

    state = json.loads((out / CHECKPOINT_DIR / "state.json").read_text())
    assert state["step"] > 0 and state["step"] % 15 == 0
    model = CharRNN.from_model_config(ModelConfig(**state["model_config"]))
    load_weights(model, out / CHECKPOINT_DIR / WEIGHTS_FILE)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written checkpoint left

    # The unfinished run scores and samples from its checkpoint, and says so.
    code, stdout_text, stderr_text = run_main(monkeypatch, capsys, "eval", out, names_path, "--split", "val")
    assert code == 0 and " nats/char, " in stdout_text
    assert stderr_text == f"{out} has not finished training: using its checkpoint at step {state['step']:,}\n"
    code, stdout_text, _ = run_main(monkeypatch, capsys, "sample", out, "--length", "40", "--seed", "1")
    assert code == 0 and len(stdout_text) == 41

    steps = state["step"] + 15
    code, stdout_text, _ = run_main(monkeypatch, capsys, "train", names_path, "--out", out, "--resume",
                                    "--steps", steps)
    assert code == 0 and f"saved {out}" in stdout_text
    assert load_dir(out).metadata["steps"] == steps
