"""Training throughput of charzoo's 2 x 512 LSTM on each Keras backend installed, same data, same run.

Each backend trains in its own process (Keras picks its backend once, at import) through
charzoo's own path: `compile_model` and the backend's input pipeline (tf.data on TensorFlow,
the equivalent `PyDataset` elsewhere), batch 64 x seq 128 on tinyshakespeare. TensorFlow is the
baseline; the ratio says how much faster a recipe trains with `KERAS_BACKEND=<backend>`.

    python bench/backends.py           # 5 warm-up + 40 timed steps per backend
    python bench/backends.py --quick   # 2 + 6 steps: checks that it works
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from train_throughput import BATCH, SEQ_LEN, chars_per_second, charzoo_model, corpus_ids
from charzoo._keras import keras
from charzoo.distribute import windows_dataset

corpus, warmup, steps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
_, vocab, ids = corpus_ids(corpus)
keras.utils.set_random_seed(0)
data = windows_dataset(ids, seq_len=SEQ_LEN, batch_size=BATCH, seed=0, steps=warmup + steps)
print(json.dumps({"backend": keras.backend.backend(),
                  "chars_per_s": chars_per_second(charzoo_model(len(vocab), warmup + steps), data, warmup, steps)}))
"""


def installed_backends() -> list[str]:
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def run_child(backend: str, code: str, *args: object) -> dict:
    """Run `code` with `KERAS_BACKEND=backend` in a fresh process; its last stdout line is a JSON result."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", code, str(HERE), *map(str, args)], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        last_line = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise SystemExit(f"{backend} failed: {last_line}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    return result


def run(backend: str, corpus: Path, warmup: int, steps: int) -> float:
    return run_child(backend, CHILD, corpus, warmup, steps)["chars_per_s"]


def main() -> None:
    from train_throughput import BATCH, HIDDEN, LAYERS, SEQ_LEN, parse_args

    corpus, warmup, steps = parse_args(__doc__.splitlines()[0])
    installed = installed_backends()
    print(f"{corpus.name}: {LAYERS} x {HIDDEN} LSTM, batch {BATCH} x seq {SEQ_LEN}, "
          f"{warmup} warm-up + {steps} timed steps; backends installed: {', '.join(installed)}")
    baseline = run("tensorflow", corpus, warmup, steps)
    print(f"tensorflow (baseline): {baseline:10,.0f} chars/s")
    for backend in (b for b in installed if b != "tensorflow"):
        speed = run(backend, corpus, warmup, steps)
        print(f"{backend + ':':22s} {speed:10,.0f} chars/s   ratio {backend} / tensorflow: {speed / baseline:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
