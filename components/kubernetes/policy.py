"""Kubernetes's scanners for the policy pack: pure functions over plain property dicts (the contract:
policy/validators.py). Property names are the Kubernetes API's, as Pulumi hands them to a policy.

It takes part in the secrets policy only. No autohealing facts: a Deployment's or LeaderWorkerSet's
controller replaces the pods that fail, and the kubelet restarts containers that fail their probes."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Final

from policy.validators import (
    SECRETS,
    UNKNOWN,
    PlatformPolicy,
    Scanner,
    collect,
    decoded_texts,
    is_secret_name,
    named_secrets,
    strings,
    text_secrets,
)

CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
#: Where each workload kind keeps its pod specs.
POD_SPEC_PATHS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "kubernetes:core/v1:Pod": (("spec",),),
    "kubernetes:apps/v1:Deployment": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:StatefulSet": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:DaemonSet": (("spec", "template", "spec"),),
    "kubernetes:batch/v1:Job": (("spec", "template", "spec"),),
    "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet": (
        ("spec", "leaderWorkerTemplate", "leaderTemplate", "spec"),
        ("spec", "leaderWorkerTemplate", "workerTemplate", "spec"),
    ),
}

#: A pod reads a Secret through ``secretKeyRef``, a structure, never a string naming it.
SECRET_REFERENCE: Final = None


def _container_secrets(container: Mapping[str, Any]) -> list[str]:
    name = container.get("name", "?")
    violations = []
    for variable in collect(container, "env"):
        if not isinstance(variable, Mapping) or not isinstance(variable.get("name"), str):
            continue
        value, source = variable.get("value"), variable.get("valueFrom")
        literal = value is not None and value is not UNKNOWN and value != ""
        not_from_secret = isinstance(source, Mapping) and "secretKeyRef" not in source
        if is_secret_name(variable["name"]) and (literal or not_from_secret):
            violations.append(
                f"container {name!r} env {variable['name']} is not from a Secret: use valueFrom.secretKeyRef"
            )
        elif isinstance(value, str):
            violations += text_secrets(f"container {name!r} env {variable['name']}", [value])
    argv = strings(collect(container, "command") + collect(container, "args"))
    return violations + text_secrets(f"container {name!r} command line", [" ".join(argv)])


def _pod_secrets(props: Mapping[str, Any], *, paths: tuple[tuple[str, ...], ...]) -> list[str]:
    violations: list[str] = []
    for path in paths:
        for spec in collect(props, *path):
            containers = collect(spec, "initContainers") + collect(spec, "containers")
            for container in containers:
                if isinstance(container, Mapping):
                    violations += _container_secrets(container)
    return list(dict.fromkeys(violations))


def _config_map_secrets(props: Mapping[str, Any]) -> list[str]:
    data, binary = props.get("data"), props.get("binaryData")
    texts = strings(data.values()) if isinstance(data, Mapping) else []
    if isinstance(binary, Mapping):
        texts += [text for value in strings(binary.values()) for text in decoded_texts(value)]
    violations = named_secrets("ConfigMap data", data) + named_secrets("ConfigMap binaryData", binary)
    return violations + text_secrets("ConfigMap", texts)


SCANNERS: Final[Mapping[str, Mapping[str, Scanner]]] = {
    SECRETS: {
        **{kind: partial(_pod_secrets, paths=paths) for kind, paths in POD_SPEC_PATHS.items()},
        CONFIG_MAP: _config_map_secrets,
    },
}
POLICIES: Final[tuple[PlatformPolicy, ...]] = ()
AUTOHEALING: Final = None
