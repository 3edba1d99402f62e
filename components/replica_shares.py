"""How a stack's replicas split over its regions and purchase options, and what that costs.

SkyServe's ``use_spot`` with ``base_ondemand_fallback_replicas`` is ``vllm:spot`` with
``vllm:onDemandBaseReplicas``: that many replicas on on-demand capacity, the rest on spot. With several
regions (``vllm:regions``, GCP) the replicas, and the on-demand base among them, are spread as evenly as
they divide, the first regions taking the remainder. Each platform builds one group per share; the
stack's ``costPerHour`` adds up the shares at their regions' prices.

With autoscaling (``vllm:maxReplicas``) the on-demand base is a fixed floor inside the bounds, and the
autoscaler scales the rest: a region's scaled group runs between that region's share at
``vllm:minReplicas`` and at ``vllm:maxReplicas`` (``share_scaling``), so the shares at any count between
the bounds are the groups' sizes there, and ``costPerHour`` at the bounds is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.service_spec import Autoscaling, ServiceSpec


@dataclass(frozen=True)
class Share:
    """Replicas of one region on one purchase option."""

    region: str | None
    spot: bool
    replicas: int


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by one at most, the larger ones first."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def ray_replica_spec(spec: ServiceSpec, index: int) -> ServiceSpec:
    """The spec of Ray group ``index``: the first ``vllm:onDemandBaseReplicas`` groups are the on-demand
    base, the rest spot (a group is one replica, all its machines on one market)."""
    return replace(spec, spot=spec.spot and index >= spec.on_demand_base_replicas)


def _split(spec: ServiceSpec, replicas: int) -> list[tuple[str | None, int, int]]:
    """(region, on-demand, spot) for ``replicas`` of the stack, in region order. ``spread`` is monotone,
    so no region gets more on-demand replicas than replicas."""
    regions = spec.regions or (spec.region,)
    totals = spread(replicas, len(regions))
    # On-demand: every replica without spot, the base with it.
    on_demand = spread(spec.on_demand_base_replicas if spec.spot else replicas, len(regions))
    return [
        (region, base, total - base) for region, total, base in zip(regions, totals, on_demand, strict=True)
    ]


def shares(spec: ServiceSpec) -> list[Share]:
    """The stack's replicas by region and purchase option, in region order, on-demand first; no empty
    share."""
    found: list[Share] = []
    for region, on_demand, spot in _split(spec, spec.replicas):
        found += [Share(region, False, on_demand)] if on_demand else []
        found += [Share(region, True, spot)] if spot else []
    return found


def fixed_base_replicas(spec: ServiceSpec) -> int:
    """Replicas no autoscaler moves: the on-demand base of a spot stack (its other replicas, and every
    replica of a stack without spot, are the autoscaler's)."""
    return spec.on_demand_base_replicas if spec.spot else 0


def share_scaling(spec: ServiceSpec, region: str | None, spot: bool) -> Autoscaling | None:
    """The policy of the group holding the stack's ``region`` replicas on ``spot``: None for a fixed
    group (no autoscaling, or the on-demand base of a spot stack), else the stack's policy with bounds of
    that region's replicas on that market at ``vllm:minReplicas`` and at ``vllm:maxReplicas``. Spread by
    the same rule as the shares, so the shares at either bound are the groups' sizes there.
    """
    policy = spec.autoscaling
    if policy is None or spot != spec.spot:
        return None

    def count(replicas: int) -> int:
        ((on_demand, in_spot),) = [(od, sp) for name, od, sp in _split(spec, replicas) if name == region]
        return in_spot if spot else on_demand

    return replace(policy, min_replicas=count(policy.min_replicas), max_replicas=count(policy.max_replicas))


def cost_per_hour(spec: ServiceSpec) -> float | None:
    """Every node of every replica at its region's price for its purchase option; None when a price
    is unknown (a spot price AWS does not list, a machine without a list price, Kubernetes)."""
    if spec.offering is None:
        return None
    total = 0.0
    for share in shares(spec):
        hourly = spec.offering.hourly(share.spot, share.region)
        if hourly is None:
            return None
        total += hourly * spec.nodes * share.replicas
    return round(total, 2)
