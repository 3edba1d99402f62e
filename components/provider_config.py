"""The stack's provider config (``gcp:*``, ``aws:*``, ``kubernetes:*``) for the explicit providers.

Pulumi hands a provider namespace's stack config only to that provider's default provider, never to an
explicit one (pulumi/pulumi#12176; pulumi/pulumi-aws#3259, closed by design), and this program disables the
default providers (Pulumi.yaml) and declares each platform's provider itself. So it passes the keys on: every
key the stack (or its preset) sets that the provider's own schema defines, which the spec's key registry
reads from the installed SDK (``provider_config_keys``, the same list that refuses typos), given to the
SDK's ``Provider`` as the ``ProviderArgs`` argument of that name and type (its arguments are the config keys,
snake-cased), so a key a new SDK release adds needs no code here. pulumi_gcp's config module also lists
``disableGlobalProjectWarning`` and ``skipRegionValidation``, which its ``Provider`` takes no argument for:
they set the SDK's own behaviour with a default provider, and reach no explicit one. The keys the program
reads itself (``Platform.provider_keys``: ``gcp:region``, ``aws:region``, ``kubernetes:context``...) are set
by each platform from the spec.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from components.config import SpecError
from components.platforms import Platform


def provider_config_keys(sdk: str) -> frozenset[str] | None:
    """The config keys the installed provider SDK defines, or None when that SDK is not installed.

    Read from the SDK's source rather than by importing it (``import pulumi_gcp`` alone takes seconds):
    pulumi_gcp and pulumi_aws generate ``config/vars.py`` with one ``__config__.get*('<key>')`` per key;
    pulumi_kubernetes has no config module, and its provider's config keys are the ``ProviderArgs``
    arguments (``provider.py``), camel-cased as the provider schema spells them.
    """
    found = importlib.util.find_spec(sdk)  # locates the package, runs nothing
    if found is None or not found.submodule_search_locations:
        return None
    package = Path(next(iter(found.submodule_search_locations)))
    if not (package / "config" / "vars.py").exists():
        source = (package / "provider.py").read_text()
        arguments = source[source.index("class ProviderArgs") :]
        arguments = arguments[: arguments.index('"""')]
        snake = re.findall(r"^\s+(\w+): pulumi\.Input", arguments, flags=re.MULTILINE)
        return frozenset(re.sub(r"_([a-z])", lambda m: m[1].upper(), name) for name in snake)
    source = (package / "config" / "vars.py").read_text()
    return frozenset(re.findall(r"__config__\.get\w*\('(\w+)'\)", source))


@functools.cache
def provider_parameters(sdk: str) -> Mapping[str, tuple[str, type | None]]:
    """The provider's config keys (``impersonateServiceAccount``) -> its ``ProviderArgs`` argument
    (``impersonate_service_account``) and the argument's plain type when it is a scalar (``str``, ``bool``,
    ``int``; None for lists, maps and objects)."""
    provider_args = importlib.import_module(f"{sdk}.provider").ProviderArgs
    found = {}
    for name, parameter in inspect.signature(provider_args.__init__).parameters.items():
        if name in ("self", "__self__") or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        key = re.sub(r"_([a-z0-9])", lambda match: match[1].upper(), name)
        found[key] = (name, _scalar(parameter.annotation))
    return found


def _scalar(annotation: Any) -> type | None:
    """``str`` for ``Optional[pulumi.Input[str]]`` (a Union whose first member is the plain type)."""
    members = typing.get_args(annotation) or (annotation,)
    return members[0] if members[0] in (str, bool, int, float) else None


def provider_args(
    platform: Platform, config: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The platform's provider keyword arguments for the keys ``config`` sets in its namespace (values as
    Pulumi hands them over: text, JSON for lists, maps, objects and numbers); secret keys stay secret.
    Raises SpecError, naming the key, for a value that is not of the provider's type."""
    parameters = provider_parameters(platform.provider_sdk)
    known = provider_config_keys(platform.provider_sdk) or frozenset()
    args: dict[str, Any] = {}
    for key, raw in config.items():
        namespace, _, name = key.partition(":")
        name = name.removeprefix("config:")  # the legacy ``aws:config:region`` spelling
        if namespace != platform.provider_namespace or f"{namespace}:{name}" in platform.provider_keys:
            continue
        if name not in known or name not in parameters or raw is None or raw == "":
            continue  # not an argument of the provider (the spec refuses typos), or unset
        argument, scalar = parameters[name]
        value = _typed(key, raw, scalar)
        args[argument] = pulumi.Output.secret(value) if key in secret_keys else value
    return args


def _typed(key: str, raw: Any, scalar: type | None) -> Any:
    if scalar is str:
        return str(raw)
    if not isinstance(raw, str):
        return raw  # a preset's YAML value, typed already
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if scalar is None and isinstance(value, list | dict):
        return value
    if scalar is bool and isinstance(value, bool):
        return value
    if scalar in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if scalar is bool:
        valid = "true or false"
    elif scalar is None:
        valid = "a list or map, as JSON (pulumi config set --path, or a JSON value)"
    else:
        valid = "a number"
    raise SpecError(key, raw, f"{valid}: the provider's type for this key")
