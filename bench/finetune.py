"""Fine-tuning vs training from scratch: the shakespeare model on a new text in a related style, same run.

The new text is War and Peace's dialogue written out as a play: each line of
direct speech with a named speaker ("...," said Pierre) becomes

    PIERRE:
    <what he said>

which is the form of tinyshakespeare (speaker line, speech, blank line) but a
different author, century, translator and vocabulary, so it is related without
being the base model's own data. It also holds characters tinyshakespeare never
has (the double quote, parentheses, digits, é...), so vocabulary extension is
exercised on real text. It is built from ../shared/corpora/warpeace each run,
never stored in the repository.

Three numbers on the last 10% of that text (nats/char), after the same steps:

    base        the base model itself (grown by the new characters, not trained)
    finetuned   `charzoo.finetune` from the base (lr 5e-4)
    scratch     `charzoo.train`, the base's architecture, fresh weights (lr 2e-3, training's default)

    .venv/bin/python bench/finetune.py [--base pretrained/shakespeare] [--steps 300]
    .venv/bin/python bench/finetune.py --base runs/shakespeare --steps 50   # a run's latest checkpoint
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARPEACE = ROOT.parent / "shared" / "corpora" / "warpeace" / "input.txt"
SPEECH = re.compile(r'"([^"]+)"')
SPEAKER = re.compile(
    r'"[,!?]? (?:said|cried|asked|replied|exclaimed|answered|continued|added|whispered|shouted|began) '
    r"((?:Prince |Princess |Count |Countess |Old |Little )?[A-Z][a-z]+)"
)


def build_play(novel: str, max_chars: int) -> str:
    """The novel's attributed speeches as a play script: 'SPEAKER:\\nspeech\\n\\n', in the novel's order."""
    scenes, size = [], 0
    for paragraph in re.split(r"\n\s*\n", novel):
        paragraph = " ".join(paragraph.split())
        speaker = SPEAKER.search(paragraph)
        if not paragraph.startswith('"') or speaker is None:
            continue
        speech = " ".join(s.strip(" ,") for s in SPEECH.findall(paragraph))
        scene = f"{speaker.group(1).upper()}:\n{speech}\n\n"
        scenes.append(scene)
        size += len(scene)
        if size >= max_chars:
            break
    return "".join(scenes)


def load_base(path: Path):
    """A model directory, or the latest checkpoint of a run that has not written one yet."""
    from charzoo.models import CharRNN, ModelConfig
    from charzoo.training import STATE_FILE, TrainConfig, compile_model
    from charzoo.vocab import Vocab
    from charzoo.zoo import CHECKPOINT_DIR, WEIGHTS_FILE, CharModel, is_model_dir, load, load_weights

    if is_model_dir(path) or not (path / CHECKPOINT_DIR / STATE_FILE).is_file():
        return load(str(path)), str(path)
    state = json.loads((path / CHECKPOINT_DIR / STATE_FILE).read_text())
    model = CharRNN.from_model_config(ModelConfig(**state["model_config"]))
    model.build_for_loading()
    compile_model(model, TrainConfig(**state["train_config"]), 1)
    model.optimizer.build(model.trainable_variables)  # the checkpoint's .h5 holds the optimizer's variables too
    load_weights(model, path / CHECKPOINT_DIR / WEIGHTS_FILE)
    return CharModel(model, Vocab.from_json(state["vocab"])), f"{path} (checkpoint at step {state['step']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT / "pretrained" / "shakespeare")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5, help="validations (checkpoints) per run")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chars", type=int, default=400_000, help="size of the play built from War and Peace")
    args = parser.parse_args()

    from charzoo.data import split_text
    from charzoo.finetuning import adapt_vocab, finetune, resize_vocab
    from charzoo.training import TrainConfig, train

    base, base_name = load_base(args.base)
    text = build_play(WARPEACE.read_text(encoding="utf-8"), args.chars)
    val_text = split_text(text, 0.1)[1]
    every = max(1, args.steps // args.rounds)
    options = {"steps": args.steps, "seq_len": args.seq_len, "batch_size": args.batch_size,
               "checkpoint_every": every, "sample_every": args.steps}
    config = base.config
    print(f"base: {base_name}: {config.layers} x {config.hidden} {config.cell}, vocabulary {len(base.vocab)}")
    vocab = adapt_vocab(base.vocab, text, "extend")
    print(f"new text: War and Peace dialogue as a play, {len(text):,} chars, {len(vocab) - len(base.vocab)} characters "
          f"new to the base: {''.join(vocab.chars[len(base.vocab):])!r}")
    print(f"first lines:\n{text[:300]}")

    with tempfile.TemporaryDirectory(prefix="charzoo-bench-finetune-") as tmp:
        corpus = Path(tmp) / "warpeace_play.txt"
        corpus.write_text(text, encoding="utf-8")
        base_loss = resize_vocab(base, vocab).evaluate(val_text).nats_per_char
        started = time.perf_counter()
        tuned = finetune(base, corpus, out=Path(tmp) / "finetuned", verbose=2, metadata={"base_model": base_name},
                         **options)
        tuned_seconds = time.perf_counter() - started
        started = time.perf_counter()
        architecture = {k: v for k, v in config.to_dict().items() if k != "vocab_size"}
        scratch = train(corpus, Path(tmp) / "scratch", model_config=architecture, verbose=2,
                        train_config=TrainConfig(**options))
        scratch_seconds = time.perf_counter() - started

    print(f"\nval loss (nats/char) on the last 10% ({len(val_text):,} chars) after {args.steps} steps of "
          f"{args.batch_size} x {args.seq_len}:")
    print(f"  base, untrained on it   {base_loss:.4f}")
    print(f"  fine-tuned              {tuned.metadata['val_loss']:.4f}   ({tuned_seconds:.0f} s)")
    print(f"  from scratch            {scratch.metadata['val_loss']:.4f}   ({scratch_seconds:.0f} s)")
    print(f"  fine-tuned - scratch    {tuned.metadata['val_loss'] - scratch.metadata['val_loss']:+.4f}")
    print("\nval loss at each checkpoint (validation batches):\n   step  fine-tuned  scratch")
    for tuned_round, scratch_round in zip(tuned.metadata["history"], scratch.metadata["history"]):
        print(f"  {tuned_round['step']:5d}  {tuned_round.get('val_loss', float('nan')):10.4f}"
              f"  {scratch_round.get('val_loss', float('nan')):7.4f}")
    reached = next((h["step"] for h in scratch.metadata["history"] if h.get("val_loss", 99) <= base_loss), None)
    print(f"\nscratch reaches the untrained base's loss {base_loss:.4f}: "
          + (f"at step {reached}" if reached else f"not within {args.steps} steps"))


if __name__ == "__main__":
    main()
