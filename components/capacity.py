"""How a stack's replicas split over its regions and purchase options, and what that costs.

SkyServe's ``use_spot`` with ``base_ondemand_fallback_replicas`` is ``vllm:spot`` with
``vllm:onDemandBaseReplicas``: that many replicas on on-demand capacity, the rest on spot. With several
regions (``vllm:regions``, GCP) the replicas, and the on-demand base among them, are spread as evenly as
they divide, the first regions taking the remainder. Each platform builds one group per share; the
stack's ``costPerHour`` adds up the shares at their regions' prices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.spec import ServiceSpec


@dataclass(frozen=True)
class Share:
    """Replicas of one region on one purchase option."""

    region: str | None
    spot: bool
    replicas: int


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by one at most, the larger ones first."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def on_demand_replicas(spec: ServiceSpec) -> int:
    """Replicas on on-demand capacity: every one without spot, the base with it."""
    return spec.on_demand_base_replicas if spec.spot else spec.replicas


def ray_replica_spec(spec: ServiceSpec, index: int) -> ServiceSpec:
    """The spec of Ray group ``index``: the first ``vllm:onDemandBaseReplicas`` groups are the on-demand
    base, the rest spot (a group is one replica, all its machines on one market)."""
    return replace(spec, spot=spec.spot and index >= spec.on_demand_base_replicas)


def shares(spec: ServiceSpec) -> list[Share]:
    """The stack's replicas by region and purchase option, in region order, on-demand first; no empty
    share. ``spread`` is monotone, so no region gets more on-demand replicas than replicas."""
    regions = spec.regions or (spec.region,)
    totals = spread(spec.replicas, len(regions))
    on_demand = spread(on_demand_replicas(spec), len(regions))
    found: list[Share] = []
    for region, total, base in zip(regions, totals, on_demand, strict=True):
        found += [Share(region, False, base)] if base else []
        found += [Share(region, True, total - base)] if total > base else []
    return found


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
