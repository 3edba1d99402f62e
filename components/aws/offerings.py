"""AWS's price sheet: the instance type for each GPU type and count, its shape, regions and list price.

Sources (read on the catalog date):
- AWS: on-demand Linux list prices, us-east-1, after the mid-2025 P4/P5 price cut, from the
  project's reference notes and SkyPilot's catalogs/v7/aws/vms.csv (commit 001367d2). AWS spot is a
  market price that moves per zone and hour, so it is not recorded (None); spot selection on AWS
  ranks machines by their on-demand price instead.
- AWS regions: ``AWS_REGIONS`` is AWS's public region list as the pinned AWS provider knows it (the
  ``Region`` enum of pulumi_aws 7.51.1, ``pulumi_aws/_enums.py``, generated from the provider's schema;
  a test keeps the two equal). Which regions sell each instance type: the Region column of SKY_AWS.
"""

from __future__ import annotations

from components.catalog import CATALOG_DATE, MachineTable, Offering

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


CATALOG = MachineTable(tuple(_aws_offering(row) for row in _AWS_ROWS))
