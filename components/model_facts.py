"""Facts about the model, from the Hugging Face Hub, checked before any resource is declared.

``lookup`` asks the Hub (``HF_ENDPOINT``, default https://huggingface.co, as huggingface_hub reads it in
``constants.py``) two questions about a revision of the model (its ``main`` branch, or the ``--revision``
a stack pins in ``vllm:extraArgs``), with short timeouts:

- ``GET /api/models/{id}/revision/{revision}?blobs=true`` (huggingface_hub ``HfApi.model_info(revision=...,
  files_metadata=True)``, the revision quoted with ``safe=''``): the commit ``sha`` the revision resolves
  to, ``gated`` (``false``, ``"auto"`` or ``"manual"``), and the files with their sizes
  (``siblings[].size``); the ``safetensors`` field (parameter counts by dtype) when the sizes are missing.
- ``GET /{id}/resolve/{sha}/config.json``: attention heads, key/value heads and the context length, read
  the way vLLM reads them (the text config of multimodal models, e.g. Llama 4's ``text_config``).

The token is ``vllm:hfToken``'s plaintext, sent as ``Authorization: Bearer`` and nowhere else: never
logged, never in a message, never in the cache.

**Why the same inputs come out every run.** The facts feed resource inputs (the health-check budget
sizes to the weights), so a Hub that answers once and not the next time must not roll the replicas.
Facts are a function of the commit: they are kept on disk per model with the ``sha`` they were read
from (``.model-facts/``, gitignored; ``VLLM_MODEL_FACTS_CACHE`` moves it, an empty value turns it off),
re-read only when the revision moves to another commit, and reused whenever the Hub cannot be reached
(connection refused, timeout, 5xx, malformed answer) or ``HF_HUB_OFFLINE`` is set. Only the first run on
a machine that has never reached the Hub for this model falls back to the config (``vllm:modelSizeGb``,
else the GPU-memory estimate), with a warning; setting ``vllm:modelSizeGb`` pins the budget whatever
the Hub says, and always wins over the Hub's size for the budget.

Refusals (``HubRefusal``, turned into ``SpecError`` by components/spec.py) are the answers that are
about the config, not the network: 404 (no such model: ``vllm:model``; ``X-Error-Code: RevisionNotFound``,
no such branch, tag or commit: ``vllm:extraArgs``), 401/403 (gated or private: ``vllm:hfToken``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pulumi
import requests

#: huggingface_hub/constants.py: ``ENDPOINT = os.getenv("HF_ENDPOINT", "https://huggingface.co").rstrip("/")``.
DEFAULT_ENDPOINT = "https://huggingface.co"
#: (connect, read) seconds: a preview must not hang on the Hub.
TIMEOUT = (3.05, 10)
REVISION = "main"
CACHE_ENV = "VLLM_MODEL_FACTS_CACHE"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".model-facts"
#: What tools.plan hands the program for a secret it cannot decrypt: a token is configured, its value is
#: unknown here, so the lookup goes anonymous and does not blame the token for it.
UNKNOWN_TOKEN = "<encrypted in the stack file>"
#: Bytes per parameter of the dtypes the Hub's ``safetensors.parameters`` lists.
DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8,
    "F32": 4, "I32": 4, "U32": 4,
    "BF16": 2, "F16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip
#: vLLM ``_get_and_verify_max_len`` (vllm/config/model.py): the smallest of these is the model's context.
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
#: Where multimodal configs keep the language model's config (transformers ``get_text_config``; InternVL
#: ``llm_config``, DeepSeek-VL2 ``language_config``).
TEXT_CONFIG_KEYS = ("text_config", "language_config", "llm_config")


@dataclass(frozen=True)
class ModelFacts:
    """What the Hub says about one commit of a model; None where it does not say."""

    model: str
    revision: str  # the commit sha these facts were read from
    gated: bool
    weights_gb: int | None  # bytes of the weight files vLLM loads, in GB (10^9), rounded up
    attention_heads: int | None
    kv_heads: int | None
    max_context: int | None  # the longest --max-model-len vLLM accepts
    #: whether the commit has top-level ``.safetensors`` weight files (the only format the Run:ai streamer
    #: loads, vllm:weightCache stream); None: unknown (no file list, or facts cached before it was read)
    safetensors: bool | None = None


class HubRefusal(Exception):
    """The Hub's answer is about the config (no such model, no access): key, value, what is valid."""

    def __init__(self, key: str, value: object, valid: str) -> None:
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}: {valid}")


class HubUnavailable(Exception):
    """The Hub did not give a usable answer; the reason names no secret."""


Warn = Callable[[str], None]


def lookup(
    model: str, token: str | None, revision: str = REVISION, warn: Warn = pulumi.log.warn
) -> ModelFacts | None:
    """The facts of ``model`` at ``revision`` (a branch, tag or commit; ``main`` unless the stack pins one),
    from the Hub or, when it cannot answer, from the cache; None (after a warning) when neither knows.
    Raises HubRefusal for a model or revision that does not exist, or that the token cannot read."""
    cached = _read_cache(model, revision)
    if _offline():
        if cached is None:
            warn(f"HF_HUB_OFFLINE is set and no facts of {model} are cached: checks fall back to the config")
        return cached
    try:
        return _ask_hub(model, token, cached, revision)
    except HubUnavailable as reason:
        if cached is not None:
            warn(
                f"Hugging Face Hub unreachable ({reason}): using the facts of {model} cached from "
                f"revision {cached.revision[:12]}"
            )
            return cached
        warn(
            f"Hugging Face Hub unreachable ({reason}): {model} not checked; sizes fall back to the "
            f"config (set vllm:modelSizeGb to pin the health-check budget)"
        )
        return None


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _offline() -> bool:
    """huggingface_hub/constants.py: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) in 1/ON/YES/TRUE."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"}


def _ask_hub(
    model: str, token: str | None, cached: ModelFacts | None, revision: str = REVISION
) -> ModelFacts:
    known_token = token.strip() if token not in (None, UNKNOWN_TOKEN) else None
    url = f"{endpoint()}/api/models/{model}/revision/{quote(revision, safe='')}"
    status, error_code, info = _get_json(url, known_token, {"blobs": "true"})
    if status == 404 and error_code == "RevisionNotFound":
        raise HubRefusal(
            "vllm:extraArgs",
            f"--revision {revision}",
            f"a branch, tag or commit of {model} on the Hugging Face Hub (not found)",
        )
    _refuse(status, model, token, error_code)
    if not isinstance(info, dict):
        raise HubUnavailable("malformed model info")
    sha, gated = info.get("sha"), bool(info.get("gated", False))
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise HubUnavailable("model info without a commit sha")
    if cached is not None and cached.revision == sha and cached.safetensors is not None:
        return cached
    try:
        weights_gb = _weights_gb(info)
        safetensors = _has_safetensors(info)
    except (TypeError, ValueError, AttributeError):
        raise HubUnavailable("malformed file list") from None
    if gated and known_token is None:
        # Without a (known) token the config cannot be read: the spec refuses a gated model without
        # vllm:hfToken, and a plan that cannot decrypt the token checks what is public.
        return ModelFacts(model, sha, True, weights_gb, None, None, None, safetensors)
    status, error_code, config = _get_json(f"{endpoint()}/{model}/resolve/{sha}/config.json", known_token)
    if status == 404:
        config = {}  # no config.json (e.g. a GGUF-only repo): nothing more to check
    _refuse(status if status != 404 else None, model, token, error_code)
    if not isinstance(config, dict):
        raise HubUnavailable("malformed config.json")
    try:
        heads, kv_heads, context = config_facts(config)
    except (TypeError, ValueError, AttributeError, KeyError):
        raise HubUnavailable("malformed config.json") from None
    facts = ModelFacts(model, sha, gated, weights_gb, heads, kv_heads, context, safetensors)
    _write_cache(facts, revision)
    return facts


def _get_json(
    url: str, token: str | None, params: Mapping[str, str] | None = None
) -> tuple[int, str | None, Any]:
    """(status, X-Error-Code, JSON body) of a Hub answer that is 200, 401, 403 or 404 (the body of the
    latter three is None); anything else is HubUnavailable."""
    headers = {"User-Agent": "vllm-pulumi"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.get(url, headers=headers, params=params, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise HubUnavailable(type(error).__name__) from None
    if response.status_code in (401, 403, 404):
        return response.status_code, response.headers.get("X-Error-Code"), None
    if response.status_code != 200:
        raise HubUnavailable(f"HTTP {response.status_code}")
    try:
        return 200, None, response.json()
    except ValueError:
        raise HubUnavailable("malformed JSON") from None


def _refuse(status: int | None, model: str, token: str | None, error_code: str | None) -> None:
    """Turn the Hub's 401/403/404 into the config key to fix. The Hub answers 401 to an anonymous
    request for a missing, private or gated repo alike (huggingface_hub utils/_http.py), and sets
    ``X-Error-Code`` (RepoNotFound, GatedRepo) when it says more."""
    if status in (None, 200):
        return
    if status == 404:
        raise HubRefusal("vllm:model", model, "a model id on the Hugging Face Hub (not found)")
    if error_code == "RepoNotFound":
        raise HubRefusal(
            "vllm:model",
            model,
            "a model id on the Hugging Face Hub (not found; a private model also needs vllm:hfToken)",
        )
    if token is None:
        raise HubRefusal(
            "vllm:hfToken",
            "(not set)",
            f"a token with access to {model}, which is gated or private: pulumi config set --secret "
            f"vllm:hfToken hf_... (the Hub answered {status} without a token)",
        )
    if token == UNKNOWN_TOKEN:
        raise HubUnavailable(f"HTTP {status} without the token, which is unknown here")
    raise HubRefusal(
        "vllm:hfToken",
        "(secret)",
        f"a token with access to {model}: the Hub answered {status} (accept the model's license at "
        f"https://huggingface.co/{model} with the token's account, or use a valid token)",
    )


def _top_level_files(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The commit's top-level files and their sizes (``siblings``), None when the answer lists none."""
    siblings = info.get("siblings")
    if not isinstance(siblings, list):
        return None
    return {
        s["rfilename"]: s.get("size")
        for s in siblings
        if isinstance(s, dict) and isinstance(s.get("rfilename"), str) and "/" not in s["rfilename"]
    }


def _has_safetensors(info: Mapping[str, Any]) -> bool | None:
    """Whether the commit has top-level ``.safetensors`` files: the Run:ai streamer's loader lists
    ``*.safetensors`` in the model's directory and fails without any (vLLM 0.33.0,
    model_executor/model_loader/runai_streamer_loader.py ``_prepare_weights``)."""
    top = _top_level_files(info)
    return None if top is None else any(name.endswith(".safetensors") for name in top)


def _weights_gb(info: Mapping[str, Any]) -> int | None:
    """Bytes of the top-level weight files vLLM loads: the ``.safetensors`` files (without
    ``consolidated*`` duplicates of sharded checkpoints), else the PyTorch ``.bin`` files; else the
    ``safetensors`` parameter counts by dtype."""
    top = _top_level_files(info) or {}
    weights = [n for n in top if n.endswith(".safetensors")]
    if any(not n.startswith("consolidated") for n in weights):
        weights = [n for n in weights if not n.startswith("consolidated")]
    if not weights:
        weights = [n for n in top if n.endswith(".bin") and n.startswith("pytorch_model")]
    sizes = [top[n] for n in weights]
    if sizes and all(isinstance(s, int) and s >= 0 for s in sizes):
        return math.ceil(sum(s for s in sizes if isinstance(s, int)) / 1e9)
    parameters = (info.get("safetensors") or {}).get("parameters") if isinstance(info, dict) else None
    if isinstance(parameters, dict) and parameters and all(d in DTYPE_BYTES for d in parameters):
        return math.ceil(sum(DTYPE_BYTES[d] * int(n) for d, n in parameters.items()) / 1e9)
    return None


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config: ``text_config`` (Llama 4, Gemma 3, ...) or the like, else
    the config itself (DeepSeek V3, Kimi K2 and plain decoders keep their fields at the top)."""
    for key in TEXT_CONFIG_KEYS:
        nested = config.get(key)
        if isinstance(nested, dict) and ("num_attention_heads" in nested or key == "text_config"):
            return nested
    return config


def config_facts(config: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(attention heads, key/value heads, context length) as vLLM derives them from config.json."""
    text = text_config(config)
    heads = _int(text.get("num_attention_heads", text.get("n_head", text.get("n_heads"))))
    kv_heads = _int(text.get("num_key_value_heads", text.get("num_kv_heads")))
    return heads, kv_heads if kv_heads is not None else heads, _context(text)


def _context(text: Mapping[str, Any]) -> int | None:
    """vLLM ``_get_and_verify_max_len``: the smallest length key, ``model_max_length`` when set, then
    RoPE scaling: a factor multiplies it except for su/longrope/llama3; yarn scales
    ``original_max_position_embeddings``; Gemma 3's length is already scaled. (vLLM also caps it by the
    tokenizer's ``model_max_length``, which this does not read: it can only accept more, never refuse
    what vLLM accepts.)"""
    lengths = [n for n in (_int(text.get(k)) for k in CONTEXT_KEYS) if n is not None]
    if not lengths:
        return None
    length: float = _int(text.get("model_max_length")) or min(lengths)
    rope = text.get("rope_parameters") or text.get("rope_scaling")
    if isinstance(rope, dict) and "gemma3" not in str(text.get("model_type", "")):
        layers = rope.values() if all(isinstance(v, dict) for v in rope.values()) else [rope]
        factor = 1.0
        for layer in layers:
            rope_type = layer.get("rope_type", layer.get("type", "default"))
            if rope_type not in ("su", "longrope", "llama3"):
                factor = float(layer.get("factor", factor))
                original = _int(layer.get("original_max_position_embeddings"))
                if rope_type == "yarn" and original:
                    length = original
        length *= factor
    return int(length)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- cache ----------------------------------------------------------------------------------------------


def cache_dir() -> Path | None:
    configured = os.environ.get(CACHE_ENV)
    if configured is None:
        return DEFAULT_CACHE_DIR
    return Path(configured) if configured.strip() else None


def _cache_file(model: str, revision: str = REVISION) -> Path | None:
    """One file per model and revision asked for (``main``'s name has no revision in it)."""
    directory = cache_dir()
    pinned = "" if revision == REVISION else f"@{quote(revision, safe='')}"
    return None if directory is None else directory / f"{quote(model, safe='')}{pinned}.json"


def _read_cache(model: str, revision: str = REVISION) -> ModelFacts | None:
    path = _cache_file(model, revision)
    try:
        data = json.loads(path.read_text()) if path is not None else None
        facts = ModelFacts(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None
    return facts if facts is not None and facts.model == model else None


def _write_cache(facts: ModelFacts, revision: str = REVISION) -> None:
    """Atomically (a half-written file would be read as no cache); a read-only checkout just has none."""
    path = _cache_file(facts.model, revision)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(asdict(facts), indent=1, sort_keys=True) + "\n")
        partial.replace(path)
    except OSError:
        return
