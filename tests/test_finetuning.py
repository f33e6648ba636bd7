"""Fine-tuning: vocabulary extension keeps every base weight, training continues from the base, bad input is refused."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest

from charzoo.cli import main
from charzoo.data import sha256_file
from charzoo.errors import CharzooError
from charzoo.finetuning import adapt_vocab, finetune, resize_vocab
from charzoo.vocab import UNKNOWN_CHAR, Vocab
from charzoo.zoo import CHECKPOINT_DIR, WEIGHTS_FILE, load_dir
from conftest import CORPORA, interrupt_after_first_checkpoint

SHAKESPEARE = CORPORA / "tinyshakespeare" / "input.txt"
TINY_RUN = {"seq_len": 32, "batch_size": 16, "steps": 40, "checkpoint_every": 20, "sample_every": 20, "verbose": 0}


def weights(model) -> dict[str, np.ndarray]:
    """Each weight by its path inside the model ("embedding/embeddings"), the same for every CharRNN."""
    return {w.path.split("/", 1)[1]: np.array(w) for w in model.weights}


def file_hashes(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def new_text(tmp_path_factory):
    """Shakespeare for a base trained on names: its punctuation is new to the base vocabulary."""
    path = tmp_path_factory.mktemp("corpus") / "play.txt"
    path.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:20000], encoding="utf-8")
    return path


# === Vocabulary ===


def test_extend_appends_the_new_characters_and_keeps_every_id(tiny_model):
    vocab = adapt_vocab(tiny_model.vocab, "Zed, 42!", "extend")
    assert vocab.chars[: len(tiny_model.vocab)] == tiny_model.vocab.chars
    assert vocab.chars[len(tiny_model.vocab) :] == ("!", ",", "2", "4")
    assert adapt_vocab(tiny_model.vocab, "Anna\n", "extend") == tiny_model.vocab


def test_strict_names_the_new_characters_and_unk_maps_them_to_one_new_row(tiny_model):
    with pytest.raises(CharzooError, match=r"2 characters outside .*'!', ','.*--vocab-policy extend") as info:
        adapt_vocab(tiny_model.vocab, "Anna, Bob!", "strict")
    assert info.value.exit_code == 2
    unk = adapt_vocab(tiny_model.vocab, "Anna, Bob!", "unk")
    assert unk.chars == tiny_model.vocab.chars + (UNKNOWN_CHAR,) and unk.unknown == UNKNOWN_CHAR
    assert adapt_vocab(unk, "Anna, Bob!", "unk") is unk  # a vocabulary that has an unknown keeps it
    a = tiny_model.vocab.encode("A")[0]
    assert list(unk.encode("A,!", map_unknown=True)) == [a, unk.unknown_id, unk.unknown_id]
    with pytest.raises(CharzooError, match="all of its characters"):
        adapt_vocab(tiny_model.vocab, "!?!?", "unk")
    with pytest.raises(CharzooError, match="vocab policy must be one of extend, strict, unk"):
        adapt_vocab(tiny_model.vocab, "Anna", "grow")


def test_resize_keeps_every_base_weight_bit_for_bit(tiny_model):
    old = weights(tiny_model.model)
    vocab = tiny_model.vocab.extend("0123!?")
    grown = resize_vocab(tiny_model, vocab)
    new = weights(grown.model)
    v = len(tiny_model.vocab)
    assert grown.config.vocab_size == v + 6 and grown.vocab is vocab
    for path, value in old.items():
        if path.endswith("embedding/embeddings"):
            np.testing.assert_array_equal(new[path][:v], value)
            np.testing.assert_array_equal(new[path][v:], np.repeat(value.mean(0, keepdims=True), 6, axis=0))
        elif path.endswith("logits/kernel"):
            np.testing.assert_array_equal(new[path][:, :v], value)
            np.testing.assert_array_equal(new[path][:, v:], np.repeat(value.mean(1, keepdims=True), 6, axis=1))
        elif path.endswith("logits/bias"):
            np.testing.assert_array_equal(new[path][:v], value)
            assert (new[path][v:] == value.min()).all()
        else:
            np.testing.assert_array_equal(new[path], value)
    assert weights(tiny_model.model).keys() == old.keys()  # the base model object is left alone
    for path, value in weights(tiny_model.model).items():
        np.testing.assert_array_equal(value, old[path])


def test_resize_may_change_the_dropout_rate_and_nothing_else(tiny_model):
    grown = resize_vocab(tiny_model, tiny_model.vocab, dropout=0.4)
    assert grown.config == tiny_model.config.__class__(**{**tiny_model.config.to_dict(), "dropout": 0.4})
    assert [layer.rate for layer in grown.model.dropouts] == [0.4] * tiny_model.config.layers
    for path, value in weights(tiny_model.model).items():
        np.testing.assert_array_equal(weights(grown.model)[path], value)


def test_new_characters_start_unlikely_but_possible(tiny_model):
    grown = resize_vocab(tiny_model, tiny_model.vocab.extend("0123!?"))
    logits = np.array(grown.model(tiny_model.vocab.encode("Anna\nBob\nCarl")[None, :]))[0]  # (T, V)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    v = len(tiny_model.vocab)
    assert (probs[:, v:] > 1e-6).all()
    assert (probs[:, v:].max(-1) < probs[:, :v].mean(-1)).all()  # no likelier than the average known character
    old_logits = np.array(tiny_model.model(tiny_model.vocab.encode("Anna\nBob\nCarl")[None, :]))[0]
    np.testing.assert_allclose(logits[:, :v], old_logits, rtol=1e-5, atol=1e-5)  # same scores for known chars


# === Fine-tuning ===


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_model_dir, new_text):
    """The tiny names model fine-tuned on Shakespeare, embedding and LSTM frozen: (out, model, base hashes)."""
    before = file_hashes(tiny_model_dir)
    out = tmp_path_factory.mktemp("finetuned") / "names-on-shakespeare"
    result = finetune(tiny_model_dir, new_text, out=out, freeze_embedding=True, freeze_layers=1, lr=1e-2, **TINY_RUN)
    return out, result, before


def test_finetune_trains_only_what_is_not_frozen_and_leaves_the_base_alone(finetuned, tiny_model, tiny_model_dir):
    out, result, before = finetuned
    assert file_hashes(tiny_model_dir) == before
    v = len(tiny_model.vocab)
    base, tuned = weights(tiny_model.model), weights(load_dir(out).model)
    for path, value in base.items():
        if path.endswith("embedding/embeddings"):
            np.testing.assert_array_equal(tuned[path][:v], value)
        elif path.endswith(("logits/kernel", "logits/bias")):
            assert not np.array_equal(tuned[path][..., :v], value)
        else:
            np.testing.assert_array_equal(tuned[path], value)


def test_finetune_records_its_base_and_corpus_in_metadata_and_card(finetuned, tiny_model_dir, new_text):
    out, result, _ = finetuned
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["base_model"] == str(tiny_model_dir.resolve())
    assert metadata["base_model_weights_sha256"] == sha256_file(tiny_model_dir / WEIGHTS_FILE)
    assert metadata["corpus"]["sha256"] == sha256_file(new_text)
    assert metadata["finetune"]["vocab_policy"] == "extend"
    assert set(metadata["finetune"]["added_chars"]) >= {",", ".", ":", "!", "?"}
    card = (out / "README.md").read_text()
    assert f'base_model: "{tiny_model_dir.resolve()}"' in card.split("---")[1]
    assert f"| fine-tuned from | {tiny_model_dir.resolve()} |" in card


def test_finetune_beats_the_base_on_the_new_text(finetuned, tiny_model, new_text):
    out, result, _ = finetuned
    val_text = new_text.read_text()[-2000:]
    start = resize_vocab(tiny_model, result.vocab)
    assert result.evaluate(val_text).nats_per_char < start.evaluate(val_text).nats_per_char - 0.3


def test_an_interrupted_finetune_resumes_to_the_same_weights(tmp_path, tiny_model_dir, new_text):
    options = {**TINY_RUN, "freeze_layers": 1}
    whole = finetune(tiny_model_dir, new_text, out=tmp_path / "whole", **options)
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError, match="--resume"):
            finetune(tiny_model_dir, new_text, out=tmp_path / "split", **options)
    assert json.loads((tmp_path / "split" / CHECKPOINT_DIR / "state.json").read_text())["step"] == 20
    resumed = finetune(tiny_model_dir, new_text, out=tmp_path / "split", resume=True, **options)
    assert resumed.metadata["steps"] == 40
    for path, value in weights(whole.model).items():
        np.testing.assert_allclose(weights(resumed.model)[path], value, rtol=1e-5, atol=1e-6)


def test_finetune_dropout_is_the_models_and_a_resume_must_keep_it(tmp_path, tiny_model_dir, tiny_model, new_text,
                                                                   monkeypatch, capsys):
    out = tmp_path / "dropout"
    with interrupt_after_first_checkpoint():
        with pytest.raises(CharzooError, match="--resume"):
            finetune(tiny_model_dir, new_text, out=out, dropout=0.4, **TINY_RUN)
    assert json.loads((out / CHECKPOINT_DIR / "state.json").read_text())["model_config"]["dropout"] == 0.4
    before = file_hashes(out / CHECKPOINT_DIR)
    code, err = run_main(monkeypatch, capsys, "finetune", tiny_model_dir, new_text, "--out", out, "--resume",
                         "--dropout", "0.3")
    assert code == 2 and "the checkpoint was trained with dropout=0.4, not 0.3" in err, err
    assert file_hashes(out / CHECKPOINT_DIR) == before
    code, err = run_main(monkeypatch, capsys, "finetune", tiny_model_dir, new_text, "--out", out, "--resume")
    assert code == 0, err
    assert load_dir(out).config.dropout == 0.4 and tiny_model.config.dropout != 0.4


def test_unk_policy_grows_the_vocabulary_by_one_row_from_a_loaded_base(tmp_path, tiny_model_dir, tiny_model, new_text):
    before = weights(tiny_model.model)
    result = finetune(tiny_model, new_text, out=tmp_path / "unk", vocab_policy="unk", **{**TINY_RUN, "steps": 20})
    assert result.vocab.chars == tiny_model.vocab.chars + (UNKNOWN_CHAR,)
    assert result.metadata["training"]["lr"] == 5e-4  # fine-tuning's default, a quarter of training's
    assert result.metadata["base_model"] == str(tiny_model_dir.resolve())
    assert load_dir(tmp_path / "unk").vocab == Vocab(tiny_model.vocab.chars + (UNKNOWN_CHAR,), UNKNOWN_CHAR)
    for path, value in weights(tiny_model.model).items():  # the loaded base object is not trained in place
        np.testing.assert_array_equal(value, before[path])


def test_finetune_from_a_hub_repo_records_repo_and_commit_and_the_push_shows_it(hub, tiny_model_dir, new_text,
                                                                                 tmp_path):
    from charzoo.hub import pull, push

    token = "hf_test_token"  # one the loopback Hub accepts
    commit = push(tiny_model_dir, "alice/names-base", token=token).commit
    result = finetune("alice/names-base", new_text, out=tmp_path / "tuned", **{**TINY_RUN, "steps": 20})
    assert (result.metadata["base_model"], result.metadata["base_model_revision"]) == ("alice/names-base", commit)
    push(tmp_path / "tuned", "alice/names-tuned", token=token)
    card = (pull("alice/names-tuned").path / "README.md").read_text()
    assert 'base_model: "alice/names-base"' in card.split("---")[1]


# === Bad input: one line, exit 2, base untouched ===


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["charzoo", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("strict-unknown-only", "all of its characters outside the base model's vocabulary: '!', '0', '1'"),
        ("not-a-model", "is not a model directory"),
        ("freeze-too-many", "--freeze-layers 3 is more than the model's 1 recurrent layers"),
        ("out-is-base", "is the base model"),
        ("out-contains-base", "contains the base model"),
        ("architecture-flag", "--hidden: finetune keeps the base model's architecture (only --dropout may change)"),
        ("dropout-out-of-range", "dropout must be in [0, 1), got 1.5"),
    ],
)
def test_bad_input_is_one_line_and_never_touches_the_base(case, message, tiny_model_dir, new_text, tmp_path,
                                                          monkeypatch, capsys):
    unknown_only = tmp_path / "digits.txt"
    unknown_only.write_text("0123456789!" * 50)
    out = tmp_path / "out"
    args = {
        "strict-unknown-only": [tiny_model_dir, unknown_only, "--out", out, "--vocab-policy", "strict"],
        "not-a-model": [new_text.parent, new_text, "--out", out],
        "freeze-too-many": [tiny_model_dir, new_text, "--out", out, "--freeze-layers", "3"],
        "out-is-base": [tiny_model_dir, new_text, "--out", tiny_model_dir, "--force"],
        "out-contains-base": [tiny_model_dir, new_text, "--out", tiny_model_dir.parent, "--force"],
        "architecture-flag": [tiny_model_dir, new_text, "--out", out, "--hidden", "64"],
        "dropout-out-of-range": [tiny_model_dir, new_text, "--out", out, "--dropout", "1.5"],
    }[case]
    before = file_hashes(tiny_model_dir)
    code, err = run_main(monkeypatch, capsys, "finetune", *args, "--steps", "5")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("charzoo: error: ") and message in err, err
    assert file_hashes(tiny_model_dir) == before
    assert not out.exists()


def test_charzoo_finetune_is_the_function_even_after_its_module_is_imported():
    import charzoo
    import charzoo.finetuning

    assert charzoo.finetune is charzoo.finetuning.finetune
