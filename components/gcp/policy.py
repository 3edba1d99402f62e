"""GCP's scanners for the policy pack: pure functions over plain property dicts (the contract:
policy/validators.py). Property names are pulumi_gcp's, camelCase as Pulumi hands them to a policy."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from components.gcp.names import COMPUTE_NAME, GOOGLE_LIKE
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
    exposed,
    is_number,
    is_public_path,
    named_secrets,
    port_range,
    strings,
    text_secrets,
)

TEMPLATE: Final = "gcp:compute/instanceTemplate:InstanceTemplate"
INSTANCE: Final = "gcp:compute/instance:Instance"
INSTANCE_FROM_TEMPLATE: Final = "gcp:compute/instanceFromTemplate:InstanceFromTemplate"
GROUPS: Final = frozenset(
    {
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "gcp:compute/instanceGroupManager:InstanceGroupManager",
    }
)
#: Instance templates, global and regional, as the GPU budget reads them (autohealing reads TEMPLATE).
TEMPLATES: Final = frozenset({TEMPLATE, "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate"})
AUTOSCALERS: Final = frozenset(
    {"gcp:compute/regionAutoscaler:RegionAutoscaler", "gcp:compute/autoscaler:Autoscaler"}
)
FIREWALL: Final = "gcp:compute/firewall:Firewall"
URL_MAP: Final = "gcp:compute/uRLMap:URLMap"
FORWARDING_RULE: Final = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
HTTPS_PROXY: Final = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
SSL_POLICY: Final = "gcp:compute/sSLPolicy:SSLPolicy"
BUCKET: Final = "gcp:storage/bucket:Bucket"
BUCKET_GRANTS: Final = frozenset(
    {"gcp:storage/bucketIAMMember:BucketIAMMember", "gcp:storage/bucketIAMBinding:BucketIAMBinding"}
)

#: A Secret Manager secret's (or version's) resource name points into the store; it holds no secret.
SECRET_REFERENCE: Final = re.compile(r"^projects/[^/\s]+/secrets/[^/\s]+(?:/versions/\S+)?$")


# --- Secrets ------------------------------------------------------------------------------------------------


def _vm_secrets(props: Mapping[str, Any]) -> list[str]:
    metadata = props.get("metadata")
    metadata_values = strings(metadata.values()) if isinstance(metadata, Mapping) else []
    return [
        *text_secrets("metadataStartupScript", strings(collect(props, "metadataStartupScript"))),
        *text_secrets("metadata", metadata_values),
        *named_secrets("metadata", metadata),
        *named_secrets("labels", props.get("labels")),
    ]


# --- Exposure -----------------------------------------------------------------------------------------------


def _firewall(props: Mapping[str, Any]) -> list[str]:
    if props.get("disabled") is True or str(props.get("direction") or "INGRESS").upper() != "INGRESS":
        return []
    sources = collect(props, "sourceRanges")
    if not sources and not collect(props, "sourceTags") and not collect(props, "sourceServiceAccounts"):
        sources = ["0.0.0.0/0"]  # GCP's default source for an ingress rule with none
    ranges = []
    for allow in collect(props, "allows"):
        if not isinstance(allow, Mapping) or str(allow.get("protocol", "")).lower() not in TCP_PROTOCOLS:
            continue
        ports = collect(allow, "ports")
        if UNKNOWN in ports:
            continue
        ranges += [port_range(port) for port in ports] if ports else [ALL_PORTS]
    return exposed("firewall", sources, [r for r in ranges if r is not None])


# --- Public paths: the URL map ------------------------------------------------------------------------------


def _aborts_everything(route_action: Any) -> bool:
    """A route action whose fault injection answers every request itself (e.g. 404) and forwards none."""
    percentages = collect(route_action, "faultInjectionPolicy", "abort", "percentage")
    return any(isinstance(p, int | float) and p >= 100 for p in percentages)


def _reaches_backend(service: Any, route_action: Any, url_redirect: Any) -> bool | None:
    """Does this route reach a backend service? None when the preview cannot tell yet."""
    if url_redirect or _aborts_everything(route_action):
        return False
    backends = [service, *collect(route_action, "weightedBackendServices", "backendService")]
    backends = [backend for backend in backends if backend is not None]
    if UNKNOWN in backends:
        return None
    return any("/backendBuckets/" not in str(backend) for backend in backends)


def _default(where: str, holder: Mapping[str, Any]) -> list[str]:
    reaches = _reaches_backend(
        holder.get("defaultService"), holder.get("defaultRouteAction"), holder.get("defaultUrlRedirect")
    )
    if not reaches:
        return []
    return [
        f"{where} default sends {UNLISTED} to a backend service: make the default a backend bucket, a "
        "defaultUrlRedirect, or a defaultRouteAction whose faultInjectionPolicy aborts 100% of requests"
    ]


def _rewrites(where: str, route_action: Any) -> list[str]:
    rewrites = strings(
        collect(route_action, "urlRewrite", "pathPrefixRewrite")
        + collect(route_action, "urlRewrite", "pathTemplateRewrite")
    )
    return [
        f"{where} rewrites to {path!r}, outside /v1/ and /health"
        for path in rewrites
        if not is_public_path(path)
    ]


def _route_rule(where: str, rule: Mapping[str, Any]) -> list[str]:
    match_rules = collect(rule, "matchRules")
    if UNKNOWN in match_rules:
        return []
    if not match_rules:
        return [f"{where} has no matchRules, so it matches every path"]
    violations = []
    for match in match_rules:
        if not isinstance(match, Mapping):
            continue
        if match.get("regexMatch") is not None:
            violations.append(f"{where} matches a regexMatch, which this policy cannot prove stays in /v1/")
            continue
        paths = [match.get(key) for key in ("prefixMatch", "fullPathMatch", "pathTemplateMatch")]
        paths = [path for path in paths if path is not None]
        if not paths:
            violations.append(f"{where} matches without a path condition, so it matches every path")
        violations += [
            f"{where} matches {path!r}, outside /v1/ and /health"
            for path in strings(paths)
            if not is_public_path(path)
        ]
    return violations


def _url_map(props: Mapping[str, Any]) -> list[str]:
    violations = _default("URL map", props)
    for matcher in collect(props, "pathMatchers"):
        if not isinstance(matcher, Mapping):
            continue
        where = f"path matcher {matcher.get('name', '?')!r}"
        violations += _default(where, matcher)
        for rule in collect(matcher, "pathRules"):
            if not isinstance(rule, Mapping):
                continue
            action = rule.get("routeAction")
            if _reaches_backend(rule.get("service"), action, rule.get("urlRedirect")):
                paths = strings(collect(rule, "paths"))
                violations += [
                    f"{where} routes {p!r}, outside /v1/ and /health" for p in paths if not is_public_path(p)
                ]
                violations += _rewrites(f"{where} path rule", action)
        for rule in collect(matcher, "routeRules"):
            if not isinstance(rule, Mapping):
                continue
            action = rule.get("routeAction")
            if _reaches_backend(rule.get("service"), action, rule.get("urlRedirect")):
                rule_where = f"{where} route rule {rule.get('priority', '?')}"
                violations += _route_rule(rule_where, rule) + _rewrites(rule_where, action)
    return violations


# --- Health: GPU VMs run in managed instance groups that autoheal -------------------------------------------

#: GCP machine families with GPUs attached by the machine type itself (A2, A3, A4, A4X, G2, G4).
_GPU_MACHINE = re.compile(r"^(?:a\d+x?|g[2-9]\d*)-")


def has_gpu(props: Mapping[str, Any]) -> bool:
    counts = collect(props, "guestAccelerators", "count")
    if any(count is UNKNOWN or (is_number(count) and count > 0) for count in counts):
        return True
    machine = props.get("machineType")
    return isinstance(machine, str) and bool(_GPU_MACHINE.match(machine.rsplit("/", 1)[-1]))


def _is_set(value: Any) -> bool:
    return value is UNKNOWN or value not in (None, "", [], {})


def group_heals(props: Mapping[str, Any]) -> bool:
    """autoHealingPolicies with a health check and a positive initial delay (the time before the check,
    here the host health agent, can answer)."""
    for policy in collect(props, "autoHealingPolicies"):
        if policy is UNKNOWN:
            return True
        if not isinstance(policy, Mapping) or not _is_set(policy.get("healthCheck")):
            continue
        delay = policy.get("initialDelaySec")
        if delay is UNKNOWN or (is_number(delay) and delay > 0):
            return True
    return False


def self_link_path(reference: str) -> str:
    """A self link, resource ID or unique self link, reduced to ``projects/.../name``."""
    reference = reference.split("?", 1)[0]
    start = reference.find("projects/")
    return reference[start:] if start >= 0 else reference


# --- Cleartext: an external Application Load Balancer without an HTTPS proxy (advisory) -------------------


def public_http(resources: Sequence[StackResource]) -> list[StackResource]:
    """External Application LB forwarding rules, when no HTTPS proxy serves the stack."""
    if any(resource.type == HTTPS_PROXY for resource in resources):
        return []
    return [
        resource
        for resource in resources
        if resource.type == FORWARDING_RULE
        and str(resource.props.get("loadBalancingScheme") or "").startswith("EXTERNAL")
    ]


# --- TLS: HTTPS proxies carry an SSL policy of TLS 1.2 or later ------------------------------------------

_OLD_TLS: Final = frozenset({"TLS_1_0", "TLS_1_1"})


def _https_proxy_tls(props: Mapping[str, Any]) -> list[str]:
    """A proxy without an SSL policy gets GCP's default, which is TLS 1.0 (COMPATIBLE)."""
    if props.get("sslPolicy") is None:
        return ["HTTPS proxy without an sslPolicy gets GCP's default, which accepts TLS 1.0: attach one with "
                "minTlsVersion TLS_1_2 or later"]  # fmt: skip
    return []


def _ssl_policy_tls(props: Mapping[str, Any]) -> list[str]:
    version = props.get("minTlsVersion") or "TLS_1_0"  # GCP's default
    if version in _OLD_TLS:
        return [f"SSL policy minTlsVersion {version}: TLS_1_2 or later"]
    return []


# --- The weight cache's bucket is private -----------------------------------------------------------------

PUBLIC_MEMBERS: Final = frozenset({"allUsers", "allAuthenticatedUsers"})


def _bucket(props: Mapping[str, Any]) -> list[str]:
    violations = []
    if props.get("uniformBucketLevelAccess") is not True:
        violations.append("bucket: uniformBucketLevelAccess must be true (IAM alone grants access)")
    if props.get("publicAccessPrevention") != "enforced":
        violations.append("bucket: publicAccessPrevention must be 'enforced'")
    return violations


def _bucket_grant(props: Mapping[str, Any]) -> list[str]:
    members = [props.get("member"), *collect(props, "members")]
    return [
        f"bucket grant to {member}: a bucket is never public"
        for member in members
        if member in PUBLIC_MEMBERS
    ]


# --- GPU budget: a managed instance group's autoscaler ----------------------------------------------------

#: GPUs of GCP machine types that carry them built in: A2, A3, A4 name the count (``a3-highgpu-8g``); G2
#: sizes by vCPUs (GCP "GPU machine types": g2-standard-4 to -32 have 1 L4, -24 2, -48 4, -96 8).
_COUNTED_MACHINE: Final = re.compile(r"^a\d+-[a-z]+gpu-(\d+)g$")
_G2_GPUS: Final = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}


def template_gpus(template: Mapping[str, Any]) -> int | None:
    """GPUs a machine of an instance template carries: its guest accelerators, else its machine type's."""
    counts = [
        gpu_budget.number(a.get("count"))
        for a in template.get("guestAccelerators") or []
        if isinstance(a, Mapping)
    ]
    if counts:
        return None if None in counts else int(sum(c for c in counts if c is not None))
    machine = gpu_budget.last_segment(template.get("machineType")) or ""
    if found := _COUNTED_MACHINE.match(machine):
        return int(found.group(1))
    if found := re.match(r"^g2-standard-(\d+)$", machine):
        return _G2_GPUS.get(int(found.group(1)))
    return None


def _group_gpus(group: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]) -> int | None:
    """The GPUs of one VM of a managed group (its instance templates must agree), else None."""
    templates = [r for r in resources if r.type in TEMPLATES]
    gpus = {
        template_gpus(template.props)
        for version in group.props.get("versions") or []
        for template in gpu_budget.linked(
            group, "versions", gpu_budget.dig(version, "instanceTemplate"), templates
        )
    }
    return gpus.pop() if len(gpus) == 1 else None


def _scaled_groups(
    scaler: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> list[gpu_budget.StackResource]:
    return gpu_budget.linked(
        scaler, "target", scaler.props.get("target"), (r for r in resources if r.type in GROUPS)
    )


def _autoscaler_bound(
    scaler: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> tuple[float, int] | None:
    most = gpu_budget.number(gpu_budget.dig(scaler.props, "autoscalingPolicy", "maxReplicas"))
    gpus = {_group_gpus(group, resources) for group in _scaled_groups(scaler, resources)}
    if most is None or len(gpus) != 1:
        return None
    count = gpus.pop()
    return None if count is None else (most, count)


def _fixed_group_bound(
    group: gpu_budget.StackResource, resources: Sequence[gpu_budget.StackResource]
) -> tuple[float, int] | None:
    """A managed group no autoscaler scales (an on-demand base beside scaled spot groups): its
    ``targetSize`` and the GPUs of one of its VMs."""
    scalers = (r for r in resources if r.type in AUTOSCALERS)
    if any(group in _scaled_groups(scaler, resources) for scaler in scalers):
        return None
    size, gpus = gpu_budget.number(group.props.get("targetSize")), _group_gpus(group, resources)
    return None if size is None or gpus is None else (size, gpus)


# --- Names --------------------------------------------------------------------------------------------------

#: Cloud Storage "Bucket naming rules": 3-63 characters of a-z, 0-9, '-', '_', '.', a letter or digit at both
#: ends (dotted names may be longer; the program never makes one), no "goog" prefix, no "google" look-alike.
_BUCKET_NAME = re.compile(r"^[a-z0-9][-_.a-z0-9]{1,61}[a-z0-9]$")


def gcp_name_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A Compute Engine or bucket name GCP refuses: Compute names are 1-63 characters, RFC 1035
    (pulumi_gcp docstrings); an auto-name adds 8 characters to a logical name (components/gcp/names.py)."""
    name = props.get("name")
    if not isinstance(name, str) or name == UNKNOWN:
        return []
    if resource_type.startswith("gcp:compute/") and not COMPUTE_NAME.match(name):
        return [
            f"{resource_type.split(':')[-1]} name {name!r} ({len(name)} characters): GCP allows 1-63 "
            "lowercase letters, digits and hyphens, a letter first, no hyphen last"
        ]
    if resource_type == BUCKET and (
        not _BUCKET_NAME.match(name) or name.startswith("goog") or GOOGLE_LIKE.search(name)
    ):
        return [
            f"bucket name {name!r} ({len(name)} characters): Cloud Storage allows 3-63 of a-z, 0-9, '-', "
            "'_', '.', a letter or digit at both ends, and no 'google' (or look-alike) anywhere"
        ]
    return []


SCANNERS: Final[Mapping[str, Mapping[str, Scanner]]] = {
    SECRETS: {TEMPLATE: _vm_secrets, INSTANCE: _vm_secrets},
    EXPOSURE: {FIREWALL: _firewall},
    PUBLIC_PATHS: {URL_MAP: _url_map},
    PRIVATE_BUCKETS: {BUCKET: _bucket, **dict.fromkeys(BUCKET_GRANTS, _bucket_grant)},
    WEAK_TLS: {HTTPS_PROXY: _https_proxy_tls, SSL_POLICY: _ssl_policy_tls},
}
DESCRIPTIONS: Final[Mapping[str, str]] = {
    PRIVATE_BUCKETS: "GCS uniform bucket-level access and public access prevention enforced, no grant to "
    "allUsers or allAuthenticatedUsers",
    WEAK_TLS: "GCP HTTPS proxies carry an SSL policy of minTlsVersion TLS_1_2+",
    AUTOHEALING_POLICY: "GCP managed instance groups with autoHealingPolicies (Ray workers included)",
}
POLICIES: Final[tuple[PlatformPolicy, ...]] = (
    PlatformPolicy(
        name="gcp-names-gcp-accepts",
        description="Compute Engine names: 1-63 lowercase letters, digits and hyphens, a letter first; "
        "bucket names: 3-63, no 'google' (GCP refuses others at update time).",
        check=gcp_name_violations,
    ),
)
STACK_POLICIES: Final[tuple[PlatformStackPolicy, ...]] = ()
AUTOHEALING: Final = Autohealing(
    template=TEMPLATE,
    groups=GROUPS,
    group_link=TemplateLink((("versions", "instanceTemplate"),)),
    vms={INSTANCE: None, INSTANCE_FROM_TEMPLATE: TemplateLink((("sourceInstanceTemplate",),))},
    has_gpu=has_gpu,
    heals=group_heals,
    fix="an instance group manager with autoHealingPolicies (healthCheck, initialDelaySec)",
    identity_keys=("id", "selfLink", "selfLinkUnique", "name"),
    normalize=self_link_path,
)
PUBLIC_HTTP: Final = public_http
GPU_BUDGET: Final[Mapping[str, gpu_budget.Bound]] = dict.fromkeys(AUTOSCALERS, _autoscaler_bound)
FIXED_GPUS: Final[Mapping[str, gpu_budget.Bound]] = dict.fromkeys(GROUPS, _fixed_group_bound)
