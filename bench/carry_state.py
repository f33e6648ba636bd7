"""Carrying the state across batches vs random windows from a zero state: same model, data, steps and seed.

Two runs of `charzoo.train` on the linux corpus, a 2 x 256 LSTM with batch 64 x 128
(`recipes/linux.toml`'s model), that differ only in `carry_state`:

    windows   each batch is random windows that start from a zero state (the default)
    carried   each row continues its stream from the state the last batch ended in (`--carry-state`)

Both are scored as `charzoo eval --split val` scores: the last 10% read as one stream.
The kernel's held-out files reuse identifiers they define, which only a model that has
learned to keep them in its state can predict, so this is where carrying matters most.

    KERAS_BACKEND=jax python bench/carry_state.py              # 1,500 steps each: ~30 min on 2 cores
    python bench/carry_state.py --quick                        # a few steps: checks that it works
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT.parent / "shared" / "corpora" / "linux" / "input.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=LINUX)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--quick", action="store_true", help="a few steps on a small model, to check it works")
    args = parser.parse_args()

    from charzoo._keras import keras
    from charzoo.recipes import load_recipe
    from charzoo.training import TrainConfig, train

    recipe_model = load_recipe(ROOT / "recipes" / "linux.toml").model
    model, steps = ({**recipe_model, "layers": 1, "hidden": 32}, 4) if args.quick else (recipe_model, args.steps)
    print(f"{args.corpus}: {model['layers']} x {model['hidden']} {model['cell'].upper()}, batch 64 x 128, "
          f"{steps} steps each, backend {keras.backend.backend()}", flush=True)
    losses = {}
    with tempfile.TemporaryDirectory(prefix="charzoo-bench-") as scratch:
        for name, carry in (("windows", False), ("carried", True)):
            started = time.perf_counter()
            config = TrainConfig(steps=steps, checkpoint_every=steps, sample_every=steps, carry_state=carry)
            result = train(args.corpus, Path(scratch) / name, model_config=model, train_config=config, verbose=0)
            losses[name] = result.metadata["val_loss"]
            print(f"{name:8} val {losses[name]:.4f} nats/char (train {result.metadata['train_loss']:.4f}), "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    print(f"carried - windows: {losses['carried'] - losses['windows']:+.4f} nats/char "
          f"(ratio {losses['carried'] / losses['windows']:.3f})")


if __name__ == "__main__":
    main()
