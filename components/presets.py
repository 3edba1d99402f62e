"""Presets: a stack's effective configuration is its preset (``stacks/<name>.yaml``, picked by
``vllm:preset`` or by a stack of the same name) overlaid key by key with the stack's own Pulumi config.

Changing ``vllm:model`` on top of a preset drops the preset's values of the keys that describe its model
(``MODEL_KEYS``: they were sized for another model); the stack's own values of them still apply. A stack
value ``unset`` removes the preset's value of any key, so the built-in default applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.autoscaling import replaced_scaling_keys
from components.config import PROJECT, UNSET, SpecError, present
from components.keys import MODEL_KEYS

PRESETS_DIR = Path(__file__).resolve().parent.parent / "stacks"


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict[str, Any]:
    """The ``config:`` map of ``stacks/<name>.yaml`` (the same shape as a Pulumi stack file)."""
    path = PRESETS_DIR / f"{name}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    return dict(document.get("config") or {})


def effective_config(stack: str, config: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """Overlay the stack's config on its preset, key by key; empty stack values do not override, ``unset``
    removes the preset's value, and another model drops the preset's ``MODEL_KEYS``."""
    explicit = present(config.get(f"{PROJECT}:preset"))
    preset = explicit if explicit is not None else (stack if stack in available_presets() else None)
    if preset is not None and preset not in available_presets():
        raise SpecError(f"{PROJECT}:preset", preset, f"one of {', '.join(available_presets())}")
    merged: dict[str, Any] = read_preset(preset) if preset else {}
    model = present(config.get(f"{PROJECT}:model"))
    if model is not None and str(model).strip() != str(merged.get(f"{PROJECT}:model", "")).strip():
        for key in MODEL_KEYS:
            merged.pop(f"{PROJECT}:{key}", None)
    chosen = {k for k, v in config.items() if present(v) is not None and str(v).strip() != UNSET}
    for key in replaced_scaling_keys(chosen):
        merged.pop(key, None)
    for key, value in config.items():
        if isinstance(value, str) and value.strip() == UNSET:
            merged[key] = None  # kept as a key, so an unknown one is still refused
        elif present(value) is not None:
            merged[key] = value
    merged[f"{PROJECT}:preset"] = preset
    return preset, merged
