"""A Hugging Face Hub-compatible HTTP server on loopback, for tests.

It answers exactly what huggingface_hub 2.x calls to create a repo, commit files
(inline "regular" uploads, so no Xet or LFS), create a branch, read repo info and
trees, and download files. Each repo keeps a git-like history: every commit has a
40-hex id and a full file table, so old revisions stay downloadable. Private repos
need a bearer token for reads; every write needs one, as on the real Hub.

Repos live under `root` as JSON and content-addressed blobs:
    <ns>/<name>/repo.json          {"private", "branches": {name: commit}, "commits": {id: {...}}}
    <ns>/<name>/blobs/<git oid>    file contents
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")


def git_oid(content: bytes) -> str:
    """The git blob id, which the Hub uses as the oid and ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubError(Exception):
    """An HTTP error answer: status, the Hub's X-Error-Code (if any), and a message."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class HubServer:
    """Serve repos from `root` on 127.0.0.1 (a free port) in a background thread.

    Args:
        root: directory that holds the repos.
        tokens: bearer tokens the server accepts.

    Test knobs: `truncate` (file names whose downloads stop half-way), `delay`
    (seconds to wait before each file download), `requests` (every "METHOD path" seen).
    """

    def __init__(self, root: Path, tokens: set[str] = frozenset({"hf_test_token"})):
        self.root = Path(root)
        self.tokens = set(tokens)
        self.truncate: set[str] = set()
        self.delay = 0.0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # === Repos ===

    def _repo_dir(self, repo_id: str) -> Path:
        return self.root / repo_id

    def read_repo(self, repo_id: str) -> dict:
        path = self._repo_dir(repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, "Repository not found", "RepoNotFound")
        return json.loads(path.read_text())

    def _write_repo(self, repo_id: str, repo: dict) -> None:
        path = self._repo_dir(repo_id) / "repo.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo, indent=1))
        tmp.replace(path)

    def create_repo(self, repo_id: str, private: bool) -> bool:
        """Create an empty repo with one initial commit; False if it already exists."""
        with self._lock:
            if (self._repo_dir(repo_id) / "repo.json").is_file():
                return False
            (self._repo_dir(repo_id) / "blobs").mkdir(parents=True)
            repo = {"private": private, "branches": {}, "commits": {}}
            repo["branches"]["main"] = self._new_commit(repo, None, "initial commit", {})
            self._write_repo(repo_id, repo)
            return True

    @staticmethod
    def _new_commit(repo: dict, parent: str | None, summary: str, files: dict[str, str]) -> str:
        body = json.dumps([parent, summary, files, len(repo["commits"]), time.time()])
        commit = hashlib.sha1(body.encode()).hexdigest()
        repo["commits"][commit] = {"parent": parent, "summary": summary, "files": files}
        return commit

    def resolve(self, repo: dict, revision: str) -> str:
        """A branch name or a full commit id -> the commit id."""
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if COMMIT_ID.match(revision) and revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def commit(self, repo_id: str, branch: str, summary: str, added: dict[str, bytes], deleted: list[str]) -> str:
        with self._lock:
            repo = self.read_repo(repo_id)
            if branch not in repo["branches"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent = repo["branches"][branch]
            files = dict(repo["commits"][parent]["files"])
            for path in deleted:
                files.pop(path, None)
            for path, content in added.items():
                oid = git_oid(content)
                (self._repo_dir(repo_id) / "blobs" / oid).write_bytes(content)
                files[path] = oid
            repo["branches"][branch] = commit = self._new_commit(repo, parent, summary, files)
            self._write_repo(repo_id, repo)
            return commit

    def create_branch(self, repo_id: str, branch: str, starting_point: str | None) -> None:
        with self._lock:
            repo = self.read_repo(repo_id)
            if branch in repo["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repo["branches"][branch] = self.resolve(repo, starting_point or "main")
            self._write_repo(repo_id, repo)

    def blob(self, repo_id: str, oid: str) -> bytes:
        return (self._repo_dir(repo_id) / "blobs" / oid).read_bytes()


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        server_hub = hub

    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    server_hub: HubServer

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass

    # === Dispatch ===

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        hub = self.server_hub
        path = urlsplit(self.path).path
        hub.requests.append(f"{method} {path}")
        # Read the whole body first, so an early error answer never cuts off a client still sending.
        self.body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        try:
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create_repo()
            if method == "POST" and parts == ["api", "validate-yaml"]:
                return self._json(200, {"errors": [], "warnings": []})
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                return self._model_api(method, f"{parts[2]}/{parts[3]}", parts[4:])
            if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve_file(method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            raise HubError(404, f"no route for {method} {path}")
        except HubError as e:
            self._error(e)

    def _model_api(self, method: str, repo_id: str, rest: list[str]) -> None:
        hub = self.server_hub
        if method == "GET" and (not rest or (len(rest) == 2 and rest[0] == "revision")):
            return self._repo_info(repo_id, rest[1] if rest else "main")
        if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
            return self._tree(repo_id, rest[1], "/".join(rest[2:]))
        if method == "POST" and len(rest) == 2 and rest[0] in ("preupload", "commit", "branch"):
            self._require_token(write=True)
            repo = hub.read_repo(repo_id)
            if rest[0] == "preupload":
                return self._preupload(repo, rest[1], json.loads(self.body))
            if rest[0] == "commit":
                return self._commit(repo_id, rest[1], self.body)
            hub.create_branch(repo_id, rest[1], json.loads(self.body or b"{}").get("startingPoint"))
            return self._json(200, {})
        raise HubError(404, f"no route for {method} /api/models/{repo_id}/{'/'.join(rest)}")

    # === Auth ===

    def _require_token(self, *, write: bool) -> None:
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        if token is not None and token not in self.server_hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        if token is None:
            # The Hub hides private repos from anonymous readers behind "not found".
            raise HubError(401, "Invalid username or password.", None if write else "RepoNotFound")

    def _readable_repo(self, repo_id: str) -> dict:
        repo = self.server_hub.read_repo(repo_id)
        if repo["private"]:
            self._require_token(write=False)
        return repo

    # === Endpoints ===

    def _create_repo(self) -> None:
        self._require_token(write=True)
        body = json.loads(self.body)
        if body.get("type", "model") != "model":
            raise HubError(400, "this test Hub serves model repos only")
        repo_id = f"{body['organization'] or 'user'}/{body['name']}"
        url = f"{self.server_hub.url}/{repo_id}"
        if not self.server_hub.create_repo(repo_id, private=body.get("visibility") == "private"):
            return self._json(409, {"error": "You already created this model repo", "url": url})
        self._json(200, {"url": url, "name": repo_id})

    def _repo_info(self, repo_id: str, revision: str) -> None:
        repo = self._readable_repo(repo_id)
        commit = self.server_hub.resolve(repo, revision)
        files = repo["commits"][commit]["files"]
        self._json(200, {
            "id": repo_id, "modelId": repo_id, "sha": commit, "private": repo["private"],
            "siblings": [{"rfilename": path} for path in sorted(files)],
        })

    def _tree(self, repo_id: str, revision: str, folder: str) -> None:
        hub = self.server_hub
        repo = self._readable_repo(repo_id)
        files = repo["commits"][hub.resolve(repo, revision)]["files"]
        prefix = f"{folder}/" if folder else ""
        self._json(200, [
            {"type": "file", "path": path, "oid": oid, "size": len(hub.blob(repo_id, oid))}
            for path, oid in sorted(files.items()) if path.startswith(prefix)
        ])

    def _preupload(self, repo: dict, revision: str, body: dict) -> None:
        files = repo["commits"][self.server_hub.resolve(repo, revision)]["files"]
        self._json(200, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
            for f in body["files"]
        ]})

    def _commit(self, repo_id: str, branch: str, body: bytes) -> None:
        summary, added, deleted = "", {}, []
        for line in body.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value["summary"]
            elif item["key"] == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "deletedFile":
                deleted.append(value["path"])
            else:
                raise HubError(400, f"this test Hub takes regular files only, not {item['key']}")
        commit = self.server_hub.commit(repo_id, branch, summary, added, deleted)
        self._json(200, {
            "success": True, "commitOid": commit, "commitUrl": f"{self.server_hub.url}/{repo_id}/commit/{commit}",
        })

    def _resolve_file(self, method: str, repo_id: str, revision: str, path: str) -> None:
        hub = self.server_hub
        repo = self._readable_repo(repo_id)
        commit = hub.resolve(repo, revision)
        oid = repo["commits"][commit]["files"].get(path)
        if oid is None:
            raise HubError(404, "Entry not found", "EntryNotFound")
        content = hub.blob(repo_id, oid)
        self.send_response(200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{oid}"')
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if method == "GET":
            time.sleep(hub.delay)
            # A truncated file ends the connection half-way, as a dropped network would.
            self.wfile.write(content[: len(content) // 2] if path in hub.truncate else content)

    # === Answers ===

    def _json(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, error: HubError) -> None:
        body = json.dumps({"error": str(error)}).encode()
        self.send_response(error.status)
        if error.code:
            self.send_header("X-Error-Code", error.code)
        self.send_header("X-Error-Message", str(error))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
