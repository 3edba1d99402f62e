"""How many machines an AWS stack runs at most, rollouts included, and the EC2 vCPU quotas they draw on.

No SDK here: the stack's ``spec`` output (platform.py) and ``tools.plan`` read these offline, and ``up``
checks the quotas against the account (machines.py, ``quota_preflight``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from components import vm
from components.aws.settings import settings
from components.service_spec import ServiceSpec

#: Service Quotas codes (service ``ec2``) of the vCPU quotas GPU instances draw on, per family group:
#: "Running On-Demand P instances" L-417A185B, "Running On-Demand G and VT instances" L-DB2E81BA, "All P
#: Spot Instance Requests" L-7212CCBC, "All G and VT Spot Instance Requests" L-3819A6DF (Service Quotas
#: console, Amazon EC2). A new account has 0 vCPUs of the P quotas.
QUOTA_CODES = {
    "Running On-Demand P instances": "L-417A185B",
    "Running On-Demand G and VT instances": "L-DB2E81BA",
    "All P Spot Instance Requests": "L-7212CCBC",
    "All G and VT Spot Instance Requests": "L-3819A6DF",
}


@dataclass(frozen=True)
class Quota:
    """One EC2 vCPU quota of the stack's region and what the stack needs of it at peak."""

    name: str  # as Service Quotas names it
    code: str  # its quota code (service ec2)
    vcpus: int  # the stack's machines at peak, rollout surge included, times their vCPUs

    def as_output(self) -> dict[str, str | int]:
        return {"quota": self.name, "code": self.code, "vcpus": self.vcpus}


def reserved(spec: ServiceSpec) -> bool:
    """The machines launch into ``vllm:reservation``: rollouts then terminate before they launch."""
    return settings(spec).reservation is not None


def peak_machines(spec: ServiceSpec) -> int:
    """The most machines the stack runs at once: every group at its ``max_size`` (a single-node rollout
    surges one machine's share above ``replicas``, except into a reservation; Ray groups replace in
    place)."""
    if spec.nodes > 1:
        return spec.replicas * spec.nodes
    most = spec.max_replicas  # an autoscaled group's max_size is its bound plus the same surge
    return most + surge_machines(most, keep_serving=True, reserved=reserved(spec))


def scale_out_surge(spec: ServiceSpec) -> int:
    """Machines target tracking may run above ``vllm:maxReplicas``: an autoscaled group's max size keeps a
    rollout's surge room above the bound (a launch-first refresh at the top needs it), and target tracking
    has no cap of its own below MaxSize, so it may use it too (one p5 at about $55/h). ``costPerHour``
    and the GPU budget policy (maxSize) count it. None into a reservation (rollouts terminate first)."""
    if spec.autoscaling is None or spec.nodes > 1:
        return 0
    return surge_machines(spec.max_replicas, keep_serving=True, reserved=reserved(spec))


def _share(size: int) -> int:
    """One machine's share of a group of ``size``, in whole percent (rounded up)."""
    return math.ceil(100 / size)


def min_healthy_percentage(size: int, keep_serving: bool, reserved: bool = False) -> int:
    """A rollout's floor (see ``rolling_refresh``): 100% launching first, one machine's share below it
    terminating first, 0% replacing in place."""
    if not keep_serving:
        return 0
    return max(100 - _share(size), 0) if reserved else 100


def max_healthy_percentage(size: int, keep_serving: bool, reserved: bool = False) -> int:
    """A rollout's ceiling on an ASG of ``size`` machines: one machine's share above 100% when it keeps
    serving by launching first (see ``rolling_refresh``), AWS's maximum 200% at most; 100% otherwise."""
    return min(100 + _share(size), 200) if keep_serving and not reserved else 100


def surge_machines(size: int, keep_serving: bool, reserved: bool = False) -> int:
    """Machines a rollout may add above ``size`` (its max healthy percentage over 100%)."""
    return math.ceil(size * (max_healthy_percentage(size, keep_serving, reserved) - 100) / 100)


def vcpu_quotas(spec: ServiceSpec) -> list[Quota]:
    """The EC2 vCPU quotas the stack draws on (Service Quotas, per region), each with the vCPUs it needs at
    peak: on-demand for every machine without spot, for the on-demand base with it, and spot for the rest.

    EC2 counts running instances' vCPUs per family group: P instances, G and VT instances, each with an
    on-demand and a spot quota. A launch beyond it fails (VcpuLimitExceeded) and the group keeps retrying.
    A rollout's surge machines are above the base, so on spot when the stack is.
    """
    family = "P" if vm.machine_type(spec).startswith("p") else "G and VT"
    vcpus = vm.vm_offering(spec).vcpus
    if vcpus is None:
        raise ValueError(
            f"stack {spec.stack}: the AWS catalog row of {vm.machine_type(spec)} has no vCPU count"
        )
    peak = peak_machines(spec)
    on_demand = spec.on_demand_base_replicas * spec.nodes if spec.spot else peak
    needs = [
        (f"Running On-Demand {family} instances", on_demand * vcpus),
        (f"All {family} Spot Instance Requests", (peak - on_demand) * vcpus),
    ]
    return [Quota(name, QUOTA_CODES[name], needed) for name, needed in needs if needed]


def stack_vcpu_quotas(spec: ServiceSpec) -> list[Quota]:
    """``vcpu_quotas`` of every revision (vllm:canary runs both side by side), summed per quota."""
    summed: dict[str, Quota] = {}
    for revision in spec.revisions:
        for quota in vcpu_quotas(revision):
            known = summed.get(quota.code)
            summed[quota.code] = quota if known is None else replace(known, vcpus=known.vcpus + quota.vcpus)
    return list(summed.values())


def refusal(quota: Quota, value: float, region: str) -> str | None:
    """Why ``up`` stops when the account's ``value`` of ``quota`` cannot hold the stack, in one line with
    the request that raises it; None when it can. Other instances of the account draw on it too: the
    stack's need is a floor."""
    if value >= quota.vcpus:
        return None
    return (
        f"aws quota: {quota.name} ({quota.code}) in {region} is {value:g} vCPUs; this stack needs "
        f"{quota.vcpus} at its peak (every group at its maximum size, rollout surge included). Raise it: "
        f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {quota.code} "
        f"--desired-value {quota.vcpus} --region {region} (or Service Quotas console > Amazon EC2 > "
        f'"{quota.name}" > Request increase)'
    )
