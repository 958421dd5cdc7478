"""A fake Hugging Face Hub on 127.0.0.1 for the Hub tests (tests/test_hub.py).

It answers what ``huggingface_hub.hf_hub_download`` asks (read from its source):
``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{file}`` with ``X-Repo-Commit`` and ``ETag``; for a
large (LFS) file a redirect to its storage with ``X-Linked-Etag`` (the sha256 that names the cached
blob) and ``X-Linked-Size``; errors carried by ``X-Error-Code`` (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
import urllib.parse
from pathlib import Path
from typing import Iterator


class FakeHub:
    """Repositories ``{repo: {"refs": {name: commit}, "commits": {commit: {path: bytes}}}}`` and the requests seen."""

    def __init__(self) -> None:
        self.repos: dict = {}
        self.requests: list[tuple[str, str]] = []
        self.blobs: dict[str, bytes] = {}
        self.cdn = ""  # the storage's origin: another server (the client follows no redirect off the Hub)

    def publish(self, repo: str, files: dict[str, bytes], ref: str = "main") -> str:
        commit = hashlib.sha1(repr(sorted(files.items())).encode() + repo.encode()).hexdigest()
        r = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        r["commits"][commit] = dict(files)
        r["refs"][ref] = commit
        return commit

    def publish_folder(self, repo: str, folder: Path, ref: str = "main") -> str:
        return self.publish(repo, {p.relative_to(folder).as_posix(): p.read_bytes()
                                   for p in folder.rglob("*") if p.is_file()}, ref)

    def answer(self, method: str, path: str):
        """``(status, headers, body)`` for one request."""
        self.requests.append((method, path))
        parts = urllib.parse.urlsplit(path).path.split("/")
        if parts[1] == "cdn":  # the LFS storage a resolve of a large file redirects to
            data = self.blobs.get(parts[2])
            return (200, {}, data) if data is not None else (404, {}, b"")
        if len(parts) < 6 or parts[3] != "resolve":
            return 404, {}, b""
        repo, rev, name = "/".join(parts[1:3]), urllib.parse.unquote(parts[4]), "/".join(parts[5:])
        if repo not in self.repos:  # the Hub answers 401 for a repository it will not show
            return 401, {"X-Error-Code": "RepoNotFound"}, b""
        r = self.repos[repo]
        commit = r["refs"].get(rev, rev if rev in r["commits"] else None)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        data = r["commits"][commit].get(name)
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        sha = hashlib.sha256(data).hexdigest()
        if name.endswith(".safetensors"):  # an LFS file: the Hub links to its storage, naming the blob
            self.blobs[sha] = data
            return 302, {"X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                         "ETag": '"git-pointer"', "Location": f"{self.cdn}/cdn/{sha}"}, b""
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}, data


@contextlib.contextmanager
def serve() -> Iterator[tuple[FakeHub, str]]:
    """``(hub, endpoint URL)`` while the fake Hub and its storage server (another origin) run."""
    hub = FakeHub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _reply(self, body: bool):
            status, headers, data = hub.answer(self.command, self.path)
            self.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self._reply(False)

        def do_GET(self):
            self._reply(True)

    httpd, cdn = (http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2))
    for server in (httpd, cdn):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    hub.cdn = f"http://127.0.0.1:{cdn.server_address[1]}"
    try:
        yield hub, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        for server in (httpd, cdn):
            server.shutdown()
            server.server_close()
