"""What the stack costs, as SkyPilot's optimizer shows it: the ``costBreakdown`` stack output, which
``tools.plan`` prints as it is.

Every machine with the spec's GPUs in every region the stack serves from and every other region the
catalog prices it in (cheapest first for the stack's mix of purchase options), and the stack's replicas by
region and purchase option (``components.replica_shares``) at their regions' prices, with a canary each
revision's own. Its total is the
``costPerHour`` output itself. Prices are the catalog's (``components.catalog``), each with its source.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from components import catalog, platforms, replica_shares
from components.autoscaling import cost_output, replicas_output

if TYPE_CHECKING:
    from components.service_spec import ServiceSpec

#: What a stack without a machine of its own (Kubernetes) shows instead of a table.
CLUSTER_PRICED = "the cluster's nodes, priced by their owner"


def breakdown(spec: ServiceSpec) -> dict[str, Any]:
    """The ``costBreakdown`` output: the considered machines (``candidates``), the stack's replicas by
    region and market (``shares``, priced at the most replicas it may run) and ``totalHourly``, which is
    ``costPerHour``. A value the catalog does not know is None (the engine then drops the key)."""
    offering = spec.offering
    if spec.gpu is None or offering is None or offering.machine_type is None:
        return {"candidates": [], "note": CLUSTER_PRICED}
    surge = platforms.get(spec.cloud).scale_out_surge(spec)
    most = _most_replicas(spec)
    on_demand = spec.on_demand_base_replicas if spec.spot else most
    serving = list(spec.regions or (spec.region,))
    offerings = catalog.offerings(spec.cloud, spec.gpu.type, spec.gpu.count)
    chosen = next(o for o in offerings if o.machine_type == offering.machine_type)
    return {
        "candidates": _candidates(offerings, chosen, serving, on_demand / most),
        "nodesPerReplica": spec.nodes,
        "replicas": replicas_output(spec),
        "scaleOutSurge": surge,
        "pricing": _pricing(spec.spot, on_demand, most),
        "shares": [share for revision in spec.revisions for share in _revision_shares(revision, spec)],
        "totalHourly": cost_output(spec),
    }


def _candidates(
    offerings: list[catalog.Offering],
    chosen: catalog.Offering,
    serving: list[str | None],
    on_demand_share: float,
) -> list[dict[str, Any]]:
    """Every offering in the serving regions, then in every other region that prices it, cheapest first at
    the stack's on-demand share; the stack's own machine marked where it serves."""
    candidates = []
    for candidate in offerings:
        regions = [*serving, *(r for r in candidate.priced_regions() if r not in serving)]
        for region in regions:
            if region is None or candidate.sold_in(region) is False:
                continue
            price = candidate.price_in(region)
            on_demand = price.on_demand if candidate.on_demand else None
            candidates.append(
                {
                    "cloud": candidate.cloud,
                    "region": region,
                    "machineType": candidate.machine_type,
                    "vcpus": candidate.vcpus,
                    "memoryGb": candidate.memory_gb,
                    "gpus": f"{candidate.gpu}:{candidate.gpu_count}",
                    "onDemandHourly": on_demand,
                    "onDemandFrom": price.on_demand_from if on_demand is not None else None,
                    "spotHourly": price.spot,
                    "blendedHourly": _blend(on_demand, price.spot, on_demand_share),
                    "chosen": candidate is chosen and region in serving,
                }
            )
    candidates.sort(key=lambda c: (c["blendedHourly"] is None, c["blendedHourly"] or 0.0))
    return candidates


def _most_replicas(spec: ServiceSpec) -> int:
    """The most replicas a revision may run: an autoscaler's max and the platform's scale-out surge above
    it (components/platforms.py), else the fixed count."""
    if spec.autoscaling is None:
        return spec.replicas
    return spec.autoscaling.max_replicas + platforms.get(spec.cloud).scale_out_surge(spec)


def _revision_shares(revision: ServiceSpec, stack: ServiceSpec) -> list[dict[str, Any]]:
    """One revision's priced shares at its most replicas, on its own machine; with a canary each row says
    its revision slot, so the rows of both add up to ``costPerHour``."""
    if revision.offering is None:
        return []
    rows = _priced_shares(replace(revision, replicas=_most_replicas(revision)), revision.offering)
    return rows if stack.canary is None else [{**row, "revision": revision.revision} for row in rows]


def _priced_shares(spec: ServiceSpec, chosen: catalog.Offering) -> list[dict[str, Any]]:
    """The spec's replicas by region and market as ``components.replica_shares`` spreads them, each at its
    region's price for its market, every node of a replica counted."""
    priced = []
    for share in replica_shares.shares(spec):
        hourly = chosen.hourly(share.spot, share.region)
        priced.append(
            {
                "region": share.region,
                "market": "spot" if share.spot else "on-demand",
                "replicas": share.replicas,
                "perReplicaHourly": None if hourly is None else round(hourly * spec.nodes, 2),
                "hourly": None if hourly is None else round(hourly * share.replicas * spec.nodes, 2),
                "source": chosen.price_in(share.region).source,
            }
        )
    return priced


def _blend(on_demand: float | None, spot: float | None, on_demand_share: float) -> float | None:
    """The hourly price of a replica split ``on_demand_share`` on demand, the rest on spot."""
    parts = [(on_demand, on_demand_share), (spot, 1 - on_demand_share)]
    if any(price is None and weight > 0 for price, weight in parts):
        return None
    return round(sum((price or 0.0) * weight for price, weight in parts), 5)


def _pricing(spot: bool, on_demand: int, replicas: int) -> str:
    if not spot:
        return "on-demand"
    return f"spot, {on_demand} of {replicas} on-demand" if on_demand else "spot"
