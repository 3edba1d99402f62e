"""CrossGuard policy pack: the project's standards, enforced by ``pulumi preview --policy-pack policy``.

The rules live in validators.py and gpu_budget.py (what every platform shares) and in each platform's
``components/<platform>/policy.py`` (its scanners and its own policies, found through the platform
registry), as pure functions unit-tested in tests/test_policy.py; this file only adapts Pulumi's policy SDK
to them and names no platform. Every policy is mandatory (a violation fails the preview
or update), but the advisory on a plain-HTTP endpoint, which only warns.

Pulumi runs this file from policy/ in its own venv (policy/venv, from requirements.txt here), with
policy/, not the repository root, on ``sys.path``. The root goes first on it so that the platform registry
(``components.platforms``) and ``policy.validators`` import as the program and the tests import them: one
``policy.validators`` module, hence one ``UNKNOWN``. What they import needs only requirements.txt: no cloud
SDK (tests/test_policy_pack.py proves both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# The repository root, for ``components`` and ``policy.validators`` (see above).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from policy import gpu_budget, validators


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


def stack_resources(args: StackValidationArgs) -> list[validators.StackResource]:
    return [
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


def stack_policy(
    name: str, description: str, check: validators.StackCheck, **options: Any
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, message in check(stack_resources(args)):
            report_violation(message, urn)

    return StackValidationPolicy(name=name, description=description, validate=validate, **options)


def validate_gpu_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """An autoscaled service's upper bound within the configured GPU budget (policy/gpu_budget.py)."""
    budget = int(args.get_config().get(gpu_budget.CONFIG_KEY, gpu_budget.DEFAULT_MAX_GPUS))
    for urn, message in gpu_budget.gpu_budget_violations(stack_resources(args), budget):
        report_violation(message, urn)


def validate_cleartext(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for urn, message in validators.cleartext_endpoint_violations(stack_resources(args)):
        report_violation(message, urn)


PolicyPack(
    name="vllm-serving-standards",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        resource_policy(
            validators.SECRETS,
            "The HF token and the API key reach vLLM from a secret store at boot: never in metadata, startup "
            "scripts, user data, labels, tags, literal env values or ConfigMaps.",
            validators.secret_violations,
        ),
        resource_policy(
            validators.EXPOSURE,
            "Ray's ports (6379, 8265, 10001, worker and object-manager ranges) and SSH are never open to "
            "0.0.0.0/0 or ::/0.",
            validators.exposure_violations,
        ),
        resource_policy(
            validators.PUBLIC_PATHS,
            "The load balancer routes only /v1/... and /health to vLLM; its default answers everything else "
            "without reaching vLLM (/metrics, /tokenize, /pause stay private).",
            validators.public_path_violations,
        ),
        resource_policy(
            validators.PRIVATE_BUCKETS,
            validators.described(validators.PRIVATE_BUCKETS, "The stack's weight cache bucket is private"),
            validators.bucket_violations,
        ),
        # Each platform's own rules (components/<platform>/policy.py: POLICIES), in registry order.
        *(
            resource_policy(policy.name, policy.description, policy.check)
            for policy in validators.platform_policies()
        ),
        stack_policy(
            validators.AUTOHEALING_POLICY,
            validators.described(
                validators.AUTOHEALING_POLICY,
                "Every GPU VM runs in a group that health-checks it and replaces failed replicas, never as a "
                "standalone instance",
            ),
            validators.autohealing_violations,
        ),
        StackValidationPolicy(
            name="autoscaled-gpu-budget",
            description="An autoscaled service's upper bound (max replicas x GPUs per replica) stays within "
            "the GPU budget set in the policy config (maxGpus, default 64).",
            validate=validate_gpu_budget,
            config_schema=PolicyConfigSchema(
                properties={
                    gpu_budget.CONFIG_KEY: {
                        "type": "integer",
                        "minimum": 1,
                        "default": gpu_budget.DEFAULT_MAX_GPUS,
                    }
                }
            ),
        ),
        resource_policy(
            validators.WEAK_TLS,
            validators.described(validators.WEAK_TLS, "HTTPS fronts accept TLS 1.2 or later only"),
            validators.weak_tls_violations,
        ),
        StackValidationPolicy(
            name="endpoint-serves-https",
            description="The public endpoint serves HTTPS (vllm:domain): over plain HTTP the API key and "
            "every prompt cross the internet in cleartext. Advisory: a stack may stay on HTTP by choice.",
            validate=validate_cleartext,
            enforcement_level=EnforcementLevel.ADVISORY,
        ),
        # Each platform's own stack rules (components/<platform>/policy.py: STACK_POLICIES), by registry.
        *(
            stack_policy(policy.name, policy.description, policy.check)
            for policy in validators.platform_stack_policies()
        ),
    ],
)
