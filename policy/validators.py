"""The checks behind the policy pack, as pure functions: resource type and properties in, violations out.

This module holds what every platform shares (walking values, secret names and texts, CIDRs and ports,
public paths, ``UNKNOWN``, the autohealing stack policy's frame) and iterates the platform registry
(``components.platforms``) for the rest: each platform's scanners live in ``components/<platform>/policy.py``,
pure functions over plain property dicts that import no cloud SDK. That module fulfils this contract:

- ``SCANNERS: Mapping[str, Mapping[str, Scanner]]``: for each shared resource policy (``SHARED_POLICIES``)
  it takes part in, the platform's resource types it reads, each with its scanner (properties in, violation
  messages out). Resource types are the platform's own (``gcp:compute/...``).
- ``DESCRIPTIONS: Mapping[str, str]``: for a shared policy whose description says what each platform's
  resources must be (``PRIVATE_BUCKETS``, ``WEAK_TLS``, ``AUTOHEALING_POLICY``), this platform's part,
  naming its own resources (``described`` joins them).
- ``POLICIES: Sequence[PlatformPolicy]``: the platform's own resource policies (name, description and a
  check over any resource type), e.g. rules its API enforces only at ``pulumi up``.
- ``STACK_POLICIES: Sequence[PlatformStackPolicy]``: the platform's own stack policies (a check over every
  resource of the stack), e.g. pairs of resources its API refuses only at ``pulumi up``. Policy names are
  unique across platforms.
- ``AUTOHEALING: Autohealing | None``: what the ``gpu-vms-autoheal`` stack policy needs to know of its GPU
  VMs (which resources are GPU templates, groups and standalone VMs, how a group names its template,
  whether a group heals); None where the platform's own controllers replace what fails.
- ``PUBLIC_HTTP: Callable[[Sequence[StackResource]], list[StackResource]] | None``: the stack's
  internet-facing load balancers when nothing of the stack serves HTTPS (the ``endpoint-serves-https``
  advisory); None where the platform has no public endpoint of its own.
- ``GPU_BUDGET: Mapping[str, gpu_budget.Bound]``: its autoscalers' resource types, each with how to find
  the autoscaler's upper bound (max replicas, GPUs per replica) in the stack (policy/gpu_budget.py).
- ``FIXED_GPUS: Mapping[str, gpu_budget.Bound]``: its replica groups' resource types, each with how to
  count a group no autoscaler moves (replicas, GPUs per replica), None for one an autoscaler scales.
- ``SECRET_REFERENCE: re.Pattern[str] | None``: what a pointer into its secret store looks like (a Secret
  Manager resource name, a Secrets Manager ARN): a value that names a secret without holding it.

No module outside ``components/<platform>/`` names a platform's resource type (tests/test_conventions.py).

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
from functools import cache
from types import ModuleType
from typing import Any, Final, TypeGuard

from components import platforms


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


#: A value the preview cannot know yet (computed from another resource's outputs).
UNKNOWN: Final = _Unknown()

#: A platform's scanner for one resource type: its properties in, violation messages out.
Scanner = Callable[[Mapping[str, Any]], list[str]]
#: A policy's check: any resource's type and properties in, violation messages out.
Check = Callable[[str, Mapping[str, Any]], list[str]]

#: The resource policies every platform takes part in (their descriptions: policy/__main__.py).
SECRETS: Final = "secrets-only-in-secret-store"
EXPOSURE: Final = "no-ray-or-ssh-on-the-internet"
PUBLIC_PATHS: Final = "load-balancer-serves-only-openai-paths"
PRIVATE_BUCKETS: Final = "weight-cache-buckets-private"
WEAK_TLS: Final = "https-tls-1-2-or-later"
SHARED_POLICIES: Final = (SECRETS, EXPOSURE, PUBLIC_PATHS, PRIVATE_BUCKETS, WEAK_TLS)
#: The stack policy every VM platform takes part in through its ``AUTOHEALING`` facts.
AUTOHEALING_POLICY: Final = "gpu-vms-autoheal"


@dataclass(frozen=True, kw_only=True)
class PlatformPolicy:
    """A resource policy only one platform has (a rule of its API), declared in its policy.py."""

    name: str
    description: str
    check: Check


#: A stack policy's check: every resource of the stack in, (URN, message) per violation out.
StackCheck = Callable[[Sequence["StackResource"]], list[tuple[str, str]]]


@dataclass(frozen=True, kw_only=True)
class PlatformStackPolicy:
    """A stack policy only one platform has (a rule its API enforces across resources), in its policy.py."""

    name: str
    description: str
    check: StackCheck


@cache
def platform_modules() -> tuple[ModuleType, ...]:
    """Every registered platform's ``policy`` module (the contract above), in registry order."""
    return tuple(platform.module("policy") for platform in platforms.registered())


def _scan(policy: str, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    for module in platform_modules():
        scanner = module.SCANNERS.get(policy, {}).get(resource_type)
        if scanner is not None:
            return scanner(props)
    return []


def platform_policies() -> list[PlatformPolicy]:
    """The platforms' own resource policies, in registry order."""
    return [policy for module in platform_modules() for policy in module.POLICIES]


def platform_stack_policies() -> list[PlatformStackPolicy]:
    """The platforms' own stack policies, in registry order."""
    return [policy for module in platform_modules() for policy in module.STACK_POLICIES]


def described(policy: str, summary: str) -> str:
    """A shared policy's description: its ``summary``, then what it asks of each platform's resources (their
    ``DESCRIPTIONS``), in registry order, so that a new platform describes its own part."""
    parts = [module.DESCRIPTIONS[policy] for module in platform_modules() if policy in module.DESCRIPTIONS]
    return f"{summary}: {'; '.join(parts)}." if parts else f"{summary}."


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


def strings(values: Iterable[Any]) -> list[str]:
    return [value for value in values if isinstance(value, str)]


def is_number(value: Any) -> TypeGuard[int | float]:
    """An int or a float: the policy SDK hands every number over as a float (protobuf Struct values), so
    ``initialDelaySec: 3480`` arrives as ``3480.0``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Secrets: the HF token and the API key live only in a secret store --------------------------------------

#: Variables vLLM and huggingface_hub read secrets from (components/launch.py sets HF_TOKEN, VLLM_API_KEY).
SECRET_ENV_NAMES: Final = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY"})
_SECRET_WORD = re.compile(r"(?:^|[_.-])(?:token|secret|password|passwd|api[_.-]?key|apikey)(?:$|[_.-])", re.I)
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


def is_secret_reference(value: Any) -> bool:
    """A pointer into any registered platform's secret store (a workload may read another cloud's)."""
    return isinstance(value, str) and any(
        module.SECRET_REFERENCE is not None and module.SECRET_REFERENCE.match(value)
        for module in platform_modules()
    )


def decoded_texts(value: str) -> list[str]:
    """User data as written and, when it is base64 (gzip-compressed or not), as the machine reads it."""
    try:
        raw = base64.b64decode(value, validate=True)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (binascii.Error, ValueError, OSError, EOFError):
        return [value]
    return [value, raw.decode("utf-8", errors="replace")]


def named_secrets(where: str, entries: Any) -> list[str]:
    """Keys named like secrets (labels, tags, metadata, ConfigMap data) whose value is no store reference."""
    if not isinstance(entries, Mapping):
        return []
    return [
        f"{where} key {key!r} is named like a secret: keep secrets in the secret store and pass them by "
        "environment at boot"
        for key, value in entries.items()
        if is_secret_name(str(key)) and not is_secret_reference(value)
    ]


def text_secrets(where: str, texts: Iterable[str]) -> list[str]:
    findings = dict.fromkeys(finding for text in texts for finding in secrets_in_text(text))
    return [f"{where} carries {finding}: the secret store must deliver it at boot" for finding in findings]


def secret_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A secret outside the secret store: metadata, scripts, user data, labels, literal env, ConfigMaps."""
    return _scan(SECRETS, resource_type, props)


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
#: Protocol spellings that carry TCP: names, IANA numbers, and "all" / "-1" for every protocol.
TCP_PROTOCOLS: Final = frozenset({"tcp", "6", "all", "-1"})


def is_whole_internet(cidr: Any) -> bool:
    """0.0.0.0/0 and ::/0 in any spelling."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def port_range(text: str) -> tuple[int, int] | None:
    first, _, last = str(text).partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        return None


def exposed(where: str, sources: Iterable[Any], ranges: Iterable[tuple[int, int]]) -> list[str]:
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


def exposure_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Ray's ports or SSH open to 0.0.0.0/0 or ::/0."""
    return _scan(EXPOSURE, resource_type, props)


# --- Public paths: the load balancer serves the OpenAI API (/v1/...) and /health, nothing else --------------

PUBLIC_PATH_PREFIX: Final = "/v1/"
PUBLIC_EXACT_PATHS: Final = frozenset({"/health"})
UNLISTED: Final = "every other path (/metrics, /tokenize, /pause, ...)"


def is_public_path(path: str) -> bool:
    """A path (or a prefix/wildcard pattern) that stays inside the OpenAI API or is exactly /health."""
    return path.startswith(PUBLIC_PATH_PREFIX) or path in PUBLIC_EXACT_PATHS


def public_path_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Load balancer routes that reach vLLM outside /v1/... and /health (its admin and metrics paths)."""
    return _scan(PUBLIC_PATHS, resource_type, props)


# --- Health: every GPU VM is in a group that health-checks it and replaces it ------------------------------


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


@dataclass(frozen=True)
class TemplateLink:
    """How a group or VM names its template: property paths holding the template's id, self link or name."""

    paths: tuple[tuple[str, ...], ...]


def _as_is(reference: str) -> str:
    return reference


@dataclass(frozen=True, kw_only=True)
class Autohealing:
    """What the ``gpu-vms-autoheal`` stack policy needs to know of a platform's GPU VMs."""

    template: str  # the resource type of a VM template
    groups: frozenset[str]  # the resource types of the groups that run templates
    group_link: TemplateLink  # how a group names its template
    #: Resource types of VMs no group manages -> how they name a template (None: they cannot).
    vms: Mapping[str, TemplateLink | None]
    has_gpu: Callable[[Mapping[str, Any]], bool]  # a template's or VM's properties: does it carry GPUs?
    heals: Callable[[Mapping[str, Any]], bool]  # a group's properties: does it replace a VM that fails?
    fix: str  # what a violation tells to run GPU VMs from instead
    identity_keys: tuple[str, ...]  # the template properties a group or VM may name it by
    #: A reference (or identity) in the one form its platform compares them in (e.g. a self link's path).
    normalize: Callable[[str], str] = _as_is

    def links(
        self, link: TemplateLink, user: StackResource, template: StackResource, via_component: bool
    ) -> bool:
        """Does ``user`` (a group or VM) run ``template`` through ``link``? Linked by the engine's property
        dependencies (known even in preview), else by an equal id/selfLink/name, else (``via_component``) by a
        reference the preview cannot know yet from a resource the template's own component declared."""
        properties = {path[0] for path in link.paths}
        if any(template.urn in user.property_dependencies.get(prop, ()) for prop in properties):
            return True
        references = [found for path in link.paths for found in collect(user.props, *path)]
        identities = {
            self.normalize(value) for value in strings(template.props.get(k) for k in self.identity_keys)
        }
        for reference in strings(references):
            if self.normalize(reference) in identities or reference.rsplit("/", 1)[-1] in identities:
                return True
        same_component = user.parent is not None and user.parent == template.parent
        return via_component and same_component and UNKNOWN in references


def _platform_violations(facts: Autohealing, resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    templates = [r for r in resources if r.type == facts.template and facts.has_gpu(r.props)]
    groups = [r for r in resources if r.type in facts.groups]
    violations = []
    for template in templates:
        users = [
            group for group in groups if facts.links(facts.group_link, group, template, via_component=True)
        ]
        if not users:
            violations.append(
                (template.urn, f"GPU template {template.name} is used by no group: use it from {facts.fix}")
            )
        for group in (group for group in users if not facts.heals(group.props)):
            message = f"group {group.name} runs GPU template {template.name} without autohealing"
            violations.append((group.urn, f"{message}: make it {facts.fix}"))
    for vm in (r for r in resources if r.type in facts.vms):
        link = facts.vms[vm.type]
        from_gpu_template = link is not None and any(
            facts.links(link, vm, t, via_component=False) for t in templates
        )
        if facts.has_gpu(vm.props) or from_gpu_template:
            violations.append((vm.urn, f"GPU VM {vm.name} is a standalone instance: run it from {facts.fix}"))
    return violations


def autohealing_violations(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """(URN, message) for every GPU VM that no health-checking, self-healing group manages."""
    return [
        violation
        for module in platform_modules()
        if module.AUTOHEALING is not None
        for violation in _platform_violations(module.AUTOHEALING, resources)
    ]


# --- Cleartext: a public endpoint without HTTPS sends the API key in the clear (advisory) ---------------

CLEARTEXT_ADVICE: Final = (
    "the public endpoint is plain HTTP: the API key and every prompt and completion cross the internet in "
    "cleartext; set vllm:domain (and vllm:dnsZone) to serve HTTPS (docs/https.md)"
)


def cleartext_endpoint_violations(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """(URN, advice) for each internet-facing load balancer of a stack that serves no HTTPS."""
    return [
        (resource.urn, CLEARTEXT_ADVICE)
        for module in platform_modules()
        if module.PUBLIC_HTTP is not None
        for resource in module.PUBLIC_HTTP(resources)
    ]


# --- TLS: HTTPS fronts accept TLS 1.2 or later only ------------------------------------------------------


def weak_tls_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """HTTPS fronts that would accept TLS 1.0 or 1.1 (each platform's scanners say which and why)."""
    return _scan(WEAK_TLS, resource_type, props)


# --- The weight cache's buckets are private (vllm:weightCache bucket, issue 19) ---------------------------


def bucket_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A bucket, or a grant on one, that lets anyone outside the stack's identities read it."""
    return _scan(PRIVATE_BUCKETS, resource_type, props)
