"""The leaf of the core: config reading that every layer shares, importing nothing of this program's but
the SDK seam (components/sdk_internals.py).

``SpecError`` is the one way a bad value stops the program (a ``pulumi.RunError``: one message naming the
key, the value and what is valid, no traceback); ``ConfigReader`` reads typed values of the merged config;
``UNSET`` is the stack value that removes a preset's value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, overload

import pulumi

from components import sdk_internals

PROJECT = "vllm"

#: A stack value that removes the preset's value of a key, so the built-in default applies.
UNSET = "unset"


class SpecError(pulumi.RunError):
    """An invalid config value: one message naming the key, the bad value and what is valid."""

    def __init__(self, key: str, value: object, valid: str) -> None:
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}: invalid value {value!r}: {valid}")


def stack_config() -> dict[str, str]:
    """The stack's own config as Pulumi hands it to the program (every value a string)."""
    return sdk_internals.stack_config()


def present(value: Any) -> Any:
    """None for values that mean "not set": absent, empty string, empty list."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "[]")):
        return None
    if isinstance(value, list | tuple) and not value:
        return None
    return value


class ConfigReader:
    """Typed access to the merged config; every failure names the full key."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def raw(self, key: str) -> Any:
        return present(self.values.get(key if ":" in key else f"{PROJECT}:{key}"))

    @overload
    def string(self, key: str) -> str | None: ...
    @overload
    def string(self, key: str, default: str) -> str: ...
    @overload
    def string(self, key: str, default: str | None) -> str | None: ...
    def string(self, key: str, default: str | None = None) -> str | None:
        """A text value as written: surrounding whitespace is refused, never silently dropped (no name,
        id or host a platform takes has any)."""
        value = self.raw(key)
        if value is None:
            return default
        text = str(value)
        if text != text.strip():
            raise SpecError(_full(key), value, f"{text.strip()!r}, without the surrounding whitespace")
        return text

    @overload
    def choice(self, key: str, choices: tuple[str, ...]) -> str | None: ...
    @overload
    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str: ...
    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.string(key, default)
        if value is not None and value not in choices:
            raise SpecError(_full(key), value, f"one of {', '.join(choices)}")
        return value

    @overload
    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int: ...
    @overload
    def integer(self, key: str, default: None, minimum: int, maximum: int | None = None) -> int | None: ...
    def integer(self, key: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
        """A decimal integer within [minimum, maximum]; a key without a bound of its own is bounded by
        ``NUMBER_MAX`` (``check_number``)."""
        value = self.raw(key)
        if value is None:
            return default
        text = str(value).strip()
        number = int(text) if DECIMAL_INTEGER.match(text) and not isinstance(value, bool) else None
        if number is None and INTEGER_LOOKALIKE.match(text):
            why = "decimal digits, no leading zero, separator or base prefix (YAML tools disagree on those)"
            raise SpecError(_full(key), value, f"an integer >= {minimum}: {why}")
        return int(check_number(_full(key), value, number, minimum, maximum, integer=True))

    def number(self, key: str, minimum: float, maximum: float | None = None) -> float | None:
        """A finite number > minimum (and <= maximum, else ``NUMBER_MAX``)."""
        value = self.raw(key)
        if value is None:
            return None
        try:
            number = float(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        return check_number(_full(key), value, number, minimum, maximum, integer=False)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise SpecError(_full(key), value, "true or false")
        return text == "true"

    def string_list(
        self, key: str, item_check: Callable[[str], bool] | None = None, valid: str = ""
    ) -> tuple:
        value = self.raw(key)
        if value is None:
            return ()
        items = value
        if isinstance(value, str):
            try:
                items = json.loads(value)
            except json.JSONDecodeError:
                items = None
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise SpecError(_full(key), value, "a list of non-empty strings")
        if item_check is not None:
            for item in items:
                if not item_check(item):
                    raise SpecError(_full(key), item, valid)
        return tuple(items)


#: The bound of every numeric key that names none of its own: beyond a signed 32-bit integer no key means
#: anything (Kubernetes' and the clouds' count fields are int32; vLLM's token counts are far below it).
NUMBER_MAX = 2**31 - 1
DECIMAL_INTEGER = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")
#: Integers spelled in a way YAML 1.1, YAML 1.2 and Go disagree on: ``010``, ``0x10``, ``0o10``, ``1_000``.
INTEGER_LOOKALIKE = re.compile(r"^[+-]?(0[0-9_]+|0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*)$")


def check_number(
    key: str, value: object, number: float | None, minimum: float, maximum: float | None, integer: bool
) -> float:
    """One rule for every numeric key: a finite number (never nan or inf) within its bounds, the
    integers' minimum inclusive and the others' exclusive, the maximum ``NUMBER_MAX`` unless the key's is
    lower. SpecError quotes the value as written."""
    top = NUMBER_MAX if maximum is None else min(maximum, NUMBER_MAX)
    low = f">= {_plain_number(minimum)}" if integer else f"> {_plain_number(minimum)}"
    bound = f"{'an integer' if integer else 'a number'} {low} and <= {_plain_number(top)}"
    bound += "" if integer else " (not nan or inf)"
    too_low = number is not None and (number < minimum if integer else number <= minimum)
    if number is None or not math.isfinite(number) or too_low or number > top:
        raise SpecError(key, value, bound)
    return number


def _plain_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _full(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"
