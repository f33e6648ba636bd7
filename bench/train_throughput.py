"""Training throughput: charzoo's 2 x 512 LSTM vs a plain Keras Sequential LSTM, same data, same run.

Both models train on tinyshakespeare with batch 64 x seq 128 through Keras `fit`; charzoo through its own
`compile_model` + `make_dataset`, the baseline through the textbook `tf.data` recipe. charzoo is timed
twice: on random windows, and with `--carry-state` (contiguous streams, the `CarriedState` trainer).
Throughput is measured between batch ends after a warm-up, so tracing and pipeline start-up are not counted.

    python bench/train_throughput.py           # 5 warm-up + 40 timed steps per model
    python bench/train_throughput.py --quick   # 2 + 6 steps: checks that it works
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from charzoo._keras import keras
from charzoo.data import compact_ids, make_dataset, read_corpus, stream_layout
from charzoo.models import CharRNN
from charzoo.training import CarriedState, TrainConfig, compile_model
from charzoo.vocab import Vocab

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare" / "input.txt"
BATCH, SEQ_LEN, LAYERS, HIDDEN, EMBEDDING = 64, 128, 2, 512, 64


class BatchClock(keras.callbacks.Callback):
    """Records the wall time at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def chars_per_second(model, dataset, warmup: int, steps: int) -> float:
    clock = BatchClock()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[clock], verbose=0, shuffle=False)
    return steps * BATCH * SEQ_LEN / (clock.times[-1] - clock.times[warmup - 1])


def charzoo_model(vocab_size: int, total_steps: int, batches_per_pass: int | None = None) -> CharRNN | CarriedState:
    """The model `charzoo train` fits; wrapped in `CarriedState` when `batches_per_pass` is given."""
    model = CharRNN(vocab_size=vocab_size, cell="lstm", layers=LAYERS, hidden=HIDDEN, embedding_dim=EMBEDDING)
    model.build_for_loading()
    if batches_per_pass is not None:
        model = CarriedState(model, BATCH, batches_per_pass)
    compile_model(model, TrainConfig(seq_len=SEQ_LEN, batch_size=BATCH), total_steps)
    return model


def baseline_model(vocab_size: int):
    model = keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),
        keras.layers.Embedding(vocab_size, EMBEDDING),
        keras.layers.LSTM(HIDDEN, return_sequences=True),
        keras.layers.LSTM(HIDDEN, return_sequences=True),
        keras.layers.Dense(vocab_size),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=5.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def baseline_dataset(ids):
    """The textbook pipeline: consecutive chunks of seq_len + 1, shuffled, batched."""
    import tensorflow as tf

    chunks = tf.data.Dataset.from_tensor_slices(ids.astype("int32")).batch(SEQ_LEN + 1, drop_remainder=True)
    pairs = chunks.map(lambda chunk: (chunk[:-1], chunk[1:]))
    return pairs.shuffle(10_000, seed=0).batch(BATCH, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)


def parse_args(description: str) -> tuple[Path, int, int]:
    """The training benchmarks' command line: the corpus, and warm-up and timed steps (few with --quick)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a few steps only, to check the script works")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    return (args.corpus, *((2, 6) if args.quick else (5, 40)))


def corpus_ids(corpus: Path) -> tuple[str, Vocab, np.ndarray]:
    """The corpus text, its vocabulary and its compact ids."""
    text = read_corpus(corpus)
    vocab = Vocab.from_text(text)
    return text, vocab, compact_ids(vocab.encode(text), len(vocab))


def main() -> None:
    corpus, warmup, steps = parse_args(__doc__.splitlines()[0])
    text, vocab, ids = corpus_ids(corpus)
    print(f"{corpus.name}: {len(text):,} chars, vocabulary {len(vocab)}; "
          f"{LAYERS} x {HIDDEN} LSTM, batch {BATCH} x seq {SEQ_LEN}, {warmup} warm-up + {steps} timed steps, "
          f"backend {keras.backend.backend()}")

    keras.utils.set_random_seed(0)
    baseline = chars_per_second(baseline_model(len(vocab)), baseline_dataset(ids), warmup, steps)
    print(f"baseline keras.Sequential + textbook tf.data: {baseline:10,.0f} chars/s")
    keras.utils.set_random_seed(0)
    dataset = make_dataset(ids, seq_len=SEQ_LEN, batch_size=BATCH, seed=0)
    ours = chars_per_second(charzoo_model(len(vocab), warmup + steps), dataset, warmup, steps)
    print(f"charzoo CharRNN + make_dataset:              {ours:10,.0f} chars/s")
    print(f"ratio charzoo / baseline: {ours / baseline:.2f}")
    keras.utils.set_random_seed(0)
    streams = make_dataset(ids, seq_len=SEQ_LEN, batch_size=BATCH, seed=0, contiguous=True)
    per_pass = stream_layout(len(ids), SEQ_LEN, BATCH)[1]
    carried = chars_per_second(charzoo_model(len(vocab), warmup + steps, per_pass), streams, warmup, steps)
    print(f"charzoo with --carry-state:                  {carried:10,.0f} chars/s")
    print(f"ratio carry-state / random windows: {carried / ours:.2f}")


if __name__ == "__main__":
    main()
