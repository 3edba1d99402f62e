"""GPU catalog: which machine each platform offers for a GPU type and count, with its shape and list price.

Each platform keeps its own price sheet in its package (``components/<platform>/offerings.py``: one row per
machine, each with the source of its figures) and registers it as its platform's ``catalog``. ``select()``
picks the cheapest fitting machine the way SkyPilot's optimizer does (spot price when spot is asked for,
on-demand otherwise). Prices are public list prices in USD per machine-hour: each row's in its reference
region (``price_region``), and in the other regions its source prices (``region_prices``); spot prices are
estimates of a moving market. Treat them as estimates for comparing machines, not as a bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from components import platforms

CATALOG_DATE = "2026-11"


class CatalogError(ValueError):
    """No machine fits the request; the message says what is valid instead."""


@dataclass(frozen=True)
class GpuType:
    name: str  # canonical, e.g. "H100"
    memory_gb: int  # per GPU
    description: str


@dataclass(frozen=True)
class RegionPrice:
    """A machine's list prices in one region (USD per machine-hour), and where they came from."""

    on_demand: float | None
    spot: float | None  # an estimate: spot prices move (GCP monthly at most, AWS per zone and hour)
    source: str
    #: Where the on-demand price is from when not this region (its source lacks it): the reference region.
    on_demand_from: str | None = None


@dataclass(frozen=True)
class Offering:
    cloud: str
    gpu: str  # canonical GPU name
    gpu_count: int  # per machine
    machine_type: str | None  # None on kubernetes: the cluster owns the nodes
    vcpus: int | None
    memory_gb: float | None
    accelerator_type: str | None  # GCP guest accelerator for N1 (T4/V100), else None
    on_demand_hourly: float | None  # USD per machine-hour; None when not sold on demand or unknown
    spot_hourly: float | None  # None when unknown (AWS market price, kubernetes)
    on_demand: bool  # sold as plain on-demand
    price_source: str
    # GCP: region -> zones that sell the machine; empty when unknown or not applicable
    zones: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    # AWS: regions that sell the instance type; empty when the source does not list it
    regions: tuple[str, ...] = ()
    #: The region the row's own prices are for (its reference region).
    price_region: str | None = None
    #: Prices in other regions that sell it, where the source gives them (``price_in``).
    region_prices: Mapping[str, RegionPrice] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def gpu_memory_gb(self) -> int:
        """Total GPU memory of the machine."""
        return GPU_TYPES[self.gpu].memory_gb * self.gpu_count

    def hourly(self, spot: bool, region: str | None = None) -> float | None:
        """The price for the purchase option, in ``region`` when the catalog has that region's price, else
        the reference region's (``price_in`` says which one a figure is)."""
        price = self.price_in(region)
        return price.spot if spot else price.on_demand

    def price_in(self, region: str | None) -> RegionPrice:
        """The prices of ``region`` when known, else the row's own (its ``price_region``'s); a price the
        region's source lacks is the reference region's too, and the source says so."""
        own = RegionPrice(
            self.on_demand_hourly if self.on_demand else None, self.spot_hourly, self.price_source
        )
        if region is None or region == self.price_region:
            return own
        regional = self.region_prices.get(region)
        if regional is None:  # not priced there: the reference region's prices, said so
            return RegionPrice(
                own.on_demand,
                own.spot,
                f"{self.price_source} ({self.price_region}'s prices: none recorded for {region})",
                on_demand_from=self.price_region if self.price_region else None,
            )
        if regional.on_demand is None and own.on_demand is not None:
            return RegionPrice(
                own.on_demand,
                regional.spot,
                f"{regional.source}; on-demand: {self.price_region}'s ({region}'s source row disagrees "
                "with the list or is missing)",
                on_demand_from=self.price_region,
            )
        return regional

    def priced_regions(self) -> dict[str, RegionPrice]:
        """Every region with a known price: the reference region and the others the source gives."""
        regions = [self.price_region] if self.price_region else []
        return {region: self.price_in(region) for region in [*regions, *self.region_prices]}

    def sold_in(self, region: str) -> bool | None:
        """Whether the catalog says ``region`` sells the machine; None when it does not know."""
        if self.zones:
            return bool(self.zones.get(region))
        if self.regions:
            return region in self.regions
        return None


GPU_TYPES: Mapping[str, GpuType] = MappingProxyType(
    {
        gpu.name: gpu
        for gpu in (
            GpuType("H100", 80, "NVIDIA H100 80GB HBM3"),
            GpuType("H200", 141, "NVIDIA H200 141GB HBM3e"),
            GpuType("B200", 180, "NVIDIA B200 180GB HBM3e"),
            GpuType("A100", 40, "NVIDIA A100 40GB"),
            GpuType("A100-80GB", 80, "NVIDIA A100 80GB"),
            GpuType("L4", 24, "NVIDIA L4 24GB"),
            GpuType("L40S", 48, "NVIDIA L40S 48GB"),
            GpuType("A10G", 24, "NVIDIA A10G 24GB"),
            GpuType("T4", 16, "NVIDIA T4 16GB"),
            GpuType("V100", 16, "NVIDIA V100 16GB"),
        )
    }
)


@dataclass(frozen=True)
class MachineTable:
    """A platform's catalog when it sells fixed machine shapes: the rows of its price sheet."""

    machines: tuple[Offering, ...]
    verb: str = "sells"

    def gpus(self) -> list[str]:
        return sorted({offering.gpu for offering in self.machines})

    def counts(self, gpu: str) -> list[int]:
        return sorted({offering.gpu_count for offering in self.machines if offering.gpu == gpu})

    def offerings(self, gpu: str, count: int) -> list[Offering]:
        return [o for o in self.machines if o.gpu == gpu and o.gpu_count == count]


def sum_prices(host: float | None, gpus: float | None) -> float | None:
    """A machine price is known only when both of its parts are."""
    return None if host is None or gpus is None else round(host + gpus, 5)


_BY_LOWER_NAME = {known.lower(): known for known in GPU_TYPES}


def canonical_gpu(name: str) -> str | None:
    """The SkyPilot spelling of a GPU name, matched case-insensitively; None if unknown."""
    return _BY_LOWER_NAME.get(name.strip().lower())


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
