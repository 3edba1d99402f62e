"""The stack spec: every `vllm:*` config key, presets, and validation.

A stack's effective configuration is its preset (``stacks/<name>.yaml``, picked by ``vllm:preset`` or by a
stack of the same name) overlaid key by key with the stack's own Pulumi config. ``load_spec`` checks the
whole of it before any resource is declared; a bad value raises ``SpecError``, a ``pulumi.RunError``, so
Pulumi prints one message naming the key, the value and what is valid, and no traceback.

Changing ``vllm:model`` on top of a preset drops the preset's values of the keys that describe its model
(``MODEL_KEYS``: they were sized for another model); the stack's own values of them still apply. A stack
value ``unset`` removes the preset's value of any key, so the built-in default applies.

Before any resource, ``load_spec`` also checks the model against the Hugging Face Hub (weights against
GPU memory and disk, tensor parallel size against attention heads, ``maxModelLen`` against the context, in
components/model_fit.py; components/model_facts.py says how and why the answers are stable across runs).

Pulumi.yaml declares every key with an empty default (``""`` or ``[]``), because Pulumi treats a declared
key without a default as required and applies defaults to every stack; so "empty" here means "not set":
the preset's value, else the built-in default below, applies.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components import (
    capacity,
    catalog,
    cost_warnings,
    model_facts,
    model_fit,
    platforms,
    provider_config,
    sdk_internals,
)
from components.autoscaling import KEYS as AUTOSCALING_KEYS
from components.autoscaling import Autoscaling, read_autoscaling, replaced_scaling_keys, replicas_output
from components.config import PROJECT, UNSET, ConfigReader, SpecError, present, stack_config
from components.domain import parse_domain
from components.extra_args import (
    SECRET_FLAGS,
    ExtraArgError,
    check_flags,
    check_refused_flags,
    load_flags,
    option_value,
    refused_flags,
)
from components.model_facts import ModelFacts
from components.provider_config import provider_config_keys

PRESETS_DIR = Path(__file__).resolve().parent.parent / "stacks"

#: Pinned vLLM release (never ``latest``): the image tag is part of the infrastructure diff.
DEFAULT_IMAGE = "vllm/vllm-openai:v0.33.0"
#: The same release built for CPUs, the default of a Kubernetes stack without a GPU. vLLM publishes its CPU
#: builds as separate repositories (vLLM docs "CPU" and "Using Docker"): ``vllm/vllm-openai-cpu``,
#: ``public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo``, ``...vllm-arm64-cpu-release-repo``; a source build
#: is tagged ``vllm-cpu-env``.
DEFAULT_CPU_IMAGE = DEFAULT_IMAGE.replace("vllm/vllm-openai:", "vllm/vllm-openai-cpu:")
#: Words in an image's repository or tag that name the hardware it was built for (vLLM's own images:
#: ``*-cpu*``; ROCm ``vllm/vllm-openai:*-rocm``, ``rocm/vllm``; TPU ``vllm/vllm-tpu``; Intel XPU, Gaudi
#: HPU, AWS Neuron and Ascend builds). Anything else is taken for the CUDA build.
CPU_IMAGE_WORD = "cpu"
NON_CUDA_IMAGE_WORDS = ("cpu", "rocm", "tpu", "xpu", "hpu", "gaudi", "neuron", "ascend")
#: A configured API key shorter than this is refused: it is the only credential in front of a public
#: endpoint (a generated key, components/service.py API_KEY_LENGTH, is far longer).
MIN_API_KEY_LENGTH = 16
#: The longest base name of a stack's resources (``ServiceSpec.name``): the platforms' name rules leave
#: room for a role and an auto-name suffix after it (components/*/names.py).
NAME_MAX = 40
NAME_HASH_LENGTH = 8
NAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
DEFAULT_DISK_SIZE_GB = 200
OPEN_TO_ALL = ("0.0.0.0/0",)

#: Config keys a preset or a stack may set for any platform; each platform adds its own (its platform.py's
#: ``keys``). Secrets (hfToken, apiKey) are stack-only.
COMMON_KEYS = (
    "preset",
    "cloud",
    "gpu",
    "model",
    "servedModelName",
    "replicas",
    "nodes",
    "image",
    "maxModelLen",
    "extraArgs",
    "diskSizeGb",
    "modelSizeGb",
    "spot",
    "onDemandBaseReplicas",
    "reservation",
    "allowedCidrs",
    *AUTOSCALING_KEYS,
    "domain",
    "dnsZone",
    "weightCache",
)
SECRET_KEYS = ("hfToken", "apiKey")
#: Keys a preset sets for its own model: changing vllm:model drops the preset's values of them (a context
#: length, size, disk, served name or flag such as --trust-remote-code belongs to one model).
MODEL_KEYS = ("servedModelName", "maxModelLen", "modelSizeGb", "diskSizeGb", "extraArgs")


@dataclass(frozen=True)
class Gpu:
    """A GPU request per node, written ``TYPE:COUNT`` as in SkyPilot (``H100:8``)."""

    type: str
    count: int

    def __str__(self) -> str:
        return f"{self.type}:{self.count}"


@dataclass(frozen=True)
class ServiceSpec:
    """The validated, effective, non-secret spec of one stack."""

    stack: str
    preset: str | None
    cloud: str
    gpu: Gpu | None  # None: CPU-only replicas (Kubernetes dev clusters)
    offering: catalog.Offering | None  # the catalog machine chosen for ``gpu``; None for CPU
    model: str
    served_model_name: str
    replicas: int
    nodes: int
    image: str
    max_model_len: int | None
    extra_args: tuple[str, ...]
    disk_size_gb: int
    model_size_gb: int | None
    spot: bool
    allowed_cidrs: tuple[str, ...]
    region: str | None = None  # the platform's region (gcp:region, aws:region); None on Kubernetes
    regions: tuple[str, ...] = ()  # every region it serves from, ``region`` first (vllm:regions, GCP)
    on_demand_base_replicas: int = 0  # with spot: replicas kept on on-demand capacity
    platform: Any = None  # the platform's own settings: its platform.py's settings(spec) reads them typed
    facts: ModelFacts | None = None  # the model's facts from the Hugging Face Hub, when known
    #: SkyServe's replica_policy (components/autoscaling.py); None: a fixed ``replicas``, which is then the
    #: count a first ``up`` starts with
    autoscaling: Autoscaling | None = None

    @property
    def max_replicas(self) -> int:
        """The most replicas the stack may run (surges aside): the autoscaler's bound, or the fixed count."""
        return self.autoscaling.max_replicas if self.autoscaling is not None else self.replicas

    domain: str | None = None  # vllm:domain, the HTTPS host name (components/domain.py); None: plain HTTP
    dns_zone: str | None = None  # vllm:dnsZone, where the program writes the domain's records
    weight_cache: str = "hub"  # vllm:weightCache: WEIGHT_CACHES
    #: The boot disk is sized at ``up`` from the boot image's own minimum plus what stays on it (a machine
    #: whose weights and Docker data root go on its local NVMe, without vllm:diskSizeGb): ``disk_size_gb``
    #: is then only the offline default, never a resource input.
    boot_disk_from_image: bool = False

    @property
    def bucket_weight_cache(self) -> bool:
        """Whether the stack owns a bucket of the model's files (vllm:weightCache bucket or stream)."""
        return self.weight_cache in BUCKET_WEIGHT_CACHES

    @property
    def pinned_revision(self) -> str | None:
        """``--revision`` in vllm:extraArgs: the branch, tag or commit of the model the stack pins."""
        return option_value(self.extra_args, "--revision")

    @property
    def model_revision(self) -> str:
        """The revision the replicas load, which keys the weight cache: the commit the Hub resolved the
        pinned revision (else ``main``) to, else the pinned name, else ``main`` (build_spec warns then)."""
        if self.facts is not None:
            return self.facts.revision
        return self.pinned_revision or model_facts.REVISION

    @property
    def name(self) -> str:
        """A short DNS-safe base name for cloud resources, unique per stack: ``vllm-<stack>`` when that is
        already a lowercase DNS label of at most ``NAME_MAX`` characters (the presets' names, so their
        resources keep their names), else its slug cut to fit and a hash of the exact stack name, so that
        ``prod_a``, ``prod-a`` and ``PROD.A``, or two long names that differ after the cut, stay apart."""
        name = f"{PROJECT}-{self.stack}"
        if len(name) <= NAME_MAX and NAME_LABEL.match(name):
            return name
        digest = hashlib.sha256(self.stack.encode()).hexdigest()[:NAME_HASH_LENGTH]
        slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
        return f"{slug[: NAME_MAX - NAME_HASH_LENGTH - 1].rstrip('-')}-{digest}"

    @property
    def gpus_per_replica(self) -> int:
        return self.gpu.count * self.nodes if self.gpu else 0

    def cost_per_hour(self) -> float | None:
        """Catalog estimate for the whole stack (every node of every replica, at its region's price for
        its purchase option), None when unpriced."""
        return capacity.cost_per_hour(self)

    def public_view(self) -> dict[str, Any]:
        """The effective spec as plain data for stack outputs and plans: never holds a secret."""
        view: dict[str, Any] = {
            "stack": self.stack,
            "preset": self.preset,
            "cloud": self.cloud,
            "gpu": str(self.gpu) if self.gpu else None,
            "machineType": self.offering.machine_type if self.offering else None,
            "model": self.model,
            "servedModelName": self.served_model_name,
            "replicas": replicas_output(self),
            "autoscaling": self.autoscaling.public_view() if self.autoscaling is not None else None,
            "nodes": self.nodes,
            "image": self.image,
            "maxModelLen": self.max_model_len,
            "extraArgs": list(self.extra_args),
            "diskSizeGb": (
                f"boot image's minimum + {platforms.BOOT_DISK_KEPT_GB}"
                if self.boot_disk_from_image
                else self.disk_size_gb
            ),
            "modelSizeGb": self.model_size_gb,
            "modelRevision": self.facts.revision if self.facts else None,
            "spot": self.spot,
            "onDemandBaseReplicas": self.on_demand_base_replicas if self.spot else None,
            "allowedCidrs": list(self.allowed_cidrs),
            "domain": self.domain,
            "dnsZone": self.dns_zone,
            "weightCache": self.weight_cache,
        }
        view.update(platforms.get(self.cloud).public_view(self))
        return view


# --- reading config ------------------------------------------------------------------------------------


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict[str, Any]:
    """The ``config:`` map of ``stacks/<name>.yaml`` (the same shape as a Pulumi stack file)."""
    path = PRESETS_DIR / f"{name}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    return dict(document.get("config") or {})


def effective_config(stack: str, config: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """Overlay the stack's config on its preset, key by key; empty stack values do not override, ``unset``
    removes the preset's value, and another model drops the preset's ``MODEL_KEYS``."""
    explicit = present(config.get(f"{PROJECT}:preset"))
    preset = explicit if explicit is not None else (stack if stack in available_presets() else None)
    if preset is not None and preset not in available_presets():
        raise SpecError(f"{PROJECT}:preset", preset, f"one of {', '.join(available_presets())}")
    merged: dict[str, Any] = read_preset(preset) if preset else {}
    model = present(config.get(f"{PROJECT}:model"))
    if model is not None and str(model).strip() != str(merged.get(f"{PROJECT}:model", "")).strip():
        for key in MODEL_KEYS:
            merged.pop(f"{PROJECT}:{key}", None)
    chosen = {k for k, v in config.items() if present(v) is not None and str(v).strip() != UNSET}
    for key in replaced_scaling_keys(chosen):
        merged.pop(key, None)
    for key, value in config.items():
        if isinstance(value, str) and value.strip() == UNSET:
            merged[key] = None  # kept as a key, so an unknown one is still refused
        elif present(value) is not None:
            merged[key] = value
    merged[f"{PROJECT}:preset"] = preset
    return preset, merged


#: vllm:weightCache: ``bucket``, the stack's own bucket filled from the Hub once (the default where the
#: platform has one); ``stream``, the same bucket, from which vLLM streams the safetensors straight into
#: GPU memory (the Run:ai model streamer) instead of copying them to disk first; or ``hub``, every replica
#: downloads from the Hugging Face Hub.
WEIGHT_CACHES = ("bucket", "hub", "stream")
#: The weight caches that are the stack's own bucket.
BUCKET_WEIGHT_CACHES = ("bucket", "stream")
#: vLLM flags the streamed load sets itself (components/launch.py), which extraArgs may not change.
STREAM_FLAGS = ("--load-format", "--model-loader-extra-config")


def _weight_cache(read: ConfigReader, platform: platforms.Platform) -> str:
    instead = platform.refuse_unsupported(platforms.Feature.WEIGHT_CACHE_BUCKET)
    weight_cache = read.choice("weightCache", WEIGHT_CACHES, "hub" if instead else "bucket")
    if weight_cache in BUCKET_WEIGHT_CACHES and instead is not None:
        raise SpecError(f"{PROJECT}:weightCache", weight_cache, instead)
    return weight_cache


def check_streamable(spec: ServiceSpec) -> None:
    """``vllm:weightCache stream`` needs safetensors (the only format vLLM's Run:ai streamer loader reads)
    and leaves the loader's flags to the program. A model whose files are unknown (the Hub not reached, no
    facts cached) passes: build_spec has warned, and vLLM says so at load."""
    if spec.weight_cache != "stream":
        return
    key = f"{PROJECT}:weightCache"
    if spec.facts is not None and spec.facts.safetensors is False:
        raise SpecError(
            key,
            "stream",
            f"bucket or hub: {spec.model}@{spec.facts.revision[:12]} has no .safetensors weight files, the "
            f"only format vLLM's Run:ai model streamer loads",
        )
    for flag in STREAM_FLAGS:
        if option_value(spec.extra_args, flag) is not None:
            raise SpecError(
                f"{PROJECT}:extraArgs",
                flag,
                f"no {flag} with {key} stream (the program streams with --load-format runai_streamer)",
            )


# --- validation -----------------------------------------------------------------------------------------


GPU_PATTERN = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9-]*?):(?P<count>[0-9]+)$")
#: A Hugging Face repo id as huggingface_hub's ``validate_repo_id`` takes it (``REPO_ID_REGEX``: an optional
#: ``namespace/``, then 1-96 of ``[\w.-]`` between word boundaries; no ``--`` or ``..``), in ASCII: the Hub's
#: names are ASCII, where Python's ``\w`` would also match any letter of any script.
MODEL_PATTERN = re.compile(r"^(?!.*(--|\.\.))([A-Za-z0-9][\w.-]*\b/)?[A-Za-z0-9][\w.-]{0,95}\b$", re.ASCII)
SERVED_NAME_PATTERN = re.compile(r"^[\w./:-]+$", re.ASCII)
IMAGE_PATTERN = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$"
)


def _allowed_cidrs(read: ConfigReader, platform: platforms.Platform) -> tuple[str, ...]:
    """``vllm:allowedCidrs``: network ranges with no host bits set, IPv6 only where the platform's load
    balancer has an IPv6 address."""
    key, ipv6 = f"{PROJECT}:allowedCidrs", platform.refuse_unsupported(platforms.Feature.IPV6_CLIENTS)
    cidrs = read.string_list("allowedCidrs")
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SpecError(key, cidr, "a CIDR such as 203.0.113.0/24 or 0.0.0.0/0") from None
            raise SpecError(
                key, cidr, f"a range without host bits set (did you mean {network.with_prefixlen}?)"
            ) from None
        if network.version == 6 and ipv6 is not None:
            raise SpecError(key, cidr, ipv6)
    return cidrs


def _parse_gpu(text: str | None, cloud: str) -> Gpu | None:
    if text is None or text.lower() == "none":
        instead = platforms.get(cloud).refuse_unsupported(platforms.Feature.CPU_REPLICAS)
        if instead is None:
            return None
        offered = ", ".join(catalog.gpus_offered(cloud))
        raise SpecError(f"{PROJECT}:gpu", text or "", f"{instead}; {cloud} offers {offered}")
    match = GPU_PATTERN.match(text)
    if not match:
        raise SpecError(f"{PROJECT}:gpu", text, "TYPE:COUNT as in SkyPilot, e.g. H100:8, L4:1, A100-80GB:4")
    canonical = catalog.canonical_gpu(match["type"])
    if canonical is None:
        raise SpecError(f"{PROJECT}:gpu", text, f"a known GPU type: {', '.join(sorted(catalog.GPU_TYPES))}")
    if canonical not in catalog.gpus_offered(cloud):
        raise SpecError(f"{PROJECT}:gpu", text, f"{cloud} offers {', '.join(catalog.gpus_offered(cloud))}")
    count = int(match["count"])
    if count not in catalog.counts_offered(cloud, canonical):
        counts = ", ".join(str(c) for c in catalog.counts_offered(cloud, canonical))
        raise SpecError(f"{PROJECT}:gpu", text, f"{cloud} sells {canonical} in counts {counts} per machine")
    return Gpu(canonical, count)


def _check_multi_node_split(cloud: str, gpu: Gpu, nodes: int) -> None:
    """Tensor parallelism runs inside a node and pipeline parallelism across nodes (TP x PP = GPUs), so a
    group is only worth its network hops when each node is a whole machine: a split of a smaller count
    belongs on one bigger machine."""
    whole = max(catalog.counts_offered(cloud, gpu.type))
    if gpu.count != whole:
        raise SpecError(
            f"{PROJECT}:gpu",
            str(gpu),
            f"{gpu.type}:{whole} per node when vllm:nodes is {nodes} (tensor parallel inside a whole "
            f"machine, pipeline parallel across machines); or vllm:nodes 1 with "
            f"{gpu.type}:{gpu.count * nodes} if one machine holds it",
        )


#: A Hub commit id (``ModelInfo.sha``): 40 lowercase hex digits.
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
#: A revision the weight cache can be keyed by: a git branch, tag or commit name as the Hub serves them
#: (``refs/pr/1`` included), never ``..`` (git check-ref-format refuses it in a name; here it would also
#: climb out of the cache's paths).
REVISION_PATTERN = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]*$")


def _check_revision(args: tuple[str, ...]) -> None:
    """``--revision`` names the model's files in the weight cache's paths (bucket and disk)."""
    revision = option_value(args, "--revision")
    if revision is not None and not REVISION_PATTERN.match(revision):
        raise SpecError(
            f"{PROJECT}:extraArgs",
            f"--revision {revision}",
            "a branch, tag or commit of the model: letters, digits and . _ - / (no ..), e.g. --revision main",
        )


def _check_extra_args(args: tuple[str, ...], image: str) -> None:
    """Check extraArgs as the image's ``vllm serve`` would read them (components/extra_args.py). An image of
    another vLLM version than the flag list's, whose flags are not known here, gets only the refusals."""
    tag = re.search(r":v?(\d+\.\d+\.\d+)[^:/@]*$", image)
    same_version = tag is not None and tag[1] == load_flags().vllm_version
    check = check_flags if same_version else check_refused_flags
    try:
        check(args, refused_flags(), frozenset(SECRET_FLAGS))
    except ExtraArgError as error:
        raise SpecError(f"{PROJECT}:extraArgs", error.shown, error.valid) from None


def _check_unknown_keys(values: Mapping[str, Any], secret_keys: frozenset[str]) -> None:
    """Refuse a key no one reads: a typo would otherwise silently leave the default in place.

    ``vllm:`` keys are this program's; ``gcp:``, ``aws:`` and ``kubernetes:`` keys are the provider's own
    (credentials, profiles, default tags, endpoints... which the program does not read but the provider
    does), so only a key that provider does not define is refused. The message suggests the nearest key.
    """
    names = (*vllm_keys(), *SECRET_KEYS)
    sdks = {platform.provider_namespace: platform.provider_sdk for platform in platforms.registered()}
    project_keys = tuple(f"{PROJECT}:{k}" for k in names)
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        shown = "(secret)" if key in secret_keys else value
        if namespace == PROJECT or _is_project_namespace_typo(namespace):
            if key in project_keys:
                continue
            nearest = [f"{PROJECT}:{k}" for k in _nearest(name, names)]
            valid = (
                f'a {PROJECT} key (Pulumi.yaml declares each one; README "Configuration" says what they do)'
            )
        elif namespace in sdks and (provider_keys := provider_config_keys(sdks[namespace])) is not None:
            if _provider_key_name(name) in provider_keys:
                continue
            nearest = [f"{namespace}:{k}" for k in _nearest(_provider_key_name(name), tuple(provider_keys))]
            valid = f"a config key of the {namespace} provider ({sdks[namespace]}'s config)"
        else:
            continue  # another namespace (pulumi:, random:...), or a provider whose SDK is not installed
        raise SpecError(key, shown, f"not a known key: did you mean {nearest[0]}?" if nearest else valid)


def _nearest(name: str, names: tuple[str, ...]) -> list[str]:
    """The key ``name`` most likely meant, ignoring case first (``GPU`` is ``gpu``), else by spelling."""
    same = [known for known in names if known.lower() == name.lower()]
    if same:
        return same[:1]
    lowered = {known.lower(): known for known in names}
    return [lowered[k] for k in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)]


def _is_project_namespace_typo(namespace: str) -> bool:
    """``vlm:``, ``VLLM:``, ``vllm_:``: a namespace this close to the program's own is a typo (other
    providers' namespaces, e.g. ``pulumi:`` or ``random:``, are nowhere near it)."""
    return namespace != PROJECT and (
        namespace.lower() == PROJECT or difflib.SequenceMatcher(None, namespace, PROJECT).ratio() >= 0.75
    )


def _provider_key_name(name: str) -> str:
    """The top-level name of a provider key in the forms Pulumi hands over: ``region``, the legacy
    ``config:region``, and the root of a path (``defaultTags.tags.team``, ``assumeRoles[0]``); an object
    set with ``--path`` normally arrives as its top-level key with a JSON value."""
    name = name.removeprefix("config:")
    return re.split(r"[.\[]", name, maxsplit=1)[0]


@functools.cache
def vllm_keys() -> tuple[str, ...]:
    """Every ``vllm:`` key a preset or a stack may set: the common ones and each platform's own."""
    return (*COMMON_KEYS, *(key for platform in platforms.registered() for key in platform.keys))


def build_spec(
    stack: str,
    config: Mapping[str, str],
    secret_keys: frozenset[str] = frozenset(),
    lookup: Callable[[str, str | None, str], ModelFacts | None] | None = None,
) -> ServiceSpec:
    """Validate ``config`` (the stack's raw config) over its preset; raise SpecError on the first bad key.

    ``lookup(model, hf_token, revision)`` fetches the model's facts (``model_facts.lookup``), once the config
    itself is valid; without it only what the config says (``vllm:modelSizeGb``) is checked."""
    _check_secrets(config, secret_keys)
    preset, merged = effective_config(stack, config)
    _check_unknown_keys(merged, secret_keys)
    read = ConfigReader(merged)

    cloud = read.choice("cloud", platforms.names())
    if cloud is None:
        clouds = ", ".join(platforms.names())
        if preset is None:
            raise SpecError(
                f"{PROJECT}:cloud",
                "",
                f"one of {clouds}: no preset is named {stack!r} (presets: {', '.join(available_presets())}); "
                f"pick one with {PROJECT}:preset, or set {PROJECT}:cloud, {PROJECT}:gpu and {PROJECT}:model",
            )
        raise SpecError(f"{PROJECT}:cloud", "", f"one of {clouds}")
    platform = platforms.get(cloud)
    spot = read.boolean("spot", False)
    if spot and (instead := platform.refuse_unsupported(platforms.Feature.SPOT)) is not None:
        raise SpecError(f"{PROJECT}:spot", "true", instead)
    _refuse_unsupported_keys(read, platform)
    _refuse_other_platforms_keys(merged, secret_keys, platform)
    replicas = read.integer("replicas", 1, minimum=1, maximum=1000)
    nodes = read.integer("nodes", 1, minimum=1, maximum=64)
    autoscaling = read_autoscaling(read, platform, nodes)
    on_demand_base = _on_demand_base(read, spot, replicas, autoscaling)
    gpu = _parse_gpu(read.string("gpu"), cloud)
    offering = None
    if gpu is not None:
        most = autoscaling.max_replicas if autoscaling is not None else replicas
        try:
            offering = catalog.select(cloud, gpu.type, gpu.count, spot, on_demand_base / most)
        except catalog.CatalogError as error:
            raise SpecError(f"{PROJECT}:gpu", str(gpu), str(error)) from None
    elif nodes > 1:
        raise SpecError(f"{PROJECT}:nodes", nodes, "1 without a GPU (multi-node serving shards across GPUs)")
    if gpu is not None and nodes > 1:
        _check_multi_node_split(cloud, gpu, nodes)

    model = read.string("model")
    if model is None or not MODEL_PATTERN.match(model):
        raise SpecError(f"{PROJECT}:model", model or "", _model_valid(model or ""))
    served = read.string("servedModelName", model)
    if not SERVED_NAME_PATTERN.match(served):
        raise SpecError(f"{PROJECT}:servedModelName", served, "letters, digits and . _ - / : only")
    image = read.string("image", DEFAULT_IMAGE if gpu is not None else DEFAULT_CPU_IMAGE)
    if not IMAGE_PATTERN.match(image) or image.endswith((":latest", ":nightly")):
        raise SpecError(
            f"{PROJECT}:image", image, "a pinned image reference such as vllm/vllm-openai:v0.33.0"
        )
    _check_image_fits_hardware(image, gpu)
    extra_args = read.string_list("extraArgs")
    _check_extra_args(extra_args, image)
    _check_revision(extra_args)
    allowed = _allowed_cidrs(read, platform)
    domain, dns_zone = _read_domain(read, platform)

    placement = platform.read_placement(read, stack, offering)
    weight_cache = _weight_cache(read, platform)

    disk_size_gb = read.integer("diskSizeGb", None, minimum=20, maximum=65536)
    spec = ServiceSpec(
        stack=stack,
        preset=preset,
        cloud=cloud,
        gpu=gpu,
        offering=offering,
        model=model,
        served_model_name=served,
        replicas=(autoscaling.initial_replicas if autoscaling is not None else replicas),
        nodes=nodes,
        image=image,
        max_model_len=read.integer("maxModelLen", None, minimum=1),
        extra_args=extra_args,
        disk_size_gb=disk_size_gb or DEFAULT_DISK_SIZE_GB,
        model_size_gb=read.integer("modelSizeGb", None, minimum=1),
        spot=spot,
        allowed_cidrs=allowed or OPEN_TO_ALL,
        region=placement.region,
        regions=placement.regions or ((placement.region,) if placement.region else ()),
        on_demand_base_replicas=on_demand_base,
        platform=placement.settings,
        autoscaling=autoscaling,
        domain=domain,
        dns_zone=dns_zone,
        weight_cache=weight_cache,
    )
    if disk_size_gb is None and platform.weight_storage(spec).local:
        spec = replace(spec, boot_disk_from_image=True)
    hf_token = present(config.get(f"{PROJECT}:hfToken"))
    if lookup is not None:
        try:
            token = None if hf_token is None else str(hf_token)
            spec = replace(spec, facts=lookup(model, token, spec.pinned_revision or model_facts.REVISION))
        except model_facts.HubRefusal as refusal:
            raise SpecError(refusal.key, refusal.value, refusal.valid) from None
        if spec.facts is None and not COMMIT_PATTERN.match(name := spec.model_revision):
            pulumi.log.warn(
                f"no commit of {model}@{name} is known (the Hugging Face Hub was not reached and no facts "
                f"are cached): the weight cache is keyed by the name {name!r}, so the replicas load whatever "
                f"commit it names when the first one downloads it; an up that reaches the Hub (or --revision "
                f"<commit> in {PROJECT}:extraArgs) pins a commit"
            )
        hub_gb = spec.facts.weights_gb if spec.facts else None
        if hub_gb is not None and spec.model_size_gb is not None and hub_gb > spec.model_size_gb:
            pulumi.log.warn(
                f"{PROJECT}:modelSizeGb {spec.model_size_gb} is less than the {hub_gb} GB of {model}'s "
                f"weight files on the Hugging Face Hub; the health-check budget still sizes to it"
            )
    model_fit.check_disk_fits_model(spec)
    platform.check(spec)
    model_fit.check_model_facts(spec, has_hf_token=hf_token is not None)
    check_streamable(spec)
    weights = model_fit.known_weights(spec)
    cost_warnings.warn_costly(spec, weights[0] if weights else None, pulumi.log.warn)
    return spec


def _model_valid(model: str) -> str:
    """What a Hugging Face model id is, and where a revision written into it goes instead."""
    valid = "a Hugging Face model id such as Qwen/Qwen3-8B (ASCII letters, digits and . _ -, one /)"
    name, at, revision = model.partition("@")
    if at and MODEL_PATTERN.match(name):
        return f'{name} alone, with the revision in {PROJECT}:extraArgs: ["--revision", "{revision}"]'
    return valid


def _read_domain(read: ConfigReader, platform: platforms.Platform) -> tuple[str | None, str | None]:
    """``vllm:domain`` (a bare host name) and ``vllm:dnsZone`` (only with a domain, where the platform
    writes DNS records; each platform's ``check`` judges the zone's form)."""
    domain = parse_domain(read.string("domain"))
    dns_zone = read.string("dnsZone")
    if dns_zone is not None and (instead := platform.refuse_unsupported(platforms.Feature.DNS_ZONE)):
        raise SpecError(f"{PROJECT}:dnsZone", dns_zone, instead)
    if dns_zone is not None and domain is None:
        valid = f"unset without {PROJECT}:domain (its records go there)"
        raise SpecError(f"{PROJECT}:dnsZone", dns_zone, valid)
    return domain, dns_zone


def _refuse_unsupported_keys(read: ConfigReader, platform: platforms.Platform) -> None:
    """A key naming a feature the platform cannot do is refused with what to do there instead."""
    for feature in (platforms.Feature.REGIONS, platforms.Feature.RESERVATION):
        value = read.raw(feature.value)
        if value is not None and (instead := platform.refuse_unsupported(feature)) is not None:
            raise SpecError(feature.value, value, instead)


def _refuse_other_platforms_keys(
    values: Mapping[str, Any], secret_keys: frozenset[str], platform: platforms.Platform
) -> None:
    """A key only another platform reads (its ``vllm:`` keys, its provider's namespace) would be silently
    ignored here: it is refused, naming the platform that reads it. One rule from each platform's declared
    ``keys`` and ``provider_namespace``."""
    own = {f"{PROJECT}:{key}" for key in (*COMMON_KEYS, *SECRET_KEYS, *platform.keys)}
    for key, value in values.items():
        if present(value) is None or key in own:
            continue
        namespace, _, name = key.partition(":")
        for other in platforms.registered():
            if other is platform:
                continue
            theirs = (namespace == PROJECT and name in other.keys) or namespace == other.provider_namespace
            if theirs:
                shown = "(secret)" if key in secret_keys else value
                raise SpecError(
                    key,
                    shown,
                    f"unset: only a stack on {other.title} (vllm:cloud {other.name}) reads it; this stack's "
                    f"vllm:cloud is {platform.name}",
                )


def _on_demand_base(read: ConfigReader, spot: bool, replicas: int, autoscaling: Autoscaling | None) -> int:
    """``vllm:onDemandBaseReplicas``: with spot, how many replicas stay on on-demand capacity (SkyServe's
    ``base_ondemand_fallback_replicas``), at most every replica. With autoscaling the base is a fixed floor
    inside the bounds (components/capacity.py): at most ``vllm:minReplicas``, and below
    ``vllm:maxReplicas`` so that the autoscaler has spot replicas to add."""
    key = f"{PROJECT}:onDemandBaseReplicas"
    base = read.integer("onDemandBaseReplicas", 0, minimum=0)
    if base and not spot:
        raise SpecError(key, base, "0 without vllm:spot true (without spot every replica is on-demand)")
    if autoscaling is not None:
        low, high = autoscaling.min_replicas, autoscaling.max_replicas
        if base and (base > low or base >= high):
            raise SpecError(
                key,
                base,
                f"<= vllm:minReplicas ({low}) and < vllm:maxReplicas ({high}) with autoscaling: the "
                "on-demand base is a fixed floor counted inside the bounds, and the autoscaler adds spot "
                "replicas above it",
            )
        return base
    if base > replicas:
        raise SpecError(key, base, f"<= vllm:replicas ({replicas}): the on-demand share of the replicas")
    return base


def image_hardware(image: str) -> str:
    """What an image was built for, from its repository's name and its tag (not the registry or the
    organisation): "cpu", "cuda", or another backend."""
    name = image.lower().split("@", 1)[0].rsplit("/", 1)[-1]
    words = set(re.findall(r"[a-z]+", name))  # "rocm6.4_vllm" -> rocm, vllm
    other = [word for word in NON_CUDA_IMAGE_WORDS if word in words]
    return other[0] if other else "cuda"


def _check_image_fits_hardware(image: str, gpu: Gpu | None) -> None:
    """A CPU build on GPUs leaves them idle; a CUDA build without a GPU fails at startup (no CUDA device);
    ROCm, TPU, XPU, Gaudi, Neuron and Ascend builds need their own hardware, and the catalog sells only
    NVIDIA GPUs."""
    built_for = image_hardware(image)
    if gpu is not None and built_for != "cuda":
        raise SpecError(
            f"{PROJECT}:image",
            image,
            f"a CUDA build of vLLM for {gpu} NVIDIA GPUs (not a {built_for} build), e.g. {DEFAULT_IMAGE}",
        )
    if gpu is None and built_for != CPU_IMAGE_WORD:
        raise SpecError(
            f"{PROJECT}:image",
            image,
            f"a CPU build of vLLM without vllm:gpu (its repository or tag says cpu), e.g. "
            f"{DEFAULT_CPU_IMAGE}; or set vllm:gpu",
        )


def _check_secrets(config: Mapping[str, Any], secret_keys: frozenset[str]) -> None:
    """Secrets are set with --secret (else they sit in plaintext in the stack file and in every plan), and
    a configured API key is long enough to guard a public endpoint. Values are never echoed."""
    for key in SECRET_KEYS:
        full = f"{PROJECT}:{key}"
        if present(config.get(full)) is not None and full not in secret_keys:
            raise SpecError(full, "(plaintext)", f"a secret: pulumi config set --secret {full} <value>")
    api_key = present(config.get(f"{PROJECT}:apiKey"))
    if api_key is not None and len(str(api_key)) < MIN_API_KEY_LENGTH:
        raise SpecError(
            f"{PROJECT}:apiKey",
            f"(secret, {len(str(api_key))} characters)",
            f"at least {MIN_API_KEY_LENGTH} characters (e.g. openssl rand -hex 24); unset, one is generated",
        )


def load_spec() -> ServiceSpec:
    """The spec of the running stack, from Pulumi's config, checked by its platform's rules too."""
    config = stack_config()
    secret_keys = frozenset(key for key in config if sdk_internals.is_config_secret(key))
    spec = build_spec(pulumi.get_stack(), config, secret_keys, lookup=model_facts.lookup)
    _check_on_platform(spec)
    return spec


def _check_on_platform(spec: ServiceSpec) -> None:
    """Rules that need a platform's own tables (which GPUs GKE labels, how much memory a CPU pod needs):
    a platform package may define ``check(spec)``, which raises SpecError before any resource exists.
    Imported here, lazily, because the package loads that platform's SDK."""
    check = getattr(platforms.get(spec.cloud).module("deployment"), "check", None)
    if check is not None:
        check(spec)
    stack_provider_args(platforms.get(spec.cloud), spec.stack)  # each provider key set, of its SDK's type


def stack_provider_args(platform: platforms.Platform, stack: str) -> dict[str, Any]:
    """``provider_args`` of the running stack's config over its preset (Pulumi's view of the stack)."""
    config = stack_config()
    secret_keys = frozenset(key for key in config if sdk_internals.is_config_secret(key))
    return provider_config.provider_args(platform, effective_config(stack, config)[1], secret_keys)


def load_secret(key: str) -> pulumi.Output[str] | None:
    """A secret key's value as a secret Output, or None when it is not set (empty counts as not set)."""
    if present(stack_config().get(f"{PROJECT}:{key}")) is None:
        return None
    return pulumi.Config(PROJECT).require_secret(key)
