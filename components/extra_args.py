"""`vllm:extraArgs` read the way `vllm serve` reads it, against the flags of the pinned vLLM release.

The flag list (components/vllm_flags.json) is generated from vLLM's own parser by tools/vllm_flags.py.
Spellings follow vLLM's ``FlexibleArgumentParser.parse_args`` (vllm/utils/argparse_utils.py, 0.33.0):

- ``--flag value`` and ``--flag=value``; underscores in a ``--`` name, up to its first ``.``, read as
  dashes (``--hf_token`` is ``--hf-token``);
- booleans: ``--x`` and its negatives ``--no-x`` (``--enable-x`` / ``--disable-x`` pairs too), no value;
- short aliases the parser registers (``-tp``, ``-q``, ``-cc``, ...), as ``-tp 2`` or ``-tp=2``, and
  ``-O3`` / ``-O=3`` / ``-O 3``, which vLLM rewrites to ``--optimization-level``;
- list-valued flags (nargs ``+``/``*``) take the items that follow, up to the next flag;
- JSON-valued flags take one JSON document (``--compilation-config '{"mode": 3}'``) or vLLM's dotted keys
  (``--compilation-config.mode 3``, ``--x.list+ a,b``); the document must parse (config objects must be
  JSON objects), its fields are checked by vLLM at boot.

Stricter than argparse on purpose: an abbreviation (argparse's ``allow_abbrev`` takes ``--api-ke`` for
``--api-key``) and a short alias glued to its value (``-qawq``) are refused with the full spelling
suggested, so every flag a stack passes is named in full.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FLAGS_FILE = Path(__file__).resolve().parent / "vllm_flags.json"
JSON_KINDS = ("json", "json_config", "json_or_str")
NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse reads these as values, not flags
HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
REDACTED = "<redacted>"
#: vLLM's default --gpu-memory-utilization: the share of GPU memory it takes for weights, activations and
#: KV cache (vllm/config/cache.py); weights beyond it cannot serve.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9


class ExtraArgError(ValueError):
    """One bad item of extraArgs: what to show (secrets redacted) and what is valid."""

    def __init__(self, shown: str, valid: str) -> None:
        super().__init__(f"{shown}: {valid}")
        self.shown, self.valid = shown, valid


@dataclass(frozen=True)
class Flag:
    """One `vllm serve` option as vLLM's parser defines it (a record of vllm_flags.json)."""

    options: tuple[str, ...]
    dest: str
    action: str
    takes_value: bool
    nargs: int | str | None
    type: str
    none_allowed: bool
    choices: tuple[Any, ...] = ()
    negative_options: tuple[str, ...] = ()
    range: Mapping[str, Any] | None = None
    fields: tuple[str, ...] = ()  # a JSON config's keys, when vLLM refuses others
    required_fields: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The canonical spelling: the first long option vLLM declares (``--help`` for ``-h, --help``)."""
        return next((o for o in self.options if o.startswith("--")), self.options[0])


@dataclass(frozen=True)
class FlagTable:
    vllm_version: str
    flags: tuple[Flag, ...]
    secret_name_candidates: tuple[str, ...]

    @property
    def by_option(self) -> dict[str, Flag]:
        return {option: flag for flag in self.flags for option in flag.options}


@cache
def load_flags() -> FlagTable:
    data = json.loads(FLAGS_FILE.read_text())
    flags = tuple(
        Flag(
            **{
                **record,
                "options": tuple(record["options"]),
                "choices": tuple(record.get("choices", ())),
                "negative_options": tuple(record.get("negative_options", ())),
                "fields": tuple(record.get("fields", ())),
                "required_fields": tuple(record.get("required_fields", ())),
            }
        )
        for record in data["flags"]
    )
    return FlagTable(data["vllm_version"], flags, tuple(data["secret_name_candidates"]))


def normalise(option: str) -> str:
    """vLLM's spelling rule: in a ``--`` name, underscores up to the first ``.`` are dashes."""
    if not option.startswith("--"):
        return option
    head, dot, tail = option[2:].partition(".")
    return "--" + head.replace("_", "-") + dot + tail


def _split(token: str) -> tuple[str, str | None]:
    """``--name=value`` → (normalised name, value); ``-O3`` → (--optimization-level, 3), as vLLM reads it."""
    if token.startswith("-O") and not token.startswith("--") and token != "-O":
        return "--optimization-level", token[3:] if token[2] == "=" else token[2:]
    if token == "-O":
        return "--optimization-level", None
    name, equals, value = token.partition("=")
    return normalise(name), value if equals else None


def _is_flag(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not NEGATIVE_NUMBER.match(token)


def _suggestion(name: str, options: list[str]) -> str:
    glued = [o for o in options if not name.startswith("--") and len(o) > 1 and name.startswith(o)]
    if glued:
        short = max(glued, key=len)
        return f"; did you mean {short} {name[len(short) :]}?"
    longer = [o for o in options if o.startswith(name) and o.startswith("--") == name.startswith("--")]
    close = longer[:1] or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _number_text(value: float) -> str:
    return f"{value:g}"


def _range_text(bounds: Mapping[str, Any]) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{words[k]} {_number_text(v)}" for k, v in bounds.items() if k in words]
    return " and ".join(parts)


def _in_range(number: float, bounds: Mapping[str, Any]) -> bool:
    checks = {
        "gt": lambda b: number > b,
        "ge": lambda b: number >= b,
        "lt": lambda b: number < b,
        "le": lambda b: number <= b,
    }
    return all(check(bounds[k]) for k, check in checks.items() if k in bounds)


def _human_int(text: str) -> int:
    """vLLM's ``human_readable_int``: 1k = 1000, 1K = 1024, 25.6k; no decimals with binary suffixes."""
    match = HUMAN_INT.fullmatch(text.strip())
    if not match:
        return int(text)
    number, suffix = match.groups()
    if suffix.islower():
        return int(float(number) * 10 ** (3 * "kmgt".index(suffix) + 3))
    return int(number) * 2 ** (10 * "KMGT".index(suffix) + 10)


def _expand_human_numbers(text: str) -> str:
    """vLLM expands bare 80m / 4K inside config JSON before parsing it (``parse_dataclass``)."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\b\d+(?:\.\d+)?[kKmMgGtT]\b", lambda m: str(_human_int(m.group())), parts[i])
    return "".join(parts)


def _parse_value(flag: Flag, spelled: str, text: str) -> Any:
    """The value as vLLM's ``type`` converts it; raise ExtraArgError where vLLM's parser would refuse."""
    shown = f"{spelled}={text}"
    kind = flag.type
    if flag.none_allowed and text in ("", "None"):
        return None
    try:
        if kind == "int":
            return int(text)
        if kind in ("human_int", "human_int_or_auto"):
            if kind == "human_int_or_auto" and text.strip().lower() in ("auto", "-1"):
                return -1
            return _human_int(text)
        if kind == "float":
            number = float(text)
            if math.isnan(number):
                raise ValueError(text)
            return number
    except ValueError:
        what = {"float": "a number"}.get(kind, "an integer")
        extra = " (or 1k, 2M ... as vLLM reads sizes)" if kind.startswith("human_int") else ""
        raise ExtraArgError(shown, f"{what} for {flag.name}{extra}") from None
    if kind in JSON_KINDS:
        if kind == "json_or_str" and not re.match(r"(?s)^\s*{.*}\s*$", text):
            return text
        try:
            document = json.loads(_expand_human_numbers(text) if kind == "json_config" else text)
        except json.JSONDecodeError as error:
            raise ExtraArgError(shown, f"JSON for {flag.name} ({error.msg})") from None
        if kind == "json_config" and not isinstance(document, dict):
            raise ExtraArgError(shown, f"a JSON object for {flag.name} (or {flag.name}.<field> <value>)")
        if kind == "json_config":
            for key in document:
                _check_config_field(flag, shown, key)
        return document
    if kind == "lora_module" and not ("=" in text and "," not in text):
        # vLLM's LoRAParserAction: name=path, or a JSON object with the adapter's fields.
        valid = f"name=path or a JSON object with {', '.join(flag.required_fields)} for {flag.name}"
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            raise ExtraArgError(shown, valid) from None
        if not isinstance(document, dict) or not set(flag.required_fields) <= set(document):
            raise ExtraArgError(shown, valid)
        for key in document:
            _check_config_field(flag, shown, key)
    if kind == "lower_snake":
        return text.lower().replace("-", "_")
    return text


def _check_config_field(flag: Flag, shown: str, key: str) -> None:
    """vLLM's config classes forbid unknown fields (``extra="forbid"``, vllm/config/utils.py)."""
    if flag.fields and key not in flag.fields:
        close = difflib.get_close_matches(key, flag.fields, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f": {', '.join(flag.fields)}"
        raise ExtraArgError(shown, f"a field of {flag.name}{hint}")


def _check_value(flag: Flag, spelled: str, text: str) -> None:
    value = _parse_value(flag, spelled, text)
    if value is None:
        return
    if flag.choices and value not in flag.choices:
        choices = ", ".join(str(c) for c in flag.choices)
        raise ExtraArgError(f"{spelled}={text}", f"one of {choices} for {flag.name}")
    if flag.range and isinstance(value, int | float) and not _in_range(value, flag.range):
        source = flag.range.get("source", "")
        raise ExtraArgError(
            f"{spelled}={text}", f"a number {_range_text(flag.range)} for {flag.name} (vLLM's {source})"
        )


def _values_taken(flag: Flag, spelled: str, args: tuple[str, ...], start: int) -> list[str]:
    """The items after a flag that are its values, by its nargs."""
    following = []
    for token in args[start:]:
        if _is_flag(token):
            break
        following.append(token)
    if flag.nargs is None:
        if not following:
            raise ExtraArgError(spelled, f"{flag.name} followed by its value")
        return following[:1]
    if flag.nargs == "?":
        return following[:1]
    if flag.nargs == "+" and not following:
        raise ExtraArgError(spelled, f"{flag.name} followed by one or more values")
    if isinstance(flag.nargs, int):
        if len(following) < flag.nargs:
            raise ExtraArgError(spelled, f"{flag.name} followed by {flag.nargs} values")
        return following[: flag.nargs]
    return following


def _has_value(args: tuple[str, ...], index: int, attached: str | None) -> bool:
    return attached is not None or (index + 1 < len(args) and not _is_flag(args[index + 1]))


def _refuse(refused: Mapping[str, str], flag_name: str, token: str, has_value: bool, secret: bool) -> None:
    """Raise if ``flag_name`` is refused, showing the item as written, or for a secret flag only its name."""
    reason = refused.get(flag_name)
    if reason is None:
        return
    if normalise(token.partition("=")[0]) != flag_name:
        reason = f"{token.partition('=')[0]} is {flag_name}: {reason}"
    if secret:
        written = token.partition("=")[0]
        raise ExtraArgError(f"{written}={REDACTED}" if has_value else written, reason)
    raise ExtraArgError(token, reason)


def check_flags(args: tuple[str, ...], refused: Mapping[str, str], secrets: frozenset[str]) -> None:
    """Raise ExtraArgError on the first item `vllm serve` of the pinned vLLM would refuse, or that names a
    flag in ``refused`` (canonical name → why). Values of ``secrets`` flags are never shown."""
    table = load_flags()
    by_option = table.by_option
    options = sorted(by_option)
    index = 0
    while index < len(args):
        token = args[index]
        if not _is_flag(token):
            raise ExtraArgError(
                token, "vllm serve flags such as --enable-prefix-caching; a value follows the flag it sets"
            )
        name, attached = _split(token)
        if token == "-O" and (args[index + 1] if index + 1 < len(args) else "") not in {"0", "1", "2", "3"}:
            name = token  # vLLM rewrites a lone -O only before a level 0-3
        base, dot, key = name.partition(".")
        flag = by_option.get(base)
        if flag is None:
            raise ExtraArgError(
                base, f"a vllm serve flag of vLLM {table.vllm_version}{_suggestion(base, options)}"
            )
        _refuse(refused, flag.name, token, _has_value(args, index, attached), flag.name in secrets)
        index += 1
        if dot:
            # vLLM's dotted JSON keys: the next item is the value whatever it looks like.
            if flag.type not in JSON_KINDS:
                raise ExtraArgError(token, f"{flag.name} <value> ({flag.name} is not a JSON-valued flag)")
            if attached is None:
                if index >= len(args):
                    raise ExtraArgError(token, f"{name} followed by its value")
                index += 1
            if not key.rstrip("+") or "" in key.rstrip("+").split("."):
                raise ExtraArgError(token, f"{flag.name}.<field> <value>, e.g. --compilation-config.mode 3")
            _check_config_field(flag, token, key.rstrip("+").split(".")[0])
            continue
        if not flag.takes_value:
            if attached is not None:
                negative = f" (or {flag.negative_options[0]})" if flag.negative_options else ""
                raise ExtraArgError(token, f"{base} alone: it takes no value{negative}")
            continue
        if attached is not None:
            values = [attached]
        else:
            values = _values_taken(flag, base, args, index)
            index += len(values)
        for value in values:
            _check_value(flag, base, value)


def check_refused_flags(args: tuple[str, ...], refused: Mapping[str, str], secrets: frozenset[str]) -> None:
    """For an image of another vLLM version, whose other flags are not known here: refuse only the
    ``refused`` flags, in any spelling, and their abbreviations (argparse takes any unambiguous prefix)."""
    aliases = {option: flag.name for flag in load_flags().flags for option in flag.options}
    for index, token in enumerate(args):
        if not _is_flag(token):
            continue
        name, attached = _split(token)
        base = name.partition(".")[0]
        named = aliases.get(base, base)
        for flag_name in refused:
            if named == flag_name or (base.startswith("--") and len(base) > 3 and flag_name.startswith(base)):
                _refuse(refused, flag_name, token, _has_value(args, index, attached), flag_name in secrets)


def option_value(args: tuple[str, ...], option: str) -> str | None:
    """The value the last ``option`` in ``args`` sets (``--option value`` or ``--option=value``), as argparse
    keeps the last one; None when it is absent or has no value. ``args`` are extraArgs that passed
    ``check_flags``, so a flag's value is the item after it."""
    value = None
    for index, token in enumerate(args):
        name, attached = _split(token) if _is_flag(token) else (None, None)
        if name != option:
            continue
        if attached is not None:
            value = attached
        elif index + 1 < len(args) and not _is_flag(args[index + 1]):
            value = args[index + 1]
    return value


# --- the program's flag policy ---------------------------------------------------------------------------

# These are set from the spec (or from the secret store) and must not be overridden by extraArgs.
MANAGED_FLAGS = (
    "--host",
    "--port",
    "--model",
    "--served-model-name",
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--max-model-len",
    "--api-key",
    "--distributed-executor-backend",
)
#: Flags that carry a secret. Reviewed by hand from the pinned vLLM's flags whose names say token, key,
#: secret or password (``secret_name_candidates`` in components/vllm_flags.json); the others there count
#: tokens or name files and tokenizers (NOT_SECRET_FLAGS), e.g. ``--ssl-keyfile`` is a path.
SECRET_FLAGS = ("--api-key", "--hf-token")
NOT_SECRET_FLAGS = (
    "--dbo-decode-token-threshold",
    "--dbo-prefill-token-threshold",
    "--disable-prompt-tokens-details",
    "--disable-tokenizer-info-endpoint",
    "--enable-prompt-tokens-details",
    "--enable-tokenizer-info-endpoint",
    "--long-prefill-token-threshold",
    "--long-prefill-token-threshold-adaptive",
    "--max-num-batched-tokens",
    "--max-num-queued-tokens",
    "--max-num-scheduled-tokens",
    "--no-enable-prompt-tokens-details",
    "--no-enable-tokenizer-info-endpoint",
    "--no-long-prefill-token-threshold-adaptive",
    "--no-return-tokens-as-token-ids",
    "--no-skip-tokenizer-init",
    "--no-tokens-only",
    "--return-tokens-as-token-ids",
    "--skip-tokenizer-init",
    "--spec-tokens",
    "--ssl-keyfile",
    "--tokenizer",
    "--tokenizer-mode",
    "--tokenizer-revision",
    "--tokens-only",
)
#: Real vLLM flags that would take the server away from the HTTP port the load balancer and health check
#: use, or read flags from where these checks cannot see them.
SERVING_FLAGS = {
    "--help": "no --help (vllm serve prints help and exits)",
    "--config": "flags in vllm:extraArgs itself, not a config file (its flags would escape these checks)",
    "--uds": "no --uds (the load balancer and health check reach vLLM on its TCP port)",
    "--headless": "no --headless (every replica serves the OpenAI API)",
    "--grpc": "no --grpc (the load balancer speaks HTTP to the OpenAI API)",
    **dict.fromkeys(
        ("--ssl-certfile", "--ssl-keyfile"),
        "no TLS flags: set vllm:domain (the clouds' load balancers terminate HTTPS and health-check HTTP) "
        "or, on kubernetes, vllm:tlsSecretName (vLLM serves the Secret's certificate)",
    ),
}


def refused_flags() -> dict[str, str]:
    """Canonical vLLM flag name → why extraArgs may not carry it."""
    managed = f"flags other than {', '.join(MANAGED_FLAGS)} (set by the spec and the secret store)"
    secret = "no secret in flags: set vllm:hfToken / vllm:apiKey as secrets; they reach vLLM by environment"
    return {
        **dict.fromkeys(MANAGED_FLAGS, managed),
        **dict.fromkeys(SECRET_FLAGS, secret),
        **SERVING_FLAGS,
    }


def gpu_memory_utilization(extra_args: tuple[str, ...]) -> float:
    """The share of GPU memory vLLM takes: the value vLLM reads from extraArgs (the last occurrence, in any
    spelling, as ``option_value`` reads it), else vLLM's default. The pinned vLLM's range was checked by
    check_flags; an image of another version is not, so a value outside (0, 1] counts as the default."""
    value = option_value(extra_args, "--gpu-memory-utilization")
    try:
        share = float(value) if value is not None else DEFAULT_GPU_MEMORY_UTILIZATION
    except ValueError:
        return DEFAULT_GPU_MEMORY_UTILIZATION
    return share if 0 < share <= 1 else DEFAULT_GPU_MEMORY_UTILIZATION
