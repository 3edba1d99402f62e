"""AWS's price sheet: the instance type for each GPU type and count, its shape, regions and list price.

Sources (read on the catalog date):
- AWS: on-demand Linux list prices, us-east-1, after the mid-2025 P4/P5 price cut, from the
  project's reference notes and SkyPilot's catalogs/v7/aws/vms.csv (commit 001367d2). AWS spot is a
  market price that moves per zone and hour: for the H100, H200 and A100 80GB machines the spot
  estimate is the median of that catalog's per-zone spot prices in each region (``_AWS_SPOT_BY_ZONE``);
  other machines have none (None), and spot selection ranks them by their on-demand price instead.
  That catalog's on-demand prices predate the mid-2025 cut, so they are not used.
- AWS regions: ``AWS_REGIONS`` is AWS's public region list as the pinned AWS provider knows it (the
  ``Region`` enum of pulumi_aws 7.51.1, ``pulumi_aws/_enums.py``, generated from the provider's schema;
  a test keeps the two equal). Which regions sell each instance type: the Region column of SKY_AWS.
"""

from __future__ import annotations

from statistics import median
from types import MappingProxyType

from components.offerings import CATALOG_DATE, MachineTable, Offering, RegionPrice

SKY_AWS = f"skypilot-catalog v7 aws/vms.csv @001367d2 (read {CATALOG_DATE})"
AWS_LIST = f"AWS EC2 on-demand list, us-east-1, after mid-2025 P4/P5 cut (reference notes, {CATALOG_DATE})"
P5_4XLARGE = "1x H100 size, sold since 2025 (listed in porter-dev/docs PR 251); list price not captured"

#: The 4-GPU 24xlarge sizes: AWS's us-east-1 on-demand list as remembered, then matched to the cent by a
#: public EC2 on-demand price table in a benchmark project's source (read 2026-11), not by AWS itself.
_AWS_24XLARGE = "AWS EC2 on-demand list, us-east-1 (2025; cross-checked with a public price table, 2026-11)"

# AWS: (instance type, GPU, GPUs, vCPUs, memory GiB, on-demand $/h or None if not captured, source)
_AWS_ROWS: tuple[tuple[str, str, int, int, int, float | None, str], ...] = (
    ("p5.4xlarge", "H100", 1, 16, 256, None, P5_4XLARGE),
    ("p5.48xlarge", "H100", 8, 192, 2048, 55.04, AWS_LIST),
    ("p5en.48xlarge", "H200", 8, 192, 2048, 63.30, AWS_LIST),
    ("p6-b200.48xlarge", "B200", 8, 192, 2048, 113.93, AWS_LIST),
    ("p4d.24xlarge", "A100", 8, 96, 1152, 21.96, AWS_LIST),
    ("p4de.24xlarge", "A100-80GB", 8, 96, 1152, 27.45, AWS_LIST),
    ("g6e.xlarge", "L40S", 1, 4, 32, 1.861, AWS_LIST),
    ("g6e.12xlarge", "L40S", 4, 48, 384, 10.49264, AWS_LIST),
    ("g6e.24xlarge", "L40S", 4, 96, 768, 15.06559, _AWS_24XLARGE),
    ("g6e.48xlarge", "L40S", 8, 192, 1536, 30.13118, AWS_LIST),
    ("g6.xlarge", "L4", 1, 4, 16, 0.8048, AWS_LIST),
    ("g6.12xlarge", "L4", 4, 48, 192, 4.6016, AWS_LIST),
    ("g6.24xlarge", "L4", 4, 96, 384, 6.6752, _AWS_24XLARGE),
    ("g6.48xlarge", "L4", 8, 192, 768, 13.3504, AWS_LIST),
    ("g5.xlarge", "A10G", 1, 4, 16, 1.006, AWS_LIST),
    ("g5.12xlarge", "A10G", 4, 48, 192, 5.672, f"{AWS_LIST}; {SKY_AWS}"),
    ("g5.24xlarge", "A10G", 4, 96, 384, 8.144, _AWS_24XLARGE),
    ("g5.48xlarge", "A10G", 8, 192, 768, 16.288, AWS_LIST),
    ("g4dn.xlarge", "T4", 1, 4, 16, 0.526, f"{AWS_LIST}; {SKY_AWS}"),
    ("g4dn.12xlarge", "T4", 4, 48, 192, 3.912, AWS_LIST),
    ("g4dn.metal", "T4", 8, 96, 384, 7.824, AWS_LIST),
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
#: checked here, and the AWS platform still asks EC2 which zones of the region offer the type.
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


#: Spot prices per availability zone (USD per machine-hour) in SKY_AWS, by instance type and region; zones
#: without a spot price there are left out, and so is ca-central-1, whose one zone lists spot at the on-demand
#: price (no spot discount to estimate). An estimate: the market moves per zone and hour.
_AWS_SPOT_BY_ZONE: dict[str, dict[str, tuple[float, ...]]] = {
    "p5.48xlarge": {
        "us-east-1": (30.3260, 27.6948, 20.9934, 29.3511, 25.8774, 25.3026),
        "us-east-2": (14.3773, 15.6465, 18.2766),
        "us-west-1": (17.1371,),
        "us-west-2": (33.2399, 30.9762, 31.7370, 30.5798),
        "ap-northeast-1": (40.0976, 35.6815),
        "ap-south-1": (15.6847, 11.7984, 12.3198),
        "ap-southeast-2": (95.8182, 127.3201, 13.1487),
        "eu-north-1": (28.528,),
        "eu-west-2": (43.0145, 45.5027, 45.8492),
    },
    "p5en.48xlarge": {
        "us-east-1": (24.2902,),
        "us-east-2": (17.2194, 15.4924, 17.2405),
        "us-west-2": (25.9397, 25.5123, 25.2326),
        "ap-northeast-1": (32.6174,),
        "ap-northeast-2": (22.4906,),
        "ap-south-1": (12.1188, 14.9639),
        "ap-southeast-3": (11.7024, 11.7024),
    },
    "p4de.24xlarge": {
        "us-east-1": (7.8074, 5.8394),
        "us-west-2": (7.1070, 7.2328, 6.8849),
    },
}
AWS_REFERENCE_REGION = "us-east-1"


def _spot_estimate(machine: str, region: str) -> float | None:
    zones = _AWS_SPOT_BY_ZONE.get(machine, {}).get(region)
    return round(median(zones), 5) if zones else None


def _region_prices(machine: str) -> dict[str, RegionPrice]:
    """Spot estimates in the other regions that sell the type; their on-demand price is not recorded (the
    reference region's stands in, and ``Offering.price_in`` says so)."""
    return {
        region: RegionPrice(
            None, _spot_estimate(machine, region), f"{SKY_AWS}, {region}: spot = median of its zones' spot"
        )
        for region in _AWS_SPOT_BY_ZONE.get(machine, {})
        if region != AWS_REFERENCE_REGION
    }


def _aws_offering(row: tuple[str, str, int, int, int, float | None, str]) -> Offering:
    machine, gpu, count, vcpus, memory_gb, on_demand, source = row
    spot = _spot_estimate(machine, AWS_REFERENCE_REGION)
    if spot is not None:
        source = f"{source}; spot: median of us-east-1's zone spot prices in {SKY_AWS}"
    return Offering(
        cloud="aws",
        gpu=gpu,
        gpu_count=count,
        machine_type=machine,
        vcpus=vcpus,
        memory_gb=memory_gb,
        accelerator_type=None,
        on_demand_hourly=on_demand,
        spot_hourly=spot,
        on_demand=True,
        price_source=source,
        regions=_AWS_SOLD_IN.get(machine, ()),
        price_region=AWS_REFERENCE_REGION,
        region_prices=MappingProxyType(_region_prices(machine)),
    )


CATALOG = MachineTable(tuple(_aws_offering(row) for row in _AWS_ROWS))
