"""GCP's price sheet: the machine for each GPU type and count, its shape, zones and list price.

Sources (read on the catalog date):
- SKY_GCP: SkyPilot's public catalog, github.com/skypilot-org/skypilot-catalog, catalogs/v7/gcp/vms.csv
  at commit 017e2502. GCP machines are listed there as a host row (vCPUs, memory, host price) plus
  a GPU row per count; a machine's price here is host + GPU. Its zone column is the zone list below.
  Prices are us-central1's unless a row says otherwise.
- SKY_RULES: SkyPilot's GCP rules, github.com/skypilot-org/skypilot sky/catalog/gcp_catalog.py
  (GPU -> machine family; N1 host for T4/V100 = cheapest n1 with >= the default vCPUs per GPU and
  >= 4 GB per vCPU).
- GCP purchase options: GCP's GPU consumption-options table, as summarised in the project's
  reference notes (a3-highgpu-1g/2g/4g: Spot or Flex-start only;
  A3 Ultra and A4: Spot, Flex-start or reservations, no plain on-demand).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from components.offerings import CATALOG_DATE, MachineTable, Offering, RegionPrice, sum_prices

SKY_GCP = f"skypilot-catalog v7 gcp/vms.csv @017e2502 (read {CATALOG_DATE})"

# ---------------------------------------------------------------------------------------------------
# GCP. Zones per machine family: the AvailabilityZone column of SKY_GCP for the project's regions
# (GCP's "GPU regions and zones" page is the upstream of that column). A family absent from a region
# here is not sold there.
# ---------------------------------------------------------------------------------------------------
_GCP_ZONES: dict[str, dict[str, tuple[str, ...]]] = {
    "a2-highgpu": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "us-east1": ("us-east1-b",),
        "us-west1": ("us-west1-b",),
        "europe-west4": ("europe-west4-a", "europe-west4-b"),
        "asia-southeast1": ("asia-southeast1-b", "asia-southeast1-c"),
    },
    "a2-megagpu": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "europe-west4": ("europe-west4-a", "europe-west4-b"),
        "asia-southeast1": ("asia-southeast1-c",),
    },
    "a2-ultragpu": {
        "us-central1": ("us-central1-a", "us-central1-c"),
        "us-east4": ("us-east4-c",),
        "europe-west4": ("europe-west4-a",),
        "asia-southeast1": ("asia-southeast1-c",),
    },
    "a3-highgpu": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c"),
        "us-east4": ("us-east4-a", "us-east4-b", "us-east4-c"),
        "us-west1": ("us-west1-a", "us-west1-b"),
        "europe-west4": ("europe-west4-b", "europe-west4-c"),
        "asia-southeast1": ("asia-southeast1-b", "asia-southeast1-c"),
    },
    "a3-ultragpu": {
        "us-central1": ("us-central1-b",),
        "us-east4": ("us-east4-b",),
        "us-west1": ("us-west1-c",),
        "europe-west4": ("europe-west4-a",),
    },
    "a4-highgpu": {
        "us-central1": ("us-central1-b",),
        "us-east1": ("us-east1-b",),
        "us-east4": ("us-east4-b",),
        "asia-southeast1": ("asia-southeast1-b",),
    },
    "g2": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c"),
        "us-east1": ("us-east1-b", "us-east1-c", "us-east1-d"),
        "us-east4": ("us-east4-a", "us-east4-c"),
        "us-west1": ("us-west1-a", "us-west1-b", "us-west1-c"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
        "asia-southeast1": ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
    },
    "nvidia-tesla-t4": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "us-east1": ("us-east1-c", "us-east1-d"),
        "us-east4": ("us-east4-a", "us-east4-b", "us-east4-c"),
        "us-west1": ("us-west1-a", "us-west1-b"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
        "asia-southeast1": ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
    },
    "nvidia-tesla-v100": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "us-east1": ("us-east1-c",),
        "us-west1": ("us-west1-a", "us-west1-b"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
    },
}

# Hosts without their own catalog row, scaled from one that has one: GCP prices N1 and G2 hosts per
# vCPU and GB at a fixed ratio within a shape family, so price / vCPU is constant.
_N1_HIGHMEM_PER_VCPU = (5.67854 / 96, 1.43069 / 96)  # n1-highmem-96 us-central1 row (on-demand, spot)
_N1_STANDARD_PER_VCPU = (0.0475, 0.01204)  # n1-standard-1 us-central1 row
_G2_PER_VCPU = (0.44038 / 12, 0.17621 / 12)  # g2-standard-12 us-central1 row


def _per_vcpu(rate: tuple[float, float], vcpus: int) -> tuple[float, float]:
    return round(rate[0] * vcpus, 5), round(rate[1] * vcpus, 5)


@dataclass(frozen=True)
class _GcpRow:
    """One GCP machine as the source lists it: host part + GPU part (per region, USD/h)."""

    machine: str
    gpu: str
    count: int
    vcpus: int
    memory_gb: float
    host: tuple[float, float] | None  # (on-demand, spot); None when the source has no host row
    gpus: tuple[float, float | None]  # (on-demand, spot) for all `count` GPUs
    family: str  # key of _GCP_ZONES
    on_demand: bool = True
    region: str = "us-central1"
    accelerator: str | None = None  # N1 guest accelerator
    note: str = ""


_T4, _V100 = "nvidia-tesla-t4", "nvidia-tesla-v100"
_NO_ON_DEMAND = False  # Spot, Flex-start or reservations only (GCP consumption options)

# fmt: off
_GCP_ROWS: tuple[_GcpRow, ...] = (
    # machine, GPU, GPUs, vCPUs, GB, host (on-demand, spot), all GPUs (on-demand, spot), zones family
    _GcpRow("a3-highgpu-1g", "H100", 1, 26, 234, (1.18251, 0.21294), (9.79655, 1.7632), "a3-highgpu",
            on_demand=_NO_ON_DEMAND, region="us-east4"),
    _GcpRow("a3-highgpu-2g", "H100", 2, 52, 468, (2.36502, 0.42588), (19.5931, 3.5264), "a3-highgpu",
            on_demand=_NO_ON_DEMAND, region="us-east4"),
    _GcpRow("a3-highgpu-4g", "H100", 4, 104, 936, (4.73003, 0.85176), (39.1862, 7.0528), "a3-highgpu",
            on_demand=_NO_ON_DEMAND, region="us-east4"),
    _GcpRow("a3-highgpu-8g", "H100", 8, 208, 1872, (9.46006, 1.70352), (78.37241, 14.1056), "a3-highgpu",
            region="us-east4",
            note="us-east4 row: the us-central1 H100 GPU row ($33.61/8 GPUs) disagrees with GCP's ~$88 list"),
    _GcpRow("a3-ultragpu-8g", "H200", 8, 224, 2952, (12.266, 2.82111), (74.49392, 29.7976), "a3-ultragpu",
            on_demand=_NO_ON_DEMAND),
    _GcpRow("a4-highgpu-8g", "B200", 8, 224, 3968, None, (90.216, None), "a4-highgpu",
            on_demand=_NO_ON_DEMAND,
            note="shape per reference notes (GCP A4 docs); catalog has no A4 host row nor us-central1 spot"),
    _GcpRow("a2-highgpu-1g", "A100", 1, 12, 85, (0.73948, 0.29576), (2.93391, 1.1472), "a2-highgpu"),
    _GcpRow("a2-highgpu-2g", "A100", 2, 24, 170, (1.47895, 0.59151), (5.86782, 2.2944), "a2-highgpu"),
    _GcpRow("a2-highgpu-4g", "A100", 4, 48, 340, (2.95791, 1.18302), (11.73563, 4.5888), "a2-highgpu"),
    _GcpRow("a2-highgpu-8g", "A100", 8, 96, 680, (5.91582, 2.36604), (23.47126, 9.1776), "a2-highgpu"),
    _GcpRow("a2-megagpu-16g", "A100", 16, 96, 1360, (8.79698, 3.51864), (46.94253, 18.3552), "a2-megagpu"),
    _GcpRow("a2-ultragpu-1g", "A100-80GB", 1, 12, 170, (1.09962, 0.43983), (1.8462, 1.5712), "a2-ultragpu"),
    _GcpRow("a2-ultragpu-2g", "A100-80GB", 2, 24, 340, (2.19924, 0.87966), (3.6924, 3.1424), "a2-ultragpu"),
    _GcpRow("a2-ultragpu-4g", "A100-80GB", 4, 48, 680, (4.39849, 1.75932), (7.38479, 6.2848), "a2-ultragpu"),
    _GcpRow("a2-ultragpu-8g", "A100-80GB", 8, 96, 1360, (8.79698, 3.51864), (14.76958, 12.5696),
            "a2-ultragpu"),
    # G2: every g2-standard shape has 4 GB per vCPU; one L4 is $0.56004 on demand, $0.2231 spot.
    _GcpRow("g2-standard-4", "L4", 1, 4, 16, _per_vcpu(_G2_PER_VCPU, 4), (0.56004, 0.2231), "g2"),
    _GcpRow("g2-standard-8", "L4", 1, 8, 32, _per_vcpu(_G2_PER_VCPU, 8), (0.56004, 0.2231), "g2"),
    _GcpRow("g2-standard-12", "L4", 1, 12, 48, _per_vcpu(_G2_PER_VCPU, 12), (0.56004, 0.2231), "g2"),
    _GcpRow("g2-standard-16", "L4", 1, 16, 64, _per_vcpu(_G2_PER_VCPU, 16), (0.56004, 0.2231), "g2"),
    _GcpRow("g2-standard-32", "L4", 1, 32, 128, _per_vcpu(_G2_PER_VCPU, 32), (0.56004, 0.2231), "g2"),
    _GcpRow("g2-standard-24", "L4", 2, 24, 96, _per_vcpu(_G2_PER_VCPU, 24), (1.12008, 0.4462), "g2"),
    _GcpRow("g2-standard-48", "L4", 4, 48, 192, _per_vcpu(_G2_PER_VCPU, 48), (2.24016, 0.8924), "g2"),
    _GcpRow("g2-standard-96", "L4", 8, 96, 384, _per_vcpu(_G2_PER_VCPU, 96), (4.48032, 1.7848), "g2"),
    # N1 + guest accelerator. Host per SKY_RULES: T4 4/8/48 vCPUs and V100 8/16/32/64 vCPUs for
    # 1/2/4(/8) GPUs, >= 4 GB per vCPU, cheapest n1 shape that fits.
    _GcpRow("n1-highmem-4", "T4", 1, 4, 26, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 4), (0.35, 0.14), _T4,
            accelerator=_T4),
    _GcpRow("n1-highmem-8", "T4", 2, 8, 52, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 8), (0.70, 0.28), _T4,
            accelerator=_T4),
    _GcpRow("n1-standard-64", "T4", 4, 64, 240, _per_vcpu(_N1_STANDARD_PER_VCPU, 64), (1.40, 0.56), _T4,
            accelerator=_T4),
    _GcpRow("n1-highmem-8", "V100", 1, 8, 52, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 8), (2.48, 0.992), _V100,
            accelerator=_V100),
    _GcpRow("n1-highmem-16", "V100", 2, 16, 104, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 16), (4.96, 1.984), _V100,
            accelerator=_V100),
    _GcpRow("n1-highmem-32", "V100", 4, 32, 208, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 32), (9.92, 3.968), _V100,
            accelerator=_V100),
    _GcpRow("n1-highmem-64", "V100", 8, 64, 416, _per_vcpu(_N1_HIGHMEM_PER_VCPU, 64), (19.84, 7.936), _V100,
            accelerator=_V100),
)


# ---------------------------------------------------------------------------------------------------
# Prices in the other regions that sell a machine, from the same SKY_GCP commit: (host on-demand, host
# spot, GPUs on-demand, GPUs spot) per region, host row + GPU row as above. Read for the H100, H200 and
# A100 80GB machines (and the G2/L4 ones, _G2_REGIONAL) in the regions of _GCP_ZONES; other machines
# (A100 40GB, T4, V100, B200) are priced at their reference region's rows wherever they run. Spot prices
# are estimates: GCP may change them up to once a month.
# ``None`` on-demand: SkyPilot's GPU row there disagrees with GCP's list (H100:8 at $33.61, under half of
# us-east4's $78.37, where the a3 host and the H100 Mega GPU rows are priced alike in us-central1, us-west1
# and us-east4), so the reference region's on-demand price stands in (``Offering.price_in`` says so).
# ---------------------------------------------------------------------------------------------------
_REGIONAL: dict[str, dict[str, tuple[float | None, float, float | None, float]]] = {
    "a3-highgpu-1g": {
        "us-central1": (1.18251, 0.27193, None, 2.253),
        "us-west1": (1.18251, 0.27193, None, 2.253),
        "europe-west4": (1.24163, 0.2236, None, 2.2913),
        "asia-southeast1": (1.45886, 0.26252, None, 2.2918),
    },
    "a3-highgpu-2g": {
        "us-central1": (2.36502, 0.54387, None, 4.506),
        "us-west1": (2.36502, 0.54387, None, 4.506),
        "europe-west4": (2.48327, 0.4472, None, 4.5826),
        "asia-southeast1": (2.91772, 0.52504, None, 4.5836),
    },
    "a3-highgpu-4g": {
        "us-central1": (4.73003, 1.08774, None, 9.012),
        "us-west1": (4.73003, 1.08774, None, 9.012),
        "europe-west4": (4.96653, 0.8944, None, 9.1652),
        "asia-southeast1": (5.83544, 1.05009, None, 9.1672),
    },
    "a3-highgpu-8g": {
        "us-central1": (9.46006, 2.17547, None, 18.024),
        "us-west1": (9.46006, 2.17547, None, 18.024),
        "europe-west4": (9.93306, 1.7888, 101.88413, 18.3304),
        "asia-southeast1": (11.67088, 2.10018, None, 18.3344),
    },
    "a3-ultragpu-8g": {
        "us-east4": (12.266, 2.20896, None, 27.8608),
        "us-west1": (12.266, 2.82111, None, 29.7976),
        "europe-west4": (12.8793, 2.31952, None, 31.28752),
    },
    "a2-ultragpu-1g": {
        "us-east4": (1.23833, 0.463, 2.07937, 1.7697),
        "europe-west4": (1.2105, 0.47328, 2.03285, 1.5771),
        "asia-southeast1": (1.35641, 0.5425, 4.84607, 1.6476),
    },
    "a2-ultragpu-2g": {
        "us-east4": (2.47666, 0.926, 4.15875, 3.5394),
        "europe-west4": (2.42101, 0.94656, 4.0657, 3.1542),
        "asia-southeast1": (2.71282, 1.085, 9.69214, 3.2952),
    },
    "a2-ultragpu-4g": {
        "us-east4": (4.95332, 1.852, 8.31749, 7.0788),
        "europe-west4": (4.84202, 1.89312, 8.13139, 6.3084),
        "asia-southeast1": (5.42563, 2.17, 19.38429, 6.5904),
    },
    "a2-ultragpu-8g": {
        "us-east4": (9.90664, 3.704, 16.63498, 14.1576),
        "europe-west4": (9.68403, 3.78624, 16.26278, 12.6168),
        "asia-southeast1": (10.85126, 4.34, 38.76858, 13.1808),
    },
}


#: G2 (L4) per region: the g2-standard-12 host row and the L4:1 GPU row (on-demand, spot), from SKY_GCP.
#: Hosts scale per vCPU within the series (as _G2_PER_VCPU does for us-central1) and L4 rows per GPU (the
#: source's L4:1, L4:2 and L4:4 rows are multiples of each other in every region read).
_G2_REGIONAL: dict[str, tuple[float, float, float, float]] = {
    "us-east1": (0.44038, 0.17621, 0.56004, 0.2231),
    "us-east4": (0.43893, 0.17554, 0.55821, 0.2233),
    "us-west1": (0.44038, 0.17621, 0.56004, 0.2231),
    "europe-west4": (0.46286, 0.18521, 0.58804, 0.2106),
    "asia-southeast1": (0.54329, 0.21732, 0.69092, 0.2384),
}


def _regional_rows(row: _GcpRow) -> dict[str, tuple[float | None, float, float | None, float]]:
    """(host on-demand, host spot, GPUs on-demand, GPUs spot) of the row's machine per region read."""
    if row.family != "g2":
        return _REGIONAL.get(row.machine, {})
    return {
        region: (
            round(host_od * row.vcpus / 12, 5),
            round(host_spot * row.vcpus / 12, 5),
            round(gpu_od * row.count, 5),
            round(gpu_spot * row.count, 5),
        )
        for region, (host_od, host_spot, gpu_od, gpu_spot) in _G2_REGIONAL.items()
    }


def _region_prices(row: _GcpRow) -> dict[str, RegionPrice]:
    """The row's machine in the other regions that sell it, where SKY_GCP was read for them."""
    prices = {}
    for region, (host_od, host_spot, gpus_od, gpus_spot) in _regional_rows(row).items():
        if region == row.region or region not in _GCP_ZONES[row.family]:
            continue
        on_demand = sum_prices(host_od, gpus_od) if row.on_demand else None
        prices[region] = RegionPrice(
            on_demand, sum_prices(host_spot, gpus_spot), f"{SKY_GCP}, {region}, host + GPU rows"
        )
    return prices


def _gcp_offering(row: _GcpRow) -> Offering:
    host_od, host_spot = row.host if row.host else (None, None)
    gpus_od, gpus_spot = row.gpus
    on_demand = sum_prices(host_od, gpus_od) if row.on_demand else None
    source = f"{SKY_GCP}, {row.region}, host + GPU rows" + (f"; {row.note}" if row.note else "")
    return Offering(
        cloud="gcp",
        gpu=row.gpu,
        gpu_count=row.count,
        machine_type=row.machine,
        vcpus=row.vcpus,
        memory_gb=row.memory_gb,
        accelerator_type=row.accelerator,
        on_demand_hourly=on_demand,
        spot_hourly=sum_prices(host_spot, gpus_spot),
        on_demand=row.on_demand,
        price_source=source,
        zones=MappingProxyType(_GCP_ZONES[row.family]),
        price_region=row.region,
        region_prices=MappingProxyType(_region_prices(row)),
    )


CATALOG = MachineTable(tuple(_gcp_offering(row) for row in _GCP_ROWS))
