"""An autoscaled service may not grow past the GPU budget its organisation sets (policy config ``maxGpus``).

Autoscaling (``vllm:maxReplicas``) hands the replica count to the platform's autoscaler, so what a stack can
cost is its upper bound: ``max replicas x GPUs per replica``. This stack policy finds each autoscaler a
registered platform declares (``GPU_BUDGET`` in its ``components/<platform>/policy.py``: the autoscaler's
resource type and how to bound it), has the platform follow it to what it scales and that to its machine or
pod template, and flags the stack when their bounds, with the groups no autoscaler moves (``FIXED_GPUS``: an
on-demand base), together exceed the budget (a stack over several regions has an autoscaler per region).
Platforms link resources with ``linked`` below: the engine's property dependencies (known in a preview), else
equal names or self links; what cannot be resolved or counted is not judged. Pure functions, like
validators.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from policy import validators


class StackResource(Protocol):
    """What this policy reads of a resource (validators.StackResource has it)."""

    type: str
    urn: str
    props: Mapping[str, Any]
    property_dependencies: Mapping[str, Sequence[str]]

    @property
    def name(self) -> str: ...


#: How a platform bounds one of its autoscalers in the stack: (max replicas, GPUs per replica), or None
#: when it cannot tell (an unresolved link, an uncounted machine) or the resource scales on no target.
Bound = Callable[[StackResource, Sequence[StackResource]], tuple[float, int] | None]

#: Without a configured budget: 64 GPUs, eight 8-GPU machines.
DEFAULT_MAX_GPUS: Final = 64
CONFIG_KEY: Final = "maxGpus"


def number(value: Any) -> float | None:
    """A number or a numeric string as a float; None for anything else (``UNKNOWN`` and booleans too)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def dig(value: Any, *path: str) -> Any:
    """The value at ``path`` through nested mappings; None where a step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def last_segment(reference: Any) -> str | None:
    """A self link, id or name reduced to its last segment (``.../instanceGroupManagers/vllm-mig``)."""
    return reference.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if isinstance(reference, str) else None


def linked(
    user: StackResource, prop: str, reference: Any, candidates: Iterable[StackResource]
) -> list[StackResource]:
    """Candidates ``user`` names in ``prop``: by property dependency, else by an equal name or link."""
    candidates = list(candidates)
    by_dependency = [c for c in candidates if c.urn in user.property_dependencies.get(prop, ())]
    if by_dependency:
        return by_dependency
    wanted = last_segment(reference)
    keys = ("id", "selfLink", "selfLinkUnique", "name", "arn")
    return [
        c for c in candidates if wanted is not None and wanted in {last_segment(c.props.get(k)) for k in keys}
    ]


def gpu_budget_violations(resources: Sequence[StackResource], max_gpus: int) -> list[tuple[str, str]]:
    """(URN, message) when an autoscaled stack may run more than ``max_gpus`` GPUs, reported on its first
    autoscaler. A stack is one service: its scaled replicas may sit in several groups, each with an
    autoscaler of its own (one per region), beside fixed groups no autoscaler moves (an on-demand base,
    ``FIXED_GPUS``); at their most they all run at once, so their GPUs add up."""
    scaled, fixed = [], []
    for module in validators.platform_modules():
        for found, bounds in ((scaled, module.GPU_BUDGET), (fixed, module.FIXED_GPUS)):
            for resource in (r for r in resources if r.type in bounds):
                bound = bounds[resource.type](resource, resources)
                if bound is not None:
                    found.append((resource, *bound))
    total = sum(most * gpus for _, most, gpus in scaled + fixed)
    if not scaled or total <= max_gpus:
        return []
    names = ", ".join(scaler.name for scaler, _, _ in scaled)
    replicas = int(sum(most for _, most, _ in scaled + fixed))
    per_replica = {gpus for _, _, gpus in scaled + fixed}
    gpus = f"{per_replica.pop()} GPUs" if len(per_replica) == 1 else "their GPUs"
    beside = ", ".join(group.name for group, _, _ in fixed)
    with_fixed = f" with the fixed group{'s' if len(fixed) > 1 else ''} {beside}" if fixed else ""
    message = (
        f"autoscaler{'s' if len(scaled) > 1 else ''} {names}{with_fixed} may run {replicas} replicas x "
        f"{gpus} = {int(total)} GPUs, over the budget of {max_gpus} (policy config {CONFIG_KEY}): lower "
        "vllm:maxReplicas or raise the budget"
    )
    return [(scaled[0][0].urn, message)]
