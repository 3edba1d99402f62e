"""The checks behind the policy pack, as pure functions: resource type and properties in, violations out.

Properties use the Pulumi SDK's camelCase names, as Pulumi hands them to a policy. A value a preview cannot
know yet arrives as ``UNKNOWN`` and is never judged: ``pulumi up`` runs the resource policies again with
every input known before it creates the resource, and the stack policy again on the final outputs.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


#: A value the preview cannot know yet (computed from another resource's outputs).
UNKNOWN: Final = _Unknown()


def collect(value: Any, *path: str) -> list[Any]:
    """Every value at ``path``, flattening lists on the way; an unknown step yields ``UNKNOWN``."""
    if value is UNKNOWN:
        return [UNKNOWN]
    if isinstance(value, list | tuple):
        return [found for item in value for found in collect(item, *path)]
    if not path:
        return [] if value is None else [value]
    if isinstance(value, Mapping):
        return collect(value.get(path[0]), *path[1:])
    return []


def _strings(values: Iterable[Any]) -> list[str]:
    return [value for value in values if isinstance(value, str)]


# --- Secrets: the HF token and the API key live only in a secret store --------------------------------------

#: Variables vLLM and huggingface_hub read secrets from (components/launch.py sets HF_TOKEN, VLLM_API_KEY).
SECRET_ENV_NAMES: Final = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY"})
_SECRET_WORD = re.compile(r"(?:^|[_.-])(?:token|secret|password|passwd|api[_.-]?key|apikey)(?:$|[_.-])", re.I)
#: A pointer into a secret store (a Secret Manager resource name, a Secrets Manager ARN) is not a secret.
_SECRET_REFERENCE = re.compile(
    r"^(?:projects/[^/\s]+/secrets/[^/\s]+(?:/versions/\S+)?|arn:aws[\w-]*:secretsmanager:\S+)$"
)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
#: A literal shell value: not "$VAR", "${VAR}", "$(command)" or Kubernetes' "$(VAR)", and not the next flag.
_LITERAL = r"""(?!["']?[$-])(?:"[^"\n]+"|'[^'\n]+'|[^\s"';|&)]+)"""
_API_KEY_FLAG = re.compile(r"--api-key(?:=|(?:\s|\\\n)+)" + _LITERAL)
_SECRET_ASSIGNMENT = re.compile(r"\b(" + "|".join(sorted(SECRET_ENV_NAMES)) + r")=" + _LITERAL)


def is_secret_name(name: str) -> bool:
    """``HF_TOKEN``, ``hf-token``, ``vllm_api_key``, ``db.password``; not ``TOKENIZERS_PARALLELISM``."""
    return name.upper() in SECRET_ENV_NAMES or bool(_SECRET_WORD.search(name))


def secrets_in_text(text: str) -> list[str]:
    """What in a script, user data or argument list is a secret in the clear (never the secret itself)."""
    findings = []
    if _HF_TOKEN.search(text):
        findings.append("a Hugging Face token (hf_...)")
    if _API_KEY_FLAG.search(text):
        findings.append("--api-key with a literal value")
    findings += [f"{name} set to a literal value" for name in sorted(set(_SECRET_ASSIGNMENT.findall(text)))]
    return findings


def _decoded_texts(value: str) -> list[str]:
    """User data as written and, when it is base64 (gzip-compressed or not), as the machine reads it."""
    try:
        raw = base64.b64decode(value, validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (binascii.Error, ValueError, OSError, EOFError):
        return [value]
    return [value, raw.decode("utf-8", errors="replace")]


def _named_secrets(where: str, entries: Any) -> list[str]:
    """Keys named like secrets (labels, tags, metadata, ConfigMap data) whose value is no store reference."""
    if not isinstance(entries, Mapping):
        return []
    return [
        f"{where} key {key!r} is named like a secret: keep secrets in the secret store and pass them by "
        "environment at boot"
        for key, value in entries.items()
        if is_secret_name(str(key)) and not (isinstance(value, str) and _SECRET_REFERENCE.match(value))
    ]


def _text_secrets(where: str, texts: Iterable[str]) -> list[str]:
    findings = dict.fromkeys(finding for text in texts for finding in secrets_in_text(text))
    return [f"{where} carries {finding}: the secret store must deliver it at boot" for finding in findings]


def _gcp_vm_secrets(props: Mapping[str, Any]) -> list[str]:
    metadata = props.get("metadata")
    metadata_values = _strings(metadata.values()) if isinstance(metadata, Mapping) else []
    return [
        *_text_secrets("metadataStartupScript", _strings(collect(props, "metadataStartupScript"))),
        *_text_secrets("metadata", metadata_values),
        *_named_secrets("metadata", metadata),
        *_named_secrets("labels", props.get("labels")),
    ]


def _aws_vm_secrets(
    props: Mapping[str, Any], base64_fields: Sequence[str], text_fields: Sequence[str]
) -> list[str]:
    violations = []
    for name in base64_fields:
        texts = [text for value in _strings(collect(props, name)) for text in _decoded_texts(value)]
        violations += _text_secrets(name, texts)
    for name in text_fields:
        violations += _text_secrets(name, _strings(collect(props, name)))
    violations += _named_secrets("tags", props.get("tags"))
    for tags in collect(props, "tagSpecifications", "tags"):
        violations += _named_secrets("tagSpecifications tags", tags)
    return list(dict.fromkeys(violations))


#: Where each workload kind keeps its pod specs.
POD_SPEC_PATHS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "kubernetes:core/v1:Pod": (("spec",),),
    "kubernetes:apps/v1:Deployment": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:StatefulSet": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:DaemonSet": (("spec", "template", "spec"),),
    "kubernetes:batch/v1:Job": (("spec", "template", "spec"),),
    "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet": (
        ("spec", "leaderWorkerTemplate", "leaderTemplate", "spec"),
        ("spec", "leaderWorkerTemplate", "workerTemplate", "spec"),
    ),
}


def _container_secrets(container: Mapping[str, Any]) -> list[str]:
    name = container.get("name", "?")
    violations = []
    for variable in collect(container, "env"):
        if not isinstance(variable, Mapping) or not isinstance(variable.get("name"), str):
            continue
        value, source = variable.get("value"), variable.get("valueFrom")
        literal = value is not None and value is not UNKNOWN and value != ""
        not_from_secret = isinstance(source, Mapping) and "secretKeyRef" not in source
        if is_secret_name(variable["name"]) and (literal or not_from_secret):
            violations.append(
                f"container {name!r} env {variable['name']} is not from a Secret: use valueFrom.secretKeyRef"
            )
        elif isinstance(value, str):
            violations += _text_secrets(f"container {name!r} env {variable['name']}", [value])
    argv = _strings(collect(container, "command") + collect(container, "args"))
    return violations + _text_secrets(f"container {name!r} command line", [" ".join(argv)])


def _pod_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    violations: list[str] = []
    for path in POD_SPEC_PATHS[resource_type]:
        for spec in collect(props, *path):
            containers = collect(spec, "initContainers") + collect(spec, "containers")
            for container in containers:
                if isinstance(container, Mapping):
                    violations += _container_secrets(container)
    return list(dict.fromkeys(violations))


def _config_map_secrets(props: Mapping[str, Any]) -> list[str]:
    data, binary = props.get("data"), props.get("binaryData")
    texts = _strings(data.values()) if isinstance(data, Mapping) else []
    if isinstance(binary, Mapping):
        texts += [text for value in _strings(binary.values()) for text in _decoded_texts(value)]
    violations = _named_secrets("ConfigMap data", data) + _named_secrets("ConfigMap binaryData", binary)
    return violations + _text_secrets("ConfigMap", texts)


def secret_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A secret outside the secret store: metadata, scripts, user data, labels, literal env, ConfigMaps."""
    if resource_type in ("gcp:compute/instanceTemplate:InstanceTemplate", "gcp:compute/instance:Instance"):
        return _gcp_vm_secrets(props)
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        return _aws_vm_secrets(props, base64_fields=("userData",), text_fields=())
    if resource_type == "aws:ec2/instance:Instance":
        return _aws_vm_secrets(props, base64_fields=("userDataBase64",), text_fields=("userData",))
    if resource_type in POD_SPEC_PATHS:
        return _pod_secrets(resource_type, props)
    if resource_type == "kubernetes:core/v1:ConfigMap":
        return _config_map_secrets(props)
    return []


# --- Exposure: Ray ports and SSH never face the internet ----------------------------------------------------

#: (first port, last port, what listens there). Ray's defaults from `ray start`; the object and node managers
#: take OS-assigned ports, i.e. Linux's ephemeral range (net.ipv4.ip_local_port_range).
PRIVATE_PORTS: Final = (
    (22, 22, "SSH"),
    (6379, 6379, "Ray GCS"),
    (8265, 8265, "Ray dashboard"),
    (10001, 10001, "Ray client server"),
    (10002, 19999, "Ray worker ports"),
    (32768, 60999, "Ray object/node manager ports"),
    (52365, 52365, "Ray dashboard agent"),
)
ALL_PORTS: Final = (0, 65535)
_TCP_PROTOCOLS = frozenset({"tcp", "6", "all", "-1"})


def is_whole_internet(cidr: Any) -> bool:
    """0.0.0.0/0 and ::/0 in any spelling."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def _port_range(text: str) -> tuple[int, int] | None:
    first, _, last = str(text).partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        return None


def _exposed(where: str, sources: Iterable[Any], ranges: Iterable[tuple[int, int]]) -> list[str]:
    """One message per open range that reaches a private port from the whole internet."""
    world = sorted({str(source) for source in sources if is_whole_internet(source)})
    if not world:
        return []
    violations = []
    for first, last in ranges:
        hit = [
            f"{name} ({_span(low, high)})"
            for low, high, name in PRIVATE_PORTS
            if low <= last and first <= high
        ]
        if hit:
            violations.append(
                f"{where} opens port {_span(first, last)} to {', '.join(world)}, reaching {', '.join(hit)}: "
                "only the load balancer faces the internet"
            )
    return violations


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _gcp_firewall(props: Mapping[str, Any]) -> list[str]:
    if props.get("disabled") is True or str(props.get("direction") or "INGRESS").upper() != "INGRESS":
        return []
    sources = collect(props, "sourceRanges")
    if not sources and not collect(props, "sourceTags") and not collect(props, "sourceServiceAccounts"):
        sources = ["0.0.0.0/0"]  # GCP's default source for an ingress rule with none
    ranges = []
    for allow in collect(props, "allows"):
        if not isinstance(allow, Mapping) or str(allow.get("protocol", "")).lower() not in _TCP_PROTOCOLS:
            continue
        ports = collect(allow, "ports")
        if UNKNOWN in ports:
            continue
        ranges += [_port_range(port) for port in ports] if ports else [ALL_PORTS]
    return _exposed("firewall", sources, [r for r in ranges if r is not None])


def _aws_rule_ports(protocol: Any, from_port: Any, to_port: Any) -> list[tuple[int, int]]:
    protocol = str(protocol).lower()
    if protocol in ("-1", "all"):
        return [ALL_PORTS]
    if protocol not in _TCP_PROTOCOLS or not isinstance(from_port, int) or not isinstance(to_port, int):
        return []
    return [(from_port, to_port)]


def exposure_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Ray's ports or SSH open to 0.0.0.0/0 or ::/0."""
    if resource_type == "gcp:compute/firewall:Firewall":
        return _gcp_firewall(props)
    if resource_type == "aws:ec2/securityGroup:SecurityGroup":
        violations = []
        for rule in collect(props, "ingress"):
            if isinstance(rule, Mapping):
                sources = collect(rule, "cidrBlocks") + collect(rule, "ipv6CidrBlocks")
                ports = _aws_rule_ports(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"))
                violations += _exposed("security group ingress", sources, ports)
        return violations
    if resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if props.get("type") != "ingress":
            return []
        sources = collect(props, "cidrBlocks") + collect(props, "ipv6CidrBlocks")
        ports = _aws_rule_ports(props.get("protocol"), props.get("fromPort"), props.get("toPort"))
        return _exposed("security group rule", sources, ports)
    if resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        sources = collect(props, "cidrIpv4") + collect(props, "cidrIpv6")
        ports = _aws_rule_ports(props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"))
        return _exposed("security group ingress rule", sources, ports)
    return []


# --- Public paths: the load balancer serves the OpenAI API (/v1/...) and /health, nothing else --------------

PUBLIC_PATH_PREFIX: Final = "/v1/"
PUBLIC_EXACT_PATHS: Final = frozenset({"/health"})
_UNLISTED = "every other path (/metrics, /tokenize, /pause, ...)"


def is_public_path(path: str) -> bool:
    """A path (or a prefix/wildcard pattern) that stays inside the OpenAI API or is exactly /health."""
    return path.startswith(PUBLIC_PATH_PREFIX) or path in PUBLIC_EXACT_PATHS


def _aborts_everything(route_action: Any) -> bool:
    """A route action whose fault injection answers every request itself (e.g. 404) and forwards none."""
    percentages = collect(route_action, "faultInjectionPolicy", "abort", "percentage")
    return any(isinstance(p, int | float) and p >= 100 for p in percentages)


def _gcp_backend(service: Any, route_action: Any, url_redirect: Any) -> bool | None:
    """Does this route reach a backend service? None when the preview cannot tell yet."""
    if url_redirect or _aborts_everything(route_action):
        return False
    backends = [service, *collect(route_action, "weightedBackendServices", "backendService")]
    backends = [backend for backend in backends if backend is not None]
    if UNKNOWN in backends:
        return None
    return any("/backendBuckets/" not in str(backend) for backend in backends)


def _gcp_default(where: str, holder: Mapping[str, Any]) -> list[str]:
    reaches = _gcp_backend(
        holder.get("defaultService"), holder.get("defaultRouteAction"), holder.get("defaultUrlRedirect")
    )
    if not reaches:
        return []
    return [
        f"{where} default sends {_UNLISTED} to a backend service: make the default a backend bucket, a "
        "defaultUrlRedirect, or a defaultRouteAction whose faultInjectionPolicy aborts 100% of requests"
    ]


def _gcp_rewrites(where: str, route_action: Any) -> list[str]:
    rewrites = _strings(
        collect(route_action, "urlRewrite", "pathPrefixRewrite")
        + collect(route_action, "urlRewrite", "pathTemplateRewrite")
    )
    return [
        f"{where} rewrites to {path!r}, outside /v1/ and /health"
        for path in rewrites
        if not is_public_path(path)
    ]


def _gcp_route_rule(where: str, rule: Mapping[str, Any]) -> list[str]:
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
            for path in _strings(paths)
            if not is_public_path(path)
        ]
    return violations


def _gcp_url_map(props: Mapping[str, Any]) -> list[str]:
    violations = _gcp_default("URL map", props)
    for matcher in collect(props, "pathMatchers"):
        if not isinstance(matcher, Mapping):
            continue
        where = f"path matcher {matcher.get('name', '?')!r}"
        violations += _gcp_default(where, matcher)
        for rule in collect(matcher, "pathRules"):
            if not isinstance(rule, Mapping):
                continue
            action = rule.get("routeAction")
            if _gcp_backend(rule.get("service"), action, rule.get("urlRedirect")):
                paths = _strings(collect(rule, "paths"))
                violations += [
                    f"{where} routes {p!r}, outside /v1/ and /health" for p in paths if not is_public_path(p)
                ]
                violations += _gcp_rewrites(f"{where} path rule", action)
        for rule in collect(matcher, "routeRules"):
            if not isinstance(rule, Mapping):
                continue
            action = rule.get("routeAction")
            if _gcp_backend(rule.get("service"), action, rule.get("urlRedirect")):
                rule_where = f"{where} route rule {rule.get('priority', '?')}"
                violations += _gcp_route_rule(rule_where, rule) + _gcp_rewrites(rule_where, action)
    return violations


#: NLB/GWLB listener protocols: no HTTP paths to route.
LAYER4_PROTOCOLS: Final = frozenset({"TCP", "UDP", "TCP_UDP", "TLS", "GENEVE", "QUIC", "TCP_QUIC"})


def _forwards(action: Any) -> bool:
    return isinstance(action, Mapping) and (
        action.get("type") == "forward"
        or action.get("forward") is not None
        or bool(action.get("targetGroupArn"))
    )


def _aws_listener_rule(props: Mapping[str, Any]) -> list[str]:
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
            for value in _strings(collect(pattern, "values"))
            if not is_public_path(value)
        ]
    return violations


def public_path_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Load balancer routes that reach vLLM outside /v1/... and /health (its admin and metrics paths)."""
    if resource_type == "gcp:compute/uRLMap:URLMap":
        return _gcp_url_map(props)
    if resource_type == "aws:lb/listener:Listener":
        if str(props.get("protocol") or "").upper() in LAYER4_PROTOCOLS:
            return []  # an NLB listener forwards connections, not paths (the Ray GCS port of a group)
        if any(_forwards(action) for action in collect(props, "defaultActions")):
            return [f"listener default action forwards {_UNLISTED}: make it a fixed-response (404)"]
        return []
    if resource_type == "aws:lb/listenerRule:ListenerRule":
        return _aws_listener_rule(props)
    return []


# --- Health: every GPU VM is in a group that health-checks it and replaces it ------------------------------

GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GCP_GROUPS: Final = frozenset(
    {
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
        "gcp:compute/instanceGroupManager:InstanceGroupManager",
    }
)
AWS_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_GROUP = "aws:autoscaling/group:Group"
#: GCP machine families with GPUs attached by the machine type itself (A2, A3, A4, A4X, G2, G4).
_GCP_GPU_MACHINE = re.compile(r"^(?:a\d+x?|g[2-9]\d*)-")
#: AWS GPU families: P (p4d, p5, p6-b200), G (g5, g6e, g5g), GR (gr6).
_AWS_GPU_INSTANCE = re.compile(r"^(?:p|g|gr)\d[\w-]*\.", re.I)


@dataclass(frozen=True)
class StackResource:
    """What the stack policy needs of a resource; links to others by URN, never by object."""

    type: str
    urn: str
    props: Mapping[str, Any]
    parent: str | None = None  # the parent's URN: the component that declared it
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)  # property -> URNs

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def is_number(value: Any) -> bool:
    """An int or a float: the policy SDK hands every number over as a float (protobuf Struct values), so
    ``initialDelaySec: 3480`` arrives as ``3480.0``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def gcp_has_gpu(props: Mapping[str, Any]) -> bool:
    counts = collect(props, "guestAccelerators", "count")
    if any(count is UNKNOWN or (is_number(count) and count > 0) for count in counts):
        return True
    machine = props.get("machineType")
    return isinstance(machine, str) and bool(_GCP_GPU_MACHINE.match(machine.rsplit("/", 1)[-1]))


def aws_has_gpu(props: Mapping[str, Any]) -> bool:
    instance_type = props.get("instanceType")
    if isinstance(instance_type, str) and _AWS_GPU_INSTANCE.match(instance_type):
        return True
    return "gpu" in collect(props, "instanceRequirements", "acceleratorTypes")


def _normalized(reference: str) -> str:
    """A GCP self link, resource ID or unique self link, reduced to ``projects/.../name``."""
    reference = reference.split("?", 1)[0]
    start = reference.find("projects/")
    return reference[start:] if start >= 0 else reference


def _identities(template: StackResource) -> set[str]:
    keys = ("id", "selfLink", "selfLinkUnique", "name", "arn")
    return {_normalized(value) for value in _strings(template.props.get(key) for key in keys)}


@dataclass(frozen=True)
class _Link:
    """How a group or VM names its template: property paths holding the template's id, self link or name."""

    paths: tuple[tuple[str, ...], ...]

    def uses(self, user: StackResource, template: StackResource, via_component: bool) -> bool:
        """Linked by the engine's property dependencies (known even in preview), else by an equal
        id/selfLink/name, else (``via_component``) by a reference the preview cannot know yet from a
        resource the template's own component declared."""
        properties = {path[0] for path in self.paths}
        if any(template.urn in user.property_dependencies.get(prop, ()) for prop in properties):
            return True
        references = [found for path in self.paths for found in collect(user.props, *path)]
        identities = _identities(template)
        for reference in _strings(references):
            if _normalized(reference) in identities or reference.rsplit("/", 1)[-1] in identities:
                return True
        same_component = user.parent is not None and user.parent == template.parent
        return via_component and same_component and UNKNOWN in references


def _is_set(value: Any) -> bool:
    return value is UNKNOWN or value not in (None, "", [], {})


def gcp_group_heals(props: Mapping[str, Any]) -> bool:
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


#: Auto Scaling health check types; ``EC2`` is the default and always applies.
AWS_HEALTH_CHECK_TYPES: Final = frozenset({"EC2", "ELB", "VPC_LATTICE", "EBS"})


def aws_group_heals(props: Mapping[str, Any]) -> bool:
    """Every Auto Scaling group replaces a machine its health checks fail (EC2 status at least) or that
    reports itself Unhealthy (``SetInstanceHealth``: this project's on-instance watchdog on /health).
    ``ELB`` health is allowed but not required: it also replaces a GPU machine whose vLLM is merely
    restarting, which is why this project uses EC2 health and the watchdog."""
    check_type = props.get("healthCheckType")
    if check_type is UNKNOWN or check_type is None:
        return True
    return all(part.strip() in AWS_HEALTH_CHECK_TYPES for part in str(check_type).split(","))


@dataclass(frozen=True)
class _Cloud:
    template: str
    groups: frozenset[str]
    group_link: _Link
    has_gpu: Callable[[Mapping[str, Any]], bool]
    heals: Callable[[Mapping[str, Any]], bool]
    fix: str
    vms: Mapping[str, _Link | None]  # VM types a group does not manage -> how they name a template


_AWS_TEMPLATE_LINK = _Link(
    (
        ("launchTemplate", "id"),
        ("launchTemplate", "name"),
        ("mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "launchTemplateId"),
        ("mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "launchTemplateName"),
    )
)
_CLOUDS: Final = (
    _Cloud(
        template=GCP_TEMPLATE,
        groups=GCP_GROUPS,
        group_link=_Link((("versions", "instanceTemplate"),)),
        has_gpu=gcp_has_gpu,
        heals=gcp_group_heals,
        fix="an instance group manager with autoHealingPolicies (healthCheck, initialDelaySec)",
        vms={
            "gcp:compute/instance:Instance": None,
            "gcp:compute/instanceFromTemplate:InstanceFromTemplate": _Link((("sourceInstanceTemplate",),)),
        },
    ),
    _Cloud(
        template=AWS_TEMPLATE,
        groups=frozenset({AWS_GROUP}),
        group_link=_AWS_TEMPLATE_LINK,
        has_gpu=aws_has_gpu,
        heals=aws_group_heals,
        fix="an Auto Scaling group (EC2 health, and the machine reporting its /health through "
        "SetInstanceHealth)",
        vms={"aws:ec2/instance:Instance": _AWS_TEMPLATE_LINK},
    ),
)


def _cloud_violations(cloud: _Cloud, resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    templates = [r for r in resources if r.type == cloud.template and cloud.has_gpu(r.props)]
    groups = [r for r in resources if r.type in cloud.groups]
    violations = []
    for template in templates:
        users = [group for group in groups if cloud.group_link.uses(group, template, via_component=True)]
        if not users:
            violations.append(
                (template.urn, f"GPU template {template.name} is used by no group: use it from {cloud.fix}")
            )
        for group in (group for group in users if not cloud.heals(group.props)):
            message = f"group {group.name} runs GPU template {template.name} without autohealing"
            violations.append((group.urn, f"{message}: make it {cloud.fix}"))
    for vm in (r for r in resources if r.type in cloud.vms):
        link = cloud.vms[vm.type]
        from_gpu_template = link is not None and any(link.uses(vm, t, via_component=False) for t in templates)
        if cloud.has_gpu(vm.props) or from_gpu_template:
            violations.append((vm.urn, f"GPU VM {vm.name} is a standalone instance: run it from {cloud.fix}"))
    return violations


def autohealing_violations(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """(URN, message) for every GPU VM that no health-checking, self-healing group manages."""
    return [violation for cloud in _CLOUDS for violation in _cloud_violations(cloud, resources)]


# --- AWS names and descriptions: rules AWS enforces only at apply, never at preview -------------------------

#: ELBv2 load balancers and target groups (``aws:alb`` is the same resource under its older name).
AWS_ELB_TYPES: Final = frozenset(
    {
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        "aws:alb/loadBalancer:LoadBalancer",
        "aws:alb/targetGroup:TargetGroup",
    }
)
#: CreateLoadBalancer / CreateTargetGroup ``Name``: at most 32 alphanumerics and hyphens, no hyphen at
#: either end; a load balancer's may not start with ``internal-``. ``namePrefix`` leaves 26 characters
#: to the provider's unique suffix, so at most 6.
ELB_NAME_MAX: Final = 32
ELB_NAME_PREFIX_MAX: Final = 6
_ELB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_ELB_NAME_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def aws_elb_name_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """An ELB name AWS refuses at ``pulumi up`` (preview accepts it): too long, bad characters or ends."""
    if resource_type not in AWS_ELB_TYPES:
        return []
    kind = "target group" if "targetGroup" in resource_type else "load balancer"
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
AWS_SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
AWS_SECURITY_GROUP_RULES: Final = frozenset(
    {
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    }
)


def _bad_description(where: str, text: Any) -> list[str]:
    if not isinstance(text, str) or (len(text) <= EC2_DESCRIPTION_MAX and _EC2_DESCRIPTION.match(text)):
        return []
    bad = "".join(sorted({c for c in text if not _EC2_DESCRIPTION.match(c)}))
    allowed = "a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*"
    found = f", not {bad!r}" if bad else ""
    return [f"{where} {text!r}: EC2 accepts up to {EC2_DESCRIPTION_MAX} characters of {allowed}{found}"]


def aws_description_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A security group or rule description EC2 refuses at ``pulumi up`` (preview accepts it)."""
    if resource_type == AWS_SECURITY_GROUP:
        violations = _bad_description("security group description", props.get("description"))
        for direction in ("ingress", "egress"):
            for rule in collect(props, direction):
                if isinstance(rule, Mapping):
                    violations += _bad_description(
                        f"inline {direction} rule description", rule.get("description")
                    )
        return violations
    if resource_type in AWS_SECURITY_GROUP_RULES:
        return _bad_description("security group rule description", props.get("description"))
    return []


#: CreateTargetGroup/ModifyTargetGroup refuse a health check whose timeout is not below its interval
#: ("Health check timeout '10' must be smaller than the interval '10'", terraform-provider-aws#2366).
AWS_TARGET_GROUPS: Final = frozenset({"aws:lb/targetGroup:TargetGroup", "aws:alb/targetGroup:TargetGroup"})


def aws_health_check_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A target group health check AWS refuses at ``pulumi up``: timeout not below interval. Numbers may
    arrive as floats (the CrossGuard SDK's)."""
    if resource_type not in AWS_TARGET_GROUPS:
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


# --- The weight cache's buckets are private (vllm:weightCache bucket, issue 19) ---------------------------

PUBLIC_MEMBERS: Final = frozenset({"allUsers", "allAuthenticatedUsers"})
S3_BLOCK_FLAGS: Final = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def bucket_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A GCS bucket without uniform bucket-level access or with public access prevention not enforced, a
    grant of a bucket to everyone, or an S3 Public Access Block with any of its four settings off."""
    if resource_type == "gcp:storage/bucket:Bucket":
        violations = []
        if props.get("uniformBucketLevelAccess") is not True:
            violations.append("bucket: uniformBucketLevelAccess must be true (IAM alone grants access)")
        if props.get("publicAccessPrevention") != "enforced":
            violations.append("bucket: publicAccessPrevention must be 'enforced'")
        return violations
    if resource_type in (
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        "gcp:storage/bucketIAMBinding:BucketIAMBinding",
    ):
        members = [props.get("member"), *collect(props, "members")]
        return [
            f"bucket grant to {member}: a bucket is never public"
            for member in members
            if member in PUBLIC_MEMBERS
        ]
    if resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        return [
            f"public access block: {flag} must be true"
            for flag in S3_BLOCK_FLAGS
            if props.get(flag) is not True
        ]
    return []
