"""Sampling speed: charzoo.sampling.sample_text vs a per-step tf.function in a Python loop, same run.

A 2 x 512 LSTM with random weights over a 65-character vocabulary (speed does not depend on what the
weights say). Each method generates for 1 stream and for 64 streams; chars/s counts every stream.
The issue's targets on a 2-core CPU: >= 4,000 chars/s for 1 stream and >= 20,000 for 64.

    python bench/sampling_speed.py           # 2,000 characters per stream (500 for the baseline)
    python bench/sampling_speed.py --quick   # 300 (100 for the baseline)
"""

from __future__ import annotations

import argparse
import string
import time

from charzoo._keras import keras
from charzoo.models import CharRNN
from charzoo.sampling import sample_text
from charzoo.vocab import Vocab
from charzoo.zoo import CharModel

LAYERS, HIDDEN, EMBEDDING = 2, 512, 64
TARGETS = {1: 4_000, 64: 20_000}


def random_model() -> CharModel:
    vocab = Vocab.from_text(string.ascii_letters + " \n!$&',-.3:;?")  # 65 characters, like tinyshakespeare
    keras.utils.set_random_seed(0)
    model = CharRNN(vocab_size=len(vocab), cell="lstm", layers=LAYERS, hidden=HIDDEN, embedding_dim=EMBEDDING)
    model.build_for_loading()
    return CharModel(model, vocab)


def charzoo_chars_per_second(charmodel: CharModel, num: int, length: int) -> float:
    sample_text(charmodel, length=5, num=num, seed=0)  # warm-up
    started = time.perf_counter()
    texts = sample_text(charmodel, prime="The ", length=length, temperature=1.0, num=num, seed=0)
    return sum(len(t) for t in texts) / (time.perf_counter() - started)


def baseline_chars_per_second(charmodel: CharModel, num: int, length: int) -> float:
    """One compiled model step per character, driven from Python: the approach sample_text avoids."""
    import tensorflow as tf

    model = charmodel.model

    @tf.function
    def step(ids, state):
        logits, state = model(ids, initial_state=state, return_state=True)  # (B, 1, V)
        next_ids = tf.random.categorical(logits[:, -1], 1, dtype=tf.int32)  # (B, 1)
        return next_ids, state

    def generate(steps: int) -> int:
        ids = tf.zeros((num, 1), tf.int32)
        state = [[tf.zeros((num, HIDDEN)) for _ in range(2)] for _ in range(LAYERS)]
        produced = 0
        for _ in range(steps):
            ids, state = step(ids, state)
            produced += num
        ids.numpy()  # wait for the last step
        return produced

    generate(3)  # trace
    started = time.perf_counter()
    produced = generate(length)
    return produced / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check the script works")
    args = parser.parse_args()
    length, baseline_length = (300, 100) if args.quick else (2_000, 500)

    charmodel = random_model()
    print(f"{LAYERS} x {HIDDEN} LSTM, vocabulary {len(charmodel.vocab)}, random weights, "
          f"{length} chars per stream (baseline {baseline_length}), backend {keras.backend.backend()}")
    # charzoo first: TensorFlow's worker threads spin on for a while after the baseline runs
    ours = {num: charzoo_chars_per_second(charmodel, num, length) for num in TARGETS}
    for num in TARGETS:
        baseline = baseline_chars_per_second(charmodel, num, baseline_length)
        print(f"{num:>2} stream{'s' if num > 1 else ' '}: charzoo {ours[num]:10,.0f} chars/s  "
              f"baseline per-step tf.function loop {baseline:10,.0f} chars/s  "
              f"ratio {ours[num] / baseline:5.1f}  (target {TARGETS[num]:,}: {'met' if ours[num] >= TARGETS[num] else 'MISSED'})")


if __name__ == "__main__":
    main()
