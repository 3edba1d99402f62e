"""GPU catalog: which machine each cloud sells for a GPU type and count, with its shape and list price.

The tables below read like a price sheet, one row per machine, each with the source of its figures.
``select()`` picks the cheapest fitting machine the way SkyPilot's optimizer does (spot price when
spot is asked for, on-demand otherwise). Prices are public list prices in USD per machine-hour in one
reference region per cloud (GCP us-central1 unless a row says otherwise, AWS us-east-1); treat them
as estimates for comparing machines, not as a bill.

Sources (read on the catalog date):
- SKY_GCP: SkyPilot's public catalog, github.com/skypilot-org/skypilot-catalog, catalogs/v7/gcp/vms.csv
  at commit 017e2502. GCP machines are listed there as a host row (vCPUs, memory, host price) plus
  a GPU row per count; a machine's price here is host + GPU. Its zone column is the zone list below.
- SKY_RULES: SkyPilot's GCP rules, github.com/skypilot-org/skypilot sky/catalog/gcp_catalog.py
  (GPU -> machine family; N1 host for T4/V100 = cheapest n1 with >= the default vCPUs per GPU and
  >= 4 GB per vCPU).
- GCP purchase options: GCP's GPU consumption-options table, as summarised in the project's
  reference notes (a3-highgpu-1g/2g/4g: Spot or Flex-start only;
  A3 Ultra and A4: Spot, Flex-start or reservations, no plain on-demand).
- AWS: on-demand Linux list prices, us-east-1, after the mid-2025 P4/P5 price cut, from the
  project's reference notes and SkyPilot's catalogs/v7/aws/vms.csv (commit 001367d2). AWS spot is a
  market price that moves per zone and hour, so it is not recorded (None); spot selection on AWS
  ranks machines by their on-demand price instead.
- AWS regions: ``AWS_REGIONS`` is AWS's public region list as the pinned AWS provider knows it (the
  ``Region`` enum of pulumi_aws 7.51.1, ``pulumi_aws/_enums.py``, generated from the provider's schema;
  a test keeps the two equal). Which regions sell each instance type: the Region column of SKY_AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

CATALOG_DATE = "2026-11"

Cloud = Literal["gcp", "aws", "kubernetes"]
CLOUDS: tuple[Cloud, ...] = ("gcp", "aws", "kubernetes")

SKY_GCP = f"skypilot-catalog v7 gcp/vms.csv @017e2502 (read {CATALOG_DATE})"
SKY_AWS = f"skypilot-catalog v7 aws/vms.csv @001367d2 (read {CATALOG_DATE})"
AWS_LIST = f"AWS EC2 on-demand list, us-east-1, after mid-2025 P4/P5 cut (reference notes, {CATALOG_DATE})"
P5_4XLARGE = "1x H100 size, sold since 2025 (listed in porter-dev/docs PR 251); list price not captured"
KUBERNETES_MAX_GPUS = 8  # one replica is one pod on one node; the largest common GPU nodes carry 8


class CatalogError(ValueError):
    """No machine fits the request; the message says what is valid instead."""


@dataclass(frozen=True)
class GpuType:
    name: str  # canonical, e.g. "H100"
    memory_gb: int  # per GPU
    description: str


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

    @property
    def gpu_memory_gb(self) -> int:
        """Total GPU memory of the machine."""
        return GPU_TYPES[self.gpu].memory_gb * self.gpu_count

    def hourly(self, spot: bool) -> float | None:
        return self.spot_hourly if spot else self.on_demand_hourly


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

#: The 4-GPU 24xlarge sizes: AWS's us-east-1 on-demand list as remembered, then matched to the cent by a
#: public EC2 on-demand price table in a benchmark project's source (read 2026-11), not by AWS itself.
_AWS_24XLARGE = "AWS EC2 on-demand list, us-east-1 (2025; cross-checked with a public price table, 2026-11)"

# AWS: (instance type, GPU, GPUs, vCPUs, memory GiB, on-demand $/h or None if not captured, source)
_AWS_ROWS: tuple[tuple[str, str, int, int, int, float | None, str], ...] = (
    ("p5.4xlarge",       "H100",      1,  16,  256, None,     P5_4XLARGE),
    ("p5.48xlarge",      "H100",      8, 192, 2048, 55.04,    AWS_LIST),
    ("p5en.48xlarge",    "H200",      8, 192, 2048, 63.30,    AWS_LIST),
    ("p6-b200.48xlarge", "B200",      8, 192, 2048, 113.93,   AWS_LIST),
    ("p4d.24xlarge",     "A100",      8,  96, 1152, 21.96,    AWS_LIST),
    ("p4de.24xlarge",    "A100-80GB", 8,  96, 1152, 27.45,    AWS_LIST),
    ("g6e.xlarge",       "L40S",      1,   4,   32, 1.861,    AWS_LIST),
    ("g6e.12xlarge",     "L40S",      4,  48,  384, 10.49264, AWS_LIST),
    ("g6e.24xlarge",     "L40S",      4,  96,  768, 15.06559, _AWS_24XLARGE),
    ("g6e.48xlarge",     "L40S",      8, 192, 1536, 30.13118, AWS_LIST),
    ("g6.xlarge",        "L4",        1,   4,   16, 0.8048,   AWS_LIST),
    ("g6.12xlarge",      "L4",        4,  48,  192, 4.6016,   AWS_LIST),
    ("g6.24xlarge",      "L4",        4,  96,  384, 6.6752,   _AWS_24XLARGE),
    ("g6.48xlarge",      "L4",        8, 192,  768, 13.3504,  AWS_LIST),
    ("g5.xlarge",        "A10G",      1,   4,   16, 1.006,    AWS_LIST),
    ("g5.12xlarge",      "A10G",      4,  48,  192, 5.672,    f"{AWS_LIST}; {SKY_AWS}"),
    ("g5.24xlarge",      "A10G",      4,  96,  384, 8.144,    _AWS_24XLARGE),
    ("g5.48xlarge",      "A10G",      8, 192,  768, 16.288,   AWS_LIST),
    ("g4dn.xlarge",      "T4",        1,   4,   16, 0.526,    f"{AWS_LIST}; {SKY_AWS}"),
    ("g4dn.12xlarge",    "T4",        4,  48,  192, 3.912,    AWS_LIST),
    ("g4dn.metal",       "T4",        8,  96,  384, 7.824,    AWS_LIST),
)
# fmt: on


# ---------------------------------------------------------------------------------------------------
# AWS regions. The public commercial regions and the separate partitions (China, GovCloud, ISO,
# European Sovereign Cloud), as pulumi_aws 7.51.1 lists them in its Region enum.
# ---------------------------------------------------------------------------------------------------
AWS_REGIONS_SOURCE = "Region enum of pulumi_aws 7.51.1 (pulumi_aws/_enums.py)"
AWS_REGIONS: tuple[str, ...] = (
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
    "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
    "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
    "us-west-1", "us-west-2", "cn-north-1", "cn-northwest-1", "eusc-de-east-1", "us-gov-east-1",
    "us-gov-west-1", "us-iso-east-1", "us-iso-west-1", "us-isob-east-1", "us-isob-west-1",
    "eu-isoe-west-1", "us-isof-east-1", "us-isof-south-1",
)  # fmt: skip

#: Regions that sell each instance type: the Region column of SKY_AWS. Sizes of one family are sold in
#: the same regions there; where a size's rows were not all read, its siblings' list stands in (noted).
#: Types absent from that catalog (p5.4xlarge, p6-b200.48xlarge) have no entry: their region is not
#: checked here, and the AWS backend still asks EC2 which zones of the region offer the type.
_G4DN = (
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-southeast-1", "ap-southeast-2", "ca-central-1", "eu-central-1", "eu-north-1", "eu-south-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "me-south-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
)  # fmt: skip
_G5 = (
    "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2", "ap-southeast-3", "ca-central-1",
    "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "me-central-1", "us-east-1", "us-east-2",
    "us-west-2",
)  # fmt: skip
_G6 = (
    "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2", "ca-central-1", "eu-central-1",
    "eu-north-1", "eu-west-2", "eu-west-3", "us-east-1", "us-east-2", "us-west-2",
)  # fmt: skip
_G6E = (
    "ap-northeast-1",
    "ap-northeast-2",
    "eu-central-1",
    "eu-north-1",
    "us-east-1",
    "us-east-2",
    "us-west-2",
)
_AWS_SOLD_IN: dict[str, tuple[str, ...]] = {
    # g4dn.xlarge and g4dn.metal read whole; g4dn.12xlarge read to ap-northeast-3, the same so far.
    **dict.fromkeys(("g4dn.xlarge", "g4dn.12xlarge", "g4dn.metal"), _G4DN),
    # g5.2xlarge, g5.24xlarge read whole; g5.12xlarge, g5.48xlarge agree as far as read; g5.xlarge not read.
    **dict.fromkeys(("g5.xlarge", "g5.12xlarge", "g5.24xlarge", "g5.48xlarge"), _G5),
    # g6.16xlarge, g6.24xlarge read whole; g6.12xlarge, g6.xlarge agree as far as read; g6.48xlarge not read.
    **dict.fromkeys(("g6.xlarge", "g6.12xlarge", "g6.24xlarge", "g6.48xlarge"), _G6),
    # g6e.12xlarge, g6e.16xlarge, g6e.24xlarge read whole; g6e.xlarge agrees as far as read; g6e.48xlarge
    # not read.
    **dict.fromkeys(("g6e.xlarge", "g6e.12xlarge", "g6e.24xlarge", "g6e.48xlarge"), _G6E),
    "p4d.24xlarge": (
        "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-2", "eu-central-1", "eu-west-1",
        "us-east-1", "us-east-2", "us-west-2",
    ),
    "p4de.24xlarge": ("us-east-1", "us-west-2"),
    "p5.48xlarge": (
        "ap-northeast-1", "ap-south-1", "ap-southeast-2", "ca-central-1", "eu-north-1", "eu-west-2",
        "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    ),
    "p5en.48xlarge": (
        "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-3", "us-east-1", "us-east-2",
        "us-west-1", "us-west-2",
    ),
}  # fmt: skip


def _gcp_offering(row: _GcpRow) -> Offering:
    host_od, host_spot = row.host if row.host else (None, None)
    gpus_od, gpus_spot = row.gpus
    on_demand = _sum(host_od, gpus_od) if row.on_demand else None
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
        spot_hourly=_sum(host_spot, gpus_spot),
        on_demand=row.on_demand,
        price_source=source,
        zones=MappingProxyType(_GCP_ZONES[row.family]),
    )


def _sum(host: float | None, gpus: float | None) -> float | None:
    """A machine price is known only when both of its parts are."""
    return None if host is None or gpus is None else round(host + gpus, 5)


def _aws_offering(row: tuple[str, str, int, int, int, float | None, str]) -> Offering:
    machine, gpu, count, vcpus, memory_gb, on_demand, source = row
    return Offering(
        cloud="aws",
        gpu=gpu,
        gpu_count=count,
        machine_type=machine,
        vcpus=vcpus,
        memory_gb=memory_gb,
        accelerator_type=None,
        on_demand_hourly=on_demand,
        spot_hourly=None,
        on_demand=True,
        price_source=source,
        regions=_AWS_SOLD_IN.get(machine, ()),
    )


def _kubernetes_offering(gpu: str, count: int) -> Offering:
    return Offering(
        cloud="kubernetes",
        gpu=gpu,
        gpu_count=count,
        machine_type=None,
        vcpus=None,
        memory_gb=None,
        accelerator_type=None,
        on_demand_hourly=None,
        spot_hourly=None,
        on_demand=True,
        price_source="the cluster owns the nodes and their cost; GPU memory from NVIDIA specifications",
    )


_MACHINES: dict[str, tuple[Offering, ...]] = {
    "gcp": tuple(_gcp_offering(row) for row in _GCP_ROWS),
    "aws": tuple(_aws_offering(row) for row in _AWS_ROWS),
}


_BY_LOWER_NAME = {known.lower(): known for known in GPU_TYPES}


def canonical_gpu(name: str) -> str | None:
    """The SkyPilot spelling of a GPU name, matched case-insensitively; None if unknown."""
    return _BY_LOWER_NAME.get(name.strip().lower())


def gpus_offered(cloud: str) -> list[str]:
    """Canonical GPU names the cloud sells, sorted. Kubernetes: every known type (the cluster decides)."""
    if _check_cloud(cloud) == "kubernetes":
        return sorted(GPU_TYPES)
    return sorted({offering.gpu for offering in _MACHINES[cloud]})


def counts_offered(cloud: str, gpu: str) -> list[int]:
    """GPU counts per machine the cloud sells for ``gpu``, sorted; empty for an unknown or unsold GPU."""
    canonical = canonical_gpu(gpu)
    if _check_cloud(cloud) == "kubernetes":
        return list(range(1, KUBERNETES_MAX_GPUS + 1)) if canonical else []
    return sorted({offering.gpu_count for offering in _MACHINES[cloud] if offering.gpu == canonical})


def offerings(cloud: str, gpu: str, count: int) -> list[Offering]:
    """Every machine that carries exactly ``count`` of ``gpu``, in table order."""
    canonical = canonical_gpu(gpu)
    if _check_cloud(cloud) == "kubernetes":
        fits = canonical is not None and 1 <= count <= KUBERNETES_MAX_GPUS
        return [_kubernetes_offering(canonical, count)] if fits else []
    return [o for o in _MACHINES[cloud] if o.gpu == canonical and o.gpu_count == count]


def select(cloud: str, gpu: str, count: int, spot: bool) -> Offering:
    """The cheapest fitting machine; raises CatalogError saying what is valid when none fits.

    Ranking: the price for the purchase option asked for; when a spot price is unknown (AWS), the
    on-demand price stands in for it; machines with no known price rank last, in table order.
    """
    canonical = canonical_gpu(gpu)
    if canonical is None:
        raise CatalogError(f"unknown GPU {gpu!r}; known GPU types: {', '.join(sorted(GPU_TYPES))}")
    fitting = offerings(cloud, canonical, count)
    name = cloud.upper() if cloud != "kubernetes" else "Kubernetes"
    if not fitting:
        counts = counts_offered(cloud, canonical)
        if not counts:
            raise CatalogError(f"{name} does not sell {canonical}; it sells {', '.join(gpus_offered(cloud))}")
        verb = "runs one replica on one node with" if cloud == "kubernetes" else "sells"
        raise CatalogError(f"{name} {verb} {canonical} in counts {', '.join(map(str, counts))}")
    if not spot:
        fitting = [offering for offering in fitting if offering.on_demand]
        if not fitting:
            raise CatalogError(_spot_only_message(name, cloud, canonical, count))
    return min(fitting, key=lambda offering: _rank_price(offering, spot))


def _rank_price(offering: Offering, spot: bool) -> tuple[bool, float]:
    price = offering.hourly(spot)
    if price is None:
        price = offering.on_demand_hourly
    return (price is None, price or 0.0)


def _spot_only_message(name: str, cloud: str, gpu: str, count: int) -> str:
    machines = ", ".join(sorted({str(o.machine_type) for o in offerings(cloud, gpu, count)}))
    on_demand_counts = [
        c for c in counts_offered(cloud, gpu) if any(o.on_demand for o in offerings(cloud, gpu, c))
    ]
    instead = f" or use {' / '.join(f'{gpu}:{c}' for c in on_demand_counts)}" if on_demand_counts else ""
    return (
        f"{name} sells {gpu}:{count} ({machines}) only as Spot, Flex-start or reservations, not plain "
        f"on-demand: set vllm:spot true{instead}"
    )


def _check_cloud(cloud: str) -> str:
    if cloud not in CLOUDS:
        raise CatalogError(f"unknown cloud {cloud!r}; known clouds: {', '.join(CLOUDS)}")
    return cloud
