"""The key registry: every config key a stack may set, and the refusal of any other.

``vllm:`` keys are the program's own: ``COMMON_KEYS`` on every platform, each platform's ``keys`` (its
platform.py), the stack-only ``SECRET_KEYS``. A provider's keys (``gcp:``, ``aws:``, ``kubernetes:``) are
the ones its installed SDK defines (components/provider_config.py reads them from the SDK's sources). A key
no one reads is refused, naming the nearest known key; a key only another platform reads is refused,
naming that platform.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from typing import Any

from components import platforms
from components.autoscaling import KEYS as AUTOSCALING_KEYS
from components.config import PROJECT, SpecError, present
from components.provider_config import provider_config_keys

#: Config keys a preset or a stack may set for any platform; each platform adds its own (its platform.py's
#: ``keys``). Secrets (hfToken, apiKey) are stack-only.
COMMON_KEYS = (
    "preset",
    "cloud",
    "gpu",
    "model",
    "servedModelName",
    "replicas",
    "nodes",
    "image",
    "maxModelLen",
    "extraArgs",
    "diskSizeGb",
    "modelSizeGb",
    "spot",
    "onDemandBaseReplicas",
    "reservation",
    "allowedCidrs",
    *AUTOSCALING_KEYS,
    "domain",
    "dnsZone",
    "weightCache",
    "canary",
    "stableRevision",
    "canaryModelName",
)
SECRET_KEYS = ("hfToken", "apiKey")
#: Keys a preset sets for its own model: changing vllm:model drops the preset's values of them (a context
#: length, size, disk, served name or flag such as --trust-remote-code belongs to one model).
MODEL_KEYS = ("servedModelName", "maxModelLen", "modelSizeGb", "diskSizeGb", "extraArgs")


@functools.cache
def vllm_keys() -> tuple[str, ...]:
    """Every ``vllm:`` key a preset or a stack may set: the common ones and each platform's own."""
    return (*COMMON_KEYS, *(key for platform in platforms.registered() for key in platform.keys))


def check_unknown_keys(values: Mapping[str, Any], secret_keys: frozenset[str]) -> None:
    """Refuse a key no one reads: a typo would otherwise silently leave the default in place.

    ``vllm:`` keys are this program's; ``gcp:``, ``aws:`` and ``kubernetes:`` keys are the provider's own
    (credentials, profiles, default tags, endpoints... which the program does not read but the provider
    does), so only a key that provider does not define is refused. The message suggests the nearest key.
    """
    names = (*vllm_keys(), *SECRET_KEYS)
    sdks = {platform.provider_namespace: platform.provider_sdk for platform in platforms.registered()}
    project_keys = tuple(f"{PROJECT}:{k}" for k in names)
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        shown = "(secret)" if key in secret_keys else value
        if namespace == PROJECT or _is_project_namespace_typo(namespace):
            if key in project_keys:
                continue
            nearest = [f"{PROJECT}:{k}" for k in _nearest(name, names)]
            valid = (
                f"a {PROJECT} key (Pulumi.yaml declares each one; docs/configuration.md says what they do)"
            )
        elif namespace in sdks and (provider_keys := provider_config_keys(sdks[namespace])) is not None:
            if _provider_key_name(name) in provider_keys:
                continue
            nearest = [f"{namespace}:{k}" for k in _nearest(_provider_key_name(name), tuple(provider_keys))]
            valid = f"a config key of the {namespace} provider ({sdks[namespace]}'s config)"
        else:
            continue  # another namespace (pulumi:, random:...), or a provider whose SDK is not installed
        raise SpecError(key, shown, f"not a known key: did you mean {nearest[0]}?" if nearest else valid)


def _nearest(name: str, names: tuple[str, ...]) -> list[str]:
    """The key ``name`` most likely meant, ignoring case first (``GPU`` is ``gpu``), else by spelling."""
    same = [known for known in names if known.lower() == name.lower()]
    if same:
        return same[:1]
    lowered = {known.lower(): known for known in names}
    return [lowered[k] for k in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)]


def _is_project_namespace_typo(namespace: str) -> bool:
    """``vlm:``, ``VLLM:``, ``vllm_:``: a namespace this close to the program's own is a typo (other
    providers' namespaces, e.g. ``pulumi:`` or ``random:``, are nowhere near it)."""
    return namespace != PROJECT and (
        namespace.lower() == PROJECT or difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.75
    )


def _provider_key_name(name: str) -> str:
    """The top-level name of a provider key in the forms Pulumi hands over: ``region``, the legacy
    ``config:region``, and the root of a path (``defaultTags.tags.team``, ``assumeRoles[0]``); an object
    set with ``--path`` normally arrives as its top-level key with a JSON value."""
    name = name.removeprefix("config:")
    return re.split(r"[.\[]", name, maxsplit=1)[0]


def refuse_other_platforms_keys(
    values: Mapping[str, Any], secret_keys: frozenset[str], platform: platforms.Platform
) -> None:
    """A key only another platform reads (its ``vllm:`` keys, its provider's namespace) would be silently
    ignored here: it is refused, naming the platform that reads it. One rule from each platform's declared
    ``keys`` and ``provider_namespace``."""
    own = {f"{PROJECT}:{key}" for key in (*COMMON_KEYS, *SECRET_KEYS, *platform.keys)}
    for key, value in values.items():
        if present(value) is None or key in own:
            continue
        namespace, _, name = key.partition(":")
        for other in platforms.registered():
            if other is platform:
                continue
            theirs = (namespace == PROJECT and name in other.keys) or namespace == other.provider_namespace
            if theirs:
                shown = "(secret)" if key in secret_keys else value
                raise SpecError(
                    key,
                    shown,
                    f"unset: only a stack on {other.title} (vllm:cloud {other.name}) reads it; this stack's "
                    f"vllm:cloud is {platform.name}",
                )
