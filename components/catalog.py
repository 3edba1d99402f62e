"""GPU catalog: which machine each platform offers for a GPU type and count, with its shape and list price.

Each platform keeps its own price sheet in its package (``components/<platform>/offerings.py``: one row per
machine, each with the source of its figures) and registers it as its platform's ``catalog``. ``select()``
picks the cheapest fitting machine the way SkyPilot's optimizer does (spot price when spot is asked for,
on-demand otherwise). Prices are public list prices in USD per machine-hour: each row's in its reference
region (``price_region``), and in the other regions its source prices (``region_prices``); spot prices are
estimates of a moving market. Treat them as estimates for comparing machines, not as a bill.
"""

from __future__ import annotations

from components import platforms
from components.offerings import GPU_TYPES, Offering, canonical_gpu


class CatalogError(ValueError):
    """No machine fits the request; the message says what is valid instead."""


def gpus_offered(cloud: str) -> list[str]:
    """Canonical GPU names the platform offers, sorted."""
    return _catalog(cloud).gpus()


def counts_offered(cloud: str, gpu: str) -> list[int]:
    """GPU counts per machine the cloud sells for ``gpu``, sorted; empty for an unknown or unsold GPU."""
    canonical = canonical_gpu(gpu)
    return _catalog(cloud).counts(canonical) if canonical else []


def offerings(cloud: str, gpu: str, count: int) -> list[Offering]:
    """Every machine that carries exactly ``count`` of ``gpu``, in table order."""
    canonical = canonical_gpu(gpu)
    return _catalog(cloud).offerings(canonical, count) if canonical else []


def same_gpus(cloud: str, offering: Offering) -> list[Offering]:
    """Every machine of ``cloud`` that serves what ``offering`` serves: the same GPU chip, as many per
    machine, at least as much GPU memory each (A100:8 runs on p4d.24xlarge and p4de.24xlarge, whose A100s
    have 80 GB), ``offering`` first, then by price. What a mixed-instances group may launch instead."""
    chip = offering.gpu.split("-")[0]
    alike = [
        other
        for gpu in gpus_offered(cloud)
        if gpu.split("-")[0] == chip and GPU_TYPES[gpu].memory_gb >= GPU_TYPES[offering.gpu].memory_gb
        for other in offerings(cloud, gpu, offering.gpu_count)
        if other.on_demand and other.machine_type != offering.machine_type
    ]
    return [offering, *sorted(alike, key=lambda other: _rank_price(other, 1.0))]


def select(cloud: str, gpu: str, count: int, spot: bool, on_demand_share: float = 0.0) -> Offering:
    """The cheapest fitting machine; raises CatalogError saying what is valid when none fits.

    Ranking: the price for the purchase option asked for; when a spot price is unknown (AWS), the
    on-demand price stands in for it; machines with no known price rank last, in table order. A spot
    stack with an on-demand base (``on_demand_share`` of its replicas, > 0) needs a machine sold on demand
    too, and ranks by the blend of both prices.
    """
    canonical = canonical_gpu(gpu)
    if canonical is None:
        raise CatalogError(f"unknown GPU {gpu!r}; known GPU types: {', '.join(sorted(GPU_TYPES))}")
    fitting = offerings(cloud, canonical, count)
    name = _backend(cloud).title
    if not fitting:
        counts = counts_offered(cloud, canonical)
        if not counts:
            raise CatalogError(f"{name} does not sell {canonical}; it sells {', '.join(gpus_offered(cloud))}")
        raise CatalogError(
            f"{name} {_catalog(cloud).verb} {canonical} in counts {', '.join(map(str, counts))}"
        )
    if not spot or on_demand_share > 0:
        fitting = [offering for offering in fitting if offering.on_demand]
        if not fitting:
            raise CatalogError(_spot_only_message(name, cloud, canonical, count, base=spot))
    share = 1.0 if not spot else on_demand_share
    return min(fitting, key=lambda offering: _rank_price(offering, share))


def _rank_price(offering: Offering, on_demand_share: float) -> tuple[bool, float]:
    on_demand = offering.on_demand_hourly
    spot = offering.spot_hourly if offering.spot_hourly is not None else on_demand
    if on_demand_share >= 1:
        price = on_demand
    elif on_demand_share <= 0:
        price = spot
    elif on_demand is None or spot is None:
        price = None
    else:
        price = on_demand * on_demand_share + spot * (1 - on_demand_share)
    return (price is None, price or 0.0)


def _spot_only_message(name: str, cloud: str, gpu: str, count: int, base: bool = False) -> str:
    machines = ", ".join(sorted({str(o.machine_type) for o in offerings(cloud, gpu, count)}))
    on_demand_counts = [
        c for c in counts_offered(cloud, gpu) if any(o.on_demand for o in offerings(cloud, gpu, c))
    ]
    instead = f" or use {' / '.join(f'{gpu}:{c}' for c in on_demand_counts)}" if on_demand_counts else ""
    fix = "set vllm:onDemandBaseReplicas 0 (all spot)" if base else "set vllm:spot true"
    return (
        f"{name} sells {gpu}:{count} ({machines}) only as Spot, Flex-start or reservations, not plain "
        f"on-demand: {fix}{instead}"
    )


def _backend(cloud: str) -> platforms.Platform:
    if cloud not in platforms.names():
        raise CatalogError(f"unknown cloud {cloud!r}; known clouds: {', '.join(platforms.names())}")
    return platforms.get(cloud)


def _catalog(cloud: str) -> platforms.Catalog:
    return _backend(cloud).catalog
