"""Scripts that run on machines, kept as real ``.sh`` files so they can be linted and run in tests.

A template marks each value it needs as ``{{name}}``. ``render`` fills every marker with a shell-quoted
value (a list becomes shell-quoted words, for arrays: ``ARGS=({{args}})``), and refuses a missing or
unused value and any ``pulumi.Output``: a rendered script is plain text known at preview time, so it can
never carry a secret resolved from the secret store. An ``Included`` value, another script of this
repository rendered in turn (its own values quoted), goes in as is, on its marker's own line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
MARKER = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


def path(name: str | Path) -> Path:
    """A script of this folder by name, or any script by its absolute path (a platform's own)."""
    return SCRIPTS_DIR / name


def source(name: str | Path) -> str:
    return path(name).read_text()


def markers(name: str | Path) -> set[str]:
    """The values the script ``name`` needs."""
    return set(MARKER.findall(source(name)))


@dataclass(frozen=True)
class Included:
    """A rendered script of this repository placed as is into another: code, never a stack's value."""

    text: str


Value = str | int | bool | list[str] | tuple[str, ...] | Included


def render(name: str | Path, **values: Value) -> str:
    """The script ``name`` with each ``{{key}}`` replaced by its shell-quoted value."""
    text = source(name)
    wanted = markers(name)
    missing, unused = wanted - values.keys(), values.keys() - wanted
    if missing or unused:
        raise ValueError(f"{name}: missing values {sorted(missing)}, unused values {sorted(unused)}")
    for key, value in values.items():
        if isinstance(value, Included):
            if not re.search(rf"^\{{\{{{key}\}}\}}$", text, re.MULTILINE):
                raise ValueError(f"{name}: the included script {key} needs its marker on a line of its own")
            continue
        words = value if isinstance(value, list | tuple) else [value]
        if not all(isinstance(word, str | int | bool) for word in words):
            raise TypeError(f"{name}: {key} must be plain text known at preview time, not {type(value)}")
    return MARKER.sub(lambda m: _quoted(values[m.group(1)]), text)


def _quoted(value: Value) -> str:
    if isinstance(value, Included):
        return value.text.rstrip("\n")
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(str(word)) for word in value)
    return shlex.quote(str(value).lower() if isinstance(value, bool) else str(value))


def without_comments(script: str) -> str:
    """A shell script without its whole-line comments (the shebang stays), as machines receive it: AWS user
    data must stay within 16 KB, and a pod's command is read in its spec. The project's scripts' heredocs
    hold only Python, systemd units and the Ops Agent's YAML, where such a line is a comment too."""
    lines = script.splitlines(keepends=True)
    return lines[0] + "".join(line for line in lines[1:] if not line.lstrip().startswith("#"))
