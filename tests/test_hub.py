"""The Hub client against a real Hub-compatible HTTP server on loopback (tests/hub_server.py).

In-process tests share the session's HF_HOME and keep apart by repo name; tests that
need their own HF_HOME, HF_HUB_OFFLINE or HF_ENDPOINT run the CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charzoo.errors import CharzooError

TOKEN = "hf_test_token"
PROBE = "Anna\nBob\n"  # every character is in the names vocabulary


def logits(charmodel) -> np.ndarray:
    ids = np.asarray([charmodel.vocab.encode(PROBE)])
    return np.asarray(charmodel.model(ids))


def retrained_copy(model_dir: Path, out: Path) -> Path:
    """The same model with different weights, saved as a new directory."""
    from charzoo.zoo import load_dir

    charmodel = load_dir(model_dir)
    for weight in charmodel.model.weights:
        weight.assign(weight.numpy() + 0.05)
    return charmodel.save_pretrained(out)


def cache_blobs(hf_home: Path) -> list[Path]:
    return [p for p in (hf_home / "hub").glob("models--*/blobs/*")]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """An empty private zoo (CHARZOO_ZOO) that tests fill with `register_bundled`."""
    directory = tmp_path / "zoo"
    directory.mkdir()
    (directory / "registry.json").write_text("{}\n")
    monkeypatch.setenv("CHARZOO_ZOO", str(directory))
    return directory


@pytest.fixture
def published(hub, tiny_model_dir, tmp_path, request):
    """The tiny model pushed to a repo of this test's own, pulled back: (repo id, commit, pulled directory)."""
    from charzoo.hub import pull, push

    repo_id = f"alice/{request.node.name.replace('[', '-').replace(']', '')[:80]}"
    result = push(tiny_model_dir, repo_id, token=TOKEN)
    return repo_id, result.commit, pull(f"{repo_id}@{result.commit}").path


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charzoo", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def cli_env(hub, tmp_path) -> dict[str, str]:
    """Environment for a CLI subprocess: the test Hub, a fresh HF_HOME, no token."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    return {**env, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "TF_CPP_MIN_LOG_LEVEL": "2"}


def assert_one_line_error(proc: subprocess.CompletedProcess, exit_code: int, *needles: str) -> None:
    assert proc.returncode == exit_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("charzoo: error: ")
    assert all(needle in lines[-1] for needle in needles), lines[-1]


# === Push and pull by repo id ===


def test_push_then_pull_round_trip_gives_the_same_logits(hub, tiny_model_dir, tiny_model):
    from charzoo.hub import pull, push
    from charzoo.zoo import MODEL_FILES, SAMPLES_FILE, load, load_dir

    result = push(tiny_model_dir, "alice/round-trip", token=TOKEN, message="first upload")
    assert len(result.commit) == 40 and result.repo_id == "alice/round-trip" and result.revision == "main"
    assert result.url == f"{hub.url}/alice/round-trip/commit/{result.commit}"
    lines = []
    pulled = pull("alice/round-trip", on_source=lines.append)
    assert (pulled.source, pulled.revision) == ("hub", result.commit)
    assert sorted(p.name for p in pulled.path.iterdir()) == sorted([*MODEL_FILES, SAMPLES_FILE])  # the training log too
    assert lines == [f"alice/round-trip: downloaded from {hub.url} (commit {result.commit[:7]})"]
    np.testing.assert_allclose(logits(load_dir(pulled.path)), logits(tiny_model), rtol=0, atol=0)
    card = (pulled.path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: keras\npipeline_tag: text-generation\n")
    assert "- lstm\n" in card and "bits_per_character" in card and "charzoo pull alice/round-trip" in card
    # The local directory is published as is, apart from its card.
    for name in [*MODEL_FILES[:-1], SAMPLES_FILE]:
        assert (pulled.path / name).read_bytes() == (tiny_model_dir / name).read_bytes()

    downloads = len([r for r in hub.requests if r.startswith("GET /alice/round-trip/resolve/")])
    again = load("alice/round-trip", on_source=lines.append)
    assert lines[-1] == f"alice/round-trip: from the Hugging Face cache (commit {result.commit[:7]})"
    assert len([r for r in hub.requests if r.startswith("GET /alice/round-trip/resolve/")]) == downloads
    np.testing.assert_allclose(logits(again), logits(tiny_model), rtol=0, atol=0)


def test_push_again_makes_a_new_commit_and_old_revisions_stay_retrievable(hub, tiny_model_dir, tiny_model, tmp_path):
    from charzoo.hub import pull, push
    from charzoo.zoo import load, load_dir

    first = push(tiny_model_dir, "alice/history", token=TOKEN)
    retrained = retrained_copy(tiny_model_dir, tmp_path / "retrained")
    second = push(retrained, "alice/history", token=TOKEN)
    assert second.commit != first.commit
    new_logits = logits(load_dir(retrained))
    assert not np.allclose(new_logits, logits(tiny_model))

    np.testing.assert_array_equal(logits(load("alice/history")), new_logits)
    np.testing.assert_array_equal(logits(load(f"alice/history@{first.commit}")), logits(tiny_model))
    assert pull("alice/history", revision=first.commit).revision == first.commit

    # A branch: created on the first push to it, leaving main alone.
    dev = push(load_dir(tiny_model_dir), "alice/history", revision="dev", token=TOKEN, message="back to v1")
    assert dev.revision == "dev" and dev.commit not in (first.commit, second.commit)
    assert pull("alice/history@dev").revision == dev.commit
    np.testing.assert_array_equal(logits(load("alice/history@dev")), logits(tiny_model))
    assert pull("alice/history").revision == second.commit


def test_a_model_pulled_from_one_repo_and_pushed_to_another_gets_a_card_that_names_the_new_one(
        hub, tiny_model_dir):
    from charzoo.hub import pull, push

    push(tiny_model_dir, "alice/origin", token=TOKEN)
    push(pull("alice/origin").path, "alice/fork", token=TOKEN)
    card = (pull("alice/fork").path / "README.md").read_text()
    assert "charzoo pull alice/fork" in card and "alice/origin" not in card


def test_an_edited_card_keeps_its_body_under_fresh_front_matter(hub, tiny_model_dir, tmp_path):
    from charzoo.hub import pull, push

    edited = tmp_path / "edited"
    shutil.copytree(tiny_model_dir, edited)
    card = (edited / "README.md").read_text().replace("## Usage", "Trained by hand on a Sunday.\n\n## Usage")
    (edited / "README.md").write_text(card.replace("license: \"other\"", "license: \"mit\""))
    push(edited, "alice/edited-card", token=TOKEN)
    published = (pull("alice/edited-card").path / "README.md").read_text()
    assert "Trained by hand on a Sunday." in published
    assert published.startswith("---\nlibrary_name: keras\n") and published.count("\n---\n") == 1
    assert 'license: "other"' in published  # the front matter follows metadata.json
    assert 'license: "mit"' in (edited / "README.md").read_text()  # the local directory is left as it was


def test_private_repo_needs_a_token(hub, tiny_model_dir, monkeypatch):
    from charzoo.hub import pull, push

    push(tiny_model_dir, "alice/secret", private=True, token=TOKEN)
    with pytest.raises(CharzooError, match=r"Hub repo alice/secret not found .*set HF_TOKEN") as error:
        pull("alice/secret")
    assert error.value.exit_code == 1
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(CharzooError, match=r"valid Hugging Face token \(401\)"):
        pull("alice/secret")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert pull("alice/secret").source == "hub"


def test_unknown_repo_and_unknown_revision_are_clear_errors(hub, published):
    from charzoo.hub import pull

    repo_id, commit, _ = published
    with pytest.raises(CharzooError, match=r"^cannot pull alice/nobody-home: Hub repo alice/nobody-home not found at"):
        pull("alice/nobody-home")
    with pytest.raises(CharzooError, match=rf"revision 'no-such-branch' not found in {repo_id}; check the branch"):
        pull(f"{repo_id}@no-such-branch")
    with pytest.raises(CharzooError, match=f"revision '{'0' * 40}' not found"):
        pull(repo_id, revision="0" * 40)


@pytest.mark.parametrize("ref", ["a/b/c", "alice/", "alice/x@", "-bad-/name", "alice/x y"])
def test_malformed_repo_ids_are_bad_input(ref):
    from charzoo.hub import pull

    with pytest.raises(CharzooError, match=r"is not a model directory, a zoo name or a Hub repo id") as error:
        pull(ref)
    assert error.value.exit_code == 2


def test_interrupted_download_leaves_no_broken_cache(hub, tiny_model_dir, tiny_model):
    from huggingface_hub import constants

    from charzoo.hub import cached_snapshot, pull, push
    from charzoo.zoo import MODEL_FILES, WEIGHTS_FILE, load_dir
    from hub_server import git_oid

    commit = push(tiny_model_dir, "alice/flaky", token=TOKEN).commit
    hub.truncate = {WEIGHTS_FILE}
    try:
        with pytest.raises(CharzooError, match=r"cannot pull alice/flaky: the connection to .* broke off"):
            pull("alice/flaky")
    finally:
        hub.truncate = set()
    hf_home = Path(constants.HF_HOME)
    repo_blobs = [b for b in cache_blobs(hf_home) if "models--alice--flaky" in str(b)]
    assert repo_blobs and all(git_oid(b.read_bytes()) == b.name for b in repo_blobs)  # no partial blob, no temp file
    assert cached_snapshot("alice/flaky", commit, list(MODEL_FILES)) is None

    healed = pull("alice/flaky")
    assert healed.source == "hub"
    np.testing.assert_array_equal(logits(load_dir(healed.path)), logits(tiny_model))


# === Zoo names: cache -> Hub -> bundled, every file checked ===


def test_zoo_name_pulls_the_pinned_commit_and_a_corrupt_cached_file_is_fetched_again(
        hub, published, zoo, tiny_model_dir, tiny_model, tmp_path):
    from charzoo.hub import pull, push
    from charzoo.registry import corrupt_files, lookup, register_bundled
    from charzoo.zoo import WEIGHTS_FILE, load

    repo_id, commit, pulled = published
    entry = register_bundled("tiny", pulled, repo_id=repo_id, revision=commit)
    assert (zoo / "tiny" / WEIGHTS_FILE).is_file() and entry.params > 0 and entry.val_loss > 0
    assert lookup("tiny") == entry and entry.size == sum(p.stat().st_size for p in (zoo / "tiny").iterdir())
    push(retrained_copy(tiny_model_dir, tmp_path / "newer"), repo_id, token=TOKEN)  # main moves on; the pin does not

    lines = []
    np.testing.assert_array_equal(logits(load("tiny", on_source=lines.append)), logits(tiny_model))
    assert lines == [f"tiny: from the Hugging Face cache ({repo_id}@{commit[:7]})"]

    cached = pull("tiny").path
    (cached / WEIGHTS_FILE).write_bytes(b"not weights at all")  # writes through the link into the blob
    refetched = pull("tiny", on_source=lines.append)
    assert refetched.source == "hub" and corrupt_files(refetched.path, entry) == []
    assert lines[-1] == f"tiny: downloaded from {hub.url} ({repo_id}@{commit[:7]}) because the cached {WEIGHTS_FILE} was corrupt"
    np.testing.assert_array_equal(logits(load("tiny")), logits(tiny_model))


def test_zoo_entries_without_weights_or_without_a_hub_commit(hub, zoo, tiny_model_dir):
    from charzoo.hub import pull
    from charzoo.registry import register_bundled

    (zoo / "registry.json").write_text(json.dumps({"later": {"repo_id": "charzoo/later", "corpus": "names"}}))
    with pytest.raises(CharzooError, match=r"zoo model 'later' is not available yet"):
        pull("later")
    register_bundled("local_only", tiny_model_dir)
    lines = []
    result = pull("local_only", on_source=lines.append)
    assert (result.source, result.path) == ("bundled", zoo / "local_only")
    assert lines == [f"local_only: bundled copy {zoo / 'local_only'} (not published on the Hub yet)"]
    files = json.loads((zoo / "registry.json").read_text())["local_only"]["files"]
    assert "samples.jsonl" in files and (zoo / "local_only" / "samples.jsonl").is_file()  # the training log travels
    assert json.loads((zoo / "registry.json").read_text())["later"]["repo_id"] == "charzoo/later"  # kept


def test_a_folder_that_holds_no_model_does_not_hide_a_zoo_name(hub, zoo, tiny_model_dir, tmp_path, monkeypatch):
    from charzoo.hub import pull
    from charzoo.registry import register_bundled
    from charzoo.zoo import load

    register_bundled("kernel", tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "input.txt").write_text("int main(void);\n")  # say, a corpus folder
    assert (pull("kernel").source, pull("kernel").path) == ("bundled", zoo / "kernel")
    shutil.rmtree(tmp_path / "kernel")
    shutil.copytree(tiny_model_dir, tmp_path / "kernel")  # a model directory of the same name is what it says
    assert (pull("kernel").source, pull("kernel").path) == ("local", Path("kernel"))
    (tmp_path / "notes").mkdir()
    with pytest.raises(CharzooError, match=r"notes is not a model directory \(no config.json\)"):
        load("notes")  # no zoo model has that name: the folder is what was meant, and it is no model


def test_zoo_name_pull_rejects_a_revision(hub, published, zoo):
    from charzoo.hub import pull
    from charzoo.registry import register_bundled

    repo_id, commit, pulled = published
    register_bundled("tiny", pulled, repo_id=repo_id, revision=commit)
    with pytest.raises(CharzooError, match=rf"pinned to one commit; to pull another, use {repo_id}@main"):
        pull("tiny", revision="main")


def test_registering_other_files_drops_the_hub_pin(hub, published, zoo, tiny_model_dir, tmp_path):
    from charzoo.hub import pull
    from charzoo.registry import register_bundled

    repo_id, commit, pulled = published
    register_bundled("tiny", pulled, repo_id=repo_id, revision=commit)
    assert register_bundled("tiny", pulled).revision == commit  # the same files: still the pushed commit
    entry = register_bundled("tiny", retrained_copy(tiny_model_dir, tmp_path / "newer"))
    assert (entry.repo_id, entry.revision) == (repo_id, None)  # retrained: on the Hub only once pushed again
    lines = []
    assert pull("tiny", on_source=lines.append).source == "bundled"
    assert lines == [f"tiny: bundled copy {zoo / 'tiny'} (not published on the Hub yet)"]


def test_zoo_on_the_cli_offline_unreachable_and_corrupt(hub, published, zoo, cli_env, tmp_path):
    """Offline from the cache, offline without it, and the Hub down with a corrupt cache: each says why."""
    from charzoo.registry import register_bundled
    from charzoo.zoo import WEIGHTS_FILE

    repo_id, commit, pulled = published
    register_bundled("tiny", pulled, repo_id=repo_id, revision=commit)
    env = {**cli_env, "CHARZOO_ZOO": str(zoo)}
    hf_home = Path(env["HF_HOME"])

    online = run_cli("pull", "tiny", "--json", env=env)
    assert online.returncode == 0, online.stderr
    assert json.loads(online.stdout) == {"path": json.loads(online.stdout)["path"], "source": "hub", "revision": commit}
    cached_path = Path(json.loads(online.stdout)["path"])
    assert cached_path.is_relative_to(hf_home)

    seen = len(hub.requests)
    offline = run_cli("pull", "tiny", "--json", env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == {"path": str(cached_path), "source": "cache", "revision": commit}
    assert len(hub.requests) == seen  # not one request

    fresh = run_cli("pull", "tiny", "--json", env={**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")})
    assert json.loads(fresh.stdout)["source"] == "bundled"
    assert "offline (HF_HUB_OFFLINE is set)" in fresh.stderr

    (cached_path / WEIGHTS_FILE).write_bytes(b"garbage")
    down = run_cli("pull", "tiny", "--json", env={**env, "HF_ENDPOINT": closed_port_url()})
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout) == {"path": str(zoo / "tiny"), "source": "bundled", "revision": None}
    assert f"the cached {WEIGHTS_FILE} was corrupt" in down.stderr and "is unreachable" in down.stderr
    assert not (cached_path / WEIGHTS_FILE).exists()  # the corrupt file is gone, not kept for next time


def test_info_and_sample_take_a_zoo_name_with_the_hub_unreachable(hub, published, zoo, cli_env):
    from charzoo.registry import register_bundled

    repo_id, commit, pulled = published
    register_bundled("tiny", pulled, repo_id=repo_id, revision=commit)
    env = {**cli_env, "CHARZOO_ZOO": str(zoo), "HF_ENDPOINT": closed_port_url()}
    info = run_cli("info", "tiny", env=env)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines()[0] == str(zoo / "tiny")
    assert info.stderr.strip().splitlines()[-1].startswith(f"tiny: bundled copy {zoo / 'tiny'} (the Hub at http://127.0.0.1:")
    sample = run_cli("sample", "tiny", "--prime", "Ann", "--length", "20", "--seed", "1", env=env)
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("Ann") and len(sample.stdout.rstrip("\n")) > 3


def test_two_pulls_at_once_share_one_cache(hub, published, cli_env):
    repo_id, commit, _ = published
    hub.delay = 0.3  # keep both downloads in flight together
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "charzoo", "pull", repo_id, "--json"], env=cli_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        hub.delay = 0.0
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert results[0]["path"] == results[1]["path"] and {r["revision"] for r in results} == {commit}
    from charzoo.zoo import MODEL_FILES

    for name in MODEL_FILES[:-1]:
        assert (Path(results[0]["path"]) / name).read_bytes() == (Path(published[2]) / name).read_bytes()


# === The CLI ===


def test_cli_push_pull_and_list(hub, tiny_model_dir, cli_env, zoo, published):
    from charzoo.registry import register_bundled

    pushed = run_cli("push", str(tiny_model_dir), "bob/cli-model", "--private", "--message", "from the CLI", "--json",
                     env={**cli_env, "HF_TOKEN": TOKEN})
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert set(result) == {"repo_id", "revision", "commit", "url"} and result["revision"] == "main"
    assert hub.read_repo("bob/cli-model")["private"] is True
    assert hub.read_repo("bob/cli-model")["commits"][result["commit"]]["summary"] == "from the CLI"

    pulled = run_cli("pull", "bob/cli-model", env={**cli_env, "HF_TOKEN": TOKEN})
    assert pulled.returncode == 0, pulled.stderr
    assert Path(pulled.stdout.strip()).name == result["commit"]
    assert pulled.stderr.strip().endswith(f"bob/cli-model: downloaded from {hub.url} (commit {result['commit'][:7]})")

    repo_id, commit, pulled_dir = published
    register_bundled("tiny", pulled_dir, repo_id=repo_id, revision=commit)
    (zoo / "registry.json").write_text(json.dumps(
        {**json.loads((zoo / "registry.json").read_text()), "later": {"repo_id": "x/later", "corpus": "latex"}}))
    listed = run_cli("list", "--json", env={**cli_env, "CHARZOO_ZOO": str(zoo)})
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert (rows["tiny"]["bundled"], rows["tiny"]["cached"], rows["later"]["available"]) == (True, False, False)
    assert rows["tiny"]["val_bpc"] == pytest.approx(rows["tiny"]["val_loss"] / np.log(2))
    table = run_cli("list", env={**cli_env, "CHARZOO_ZOO": str(zoo)}).stdout.splitlines()
    assert table[0].split() == ["name", "corpus", "params", "val", "nats", "val", "bpc", "size", "here"]
    lines = {line.split()[0]: line for line in table[1:]}
    assert lines["later"].endswith("not trained yet") and lines["tiny"].endswith("  bundled")


@pytest.mark.parametrize("case", ["unknown zoo name", "malformed repo id", "invalid directory", "no token"])
def test_cli_bad_input_is_one_line(case, hub, tiny_model_dir, cli_env, tmp_path):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "todo.txt").write_text("train something\n")
    args, exit_code, needles = {
        "unknown zoo name": (["pull", "shakspeare"], 2, ["unknown model 'shakspeare'", "did you mean shakespeare?"]),
        "malformed repo id": (["pull", "alice/x/y@"], 2, ["'alice/x/y@' is not a model directory", "owner/name"]),
        "invalid directory": (["push", str(not_a_model), "alice/notes"], 2, [f"cannot push {not_a_model}", "config.json"]),
        "no token": (["push", str(tiny_model_dir), "alice/anon"], 1, ["cannot push to alice/anon", "set HF_TOKEN"]),
    }[case]
    assert_one_line_error(run_cli(*args, env=cli_env), exit_code, *needles)


def test_pretrained_is_package_data_in_a_real_install(tmp_path, tiny_model_dir):
    """A non-editable install carries registry.json and pretrained/<name>/, and finds them where it is installed."""
    from charzoo.zoo import MODEL_FILES, SAMPLES_FILE

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "tests", "*.egg-info",
                                                                "__pycache__", "build"))
    (source / "pretrained" / "tiny").mkdir()
    for name in (*MODEL_FILES, SAMPLES_FILE):
        shutil.copyfile(tiny_model_dir / name, source / "pretrained" / "tiny" / name)
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "from charzoo import registry; print(registry.registry_path()); "
         "print(registry.bundled_dir('tiny'))"],
        env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    registry_file, bundled = map(Path, probe.stdout.split())
    assert registry_file == target / "charzoo" / "registry.json" and registry_file.is_file()
    assert bundled == target / "charzoo" / "pretrained" / "tiny"
    assert sorted(p.name for p in bundled.iterdir()) == sorted(p.name for p in (source / "pretrained" / "tiny").iterdir())
