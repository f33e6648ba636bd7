"""Dynamic evaluation's cost: the bundled shakespeare model scoring its val split while it adapts,
on each Keras backend installed, against static evaluation (the NumPy forward pass) in the same run.

Dynamic evaluation runs a Keras forward pass and one SGD step per 128 characters, so it is
much slower than static scoring; the nats/char show what it buys, and that every backend
computes the same numbers.

    python bench/dynamic_eval.py            # the first 20,000 characters of the val split
    python bench/dynamic_eval.py --quick    # the first 1,000: checks that it works
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
from charzoo._keras import keras
from charzoo.data import read_corpus, split_text
from charzoo.evaluation import DYNAMIC_LR, evaluate
from charzoo.zoo import load

corpus, chars = sys.argv[2], int(sys.argv[3])
model, text = load("shakespeare"), split_text(read_corpus(corpus), 0.1)[1][:chars + 1]
evaluate(model, text[:257], dynamic_lr=DYNAMIC_LR)  # warm-up: traces the forward pass and the SGD step
start = time.perf_counter()
result = evaluate(model, text, dynamic_lr=DYNAMIC_LR)
print(json.dumps({"backend": keras.backend.backend(), "chars_per_s": result.chars / (time.perf_counter() - start),
                  "nats_per_char": result.nats_per_char}))
"""


def main() -> None:
    from backends import installed_backends, run_child
    from train_throughput import CORPUS

    from charzoo.data import read_corpus, split_text
    from charzoo.evaluation import DYNAMIC_LR, evaluate
    from charzoo.zoo import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="score 1,000 characters")
    args = parser.parse_args()
    chars = 1_000 if args.quick else args.chars
    text = split_text(read_corpus(args.corpus), 0.1)[1][: chars + 1]
    model = load("shakespeare")
    start = time.perf_counter()
    static = evaluate(model, text)
    static_speed = static.chars / (time.perf_counter() - start)
    print(f"shakespeare, first {static.chars:,} val characters; dynamic evaluation at lr {DYNAMIC_LR:g}")
    print(f"static (NumPy, baseline):  {static_speed:8,.0f} chars/s   {static.nats_per_char:.4f} nats/char")
    for backend in installed_backends():
        result = run_child(backend, CHILD, args.corpus, chars)
        print(f"dynamic on {backend + ':':12s}   {result['chars_per_s']:8,.0f} chars/s   "
              f"{result['nats_per_char']:.4f} nats/char   ratio to static speed: "
              f"{result['chars_per_s'] / static_speed:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
