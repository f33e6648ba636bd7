"""Publish a trained zoo model into the bundle: copy its model files to pretrained/<name>/,
record their sha256 in the zoo registry, and regenerate MODEL_CARDS.md.

    python recipes/publish.py runs/shakespeare            # the name comes from its metadata.json
    python recipes/publish.py runs/linux --data ../shared/corpora/linux/input.txt
                                                          # also measure dynamic evaluation of its val split
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from charzoo.recipes import model_cards, record_dynamic_eval
    from charzoo.registry import pretrained_dir, register_bundled
    from charzoo.zoo import load_dir, write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished training output directory")
    parser.add_argument("--data", type=Path, help="the model's corpus: also record its dynamic-evaluation val loss")
    args = parser.parse_args()
    if args.data:
        record_dynamic_eval(args.run_dir, args.data)
    name = load_dir(args.run_dir).metadata["name"]
    entry = register_bundled(name, args.run_dir)
    write_text(ROOT / "MODEL_CARDS.md", model_cards(pretrained_dir()))
    val = "no val loss" if entry.val_loss is None else f"val {entry.val_loss:.4f} nats/char"
    print(f"published pretrained/{name}: {val}", file=sys.stderr)


if __name__ == "__main__":
    from charzoo.errors import CharzooError

    try:
        main()
    except CharzooError as e:
        sys.exit(f"publish: error: {e}")
