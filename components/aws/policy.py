"""AWS's scanners for the policy pack, and the rules its API enforces only at ``pulumi up`` (after a clean
preview): pure functions over plain property dicts (the contract: policy/validators.py). Property names are
pulumi_aws's, camelCase as Pulumi hands them to a policy."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from policy import gpu_budget
from policy.validators import (
    ALL_PORTS,
    AUTOHEALING_POLICY,
    EXPOSURE,
    PRIVATE_BUCKETS,
    PUBLIC_PATHS,
    SECRETS,
    TCP_PROTOCOLS,
    UNKNOWN,
    UNLISTED,
    WEAK_TLS,
    Autohealing,
    PlatformPolicy,
    PlatformStackPolicy,
    Scanner,
    StackResource,
    TemplateLink,
    collect,
    decoded_texts,
    exposed,
    is_public_path,
    named_secrets,
    strings,
    text_secrets,
)

LAUNCH_TEMPLATE: Final = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE: Final = "aws:ec2/instance:Instance"
GROUP: Final = "aws:autoscaling/group:Group"
SECURITY_GROUP: Final = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE: Final = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE: Final = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP_RULES: Final = frozenset(
    {SECURITY_GROUP_RULE, INGRESS_RULE, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"}
)
LISTENER: Final = "aws:lb/listener:Listener"
LISTENER_RULE: Final = "aws:lb/listenerRule:ListenerRule"
LOAD_BALANCER: Final = "aws:lb/loadBalancer:LoadBalancer"
#: ELBv2 load balancers and target groups (``aws:alb`` is the same resource under its older name).
LOAD_BALANCERS: Final = frozenset({LOAD_BALANCER, "aws:alb/loadBalancer:LoadBalancer"})
TARGET_GROUPS: Final = frozenset({"aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup"})
SCALING_POLICY: Final = "aws:autoscaling/policy:Policy"
PUBLIC_ACCESS_BLOCK: Final = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"

#: A Secrets Manager secret's ARN points into the store; it holds no secret.
SECRET_REFERENCE: Final = re.compile(r"^arn:aws[\w-]*:secretsmanager:\S+$")


# --- Secrets ------------------------------------------------------------------------------------------------


def _vm_secrets(
    props: Mapping[str, Any], *, base64_fields: Sequence[str], text_fields: Sequence[str]
) -> list[str]:
    violations = []
    for name in base64_fields:
        texts = [text for value in strings(collect(props, name)) for text in decoded_texts(value)]
        violations += text_secrets(name, texts)
    for name in text_fields:
        violations += text_secrets(name, strings(collect(props, name)))
    violations += named_secrets("tags", props.get("tags"))
    for tags in collect(props, "tagSpecifications", "tags"):
        violations += named_secrets("tagSpecifications tags", tags)
    return list(dict.fromkeys(violations))


# --- Exposure -----------------------------------------------------------------------------------------------


def _rule_ports(protocol: Any, from_port: Any, to_port: Any) -> list[tuple[int, int]]:
    protocol = str(protocol).lower()
    if protocol in ("-1", "all"):
        return [ALL_PORTS]
    if protocol not in TCP_PROTOCOLS or not isinstance(from_port, int) or not isinstance(to_port, int):
        return []
    return [(from_port, to_port)]


def _security_group(props: Mapping[str, Any]) -> list[str]:
    violations = []
    for rule in collect(props, "ingress"):
        if isinstance(rule, Mapping):
            sources = collect(rule, "cidrBlocks") + collect(rule, "ipv6CidrBlocks")
            ports = _rule_ports(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"))
            violations += exposed("security group ingress", sources, ports)
    return violations


def _security_group_rule(props: Mapping[str, Any]) -> list[str]:
    if props.get("type") != "ingress":
        return []
    sources = collect(props, "cidrBlocks") + collect(props, "ipv6CidrBlocks")
    ports = _rule_ports(props.get("protocol"), props.get("fromPort"), props.get("toPort"))
    return exposed("security group rule", sources, ports)


def _ingress_rule(props: Mapping[str, Any]) -> list[str]:
    sources = collect(props, "cidrIpv4") + collect(props, "cidrIpv6")
    ports = _rule_ports(props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"))
    return exposed("security group ingress rule", sources, ports)


# --- Public paths: the ALB's listener and its rules ---------------------------------------------------------

#: NLB/GWLB listener protocols: no HTTP paths to route.
LAYER4_PROTOCOLS: Final = frozenset({"TCP", "UDP", "TCP_UDP", "TLS", "GENEVE", "QUIC", "TCP_QUIC"})


def _forwards(action: Any) -> bool:
    return isinstance(action, Mapping) and (
        action.get("type") == "forward"
        or action.get("forward") is not None
        or bool(action.get("targetGroupArn"))
    )


def _listener(props: Mapping[str, Any]) -> list[str]:
    if str(props.get("protocol") or "").upper() in LAYER4_PROTOCOLS:
        return []  # an NLB listener forwards connections, not paths (the Ray GCS port of a group)
    if any(_forwards(action) for action in collect(props, "defaultActions")):
        return [f"listener default action forwards {UNLISTED}: make it a fixed-response (404)"]
    return []


def _listener_rule(props: Mapping[str, Any]) -> list[str]:
    if not any(_forwards(action) for action in collect(props, "actions")):
        return []
    patterns = [
        condition for condition in collect(props, "conditions", "pathPattern") if condition is not None
    ]
    if UNKNOWN in patterns:
        return []
    if not patterns:
        return ["listener rule forwards without a path-pattern condition, so it forwards every path"]
    violations = []
    for pattern in patterns:
        if collect(pattern, "regexValues"):
            violations.append(
                "listener rule forwards regexValues, which this policy cannot prove stay in /v1/"
            )
        violations += [
            f"listener rule forwards {value!r}, outside /v1/ and /health"
            for value in strings(collect(pattern, "values"))
            if not is_public_path(value)
        ]
    return violations


# --- Health: GPU machines run in Auto Scaling groups ------------------------------------------------------

#: AWS GPU families: P (p4d, p5, p6-b200), G (g5, g6e, g5g), GR (gr6).
_GPU_INSTANCE = re.compile(r"^(?:p|g|gr)\d[\w-]*\.", re.I)
#: Auto Scaling health check types; ``EC2`` is the default and always applies.
HEALTH_CHECK_TYPES: Final = frozenset({"EC2", "ELB", "VPC_LATTICE", "EBS"})


def has_gpu(props: Mapping[str, Any]) -> bool:
    instance_type = props.get("instanceType")
    if isinstance(instance_type, str) and _GPU_INSTANCE.match(instance_type):
        return True
    return "gpu" in collect(props, "instanceRequirements", "acceleratorTypes")


def group_heals(props: Mapping[str, Any]) -> bool:
    """Every Auto Scaling group replaces a machine its health checks fail (EC2 status at least) or that
    reports itself Unhealthy (``SetInstanceHealth``: this project's on-instance watchdog on /health).
    ``ELB`` health is allowed but not required: it also replaces a GPU machine whose vLLM is merely
    restarting, which is why this project uses EC2 health and the watchdog."""
    check_type = props.get("healthCheckType")
    if check_type is UNKNOWN or check_type is None:
        return True
    return all(part.strip() in HEALTH_CHECK_TYPES for part in str(check_type).split(","))


_TEMPLATE_LINK = TemplateLink(
    (
        ("launchTemplate", "id"),
        ("launchTemplate", "name"),
        ("mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "launchTemplateId"),
        ("mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "launchTemplateName"),
    )
)


# --- AWS names and descriptions: rules AWS enforces only at apply, never at preview -------------------------

#: CreateLoadBalancer / CreateTargetGroup ``Name``: at most 32 alphanumerics and hyphens, no hyphen at
#: either end; a load balancer's may not start with ``internal-``. ``namePrefix`` leaves 26 characters
#: to the provider's unique suffix, so at most 6.
ELB_NAME_MAX: Final = 32
ELB_NAME_PREFIX_MAX: Final = 6
_ELB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_ELB_NAME_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def aws_elb_name_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """An ELB name AWS refuses at ``pulumi up`` (preview accepts it): too long, bad characters or ends."""
    if resource_type not in LOAD_BALANCERS | TARGET_GROUPS:
        return []
    kind = "target group" if resource_type in TARGET_GROUPS else "load balancer"
    violations = []
    name, prefix = props.get("name"), props.get("namePrefix")
    if isinstance(name, str):
        if len(name) > ELB_NAME_MAX or not _ELB_NAME.match(name):
            violations.append(
                f"{kind} name {name!r} ({len(name)} characters): AWS allows at most {ELB_NAME_MAX} letters, "
                "digits and hyphens, no hyphen first or last"
            )
        if kind == "load balancer" and name.startswith("internal-"):
            violations.append(f"load balancer name {name!r} may not start with 'internal-'")
    if isinstance(prefix, str) and (len(prefix) > ELB_NAME_PREFIX_MAX or not _ELB_NAME_PREFIX.match(prefix)):
        violations.append(
            f"{kind} namePrefix {prefix!r}: at most {ELB_NAME_PREFIX_MAX} letters, digits and hyphens, "
            "not starting with a hyphen"
        )
    return violations


#: CreateSecurityGroup / AuthorizeSecurityGroupIngress/Egress descriptions: up to 255 characters of
#: ``a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`` (an apostrophe fails at apply: terraform-provider-aws#18874).
EC2_DESCRIPTION_MAX: Final = 255
_EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*$")


def _bad_description(where: str, text: Any) -> list[str]:
    if not isinstance(text, str) or (len(text) <= EC2_DESCRIPTION_MAX and _EC2_DESCRIPTION.match(text)):
        return []
    bad = "".join(sorted({c for c in text if not _EC2_DESCRIPTION.match(c)}))
    allowed = "a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"
    found = f", not {bad!r}" if bad else ""
    return [f"{where} {text!r}: EC2 accepts up to {EC2_DESCRIPTION_MAX} characters of {allowed}{found}"]


def aws_description_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A security group or rule description EC2 refuses at ``pulumi up`` (preview accepts it)."""
    if resource_type == SECURITY_GROUP:
        violations = _bad_description("security group description", props.get("description"))
        for direction in ("ingress", "egress"):
            for rule in collect(props, direction):
                if isinstance(rule, Mapping):
                    violations += _bad_description(
                        f"inline {direction} rule description", rule.get("description")
                    )
        return violations
    if resource_type in SECURITY_GROUP_RULES:
        return _bad_description("security group rule description", props.get("description"))
    return []


def aws_health_check_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A target group health check AWS refuses at ``pulumi up``: timeout not below interval
    (CreateTargetGroup/ModifyTargetGroup: "Health check timeout '10' must be smaller than the interval
    '10'", terraform-provider-aws#2366). Numbers may arrive as floats (the CrossGuard SDK's)."""
    if resource_type not in TARGET_GROUPS:
        return []
    check = props.get("healthCheck")
    if not isinstance(check, Mapping):
        return []
    timeout, interval = check.get("timeout"), check.get("interval")
    numbers = (int, float)
    if isinstance(timeout, numbers) and isinstance(interval, numbers) and not timeout < interval:
        return [
            f"target group health check timeout {timeout:g} s is not below its interval {interval:g} s: "
            "AWS refuses it"
        ]
    return []


# --- Cleartext: an internet-facing ALB without an HTTPS listener (advisory) --------------------------------


def public_http(resources: Sequence[StackResource]) -> list[StackResource]:
    """Internet-facing ALBs, when no HTTPS listener serves the stack."""
    if any(
        resource.type == LISTENER and str(resource.props.get("protocol") or "").upper() == "HTTPS"
        for resource in resources
    ):
        return []
    return [
        resource
        for resource in resources
        if resource.type == LOAD_BALANCER
        and resource.props.get("loadBalancerType", "application") == "application"
        and resource.props.get("internal") is not True
    ]


# --- TLS: ALB HTTPS listeners use a TLS 1.2+ security policy -----------------------------------------------

#: AWS's predefined ALB policies whose names say their lowest version is TLS 1.2 or 1.3 (ELB docs,
#: "Security policies for your Application Load Balancer"): ``ELBSecurityPolicy-TLS13-1-2-*``,
#: ``-TLS13-1-3-*``, ``-TLS-1-2-*``, ``-FS-1-2-*``. The provider's default (none given) is
#: ELBSecurityPolicy-2016-08, which admits TLS 1.0.
_TLS12_POLICY = re.compile(r"^ELBSecurityPolicy-(?:TLS13-1-[23]|TLS-1-2|FS-1-2)-")


def _listener_tls(props: Mapping[str, Any]) -> list[str]:
    if str(props.get("protocol") or "").upper() != "HTTPS":
        return []
    policy = props.get("sslPolicy")
    if policy is UNKNOWN:
        return []
    if not isinstance(policy, str) or not _TLS12_POLICY.match(policy):
        shown = policy or "none (the provider's default, ELBSecurityPolicy-2016-08)"
        return [f"HTTPS listener sslPolicy {shown} accepts TLS below 1.2: use a TLS 1.2+ policy such as "
                "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"]  # fmt: skip
    return []


# --- The weight cache's bucket is private: S3 Block Public Access -------------------------------------------

S3_BLOCK_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _public_access_block(props: Mapping[str, Any]) -> list[str]:
    return [
        f"public access block: {flag} must be true" for flag in S3_BLOCK_FLAGS if props.get(flag) is not True
    ]


# --- GPU budget: a target-tracking policy on an Auto Scaling group -----------------------------------------

#: GPUs per AWS instance type (EC2 "Accelerated computing instance types"): P families by type, G families
#: by size (12xlarge and 24xlarge have 4, 48xlarge and metal 8, the others 1).
_P_GPUS: Final = {
    "p3.2xlarge": 1,
    "p3.8xlarge": 4,
    "p3.16xlarge": 8,
    "p3dn.24xlarge": 8,
    "p4d.24xlarge": 8,
    "p4de.24xlarge": 8,
    "p5.4xlarge": 1,
    "p5.48xlarge": 8,
    "p5e.48xlarge": 8,
    "p5en.48xlarge": 8,
    "p6-b200.48xlarge": 8,
}
_G_FAMILY: Final = re.compile(r"^(g4dn|g5|g6|g6e)\.(\w+)$")
_G_GPUS_BY_SIZE: Final = {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8, "metal": 8}


def instance_gpus(instance_type: Any) -> int | None:
    """GPUs of an instance type, None for one this table does not count."""
    if not isinstance(instance_type, str):
        return None
    if instance_type in _P_GPUS:
        return _P_GPUS[instance_type]
    if found := _G_FAMILY.match(instance_type):
        return _G_GPUS_BY_SIZE.get(found.group(2), 1)
    return None


def _scaling_policy_bound(
    policy: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> tuple[float, int] | None:
    """A target-tracking policy's group: its maxSize (the machines it may run, the rollout surge included)
    and its launch template's GPUs. Other policy types (step, simple) scale nothing on their own here."""
    if not policy.props.get("targetTrackingConfiguration"):
        return None
    groups = gpu_budget.linked(
        policy,
        "autoscalingGroupName",
        policy.props.get("autoscalingGroupName"),
        (r for r in resources if r.type == GROUP),
    )
    templates = [r for r in resources if r.type == LAUNCH_TEMPLATE]
    for group in groups:
        most = gpu_budget.number(group.props.get("maxSize"))
        linked = gpu_budget.linked(
            group, "launchTemplate", gpu_budget.dig(group.props, "launchTemplate", "id"), templates
        )
        gpus = {instance_gpus(template.props.get("instanceType")) for template in linked}
        if most is not None and len(gpus) == 1:
            count = gpus.pop()
            if count is not None:
                return most, count
    return None


SCANNERS: Final[Mapping[str, Mapping[str, Scanner]]] = {
    SECRETS: {
        LAUNCH_TEMPLATE: partial(_vm_secrets, base64_fields=("userData",), text_fields=()),
        INSTANCE: partial(_vm_secrets, base64_fields=("userDataBase64",), text_fields=("userData",)),
    },
    EXPOSURE: {
        SECURITY_GROUP: _security_group,
        SECURITY_GROUP_RULE: _security_group_rule,
        INGRESS_RULE: _ingress_rule,
    },
    PUBLIC_PATHS: {LISTENER: _listener, LISTENER_RULE: _listener_rule},
    PRIVATE_BUCKETS: {PUBLIC_ACCESS_BLOCK: _public_access_block},
    WEAK_TLS: {LISTENER: _listener_tls},
}
DESCRIPTIONS: Final[Mapping[str, str]] = {
    PRIVATE_BUCKETS: "S3 Block Public Access on",
    WEAK_TLS: "ALB HTTPS listeners carry a TLS 1.2+ security policy",
    AUTOHEALING_POLICY: "AWS Auto Scaling groups (EC2 health plus the on-instance health agent)",
}
POLICIES: Final = (
    PlatformPolicy(
        name="aws-elb-names-aws-accepts",
        description="Load balancer and target group names: at most 32 letters, digits and hyphens, no hyphen "
        "at either end (AWS refuses others at update time, after a clean preview).",
        check=aws_elb_name_violations,
    ),
    PlatformPolicy(
        name="aws-ec2-descriptions-aws-accepts",
        description="Security group and rule descriptions use only a-zA-Z0-9. _-:/()#,@[]+=&;{}!$* (AWS "
        "refuses others at update time, after a clean preview).",
        check=aws_description_violations,
    ),
    PlatformPolicy(
        name="aws-health-check-timeout-below-interval",
        description="Target group health checks time out before the next check starts (AWS refuses others "
        "at update time, after a clean preview).",
        check=aws_health_check_violations,
    ),
)
AUTOHEALING: Final = Autohealing(
    template=LAUNCH_TEMPLATE,
    groups=frozenset({GROUP}),
    group_link=_TEMPLATE_LINK,
    vms={INSTANCE: _TEMPLATE_LINK},
    has_gpu=has_gpu,
    heals=group_heals,
    fix="an Auto Scaling group (EC2 health, and the machine reporting its /health through SetInstanceHealth)",
    identity_keys=("id", "name", "arn"),
)


def aws_mixed_template_violations(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """(URN, message) for a launch template that asks for spot (``instanceMarketOptions``) used by an Auto
    Scaling group with a mixed instances policy: AWS refuses the group at update time, after a clean
    preview ("Incompatible launch template: You cannot use a launch template that is set to request Spot
    Instances (InstanceMarketOptions) when you configure an Auto Scaling group with a mixed instances
    policy", as quoted in kubernetes/kops#7066 and kubernetes-sigs/cluster-api-provider-aws#4656). The
    policy's instances distribution decides each launch's market."""
    templates = [r for r in resources if r.type == LAUNCH_TEMPLATE]
    mixed = [
        r for r in resources if r.type == GROUP and r.props.get("mixedInstancesPolicy") not in (None, {}, [])
    ]
    violations = []
    for group in mixed:
        for template in templates:
            if not AUTOHEALING.links(_TEMPLATE_LINK, group, template, via_component=True):
                continue
            market = collect(template.props, "instanceMarketOptions", "marketType")
            if "spot" in market:
                violations.append(
                    (
                        template.urn,
                        f"launch template {template.name} requests spot and group {group.name} has a mixed "
                        "instances policy: AWS refuses that pair; drop instanceMarketOptions and let the "
                        "policy's instancesDistribution pick spot",
                    )
                )
    return violations


STACK_POLICIES: Final = (
    PlatformStackPolicy(
        name="aws-mixed-instances-template-asks-no-market",
        description="A launch template used by a mixed instances Auto Scaling group requests no spot "
        "market itself (AWS refuses the pair at update time, after a clean preview).",
        check=aws_mixed_template_violations,
    ),
)
PUBLIC_HTTP: Final = public_http
GPU_BUDGET: Final[Mapping[str, gpu_budget.Bound]] = {SCALING_POLICY: _scaling_policy_bound}
#: None: an Auto Scaling group's on-demand base is inside its MaxSize, which GPU_BUDGET already counts.
FIXED_GPUS: Final[Mapping[str, gpu_budget.Bound]] = {}
