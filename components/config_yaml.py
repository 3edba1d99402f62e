"""Stack files (``Pulumi.<stack>.yaml``) read as the Pulumi CLI reads them, so that a plan equals an up.

The CLI decodes a stack file with Go's ``gopkg.in/yaml.v3`` into its ``ProjectStack`` (pulumi
sdk/go/common/workspace/loaders.go), whose ``config`` is a map of ``config.Value``; a value is first
decoded as a Go string (sdk/go/common/resource/config/value.go ``unmarshalValue``), else as an object that
is kept as JSON. yaml.v3 (decode.go ``scalar``, resolve.go ``resolve``) then gives these rules, which PyYAML's
YAML 1.1 resolver does not follow:

- a scalar value reaches the program as its text as written: ``no``, ``on``, ``010``, ``0x10``, ``1_000``,
  ``5:00``, ``.inf`` are those strings (yaml.v3 sets a string from the node's text whatever it resolves to);
- a null scalar (``~``, ``null``, ``Null``, ``NULL``, nothing) is the empty string: yaml.v3 calls no
  unmarshaler for a null node and the map keeps the zero ``Value``;
- inside a list or map (an object value) scalars resolve as yaml.v3 resolves them: only ``true``/``false``
  (any of three cases) are booleans, so ``yes``/``no``/``on``/``off`` are strings; integers are Go's
  ``strconv.ParseInt(text, 0, 64)`` after dropping ``_`` (``010`` is octal 8, ``0x10`` 16, ``1_000``
  1000), then ``0b``/``0o`` forms; ``.inf``/``.nan`` are floats, which Go's JSON encoder refuses;
- a key defined twice in any mapping is an error (yaml.v3 ``mapping``: "mapping key ... already defined").

Everything wrong with a file is one ``StackFileError`` naming the file, never a traceback.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

#: The fields of the CLI's ``ProjectStack`` (pulumi sdk/go/common/workspace/project.go): anything else at
#: the top of a stack file is ignored by the CLI, which is how a file without the ``config:`` level (or
#: with a misspelt one) silently configures nothing; the plan refuses config keys there instead, and
#: ignores other fields as the CLI does (a preset's ``description``).
STACK_FILE_FIELDS = ("secretsprovider", "encryptedkey", "encryptionsalt", "config", "environment")
#: The tag this loader gives a plain (unquoted, untagged) scalar, resolved later by Go's rules.
PLAIN = "!go-plain"
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
NULLS = ("", "~", "null", "Null", "NULL")
TRUES = ("true", "True", "TRUE")
FALSES = ("false", "False", "FALSE")
SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
#: yaml.v3's ``yamlStyleFloat``.
YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1


class StackFileError(ValueError):
    """A stack file the Pulumi CLI would refuse (or silently misread): one line naming the file."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        super().__init__(f"{path}: {what}")


class GoYamlLoader(yaml.SafeLoader):
    """PyYAML's scanner, parser and composer, with every plain scalar left unresolved (``PLAIN``) so that
    ``go_resolve`` applies yaml.v3's resolver, not YAML 1.1's."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return PLAIN
        return super().resolve(kind, value, implicit)


def read_stack_config(path: Path) -> dict[str, Any]:
    """The ``config:`` of the stack file at ``path`` as the CLI hands it to the program: each value its
    text (``""`` for null), or for a list or map the value yaml.v3 decodes (``{"secure": ...}`` included).
    StackFileError for anything the CLI would refuse, and for config keys outside ``config:``."""
    if not path.exists():
        raise StackFileError(path, "does not exist")
    if path.is_dir():
        raise StackFileError(path, "is a directory, not a stack file (Pulumi.<stack>.yaml)")
    try:
        text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except OSError as error:
        raise StackFileError(path, f"cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise StackFileError(path, "is not UTF-8 text, so not YAML") from None
    try:
        root = yaml.compose(text, Loader=GoYamlLoader)
    except yaml.MarkedYAMLError as error:
        raise StackFileError(path, f"is not valid YAML: {_yaml_problem(error)}") from None
    except yaml.YAMLError as error:
        raise StackFileError(path, f"is not valid YAML: {error}") from None
    if root is None or _is_null(root):
        return {}
    _refuse_duplicate_keys(path, root)
    if not isinstance(root, yaml.MappingNode):
        raise StackFileError(path, f"is a YAML {_kind(root)}, not a mapping with a config: key")
    config_node = None
    for key, value in root.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
        if name == "config":
            config_node = value
        elif name not in STACK_FILE_FIELDS and (":" in name or _holds_config_keys(value)):
            where = f"line {key.start_mark.line + 1}: {name!r} at the top level"
            if ":" in name:
                hint = "config keys go under a top-level config: mapping (the pulumi CLI ignores them here)"
            else:
                hint = f"config keys go under config: (the pulumi CLI ignores a {name}: mapping)"
            raise StackFileError(path, f"{where}: {hint}")
    if config_node is None or _is_null(config_node):
        return {}
    if not isinstance(config_node, yaml.MappingNode):
        raise StackFileError(
            path,
            f"line {config_node.start_mark.line + 1}: config is a YAML {_kind(config_node)}, not a mapping",
        )
    config: dict[str, Any] = {}
    for key, value in config_node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode) or ":" not in key.value.strip(":"):
            shown = key.value if isinstance(key, yaml.ScalarNode) else _kind(key)
            raise StackFileError(
                path, f"line {line}: config key {shown!r} is not of the form <namespace>:<name> (vllm:gpu)"
            )
        try:
            config[key.value] = _config_value(value)
        except ValueError as error:
            raise StackFileError(path, f"line {value.start_mark.line + 1}: {key.value}: {error}") from None
    return config


def flow_value(text: str) -> Any:
    """A ``[...]`` or ``{...}`` typed on a command line, decoded as the same text in a stack file would
    be (yaml.v3's resolver); ValueError when it is not one YAML collection."""
    try:
        node = yaml.compose(text, Loader=GoYamlLoader)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from None
    if not isinstance(node, yaml.SequenceNode | yaml.MappingNode):
        raise ValueError(f"not a YAML list or mapping: {text!r}")
    value = _decode(node)
    _check_json(value)
    return value


def _holds_config_keys(node: yaml.Node) -> bool:
    """A mapping of ``namespace:name`` keys: a config block under another name (``confg:``)."""
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and ":" in key.value for key, _ in node.value
    )


def _config_value(node: yaml.Node) -> Any:
    """One config value as ``config.Value`` takes it: a scalar's text, else the decoded object."""
    if isinstance(node, yaml.ScalarNode):
        return "" if _is_null(node) else node.value
    value = _decode(node)
    _check_json(value)
    return value


def _decode(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {_key_text(_decode(key)): _decode(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_decode(item) for item in node.value]
    assert isinstance(node, yaml.ScalarNode)
    return go_resolve(node.value) if node.tag == PLAIN else _tagged(node)


def _key_text(key: Any) -> str:
    """Go's ``fmt.Sprintf("%v", key)`` of a map key (config.Value's ``interfaceMapToStringMap``)."""
    if isinstance(key, bool):
        return str(key).lower()
    if key is None:
        return "<nil>"
    return key if isinstance(key, str) else _go_number(key)


def _tagged(node: yaml.ScalarNode) -> Any:
    """A quoted scalar is a string; an explicitly tagged one (``!!int 3``) resolves under its tag, and any
    other tag leaves the text (yaml.v3 ``resolvableTag``)."""
    if node.tag == STR_TAG or node.style is not None:
        return node.value
    if node.tag == NULL_TAG:
        return None
    kind = node.tag.removeprefix("tag:yaml.org,2002:")
    fits = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
    }
    if kind not in fits:
        return node.value
    resolved = go_resolve(node.value)
    if not fits[kind](resolved):
        raise ValueError(f"cannot decode {node.value!r} as !!{kind}")
    return float(resolved) if kind == "float" else resolved


def go_resolve(text: str) -> Any:
    """What yaml.v3's ``resolve`` makes of a plain scalar inside a list or map (see the module docstring)."""
    if text in NULLS:
        return None
    if text in TRUES or text in FALSES:
        return text in TRUES
    if text in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[text]
    if text[0] == ".":
        return _go_parse_float(text) if YAML_STYLE_FLOAT.match(text) else text
    if text[0] not in "0123456789+-":
        return text
    if (date := _go_date(text)) is not None:
        return date
    plain = text.replace("_", "")
    number = _go_parse_int(plain)
    if number is not None:
        return number
    if YAML_STYLE_FLOAT.match(plain):
        return _go_parse_float(plain)
    return text


def _go_parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)`` (or ParseUint): a sign, then ``0x``/``0o``/``0b`` or a
    leading ``0`` for octal, else decimal; None where Go fails."""
    sign, digits = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    lowered = digits.lower()
    if lowered.startswith(("0x", "0o", "0b")) and len(digits) > 2:
        base, body = {"x": 16, "o": 8, "b": 2}[lowered[1]], digits[2:]
    elif len(digits) > 1 and digits[0] == "0":
        base, body = 8, digits[1:]
    else:
        base, body = 10, digits
    if not body or not re.fullmatch(r"[0-9a-fA-F]+", body):
        return None
    try:
        value = int(body, base)
    except ValueError:
        return None
    value = -value if sign == "-" else value
    return value if (INT64[0] <= value <= INT64[1]) or (not sign and value <= UINT64_MAX) else None


def _go_parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _go_date(text: str) -> str | None:
    """yaml.v3 resolves ``2006-1-2`` (a date alone) to a ``time.Time``, which Go's JSON writes in RFC 3339;
    the other timestamp forms are left as text here."""
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if match is None:
        return None
    try:
        day = datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return f"{day.isoformat()}T00:00:00Z"


def _check_json(value: Any) -> None:
    """Go's ``json.Marshal`` refuses NaN and infinities ("json: unsupported value: +Inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {_go_number(value)} (the pulumi CLI cannot store it)")
    if isinstance(value, dict):
        for item in value.values():
            _check_json(item)
    if isinstance(value, list):
        for item in value:
            _check_json(item)


def go_json(value: Any) -> str:
    """An object value as the CLI stores it for the program: Go's JSON, keys sorted, a whole float written
    as an integer (``encoding/json`` formats float64 ``1`` as ``1``)."""

    def plain(item: Any) -> Any:
        if isinstance(item, float) and math.isfinite(item) and item.is_integer() and abs(item) < 1e21:
            return int(item)
        if isinstance(item, dict):
            return {key: plain(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [plain(inner) for inner in item]
        return item

    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"))


def _go_number(value: float | int) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(value)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and (
        node.tag == NULL_TAG or (node.tag == PLAIN and node.value in NULLS)
    )


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "list"
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return f"scalar ({node.value!r})"


def _refuse_duplicate_keys(path: Path, node: yaml.Node, seen: set[int] | None = None) -> None:
    """yaml.v3 refuses a mapping whose keys repeat (same kind, same text), at any depth."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already checked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[type, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if (type(key), key.value) in first:
                    raise StackFileError(
                        path,
                        f"line {line}: mapping key {key.value!r} already defined at line "
                        f"{first[(type(key), key.value)]} (the pulumi CLI refuses a key set twice)",
                    )
                first[(type(key), key.value)] = line
            _refuse_duplicate_keys(path, value, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, seen)


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem in one line, with its line and column, and what a tab means in YAML."""
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = str(error.problem or error.context or "malformed")
    if "\\t" in problem or "\t" in problem:
        problem += " (YAML indents with spaces, never tabs)"
    return f"{where}{problem}"
