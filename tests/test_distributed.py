"""Training under tf.distribute: two workers on loopback, two logical CPUs, TF_CONFIG errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, TINY

TRAIN_FLAGS = ["--seq-len", "32", "--batch-size", "16", "--checkpoint-every", "2", "--sample-every", "100",
               "--val-fraction", "0.02", "--layers", "1", "--hidden", "32", "--embedding-dim", "8"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def charzoo_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "charzoo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def train_single(out: Path, corpus: Path, steps: int, resume: bool = False) -> list[np.ndarray]:
    from charzoo.training import TrainConfig, train

    config = TrainConfig(seq_len=32, batch_size=16, steps=steps, checkpoint_every=2, sample_every=100,
                         val_fraction=0.02)
    return train(corpus, out, model_config=TINY, train_config=config, resume=resume, verbose=0).model.get_weights()


@pytest.fixture(scope="module")
def single_process_weights(tmp_path_factory, names_path) -> list[np.ndarray]:
    """One process, same global batch and seed: 4 steps."""
    return train_single(tmp_path_factory.mktemp("single") / "run", names_path, 4)


@pytest.fixture(scope="module")
def resumed_single_process_weights(tmp_path_factory, names_path) -> list[np.ndarray]:
    """One process: 2 steps, then resumed to 4 (a longer run has its own learning-rate schedule)."""
    out = tmp_path_factory.mktemp("single-resumed") / "run"
    train_single(out, names_path, 2)
    return train_single(out, names_path, 4, resume=True)


def assert_same_weights(directory: Path, expected: list[np.ndarray]) -> None:
    from charzoo.zoo import load_dir

    for got, want in zip(load_dir(directory).model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_two_workers_train_resume_and_match_one_process(tmp_path, names_path, resumed_single_process_weights):
    """Two workers on loopback: 2 steps, then --resume to 4 from the chief's checkpoint."""
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    scratch = tmp_path / "tmp"  # each worker's TMPDIR: where a non-chief keeps its throwaway output
    out = tmp_path / "run"
    for steps, resume in (("2", []), ("4", ["--resume"])):
        processes = []
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            (scratch / str(index)).mkdir(parents=True, exist_ok=True)
            processes.append(charzoo_cli(
                "train", str(names_path), "--out", str(out), "--strategy", "multiworker", "--steps", steps,
                *resume, *TRAIN_FLAGS, env={"TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch / str(index))},
            ))
        for process in processes:
            code, stdout, stderr = finish(process)
            assert code == 0, stderr[-3000:]
        state = json.loads((out / "checkpoint" / "state.json").read_text())
        assert state["step"] == int(steps)
        assert [list((scratch / str(i)).iterdir()) for i in range(2)] == [[], []]  # the worker cleaned up
    assert_same_weights(out, resumed_single_process_weights)


def test_mirrored_over_two_logical_cpus_matches_one_process(tmp_path, names_path, single_process_weights):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from pathlib import Path
        from charzoo.training import TrainConfig, train
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            train(Path({str(names_path)!r}), {str(out)!r}, model_config={TINY!r}, verbose=0,
                  train_config=TrainConfig(seq_len=32, batch_size=16, steps=4, checkpoint_every=2,
                                           sample_every=100, val_fraction=0.02))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(out, single_process_weights)


@pytest.mark.parametrize(("tf_config", "message"), [
    (None, "TF_CONFIG is not set"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]', "TF_CONFIG is not valid JSON"),
    ('["worker"]', "needs a 'cluster' object and a 'task' object"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'cluster' object and a 'task' object"),
    ('{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}', "list of 'host:port'"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}', "not a job of the cluster"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "out of range"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}', "out of range"),
])
def test_malformed_tf_config_is_a_one_line_error(monkeypatch, tf_config, message):
    from charzoo.distribute import read_tf_config
    from charzoo.errors import CharzooError

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(CharzooError, match=message) as error:
        read_tf_config()
    assert error.value.exit_code == 2 and "\n" not in str(error.value)


def test_cli_reports_a_malformed_tf_config_in_one_line(tmp_path, names_path):
    code, stdout, stderr = finish(charzoo_cli("train", str(names_path), "--out", str(tmp_path / "run"),
                                              "--strategy", "multiworker", env={"TF_CONFIG": "{not json"}))
    assert code == 2
    assert stderr.startswith("charzoo: error: TF_CONFIG is not valid JSON") and len(stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_chief_is_the_chief_task_or_worker_zero():
    import tensorflow as tf

    from charzoo.distribute import is_chief

    def strategy(cluster: dict, task_type: str | None, task_id: int | None):
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
        return types.SimpleNamespace(cluster_resolver=resolver)

    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(strategy(workers, "worker", 0)) and not is_chief(strategy(workers, "worker", 1))
    with_chief = {"chief": ["c:1"], **workers}
    assert is_chief(strategy(with_chief, "chief", 0)) and not is_chief(strategy(with_chief, "worker", 0))
    assert is_chief(types.SimpleNamespace(cluster_resolver=None))  # MirroredStrategy: one process
