"""Publish a trained zoo model into the bundle: copy its model files to pretrained/<name>/,
record their sha256 in the zoo registry, and regenerate MODEL_CARDS.md.

    python recipes/publish.py runs/shakespeare            # name taken from metadata.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def publish(run_dir: Path) -> Path:
    from charzoo.hub import register_bundled
    from charzoo.recipes import model_cards
    from charzoo.zoo import MODEL_FILES, load_dir, write_text

    charmodel = load_dir(run_dir)  # refuse anything that does not load
    name = charmodel.metadata["name"]
    target = ROOT / "pretrained" / name
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.tmp-"))
    for filename in MODEL_FILES:
        shutil.copy2(run_dir / filename, tmp / filename)
    os.chmod(tmp, 0o755)
    if target.exists():
        shutil.rmtree(target)
    os.rename(tmp, target)
    register_bundled(name, target)
    write_text(ROOT / "MODEL_CARDS.md", model_cards(ROOT / "pretrained"))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished training output directory")
    args = parser.parse_args()
    target = publish(args.run_dir)
    meta = json.loads((target / "metadata.json").read_text())
    print(f"published {target}: val {meta['val_loss']:.4f} nats/char", file=sys.stderr)


if __name__ == "__main__":
    main()
