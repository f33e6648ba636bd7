"""The Hugging Face Hub: pull a model by zoo name or repo id, push a model directory.

A thin layer over huggingface_hub's `snapshot_download`, `create_repo` and
`upload_folder`. huggingface_hub is imported inside the functions: it reads
HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, on first use, and `charzoo --help`
should not pay for it. Its exceptions become one-line `CharzooError`s that name the fix.

Zoo names resolve offline-first: the local Hugging Face cache at the registry's
pinned commit, then the Hub, then the copy bundled in the package. Every file is
checked against the registry's sha256 wherever it came from, so a corrupt file is
fetched again or skipped, never loaded.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from charzoo import registry
from charzoo.errors import CharzooError
from charzoo.evaluation import nats_to_bits

if TYPE_CHECKING:  # pragma: no cover
    from charzoo.zoo import CharModel

COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_REF_HELP = "owner/name[@revision]"


@dataclass(frozen=True)
class PullResult:
    """Where a pulled model lies, where it came from, and the commit it was taken at."""

    path: Path
    source: str  # "local" | "cache" | "hub" | "bundled"
    revision: str | None  # the commit; None for a local directory or a bundled copy

    def to_json(self) -> dict:
        return {"path": str(self.path), "source": self.source, "revision": self.revision}


@dataclass(frozen=True)
class PushResult:
    """The commit a push made."""

    repo_id: str
    revision: str  # the branch
    commit: str
    url: str

    def to_json(self) -> dict:
        return asdict(self)


def pull(
    model: str, *, revision: str | None = None, force: bool = False, on_source: Callable[[str], None] | None = None
) -> PullResult:
    """Make `model` available locally and say where it lies.

    Args:
        model: a model directory, a zoo name, or a Hub repo id `owner/name[@revision]`.
        revision: branch, tag or commit of a Hub repo id.
        force: download again even if the cache has the files.
        on_source: called with one line saying where the model came from (and why it fell back).
    """
    from charzoo.zoo import is_model_dir, is_run_in_progress

    report = on_source or (lambda line: None)
    path = Path(model).expanduser()
    zoo_name = "/" not in model and "@" not in model
    # A directory wins, unless it holds no model and the name is a zoo model's: `charzoo sample linux` run
    # beside a folder of kernel source still means the zoo's linux model.
    if path.is_dir() and (is_model_dir(path) or is_run_in_progress(path) or not (
            zoo_name and model in registry.read_registry())):
        if revision is not None:
            raise CharzooError(f"--revision applies to Hub repo ids, not to the directory {model}", exit_code=2)
        return PullResult(path, "local", None)
    if zoo_name:
        entry = registry.lookup(model)
        if revision is not None:
            raise CharzooError(
                f"zoo model '{model}' is pinned to one commit; to pull another, use {entry.repo_id}@{revision}",
                exit_code=2,
            )
        return _pull_zoo(entry, force, report)
    repo_id, revision = parse_repo_ref(model, revision)
    return _pull_repo(repo_id, revision, force, report)


def parse_repo_ref(ref: str, revision: str | None = None) -> tuple[str, str | None]:
    """`owner/name[@revision]` -> (repo id, revision); a malformed id is an error (exit 2)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id, at, ref_revision = ref.partition("@")
    well_formed = repo_id.count("/") == 1 and not (at and not ref_revision)
    try:
        validate_repo_id(repo_id)  # huggingface_hub's own rules: characters, length, no '--' or '..'
    except HFValidationError:
        well_formed = False
    if not well_formed:
        raise CharzooError(
            f"'{ref}' is not a model directory, a zoo name or a Hub repo id {REPO_REF_HELP}; "
            "see `charzoo list` for zoo names", exit_code=2,
        )
    if ref_revision and revision is not None and revision != ref_revision:
        raise CharzooError(f"'{ref}' names revision {ref_revision} but --revision says {revision}; give one", exit_code=2)
    return repo_id, ref_revision or revision


# === Pull ===


def _pull_zoo(entry: registry.ZooEntry, force: bool, report: Callable[[str], None]) -> PullResult:
    """Cache at the pinned commit -> Hub -> bundled copy, taking the first whose files match the registry."""
    if not entry.available:
        raise CharzooError(
            f"zoo model '{entry.name}' is not available yet (no trained weights registered); "
            "train your own with `charzoo train` or pick one from `charzoo list`"
        )
    from huggingface_hub import constants

    reasons: list[str] = []
    if entry.revision is None:
        reasons.append("not published on the Hub yet")
    else:
        ref = f"{entry.repo_id}@{entry.revision[:7]}"
        files = list(entry.files)
        cached = cached_snapshot(entry.repo_id, entry.revision, files)
        corrupt = registry.corrupt_files(cached, entry) if cached else []
        if cached and not corrupt and not force:
            report(f"{entry.name}: from the Hugging Face cache ({ref})")
            return PullResult(cached, "cache", entry.revision)
        if corrupt:
            _evict(cached, corrupt)
            reasons.append(f"the cached {corrupt[0]} was corrupt")
        offline = constants.is_offline_mode()
        if cached and force and not offline:
            _evict(cached, files)
        if offline:
            reasons.append("offline (HF_HUB_OFFLINE is set)")
        else:
            try:
                path = _download(entry.repo_id, entry.revision, files)
            except Exception as e:  # noqa: BLE001 - only Hub and network errors are explained; the rest re-raise
                reasons.append(_explain(e, entry.repo_id, entry.revision)[0])
            else:
                corrupt = registry.corrupt_files(path, entry)
                if not corrupt:
                    because = f" because {'; '.join(reasons)}" if reasons else ""
                    report(f"{entry.name}: downloaded from {_endpoint()} ({ref}){because}")
                    return PullResult(path, "hub", entry.revision)
                _evict(path, corrupt)
                reasons.append(f"the Hub's {corrupt[0]} does not match the zoo registry")
    bundled = registry.bundled_dir(entry.name)
    corrupt = registry.corrupt_files(bundled, entry) if bundled else []
    if bundled and not corrupt:
        report(f"{entry.name}: bundled copy {bundled} ({'; '.join(reasons)})")
        return PullResult(bundled, "bundled", None)
    reasons.append(f"the bundled {corrupt[0]} is corrupt" if bundled else "this installation bundles no copy")
    raise CharzooError(
        f"zoo model '{entry.name}' is unavailable: {'; '.join(reasons)}; "
        "connect to the Hub (check HF_ENDPOINT, unset HF_HUB_OFFLINE) or reinstall charzoo"
    )


def _pull_repo(repo_id: str, revision: str | None, force: bool, report: Callable[[str], None]) -> PullResult:
    """Resolve the revision on the Hub, then use the cache if it holds that commit, else download."""
    from huggingface_hub import HfApi, constants

    from charzoo.zoo import MODEL_FILES, OPTIONAL_FILES

    ref = f"{repo_id}@{revision}" if revision else repo_id
    files = list(MODEL_FILES)
    if constants.is_offline_mode():
        cached = cached_snapshot(repo_id, revision or "main", files)
        if cached is None:
            raise CharzooError(f"{ref} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; unset it to download")
        report(f"{ref}: from the Hugging Face cache (offline)")
        return _checked(PullResult(cached, "cache", cached.name), ref)
    try:
        commit = revision if revision and COMMIT.match(revision) else HfApi().repo_info(repo_id, revision=revision).sha
    except Exception as e:  # noqa: BLE001
        reason, fix = _explain(e, repo_id, revision)
        cached = cached_snapshot(repo_id, revision or "main", files) if _is_unreachable(e) else None
        if cached is None:
            raise CharzooError(f"cannot pull {ref}: {reason}; {fix}") from e
        report(f"{ref}: from the Hugging Face cache ({reason})")
        return _checked(PullResult(cached, "cache", cached.name), ref)
    cached = cached_snapshot(repo_id, commit, files)
    if cached is not None and not force:
        report(f"{ref}: from the Hugging Face cache (commit {commit[:7]})")
        return _checked(PullResult(cached, "cache", commit), ref)
    if cached is not None:
        _evict(cached, files)
    try:
        # By name, not commit, so the cache also records where the branch points for offline use.
        path = _download(repo_id, revision or commit, [*files, *OPTIONAL_FILES])
    except Exception as e:  # noqa: BLE001
        reason, fix = _explain(e, repo_id, revision)
        raise CharzooError(f"cannot pull {ref}: {reason}; {fix}") from e
    report(f"{ref}: downloaded from {_endpoint()} (commit {path.name[:7]})")
    return _checked(PullResult(path, "hub", path.name), ref)


def _checked(result: PullResult, ref: str) -> PullResult:
    from charzoo.zoo import CONFIG_FILE, WEIGHTS_FILE

    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (result.path / f).is_file()]
    if missing:
        raise CharzooError(f"{ref} is not a charzoo model: it has no {' or '.join(missing)}", exit_code=2)
    return result


def cached_snapshot(repo_id: str, commit: str, files: list[str]) -> Path | None:
    """The cached snapshot holding `files` at `commit` (a commit id or a branch seen before), without network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, revision=commit, allow_patterns=files, local_files_only=True))
    except LocalEntryNotFoundError:  # never downloaded, or an interrupted download left it incomplete
        return None
    return path if all((path / f).is_file() for f in files) else None


def _download(repo_id: str, revision: str, files: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=files))


def _evict(snapshot: Path, files: list[str]) -> None:
    """Delete cached files (the snapshot entry and the blob it links to), so the next download fetches them again.

    huggingface_hub's own `force_download` cannot fall back when the Hub is unreachable
    and would reuse a corrupt blob that another revision shares; deleting can do neither.
    """
    for name in files:
        entry = snapshot / name
        entry.resolve().unlink(missing_ok=True)
        entry.unlink(missing_ok=True)


# === Push ===


def push(
    dir_or_charmodel: str | Path | CharModel,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    message: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Publish a model directory (or an in-memory model) to `repo_id` in one commit.

    The model must load first. The model files are staged in a temporary directory
    with the card rewritten for the repo, the repo is created if needed (and the
    branch `revision`), and exactly those files are uploaded.
    """
    from huggingface_hub import HfApi

    from charzoo.cards import card_for_repo
    from charzoo.zoo import CARD_FILE, CharModel, load_dir, published_files, save_pretrained, write_text

    parse_repo_ref(repo_id)
    if "@" in repo_id:
        raise CharzooError(f"push takes a repo id without @revision, got '{repo_id}'; use --revision", exit_code=2)
    with tempfile.TemporaryDirectory(prefix="charzoo-push-") as tmp:
        staged = Path(tmp) / "model"
        if isinstance(dir_or_charmodel, CharModel):
            charmodel, saved_at = dir_or_charmodel, dir_or_charmodel.path
            save_pretrained(charmodel, staged)
            charmodel.path = saved_at
        else:
            directory = Path(dir_or_charmodel)
            try:
                charmodel = load_dir(directory)
            except CharzooError as e:
                raise CharzooError(f"cannot push {directory}: {e}", exit_code=2) from e
            staged.mkdir()
            for name in published_files(directory):
                shutil.copyfile(directory / name, staged / name)  # follows cache symlinks
        existing = (staged / CARD_FILE).read_text(encoding="utf-8") if (staged / CARD_FILE).is_file() else None
        write_text(staged / CARD_FILE, card_for_repo(existing, charmodel.config, charmodel.metadata, repo_id))
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                folder_path=staged, repo_id=repo_id, revision=revision,
                commit_message=message or f"Upload {charmodel.metadata.get('name') or 'model'} with charzoo",
                allow_patterns=published_files(staged),
            )
        except Exception as e:  # noqa: BLE001
            reason, fix = _explain(e, repo_id, revision, write=True)
            raise CharzooError(f"cannot push to {repo_id}: {reason}; {fix}") from e
    return PushResult(repo_id, revision or "main", info.oid, info.commit_url)


# === Errors ===


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _is_unreachable(error: Exception) -> bool:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(error, (httpx2.ConnectError, httpx2.TimeoutException, OfflineModeIsEnabled))


def _explain(error: Exception, repo_id: str, revision: str | None, *, write: bool = False) -> tuple[str, str]:
    """(what went wrong, what to do) for a Hub or network error; anything else is re-raised."""
    import httpx2
    from huggingface_hub import errors

    endpoint = _endpoint()
    if isinstance(error, errors.LocalEntryNotFoundError) and error.__cause__ is not None:
        return _explain(error.__cause__, repo_id, revision, write=write)  # the Hub error behind the cache miss
    if isinstance(error, errors.OfflineModeIsEnabled):
        return "offline (HF_HUB_OFFLINE is set)", "unset HF_HUB_OFFLINE to reach the Hub"
    if _is_unreachable(error):
        return (f"the Hub at {endpoint} is unreachable",
                "check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use cached models")
    if isinstance(error, httpx2.TransportError):
        return f"the connection to {endpoint} broke off ({type(error).__name__})", "run the command again"
    if isinstance(error, errors.LocalEntryNotFoundError):
        return (f"{repo_id} is not in the local cache and the Hub at {endpoint} could not be reached",
                "check the network or HF_ENDPOINT")
    if isinstance(error, errors.GatedRepoError):
        return f"{repo_id} is gated", "accept its terms on the Hub, then set HF_TOKEN"
    if isinstance(error, errors.RepositoryNotFoundError):
        return (f"Hub repo {repo_id} not found at {endpoint} (nor a local directory of that name)",
                "check the name; if it is private, set HF_TOKEN or run `hf auth login`")
    if isinstance(error, errors.RevisionNotFoundError):
        return f"revision '{revision}' not found in {repo_id}", "check the branch, tag or commit id"
    if isinstance(error, errors.HfHubHTTPError):
        status = error.response.status_code
        if status == 401:
            what = "a push needs" if write else "this repo needs"
            return f"{what} a valid Hugging Face token (401)", "set HF_TOKEN or run `hf auth login`"
        if status == 403:
            return f"the token may not write to {repo_id} (403)", "use a token with write access to that namespace"
        detail = (error.server_message or str(error)).strip().splitlines()[0][:200]
        return f"the Hub answered {status}: {detail}", "try again later"
    raise error


# === The zoo, as `charzoo list` shows it ===


def zoo_table() -> list[dict]:
    """One row per zoo model: registry numbers plus whether it is in the local cache and bundled here."""
    rows = []
    for entry in registry.read_registry().values():
        cached = entry.available and entry.revision is not None and (
            cached_snapshot(entry.repo_id, entry.revision, list(entry.files)) is not None)
        rows.append({
            "name": entry.name, **entry.to_json(),
            "val_bpc": nats_to_bits(entry.val_loss) if entry.val_loss is not None else None,
            "available": entry.available, "cached": cached,
            "bundled": entry.available and registry.bundled_dir(entry.name) is not None,
        })
    return rows
