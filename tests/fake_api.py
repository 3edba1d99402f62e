"""A local HTTP server answering recorded JSON by method and path: the cloud APIs the tools' clients ask."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FakeApi:
    """``routes[(method, path)]`` is the JSON answered (a str: plain text; a ``(status, body)`` pair for an
    error; a callable: what it returns for the request's query string); every request is recorded as
    (method, path, query, body)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], object] = {}
        self.requests: list[tuple[str, str, str, bytes]] = []
        self.url = ""

    def answer(self, method: str, raw_path: str, body: bytes) -> tuple[int, object]:
        parts = urlsplit(raw_path)
        self.requests.append((method, parts.path, parts.query, body))
        found = self.routes.get((method, parts.path))
        if found is None:
            return 404, {"error": {"code": 404, "message": f"not found: {parts.path}", "status": "NOT_FOUND"}}
        if callable(found):
            found = found(parts.query)
        if isinstance(found, tuple):
            return found
        return 200, found


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code, payload = api.answer(method, self.path, body)
            text = isinstance(payload, str)
            data = payload.encode() if text else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


@contextmanager
def serving() -> Iterator[FakeApi]:
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
