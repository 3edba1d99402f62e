"""Pulumi component conventions, the same on every platform: Args are frozen keyword-only dataclasses that
carry no provider (children inherit it from their component), the replica components have the same names
in every platform folder, and a renamed component keeps its former type token as an alias."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tools import mockrun
from tools.plan import plan

PLATFORMS = ("gcp", "aws", "kubernetes")
STACKS = Path(__file__).resolve().parent.parent / "stacks"

#: Former type tokens: stacks created before the rename keep their URNs through these aliases.
RENAMED = {
    "vllm:gcp:ReplicaGroup": "vllm:gcp:VllmReplica",
    "vllm:gcp:RayReplica": "vllm:gcp:RayGroup",
    "vllm:aws:ReplicaGroup": "vllm:aws:VllmReplica",
    "vllm:aws:RayReplica": "vllm:aws:RayGroup",
    "vllm:kubernetes:ReplicaGroup": "vllm:kubernetes:VllmReplica",
    "vllm:kubernetes:RayReplicaGroup": "vllm:kubernetes:RayGroup",
}


def platform_modules(platform: str) -> list[Any]:
    package = importlib.import_module(f"components.{platform}")
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def args_classes() -> list[type]:
    return [
        cls
        for platform in PLATFORMS
        for module in platform_modules(platform)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if name.endswith("Args") and cls.__module__ == module.__name__
    ]


def test_every_platform_has_args_classes():
    assert {cls.__module__.split(".")[1] for cls in args_classes()} == set(PLATFORMS)


@pytest.mark.parametrize("cls", args_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_args_are_frozen_keyword_only_dataclasses(cls):
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    assert all(field.kw_only for field in dataclasses.fields(cls))


@pytest.mark.parametrize("cls", args_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_args_carry_no_provider_the_component_passes_it_to_its_children(cls):
    hints = {field.name: str(field.type) for field in dataclasses.fields(cls)}
    assert "provider" not in hints
    assert not any("ProviderResource" in hint for hint in hints.values())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_names_its_replica_components_alike(platform):
    replica_group = importlib.import_module(f"components.{platform}.replica_group")
    ray_replica = importlib.import_module(f"components.{platform}.ray_replica")
    assert issubclass(replica_group.ReplicaGroup, pulumi.ComponentResource)
    multi_node = getattr(ray_replica, "RayReplicaGroup" if platform == "kubernetes" else "RayReplica")
    assert issubclass(multi_node, pulumi.ComponentResource)


def aliased_types(monkeypatch, stack: str) -> dict[str, list[str]]:
    """Each component type the preset's program registers, with the types its aliases name."""
    recorded: dict[str, list[str]] = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(monitor, request):
        if request.type.startswith("vllm:"):
            recorded[request.type] = [alias.spec.type for alias in request.aliases]
        return register(monitor, request)

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    plan(stack, stack_file=STACKS / f"{stack}.yaml")
    return recorded


@pytest.mark.parametrize(
    "stack",
    ["gcp-h100", "gcp-h100-multinode", "aws-h100", "aws-h200-multinode", "k8s-h100", "k8s-h100-multinode"],
)
def test_renamed_components_alias_their_former_type_and_nothing_else_does(monkeypatch, stack):
    recorded = aliased_types(monkeypatch, stack)
    renamed = {type_: former for type_, former in RENAMED.items() if type_ in recorded}
    assert len(renamed) == 1  # the preset's replica component
    for type_, aliases in recorded.items():
        assert aliases == ([renamed[type_]] if type_ in renamed else [])
