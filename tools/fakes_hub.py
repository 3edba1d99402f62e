"""A fake Hugging Face Hub on 127.0.0.1, for tests and offline runs of the program.

It answers the two requests components/model_facts.py makes, in the Hub's shapes (huggingface_hub
``HfApi.model_info`` / ``hf_hub_download``): ``GET /api/models/{id}/revision/{revision}?blobs=true``
(``main``, the commit itself or one of the model's ``tags``; 404 ``RevisionNotFound`` otherwise) and
``GET /{id}/resolve/{sha}/config.json``, with the Hub's error answers (404 and ``X-Error-Code:
RepoNotFound`` for unknown models, 401 and ``X-Error-Code: GatedRepo`` for a gated config without a
token). ``PRESET_MODELS`` holds the models of stacks/: their config.json fields as published on the Hub,
and weight-file sizes estimated from the parameter counts and dtypes of their model cards (not recorded
Hub answers; close enough to exercise the checks).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

GB = 10**9


@dataclass
class FakeModel:
    config: dict[str, Any]
    weights_bytes: int  # split over ``shards`` files named like the Hub's sharded checkpoints
    gated: bool = False
    shards: int = 4
    extra_files: dict[str, int] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # branch or tag names that, like main, resolve to the model's one commit

    def sha(self, model: str) -> str:
        return hashlib.sha1(f"{model}:{json.dumps(self.config, sort_keys=True)}".encode()).hexdigest()

    def siblings(self) -> list[dict[str, Any]]:
        size = self.weights_bytes // self.shards
        files = {f"model-{i:05d}-of-{self.shards:05d}.safetensors": size for i in range(1, self.shards + 1)}
        files |= {"config.json": 2_000, "model.safetensors.index.json": 100_000, **self.extra_files}
        return [{"rfilename": name, "size": size} for name, size in files.items()]


def _yarn(factor: float) -> dict[str, Any]:
    return {"type": "yarn", "factor": factor, "original_max_position_embeddings": 4096}


PRESET_MODELS: dict[str, FakeModel] = {
    # Llama 4: the language model's fields under text_config; gated (Llama 4 Community License).
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8": FakeModel(
        config={
            "architectures": ["Llama4ForConditionalGeneration"],
            "model_type": "llama4",
            "text_config": {
                "model_type": "llama4_text",
                "num_attention_heads": 40,
                "num_key_value_heads": 8,
                "max_position_embeddings": 1048576,
                "rope_scaling": None,
            },
            "vision_config": {"model_type": "llama4_vision_model", "num_attention_heads": 16},
        },
        weights_bytes=422 * GB,  # ~400B parameters, experts in FP8, the rest BF16
        gated=True,
        shards=84,
    ),
    # DeepSeek V3 architecture (MLA, MoE): fields at the top; yarn 40 x 4096 = 163840.
    "deepseek-ai/DeepSeek-R1-0528": FakeModel(
        config={
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "max_position_embeddings": 163840,
            "rope_scaling": _yarn(40),
        },
        weights_bytes=688 * GB,  # 671B parameters in FP8 plus BF16 non-expert weights
        shards=163,
    ),
    # Kimi K2: DeepSeek V3 with 64 heads; yarn 32 x 4096 = 131072.
    "moonshotai/Kimi-K2-Instruct": FakeModel(
        config={
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "kimi_k2",
            "num_attention_heads": 64,
            "num_key_value_heads": 64,
            "max_position_embeddings": 131072,
            "rope_scaling": _yarn(32),
        },
        weights_bytes=1029 * GB,  # 1T parameters in FP8
        shards=61,
    ),
    "Qwen/Qwen3-8B": FakeModel(
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 40960,
            "rope_scaling": None,
        },
        weights_bytes=16_400_000_000,  # 8.2B parameters in BF16
        shards=5,
    ),
    "Qwen/Qwen2.5-0.5B-Instruct": FakeModel(
        config={
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
        },
        weights_bytes=988_000_000,  # 494M parameters in BF16
        shards=1,
    ),
}


class FakeHub:
    """``with FakeHub() as hub:`` serves ``hub.models`` at ``hub.url``. ``failure`` makes every answer
    fail: ``"500"``, ``"malformed"`` (not JSON) or ``"slow"`` (answers after ``slow_seconds``). Tokens in
    ``denied_tokens`` get 403 on gated files, as a token whose account has not accepted the license.
    ``requests`` records (path, Authorization header) of every request."""

    def __init__(self, models: dict[str, FakeModel] | None = None) -> None:
        self.models = dict(PRESET_MODELS if models is None else models)
        self.failure: str | None = None
        self.slow_seconds = 5.0
        self.denied_tokens: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((path, authorization))
        if self.failure == "500":
            return 500, {}, b"Internal Error"
        if self.failure == "malformed":
            return 200, {}, b"<html>not json"
        if self.failure == "slow":
            time.sleep(self.slow_seconds)
        parts = urlsplit(path).path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[-2] == "revision":
            model_id, revision = "/".join(parts[2:-2]), unquote(parts[-1])
            model = self.models.get(model_id)
            if model is None:
                return 404, {"X-Error-Code": "RepoNotFound"}, b'{"error": "Repository not found"}'
            if revision not in ("main", model.sha(model_id), *model.tags):
                return 404, {"X-Error-Code": "RevisionNotFound"}, b'{"error": "Invalid rev id"}'
            info = {
                "id": model_id,
                "sha": model.sha(model_id),
                "gated": "manual" if model.gated else False,
                "siblings": model.siblings(),
            }
            return 200, {}, json.dumps(info).encode()
        if len(parts) >= 4 and parts[-3] == "resolve" and parts[-1] == "config.json":
            model_id = "/".join(parts[:-3])
            model = self.models.get(model_id)
            if model is None or parts[-2] != model.sha(model_id):
                return 404, {"X-Error-Code": "RepoNotFound"}, b"{}"
            if model.gated and not authorization:
                return 401, {"X-Error-Code": "GatedRepo"}, b'{"error": "Access to model is restricted"}'
            if model.gated and authorization.removeprefix("Bearer ") in self.denied_tokens:
                return 403, {"X-Error-Code": "GatedRepo"}, b'{"error": "Access to model is restricted"}'
            return 200, {}, json.dumps(model.config).encode()
        return 404, {}, b"{}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = hub.answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        return Handler
