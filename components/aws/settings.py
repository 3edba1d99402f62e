"""The AWS keys of a stack, validated: a leaf of the AWS package, which its platform.py reads into
``spec.platform`` and its resource modules read back (``settings(spec)``) without importing platform.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.service_spec import ServiceSpec


@dataclass(frozen=True, kw_only=True)
class AwsSettings:
    """The AWS keys of a stack, validated (docs/aws.md)."""

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()  # the instances' subnets (and the ALB's, unless named apart)
    load_balancer_subnet_ids: tuple[str, ...] = ()  # public subnets for the internet-facing ALB
    ami_id: str | None = None  # pinned AMI; None: the current Deep Learning AMI, resolved at launch
    reservation: str | None = None  # vllm:reservation: the capacity reservation id the machines target
    capacity_block: bool = False  # the reservation is a Capacity Block (market type capacity-block)
    reservation_zone: str | None = None  # vllm:reservationZone: the reservation's Availability Zone


def settings(spec: ServiceSpec) -> AwsSettings:
    """The stack's AWS settings (``spec.platform`` of an AWS stack)."""
    if not isinstance(spec.platform, AwsSettings):
        raise TypeError(f"{spec.cloud} stack has no AWS settings")
    return spec.platform
