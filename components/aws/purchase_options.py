"""How an EC2 group buys its machines: spot with an on-demand base in one Auto Scaling group with a mixed
instances policy, or a reservation (``reservation_options``).

The group keeps ``vllm:onDemandBaseReplicas`` machines on on-demand capacity and every machine above them
on spot (``on_demand_percentage_above_base_capacity`` 0), so SkyServe's ``base_ondemand_fallback_replicas``
is one group, not two. Spot machines come from whichever pools of the instance types that carry the same
GPUs have the most spare capacity at a low price (``price-capacity-optimized``, AWS's recommended
strategy for interruption-sensitive work), and with capacity rebalancing the group launches a replacement
when EC2 signals that a spot machine is at elevated risk of interruption, before the two-minute notice.

Argument limits, from the pinned pulumi_aws's docstrings (``autoscaling.Group``): ``on_demand_base_capacity``
"absolute minimum amount of desired capacity that must be fulfilled by on-demand instances", default 0;
``on_demand_percentage_above_base_capacity`` 0-100, default 100 (all on-demand: it must be set to 0);
``spot_allocation_strategy`` one of ``lowest-price`` (the default), ``capacity-optimized``,
``capacity-optimized-prioritized``, ``price-capacity-optimized``; ``capacity_rebalance`` a boolean. A group
with a mixed instances policy takes its launch template there, not in ``launch_template``, and the template
itself must not ask for spot (``instance_market_options``): the policy decides the market of each launch,
and AWS refuses the pair at update time ("Incompatible launch template: You cannot use a launch template
that is set to request Spot Instances (InstanceMarketOptions) when you configure an Auto Scaling group with a
mixed instances policy", quoted in kubernetes/kops#7066; the policy pack checks it,
``aws-mixed-instances-template-asks-no-market``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2

from components import catalog
from components.service_spec import ServiceSpec
from components.vm import vm_offering

SPOT_ALLOCATION_STRATEGY = "price-capacity-optimized"


def instance_types(spec: ServiceSpec) -> list[str]:
    """The catalog's instance types that give the stack's GPUs and are sold in its region, its own first:
    A100:8 runs on p4d.24xlarge and p4de.24xlarge. Types whose regions the catalog does not list are kept
    (EC2 skips an override no zone of the group offers)."""
    return [
        str(offering.machine_type)
        for offering in catalog.same_gpus(spec.cloud, vm_offering(spec))
        if not offering.regions or spec.region in offering.regions
    ]


def mixed_instances_policy(
    spec: ServiceSpec, template: ec2.LaunchTemplate
) -> autoscaling.GroupMixedInstancesPolicyArgsDict:
    """The on-demand base, spot above it, over every instance type with the same GPUs."""
    overrides: Sequence[autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgsDict] = [
        {"instance_type": name} for name in instance_types(spec)
    ]
    return {
        "instances_distribution": {
            "on_demand_base_capacity": spec.on_demand_base_replicas,
            "on_demand_percentage_above_base_capacity": 0,
            "spot_allocation_strategy": SPOT_ALLOCATION_STRATEGY,
        },
        "launch_template": {
            "launch_template_specification": {
                "launch_template_id": template.id,
                "version": template.latest_version.apply(str),
            },
            "overrides": list(overrides),
        },
    }


def reservation_options(reservation: str | None, capacity_block: bool) -> dict:
    """Launch template arguments that target ``vllm:reservation``: an On-Demand Capacity Reservation by id,
    or a Capacity Block, which EC2 launches into only with the market type ``capacity-block`` (EC2 API,
    LaunchTemplateInstanceMarketOptionsRequest.MarketType: spot | capacity-block)."""
    if reservation is None:
        return {}
    options: dict[str, pulumi.Input] = {
        "capacity_reservation_specification": {
            "capacity_reservation_target": {"capacity_reservation_id": reservation}
        }
    }
    if capacity_block:
        options["instance_market_options"] = {"market_type": "capacity-block"}
    return options
