"""CrossGuard policy pack: the project's standards, enforced by ``pulumi preview --policy-pack policy``.

The rules live in validators.py as pure functions (unit-tested in tests/test_policy.py); this file only
adapts Pulumi's policy SDK to them. Every policy is mandatory: a violation fails the preview or update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import validators
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError


def plain(value: Any) -> Any:
    """Copy Pulumi's property proxy (which raises on values unknown during preview) into plain data, with
    ``validators.UNKNOWN`` standing in for what the preview cannot know."""
    if isinstance(value, Mapping):
        return {key: _item(value, key) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_item(value, index) for index in range(len(value))]
    return value


def _item(container: Any, key: Any) -> Any:
    try:
        return plain(container[key])
    except UnknownValueError:
        return validators.UNKNOWN


def resource_policy(
    name: str, description: str, check: Callable[[str, Mapping[str, Any]], list[str]]
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, plain(args.props)):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def validate_autohealing(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [
        validators.StackResource(
            type=resource.resource_type,
            urn=resource.urn,
            props=plain(resource.props),
            parent=resource.parent.urn if resource.parent else None,
            property_dependencies={
                prop: tuple(dependency.urn for dependency in dependencies)
                for prop, dependencies in resource.property_dependencies.items()
            },
        )
        for resource in args.resources
    ]
    for urn, message in validators.autohealing_violations(resources):
        report_violation(message, urn)


PolicyPack(
    name="vllm-serving-standards",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        resource_policy(
            "secrets-only-in-secret-store",
            "The HF token and the API key reach vLLM from a secret store at boot: never in metadata, startup "
            "scripts, user data, labels, tags, literal env values or ConfigMaps.",
            validators.secret_violations,
        ),
        resource_policy(
            "no-ray-or-ssh-on-the-internet",
            "Ray's ports (6379, 8265, 10001, worker and object-manager ranges) and SSH are never open to "
            "0.0.0.0/0 or ::/0.",
            validators.exposure_violations,
        ),
        resource_policy(
            "load-balancer-serves-only-openai-paths",
            "The load balancer routes only /v1/... and /health to vLLM; its default answers everything else "
            "without reaching vLLM (/metrics, /tokenize, /pause stay private).",
            validators.public_path_violations,
        ),
        resource_policy(
            "weight-cache-buckets-private",
            "The stack's weight cache bucket is private: GCS uniform bucket-level access and public access "
            "prevention enforced, no grant to allUsers or allAuthenticatedUsers; S3 Block Public Access on.",
            validators.bucket_violations,
        ),
        resource_policy(
            "aws-elb-names-aws-accepts",
            "Load balancer and target group names: at most 32 letters, digits and hyphens, no hyphen at "
            "either end (AWS refuses others at update time, after a clean preview).",
            validators.aws_elb_name_violations,
        ),
        resource_policy(
            "aws-ec2-descriptions-aws-accepts",
            "Security group and rule descriptions use only a-zA-Z0-9. _-:/()#,@[]+=&;{}!$* (AWS refuses "
            "others at update time, after a clean preview).",
            validators.aws_description_violations,
        ),
        resource_policy(
            "aws-health-check-timeout-below-interval",
            "Target group health checks time out before the next check starts (AWS refuses others at "
            "update time, after a clean preview).",
            validators.aws_health_check_violations,
        ),
        StackValidationPolicy(
            name="gpu-vms-autoheal",
            description="Every GPU VM runs in a group that health-checks it and replaces failed replicas: "
            "GCP managed instance groups with autoHealingPolicies (Ray workers included), AWS Auto Scaling "
            "groups (EC2 health plus the on-instance health agent); no standalone GPU instances.",
            validate=validate_autohealing,
        ),
    ],
)
