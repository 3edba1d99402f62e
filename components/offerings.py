"""What the catalog is made of: GPU types, and the machines ("offerings") a platform's price sheet lists.

Each platform keeps its rows in its package (``components/<platform>/offerings.py``: one ``Offering`` per
machine, each with the source of its figures). Plain data that imports nothing of the program: the spec
holds the chosen row, and components/catalog.py picks it across the platforms' registered catalogs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CATALOG_DATE = "2026-11"


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
