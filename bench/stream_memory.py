"""Peak memory of training on a 100 MB corpus: charzoo's memory-mapped pipeline vs naive NumPy windows.

Generates a 100 MB text (words drawn from the names corpus, so it is ASCII with
a realistic vocabulary), then, each in a fresh process, builds the dataset and
runs a few training steps of a tiny model:

    charzoo   `charzoo.training.train` (ids written once to a cache file, then memory-mapped)
    naive     the whole text encoded to int32, every window cut into one NumPy array,
              `tf.data.Dataset.from_tensor_slices`, Keras `fit`

and prints each process's peak RSS and their ratio. Target: charzoo <= 2 GB.

    .venv/bin/python bench/stream_memory.py [--mb 100]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ROOT.parent / "shared" / "corpora" / "names" / "input.txt"
SEQ_LEN, BATCH, STEPS = 128, 64, 5
TINY = {"layers": 1, "hidden": 32, "embedding_dim": 8}


def generate_corpus(path: Path, megabytes: int) -> None:
    """A text of `megabytes` MB: random names separated by spaces and line breaks."""
    import numpy as np

    words = np.array(NAMES.read_text(encoding="utf-8").split())
    rng = np.random.default_rng(0)
    target = megabytes * 1_000_000
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            chunk = rng.choice(words, 100_000)
            line = " ".join(chunk) + "\n"
            f.write(line)
            written += len(line)


def run_charzoo(corpus: Path) -> None:
    from charzoo.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        # val_fraction is tiny because the final NumPy evaluation of the held-out text is not what is measured
        train(corpus, Path(out) / "run", model_config=TINY, verbose=0, train_config=TrainConfig(
            seq_len=SEQ_LEN, batch_size=BATCH, steps=STEPS, val_fraction=0.0002,
            checkpoint_every=STEPS, sample_every=10 * STEPS,
        ))


def run_naive(corpus: Path) -> None:
    import tensorflow as tf

    from charzoo.models import CharRNN
    from charzoo.training import TrainConfig, compile_model
    from charzoo.vocab import Vocab

    text = corpus.read_text(encoding="utf-8")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)  # int32, 4 bytes per character
    windows = ids[: len(ids) // (SEQ_LEN + 1) * (SEQ_LEN + 1)].reshape(-1, SEQ_LEN + 1)
    dataset = tf.data.Dataset.from_tensor_slices((windows[:, :-1], windows[:, 1:])).shuffle(10_000).batch(BATCH)
    model = CharRNN(vocab_size=len(vocab), **TINY)
    compile_model(model, TrainConfig(), STEPS)
    model.fit(dataset, steps_per_epoch=STEPS, epochs=1, verbose=0)


def measure(mode: str, corpus: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `mode` run in a fresh interpreter."""
    started = time.time()
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--corpus", str(corpus)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode:
        sys.exit(f"{mode} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1]), time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="corpus size in MB")
    parser.add_argument("--child", choices=("charzoo", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (run_charzoo if args.child == "charzoo" else run_naive)(args.corpus)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KB on Linux -> MB
        return
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "input.txt"
        generate_corpus(corpus, args.mb)
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB; {STEPS} steps of a 1 x 32 LSTM, batch {BATCH} x {SEQ_LEN}")
        charzoo_mb, charzoo_s = measure("charzoo", corpus)
        naive_mb, naive_s = measure("naive", corpus)
    print(f"charzoo (memory-mapped ids): peak RSS {charzoo_mb:7.0f} MB  ({charzoo_s:.0f} s)  "
          f"{'within' if charzoo_mb <= 2048 else 'OVER'} the 2 GB target")
    print(f"naive (NumPy windows):       peak RSS {naive_mb:7.0f} MB  ({naive_s:.0f} s)")
    print(f"ratio naive / charzoo: {naive_mb / charzoo_mb:.2f}x")


if __name__ == "__main__":
    main()
