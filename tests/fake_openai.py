"""A small OpenAI-compatible streaming server on loopback, with injected delays: what tools.bench measures.

It answers /v1/chat/completions and /v1/completions as vLLM does (SSE chunks, a usage chunk on request,
``data: [DONE]``), checks the Bearer key and the model name, and can be told to ignore ``stream`` (a
non-streaming server). It is bounded: it answers at most ``max_requests`` completions (503 after) and shuts
itself down after ``lifetime`` seconds, so a test that loses track of it never leaves load running.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class FakeOpenAI:
    api_key: str = "test-key"
    model: str = "Qwen/Qwen2.5-0.5B-Instruct"
    first_token_s: float = 0.1
    token_s: float = 0.01
    streams: bool = True
    max_requests: int = 2000
    lifetime: float = 300.0
    url: str = ""
    completions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Every completion request it was sent: its headers (names lowercased) and its JSON body.
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def take(self) -> bool:
        with self.lock:
            self.completions += 1
            return self.completions <= self.max_requests


def _error(status: int, message: str, kind: str) -> dict[str, Any]:
    """vLLM's error body (vllm/entrypoints/openai/protocol.py ErrorResponse)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _json(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._json(401, {"error": "Unauthorized"})  # vLLM's --api-key middleware answers this body
            return False

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
            elif self.path == "/health":
                self._json(200, {})
            else:
                self._json(404, _error(404, f"not found: {self.path}", "NotFoundError"))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not self._authorized():
                return
            with fake.lock:
                fake.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            chat = self.path == "/v1/chat/completions"
            if not chat and self.path != "/v1/completions":
                self._json(404, _error(404, f"not found: {self.path}", "NotFoundError"))
                return
            if body.get("model") != fake.model:
                message = f"The model `{body.get('model')}` does not exist."
                self._json(404, _error(404, message, "NotFoundError"))
                return
            if not fake.take():
                self._json(503, _error(503, "request budget of the fake server spent", "ServiceUnavailable"))
                return
            tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
            if fake.streams and body.get("stream"):
                self._stream(chat, tokens, bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                time.sleep(fake.first_token_s + fake.token_s * (tokens - 1))
                text = " ".join(["tok"] * tokens)
                choice = (
                    {"index": 0, "message": {"role": "assistant", "content": text}}
                    if chat
                    else {
                        "index": 0,
                        "text": text,
                    }
                )
                self._json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": fake.model,
                        "choices": [choice],
                        "usage": {"prompt_tokens": 1, "completion_tokens": tokens},
                    },
                )

        def _stream(self, chat: bool, tokens: int, usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"

            def send(payload: dict[str, Any] | str) -> None:
                line = payload if isinstance(payload, str) else json.dumps(payload)
                data = f"data: {line}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for index in range(tokens):
                time.sleep(fake.first_token_s if index == 0 else fake.token_s)
                choice: dict[str, Any] = {
                    "index": 0,
                    "finish_reason": "length" if index == tokens - 1 else None,
                }
                if chat:
                    choice["delta"] = (
                        {"content": " tok"} if index else {"role": "assistant", "content": "tok"}
                    )
                else:
                    choice["text"] = " tok" if index else "tok"
                send({"id": "x", "object": kind, "model": fake.model, "choices": [choice]})
            if usage:
                counts = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}
                send({"id": "x", "object": kind, "model": fake.model, "choices": [], "usage": counts})
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            # A client that hung up (aiperf closing its pool, Ctrl-C): nothing to answer.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                super().handle()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler


@contextmanager
def serving(fake: FakeOpenAI | None = None, tls: tuple[Path, Path] | None = None) -> Iterator[FakeOpenAI]:
    """Serve ``fake`` on 127.0.0.1; HTTPS with ``tls`` = (certificate, key)."""
    fake = fake or FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    stop = threading.Timer(fake.lifetime, server.shutdown)
    stop.daemon = True
    stop.start()
    fake.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        stop.cancel()
        server.shutdown()
        server.server_close()
