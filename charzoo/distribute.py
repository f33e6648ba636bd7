"""Training on several devices or machines with `tf.distribute` (TensorFlow backend).

`charzoo.training.train` works inside any active strategy scope: each global
batch is split over the replicas (`windows_dataset`), so N replicas take the
same steps as one process with the same global batch. Only the chief writes
checkpoints and the model directory; other workers write into a scratch
directory they delete, and resume from the chief's checkpoint.

Multi-worker runs are configured by the standard `TF_CONFIG` environment
variable, one per machine:

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from charzoo.data import make_dataset, window_batches
from charzoo.errors import CharzooError

STRATEGIES = ("mirrored", "multiworker")


def read_tf_config() -> dict[str, Any]:
    """`TF_CONFIG` parsed and checked; a one-line `CharzooError` says what is wrong with it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise CharzooError(
            "TF_CONFIG is not set; --strategy multiworker needs one per machine, e.g. "
            '{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}',
            exit_code=2,
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CharzooError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}): {raw[:80]!r}", exit_code=2) from e
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise CharzooError(f"TF_CONFIG needs a 'cluster' object and a 'task' object, got {raw[:80]!r}", exit_code=2)
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise CharzooError(f"TF_CONFIG cluster {job!r} must be a list of 'host:port' strings, got {addresses!r}",
                               exit_code=2)
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise CharzooError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster ({', '.join(cluster)})",
                           exit_code=2)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise CharzooError(
            f"TF_CONFIG task index {index!r} is out of range for {len(cluster[task_type])} {task_type!r} tasks",
            exit_code=2,
        )
    return config


def make_strategy(name: str):
    """A `MirroredStrategy` over the local devices, or a `MultiWorkerMirroredStrategy` from `TF_CONFIG`.

    Call it before anything else starts TensorFlow (`charzoo._keras` does, on import): collective
    ops can only be configured at program start-up.
    """
    if name not in STRATEGIES:
        raise CharzooError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}", exit_code=2)
    if name == "multiworker":
        read_tf_config()
        # Not through charzoo._keras, which starts TensorFlow (and silences its start-up lines).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
    else:
        from charzoo._keras import keras
    if keras.backend.backend() != "tensorflow":
        raise CharzooError(
            f"--strategy needs the TensorFlow backend, not {keras.backend.backend()!r}; "
            "unset KERAS_BACKEND (with JAX, use keras.distribution instead)",
            exit_code=2,
        )
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()


def active_strategy():
    """The `tf.distribute` strategy whose scope is active, or None (also under other backends)."""
    from charzoo._keras import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.distribute.get_strategy() if tf.distribute.has_strategy() else None


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints and the model: the chief, or worker 0 when there is none."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def windows_dataset(ids: np.ndarray, **options: Any):
    """The training windows for the backend: tf.data (split over the replicas of an active
    strategy) on TensorFlow, a `PyDataset` of the same batches on JAX and PyTorch."""
    from charzoo._keras import keras

    if keras.backend.backend() != "tensorflow":
        return window_batches(ids, **options)
    strategy = active_strategy()
    if strategy is None:
        return make_dataset(ids, **options)
    return strategy.distribute_datasets_from_function(
        lambda input_context: make_dataset(ids, input_context=input_context, **options)
    )



def prepare_for_fit(model) -> None:
    """Work around two bugs of Keras 3's TensorFlow trainer under `MultiWorkerMirroredStrategy`.

    1. For a model created under a strategy scope, every `fit` first rebuilds it from
       a batch averaged over the replicas (`strategy.reduce("MEAN", batch)` in
       `_maybe_symbolic_build`), which raises "Attempt to convert a value
       (PerReplica...) to a Tensor". A charzoo model is built before training, so the
       optimizer is built here, under the scope, and the trainer's own reference to
       the strategy is dropped: `fit` still runs under it, through the active scope.
    2. Each step's logs go through `strategy.reduce("MEAN", value, axis=0)`
       (`reduce_per_replica`, reduction "auto" hard-coded), which fails on the scalar
       loss and metrics ("Invalid reduction dimension 0 for input with 0 dimensions").
       The steps return them as vectors of one value, so the reduce averages the
       replicas' values back into a scalar.
    """
    strategy = active_strategy()
    if strategy is None:
        return
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    model.optimizer.build(model.trainable_variables)
    model._distribute_strategy = None
    for name in ("train_step", "test_step"):
        setattr(model, name, _vector_logs(getattr(model, name)))


def _vector_logs(step):
    import tensorflow as tf

    def run(data):
        return {key: tf.reshape(value, [1]) if value.shape.rank == 0 else value for key, value in step(data).items()}

    return run
