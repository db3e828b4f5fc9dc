"""A small Hub-compatible HTTP server (stdlib only) for testing publishing pipelines offline.

The real `huggingface_hub` client talks to it through `HF_ENDPOINT` (or `HfApi(endpoint=...)`): create and delete
repositories and branches, validate card metadata, preupload and commit files (every file is "regular": no LFS or Xet server
needed), read repository info, trees, refs and commits, and download files from `/resolve/`. Tokens are checked
(401 for missing or invalid tokens on writes, 403 for a namespace the token cannot write), and faults can be
injected: the next N requests to a route answer 5xx, or the connection is dropped without an answer
(at once, after the request took effect, or after hanging a while).

    with LocalHub(tokens={"hf_secret": "alice"}) as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint   # before huggingface_hub is imported, or pass endpoint=
        HfApi(endpoint=hub.endpoint, token="hf_secret").create_repo("alice/model")

Run it standalone with `python -m hfssl.hub.local_server --token hf_secret:alice [--port 8000] [--data-dir DIR]`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .local_routes import Request, handle, match
from .local_store import HubError, HubStore


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to and what it may do."""

    name: str
    orgs: tuple[str, ...] = ()
    write: bool = True

    def can_write(self, namespace: str) -> bool:
        return self.write and namespace in (self.name, *self.orgs)

    def can_read(self, namespace: str) -> bool:
        return namespace in (self.name, *self.orgs)


def parse_tokens(tokens: Mapping[str, str | Mapping[str, Any]] | None) -> dict[str, Identity]:
    """{token: "user"} or {token: {"user": ..., "orgs": [...], "write": bool}} -> {token: Identity}."""
    out = {}
    for token, spec in (tokens or {}).items():
        if isinstance(spec, str):
            out[token] = Identity(spec)
        else:
            out[token] = Identity(spec["user"], tuple(spec.get("orgs", ())), bool(spec.get("write", True)))
    return out


@dataclass
class Fault:
    route: str
    times: int
    status: int | None = None  # None: drop the connection without an answer
    message: str = "Injected failure"
    after_handling: bool = False  # drop only after the request took effect (an answer lost on the way back)
    delay_s: float = 0.0  # wait this long first (a Hub or proxy that stopped answering)


@dataclass
class Faults:
    """Failures to inject, consumed in order by the next requests to their route."""

    pending: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, route: str, status: int = 503, times: int = 1, message: str = "Injected failure") -> None:
        """The next `times` requests to `route` (e.g. "commit", "preupload", "resolve") answer `status`."""
        with self.lock:
            self.pending.append(Fault(route, times, status, message))

    def drop_next(self, route: str, times: int = 1, after_handling: bool = False) -> None:
        """The next `times` requests to `route` are read in full, then the connection closes with no answer.

        With `after_handling`, the request takes effect first (e.g. the commit lands) and only the answer is lost.
        """
        with self.lock:
            self.pending.append(Fault(route, times, after_handling=after_handling))

    def hang_next(self, route: str, seconds: float, times: int = 1) -> None:
        """The next `times` requests to `route` get no answer for `seconds`, then the connection closes without one;
        the request takes no effect (a Hub or proxy that stopped answering mid-upload)."""
        with self.lock:
            self.pending.append(Fault(route, times, delay_s=seconds))

    def clear(self) -> None:
        with self.lock:
            self.pending.clear()

    def take(self, route: str) -> Fault | None:
        with self.lock:
            for fault in self.pending:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None


class LocalHub:
    """The server: start it (or use it as a context manager) and point the client at `endpoint`."""

    def __init__(
        self,
        tokens: Mapping[str, str | Mapping[str, Any]] | None = None,
        data_dir: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.tokens = parse_tokens(tokens)
        self.store = HubStore(data_dir)
        self.faults = Faults()
        self.requests: list[tuple[str, str, str]] = []  # (method, route, path); never headers or tokens
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def revisions(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        """Commit ids of `revision`, newest first."""
        return [c.oid for c in self.store.get(repo_type, repo_id).history(revision)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files at `revision`: path -> content."""
        return dict(self.store.get(repo_type, repo_id).resolve(revision).files)

    def routes_called(self) -> list[str]:
        return [route for _, route, _ in self.requests]


def _make_handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "hfssl-local-hub/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines are kept in hub.requests; headers (tokens) are never logged

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _dispatch(self, method: str) -> None:
            body = self._read_body()  # drained first, whatever the answer: keeps the connection usable
            raw_path = urlsplit(self.path).path
            route, groups = match(method, raw_path)
            hub.requests.append((method, route or "unknown", unquote(raw_path)))
            fault = hub.faults.take(route) if route else None
            if fault is not None and fault.delay_s:
                time.sleep(fault.delay_s)
            if fault is not None and fault.status is None and not fault.after_handling:
                self.close_connection = True
                return
            try:
                if fault is not None and fault.status is not None:
                    raise HubError(fault.status, fault.message, extra={"body": {"errors": [{"message": fault.message}]}})
                if route is None:
                    raise HubError(404, f"No such route: {method} {raw_path}")
                request = Request(hub, self, route, groups, body)
                status, payload, headers = handle(request)
            except HubError as error:
                status, headers = error.status, {"X-Error-Message": error.message}
                if error.code:
                    headers["X-Error-Code"] = error.code
                headers.update(error.extra.get("headers", {}))
                payload = {"error": error.message, **error.extra.get("body", {})}
            if fault is not None and fault.after_handling:
                self.close_connection = True
                return
            self._send(method, status, payload, headers)

        def _send(self, method: str, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            if not isinstance(payload, bytes):
                self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value.encode("ascii", "replace").decode())
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; tokens as TOKEN:USER[:org1,org2]."""
    parser = argparse.ArgumentParser(prog="python -m hfssl.hub.local_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start).")
    parser.add_argument("--token", action="append", default=[], help="TOKEN:USER[:ORG,ORG] with write rights.")
    parser.add_argument("--data-dir", help="Keep repositories on disk here (default: in memory only).")
    args = parser.parse_args(argv)
    tokens = {}
    for spec in args.token:
        token, _, rest = spec.partition(":")
        user, _, orgs = rest.partition(":")
        tokens[token] = {"user": user, "orgs": [o for o in orgs.split(",") if o]}
    hub = LocalHub(tokens, data_dir=args.data_dir, host=args.host, port=args.port)
    print(f"Local Hub at {hub.endpoint}  (export HF_ENDPOINT={hub.endpoint})", flush=True)
    try:
        hub._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub._server.server_close()


if __name__ == "__main__":
    main()
