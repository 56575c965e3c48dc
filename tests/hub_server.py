"""A local, in-memory Hugging Face Hub for tests: huggingface_hub's real client code talks to it over HTTP.

``LocalHub`` serves from a daemon thread on ``127.0.0.1`` (port 0; never another address) what huggingface_hub
2.4 requests; ``utils/_http.py`` ``hf_raise_for_status`` turns its errors into the client's own typed exceptions.

* ``GET /api/models/{repo}[/revision/{rev}]``: ``HfApi.model_info`` / ``repo_info`` (``sha``, ``siblings``), behind
  ``repo_exists``, ``resolve_revision``, ``snapshot_download`` of a branch, diffusers' ``DiffusionPipeline.download``.
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=``: ``HfApi.list_repo_tree`` (a single page), behind
  ``list_repo_files`` and ``snapshot_download``.
* ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``: ``file_download.get_hf_file_metadata`` (``hf_hub_download``,
  ``file_exists``: ``X-Repo-Commit``, ``ETag`` = git blob sha1, ``Content-Length``) and ``http_get`` (the bytes,
  whole: no ``Range``). Files are served directly: no CDN redirect, no Xet.
* ``POST /api/repos/create``: ``HfApi.create_repo`` (409 with ``url`` if it exists, which ``exist_ok`` accepts);
  a new repo gets an "initial commit" holding a ``.gitattributes``, as on the real Hub.
* ``POST /api/models/{repo}/preupload/{rev}``: ``_commit_api._fetch_upload_modes`` (``create_commit``,
  ``upload_folder``): every file is ``uploadMode: "regular"`` (never LFS/Xet, whatever its size or extension), with
  the git oid of the file already there so that the client drops unchanged files, as the real Hub makes it do.
* ``POST /api/models/{repo}/commit/{rev}[?create_pr=1]``: ``_commit_api._send_commit`` (NDJSON ``header``, base64
  ``file``, ``deletedFile``, ``deletedFolder``); ``create_pr`` commits to a new ``refs/pr/N``.
* ``POST /api/models/{repo}/discussions`` (pull requests only) and ``GET .../discussions/{num}``:
  ``HfApi.create_pull_request``, which ``upload_folder(create_pr=True)`` calls when hf_xet is enabled.
* ``POST /api/validate-yaml``: ``HfApi._validate_yaml`` (a committed ``README.md``); accepts everything.

Errors: unknown repo, or private one without token -> 404 ``X-Error-Code: RepoNotFound``
(``RepositoryNotFoundError``); unknown revision -> 404 ``RevisionNotFound``; missing file -> 404 ``EntryNotFound``
with ``X-Repo-Commit`` (``RemoteEntryNotFoundError``); a write without token -> 401. Commits are immutable
snapshots: old shas (40 hex, or a unique prefix of 7+) stay downloadable. Any other request gets a 501 JSON error
naming method and path, a server bug a 500, and both are recorded in ``LocalHub.unhandled``: assert it is empty.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

GITATTRIBUTES = b"".join(
    b"*.%s filter=lfs diff=lfs merge=lfs -text\n" % ext
    for ext in (b"bin", b"ckpt", b"h5", b"msgpack", b"onnx", b"pt", b"pth", b"safetensors")
)
_REPO = r"/api/models/(?P<repo>[^/]+/[^/]+)"
ROUTES = [  # (methods, regex on the raw path, LocalHub method): the first match wins
    ("GET", _REPO + r"(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
    ("GET", _REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "_tree"),
    ("POST", _REPO + r"/preupload/(?P<rev>[^/]+)", "_preupload"),
    ("POST", _REPO + r"/commit/(?P<rev>[^/]+)", "_commit"),
    ("POST", _REPO + r"/discussions", "_open_pr"),
    ("GET", _REPO + r"/discussions/(?P<num>\d+)", "_pr_details"),
    ("POST", r"/api/repos/create", "_create"),
    ("POST", r"/api/validate-yaml", "_validate_yaml"),
    ("GET HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_resolve"),
]


def git_blob_sha(data: bytes) -> str:
    """The git object id of a blob: what the Hub sends as ``ETag`` / ``oid`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def _unauthorized(req) -> None:
    if not req.auth:
        raise HubError(401, "Invalid username or password.")


@dataclass
class _Repo:
    private: bool = False
    created: str = field(default_factory=_now)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> {path: content}
    parents: dict[str, str | None] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1", ... -> commit sha
    prs: dict[int, str] = field(default_factory=dict)  # pull request number -> title


class LocalHub:
    """See the module docstring: ``with LocalHub() as hub:``, or ``hub = LocalHub().start()`` ... ``hub.stop()``."""

    def __init__(self):
        self.endpoint: str | None = None  # "http://127.0.0.1:PORT" once started
        self.requests: list[tuple[str, str]] = []  # (method, raw path without the query) of every request
        self.unhandled: list[tuple[str, str]] = []  # the requests answered 501 (not implemented) or 500 (a bug)
        self._repos: dict[str, _Repo] = {}
        self._lock, self._ids, self._server = threading.RLock(), itertools.count(), None

    def start(self) -> LocalHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="LocalHub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- Python API for tests -----------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, private: bool = False) -> bool:
        """Create ``repo_id`` with an initial commit holding ``.gitattributes``; False if it already exists."""
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise ValueError(f"LocalHub needs a 'namespace/name' repo id, got {repo_id!r}")
        with self._lock:
            if repo_id in self._repos:
                return False
            self._repos[repo_id] = _Repo(private=private)
            self.commit(repo_id, "main", [("add", ".gitattributes", GITATTRIBUTES)], "initial commit")
            return True

    def publish(self, repo_id: str, folder, branch: str = "main", message: str = "Upload folder") -> str:
        """Commit the files of ``folder`` to ``branch`` (created from main if missing) as ``upload_folder`` does
        (files of the repo that are not in ``folder`` stay; ``.git/`` and ``.cache/`` are skipped); returns the sha."""
        self.create_repo(repo_id)
        root = Path(folder)
        ops = [
            ("add", p.relative_to(root).as_posix(), p.read_bytes())
            for p in sorted(root.rglob("*"))
            if p.is_file() and not {".git", ".cache"} & set(p.relative_to(root).parts)
        ]
        with self._lock:
            repo = self._repos[repo_id]
            repo.refs.setdefault(branch, repo.refs["main"])
            return self.commit(repo_id, branch, ops, message)[0]

    def delete_file(self, repo_id: str, path: str, branch: str = "main") -> str:
        """A new commit on ``branch`` without ``path``; returns its sha."""
        return self.commit(repo_id, branch, [("delete", path, None)], f"Delete {path}")[0]

    def commits(self, repo_id: str, branch: str = "main") -> list[str]:
        """The shas of the commits reachable from ``branch``, newest last."""
        repo, sha = self._resolve_rev(repo_id, branch, auth=True)
        out = []
        while sha is not None:
            out.append(sha)
            sha = repo.parents[sha]
        return out[::-1]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo, sha = self._resolve_rev(repo_id, revision, auth=True)
        return dict(repo.snapshots[sha])

    def commit(
        self, repo_id: str, branch: str, ops, message: str, create_pr: bool = False, parent: str | None = None
    ) -> tuple[str, int | None]:
        """Apply ``ops`` (``("add", path, bytes)``, ``("delete", path, None)``, ``("delete_folder", path, None)``),
        in order, on top of ``branch`` (or of ``parent``) as a new commit on ``branch``, or on a new ``refs/pr/N``
        with ``create_pr``. Returns ``(commit sha, N or None)``."""
        with self._lock:
            repo = self._repo(repo_id, auth=True)
            if repo.refs and branch not in repo.refs:  # (only the initial commit of a repo has no parent)
                raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
            base = repo.refs.get(branch)
            if parent is not None:
                if not create_pr and not base.startswith(parent):
                    raise HubError(412, f"parent commit {parent} is not the head of {branch} ({base})")
                base = self._resolve_rev(repo_id, parent, auth=True)[1]
            files = dict(repo.snapshots[base]) if base else {}
            for kind, path, data in ops:
                folder = path.rstrip("/") + "/"
                if kind == "add":
                    files[path] = data
                elif kind == "delete" and path in files:
                    del files[path]
                elif kind == "delete_folder" and any(p.startswith(folder) for p in files):
                    files = {p: d for p, d in files.items() if not p.startswith(folder)}
                else:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            tree = "".join(f"{p}\0{git_blob_sha(d)}\n" for p, d in sorted(files.items()))
            sha = hashlib.sha1(f"{base}\n{message}\n{next(self._ids)}\n{tree}".encode()).hexdigest()
            repo.snapshots[sha], repo.parents[sha] = files, base
            pr = self._new_pr(repo, message, sha) if create_pr else None
            repo.refs[f"refs/pr/{pr}" if pr else branch] = sha
            return sha, pr

    # -- lookups ------------------------------------------------------------------------------------------------
    def _repo(self, repo_id: str, auth: bool) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not auth):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve_rev(self, repo_id: str, rev: str | None, auth: bool) -> tuple[_Repo, str]:
        repo, rev = self._repo(repo_id, auth), unquote(rev or "main")
        if rev in repo.refs:
            return repo, repo.refs[rev]
        found = [s for s in repo.snapshots if s.startswith(rev)] if re.fullmatch(r"[0-9a-f]{7,40}", rev) else []
        if len(found) != 1:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo, found[0]

    def _new_pr(self, repo: _Repo, title: str, sha: str) -> int:
        num = len(repo.prs) + 1
        repo.prs[num], repo.refs[f"refs/pr/{num}"] = title, sha
        return num

    # -- endpoints: (request, **URL groups) -> (status, JSON-able body or bytes, headers) ------------------------
    def _repo_info(self, req, repo, rev=None):
        r, sha = self._resolve_rev(repo, rev, req.auth)
        files = r.snapshots[sha]
        blobs = req.query.get("blobs", ["false"])[0].lower() == "true"
        siblings = [
            {"rfilename": p, **({"size": len(d), "blobId": git_blob_sha(d)} if blobs else {})}
            for p, d in sorted(files.items())
        ]
        info = {
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24],
            "id": repo,
            "modelId": repo,
            "author": repo.split("/")[0],
            "sha": sha,
            "lastModified": r.created,
            "createdAt": r.created,
            "private": r.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(len(d) for d in files.values()),
        }
        expand = req.query.get("expand", []) + req.query.get("expand[]", [])
        return 200, {k: v for k, v in info.items() if not expand or k in expand or k in ("_id", "id")}, {}

    def _tree(self, req, repo, rev, path=None):
        r, sha = self._resolve_rev(repo, rev, req.auth)
        prefix = unquote(path).strip("/") + "/" if path else ""
        recursive = req.query.get("recursive", ["false"])[0].lower() in ("true", "1")
        entries = {}
        for p, d in sorted(r.snapshots[sha].items()):
            parts = p[len(prefix) :].split("/") if p.startswith(prefix) else []
            for i in range(1, len(parts) if recursive else min(2, len(parts))):  # the folders on the way
                folder = prefix + "/".join(parts[:i])
                entries[folder] = {
                    "type": "directory",
                    "oid": hashlib.sha1(folder.encode()).hexdigest(),
                    "size": 0,
                    "path": folder,
                }
            if len(parts) == 1 or (parts and recursive):
                entries[p] = {"type": "file", "oid": git_blob_sha(d), "size": len(d), "path": p}
        if prefix and not entries:
            raise HubError(404, f"{prefix} does not exist on {rev}", "EntryNotFound", {"X-Repo-Commit": sha})
        return 200, list(entries.values()), {}

    def _resolve(self, req, repo, rev, path):
        r, sha = self._resolve_rev(repo, rev, req.auth)
        path, headers = unquote(path), {"X-Repo-Commit": sha}
        if path not in r.snapshots[sha]:
            raise HubError(404, "Entry not found", "EntryNotFound", headers)
        data = r.snapshots[sha][path]
        return 200, data, {**headers, "ETag": f'"{git_blob_sha(data)}"', "Content-Type": "application/octet-stream"}

    def _create(self, req):
        _unauthorized(req)
        body = req.json()
        if body.get("type", "model") != "model" or not body.get("organization"):
            raise NotImplementedError("LocalHub only creates model repos with a 'namespace/name' id")
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.endpoint}/{repo_id}"
        if not self.create_repo(repo_id, private=body.get("visibility") == "private" or body.get("private") is True):
            return 409, {"error": "You already created this model repo", "url": url}, {}
        return 200, {"url": url, "name": repo_id, "id": repo_id}, {}

    def _preupload(self, req, repo, rev):
        _unauthorized(req)
        r, sha = self._resolve_rev(repo, rev, req.auth)
        have = r.snapshots[sha]
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha(have[f["path"]]) if f["path"] in have else None,
            }
            for f in req.json()["files"]
        ]
        return 200, {"files": files, "commitOid": sha}, {}

    def _commit(self, req, repo, rev):
        _unauthorized(req)
        header, *items = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        ops = []
        for key, value in ((item["key"], item["value"]) for item in items):
            if key == "file":
                raw = value["content"]
                ops.append(
                    ("add", value["path"], base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode())
                )
            elif key in ("deletedFile", "deletedFolder"):
                ops.append(("delete" if key == "deletedFile" else "delete_folder", value["path"], None))
            else:  # "lfsFile": the client believes it uploaded to LFS, which this server never asks for
                raise NotImplementedError(f"commit operation {key!r}")
        create_pr = req.query.get("create_pr", ["0"])[0] in ("1", "true")
        sha, pr = self.commit(
            repo, unquote(rev), ops, header["value"]["summary"], create_pr, header["value"].get("parentCommit")
        )
        out = {"success": True, "commitOid": sha, "commitUrl": f"{self.endpoint}/{repo}/commit/{sha}"}
        if pr is not None:
            out["pullRequestUrl"] = f"{self.endpoint}/{repo}/discussions/{pr}"
        return 200, out, {}

    def _open_pr(self, req, repo):
        _unauthorized(req)
        body = req.json()
        if not body.get("pullRequest"):
            raise NotImplementedError("LocalHub only opens pull requests, not discussions")
        with self._lock:
            r, sha = self._resolve_rev(repo, "main", req.auth)
            num = self._new_pr(r, body["title"], sha)
        return 200, {"num": num, "url": f"{self.endpoint}/{repo}/discussions/{num}"}, {}

    def _pr_details(self, req, repo, num):
        r = self._repo(repo, req.auth)
        if int(num) not in r.prs:
            raise HubError(404, f"Discussion {num} not found")
        return (
            200,
            {
                "num": int(num),
                "title": r.prs[int(num)],
                "status": "draft",
                "author": {"name": "user"},
                "createdAt": r.created,
                "repo": {"name": repo, "type": "model"},
                "isPullRequest": True,
                "events": [],
                "changes": {"base": "refs/heads/main"},
                "filesWithConflicts": [],
                "diff": "",
            },
            {},
        )

    def _validate_yaml(self, req):
        return 200, {"errors": [], "warnings": []}, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length
    timeout = 60  # an idle keep-alive connection gives its thread back after a minute

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        hub: LocalHub = self.server.hub
        split = urlsplit(self.path)
        path, self.query = split.path, parse_qs(split.query)
        hub.requests.append((self.command, path))
        self.auth = self.headers.get("Authorization", "").startswith("Bearer ")
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            route = next(
                (
                    (name, m)
                    for methods, pattern, name in ROUTES
                    if self.command in methods.split() and (m := re.fullmatch(pattern, path))
                ),
                None,
            )
            if route is None:
                raise NotImplementedError("no such endpoint")
            kwargs = {k: v for k, v in route[1].groupdict().items() if v is not None}
            status, body, headers = getattr(hub, route[0])(self, **kwargs)
        except HubError as e:
            status, body, headers = e.status, {"error": str(e)}, {**e.headers, "X-Error-Code": e.code or ""}
        except Exception as e:
            hub.unhandled.append((self.command, path))
            status = 501 if isinstance(e, NotImplementedError) else 500
            body, headers = {"error": f"LocalHub does not implement {self.command} {path} ({e!r})"}, {}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            if value:
                self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def json(self):
        return json.loads(self.body or b"{}")


def hub_env(hub: LocalHub, tmp_path) -> dict[str, str | None]:
    """The environment variables that point huggingface_hub, diffusers and transformers at ``hub`` (None: unset):
    ``HF_ENDPOINT``; ``HF_HUB_OFFLINE=0``, ``TRANSFORMERS_OFFLINE=0``; ``HF_HOME`` = ``tmp_path/hf_home`` and under it
    ``HF_HUB_CACHE``, ``HF_MODULES_CACHE``, ``HF_XET_CACHE``; ``HF_TOKEN=hf_fake``; ``HF_HUB_DISABLE_TELEMETRY=1``,
    ``HF_HUB_DISABLE_XET=1``; ``127.0.0.1`` added to ``NO_PROXY`` / ``no_proxy``; ``HUGGINGFACE_CO_STAGING`` (which
    overrides the endpoint), ``HUGGINGFACE_HUB_CACHE`` and ``HF_TOKEN_PATH`` unset."""
    home = Path(tmp_path) / "hf_home"
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1"]))
    return dict(
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_CACHE=str(home / "hub"),
        HF_MODULES_CACHE=str(home / "modules"),
        HF_XET_CACHE=str(home / "xet"),
        HF_TOKEN="hf_fake",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
        HUGGINGFACE_CO_STAGING=None,
        HUGGINGFACE_HUB_CACHE=None,
        HF_TOKEN_PATH=None,
    )


def hub_subprocess_env(hub: LocalHub, tmp_path) -> dict[str, str]:
    """A copy of ``os.environ`` with :func:`hub_env` applied: for a child interpreter that uses ``hub``."""
    env = {k: v for k, v in os.environ.items() if k not in hub_env(hub, tmp_path)}
    env.update({k: v for k, v in hub_env(hub, tmp_path).items() if v is not None})
    return env
