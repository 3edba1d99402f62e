"""The stack spec: every `vllm:*` config key, presets, and validation.

A stack's effective configuration is its preset (``stacks/<name>.yaml``, picked by ``vllm:preset`` or by a
stack of the same name) overlaid key by key with the stack's own Pulumi config. ``load_spec`` checks the
whole of it before any resource is declared; a bad value raises ``SpecError``, a ``pulumi.RunError``, so
Pulumi prints one message naming the key, the value and what is valid, and no traceback.

Pulumi.yaml declares every key with an empty default (``""`` or ``[]``), because Pulumi treats a declared
key without a default as required and applies defaults to every stack; so "empty" here means "not set":
the preset's value, else the built-in default below, applies.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components import catalog

PROJECT = "vllm"
PRESETS_DIR = Path(__file__).resolve().parent.parent / "stacks"
CLOUDS = ("gcp", "aws", "kubernetes")

#: Pinned vLLM release (never ``latest``): the image tag is part of the infrastructure diff.
DEFAULT_IMAGE = "vllm/vllm-openai:v0.33.0"
DEFAULT_DISK_SIZE_GB = 200
OPEN_TO_ALL = ("0.0.0.0/0",)

#: Kubernetes GPU node labelling schemes (see components/kubernetes): how a pod asks for a GPU type.
GPU_NODE_SELECTORS = ("gke", "nvidia", "karpenter", "none")
KUBERNETES_SERVICE_TYPES = ("LoadBalancer", "ClusterIP")

#: Config keys a preset or a stack may set, by namespace. Secrets (hfToken, apiKey) are stack-only.
VLLM_KEYS = (
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
    "allowedCidrs",
    # Kubernetes
    "namespace",
    "gpuNodeSelector",
    "storageClass",
    "serviceType",
    "cpu",
    "memoryGb",
    "installLeaderWorkerSet",
    # AWS
    "vpcId",
    "subnetIds",
    # GCP
    "bootImage",
)
SECRET_KEYS = ("hfToken", "apiKey")
PROVIDER_KEYS = ("gcp:project", "gcp:region", "gcp:zone", "aws:region", "kubernetes:context")
DEFAULT_REGIONS = {"gcp": "us-central1", "aws": "us-east-1"}
AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")


class SpecError(pulumi.RunError):
    """An invalid config value: one message naming the key, the bad value and what is valid."""

    def __init__(self, key: str, value: object, valid: str) -> None:
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"{key}: invalid value {value!r}: {valid}")


@dataclass(frozen=True)
class Gpu:
    """A GPU request per node, written ``TYPE:COUNT`` as in SkyPilot (``H100:8``)."""

    type: str
    count: int

    def __str__(self) -> str:
        return f"{self.type}:{self.count}"


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str = "vllm"
    gpu_node_selector: str = "nvidia"
    storage_class: str | None = None
    service_type: str = "LoadBalancer"
    cpu: float | None = None
    memory_gb: float | None = None
    install_leader_worker_set: bool = False
    context: str | None = None


@dataclass(frozen=True)
class AwsSettings:
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()


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
    project: str | None = None  # gcp:project
    region: str | None = None  # gcp:region / aws:region
    zone: str | None = None  # gcp:zone
    boot_image: str | None = None  # gcp: vllm:bootImage, a dated image (None: the default image family)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)

    @property
    def name(self) -> str:
        """A short DNS-safe base name for cloud resources (``vllm-<stack>``, 1-63 chars)."""
        slug = re.sub(r"[^a-z0-9-]+", "-", f"vllm-{self.stack}".lower()).strip("-")
        return slug[:40].rstrip("-")

    @property
    def gpus_per_replica(self) -> int:
        return self.gpu.count * self.nodes if self.gpu else 0

    def cost_per_hour(self) -> float | None:
        """Catalog estimate for the whole stack (every node of every replica), None when unpriced."""
        if self.offering is None:
            return None
        hourly = self.offering.hourly(self.spot)
        return None if hourly is None else round(hourly * self.nodes * self.replicas, 2)

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
            "replicas": self.replicas,
            "nodes": self.nodes,
            "image": self.image,
            "maxModelLen": self.max_model_len,
            "extraArgs": list(self.extra_args),
            "diskSizeGb": self.disk_size_gb,
            "modelSizeGb": self.model_size_gb,
            "spot": self.spot,
            "allowedCidrs": list(self.allowed_cidrs),
        }
        if self.cloud == "gcp":
            view.update(project=self.project, region=self.region, zone=self.zone, bootImage=self.boot_image)
        elif self.cloud == "aws":
            view.update(region=self.region, vpcId=self.aws.vpc_id, subnetIds=list(self.aws.subnet_ids))
        else:
            k8s = self.kubernetes
            view.update(
                namespace=k8s.namespace,
                gpuNodeSelector=k8s.gpu_node_selector,
                storageClass=k8s.storage_class,
                serviceType=k8s.service_type,
                installLeaderWorkerSet=k8s.install_leader_worker_set,
            )
        return view


# --- reading config ------------------------------------------------------------------------------------


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict[str, Any]:
    """The ``config:`` map of ``stacks/<name>.yaml`` (the same shape as a Pulumi stack file)."""
    path = PRESETS_DIR / f"{name}.yaml"
    document = yaml.safe_load(path.read_text()) or {}
    return dict(document.get("config") or {})


def stack_config() -> dict[str, str]:
    """The stack's own config as Pulumi hands it to the program (every value a string).

    ``pulumi.Config`` reads one key at a time; the whole map is needed to overlay presets and to reject
    unknown keys, and the runtime keeps it in ``CONFIG`` (falling back to ``PULUMI_CONFIG``).
    """
    return {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}


def effective_config(stack: str, config: Mapping[str, str]) -> tuple[str | None, dict[str, Any]]:
    """Overlay the stack's config on its preset, key by key; empty stack values do not override."""
    explicit = _present(config.get(f"{PROJECT}:preset"))
    preset = explicit if explicit is not None else (stack if stack in available_presets() else None)
    if preset is not None and preset not in available_presets():
        raise SpecError(f"{PROJECT}:preset", preset, f"one of {', '.join(available_presets())}")
    merged: dict[str, Any] = read_preset(preset) if preset else {}
    for key, value in config.items():
        if _present(value) is not None:
            merged[key] = value
    merged[f"{PROJECT}:preset"] = preset
    return preset, merged


def _present(value: Any) -> Any:
    """None for values that mean "not set": absent, empty string, empty list."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "[]")):
        return None
    if isinstance(value, list | tuple) and not value:
        return None
    return value


# --- validation -----------------------------------------------------------------------------------------


class _Reader:
    """Typed access to the merged config; every failure names the full key."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def raw(self, key: str) -> Any:
        return _present(self.values.get(key if ":" in key else f"{PROJECT}:{key}"))

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        return default if value is None else str(value).strip()

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.string(key, default)
        if value is not None and value not in choices:
            raise SpecError(_full(key), value, f"one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int | None, minimum: int, maximum: int | None = None) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        bound = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise SpecError(_full(key), value, bound)
        return number

    def number(self, key: str, minimum: float) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        try:
            number = float(str(value).strip())
        except ValueError:
            number = None
        if number is None or number <= minimum:
            raise SpecError(_full(key), value, f"a number > {minimum:g}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise SpecError(_full(key), value, "true or false")
        return text == "true"

    def string_list(
        self, key: str, item_check: Callable[[str], bool] | None = None, valid: str = ""
    ) -> tuple:
        value = self.raw(key)
        if value is None:
            return ()
        items = value
        if isinstance(value, str):
            try:
                items = json.loads(value)
            except json.JSONDecodeError:
                items = None
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise SpecError(_full(key), value, "a list of non-empty strings")
        if item_check is not None:
            for item in items:
                if not item_check(item):
                    raise SpecError(_full(key), item, valid)
        return tuple(items)


def _full(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


GPU_PATTERN = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9-]*?):(?P<count>[0-9]+)$")
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
SERVED_NAME_PATTERN = re.compile(r"^[\w./:-]+$")
IMAGE_PATTERN = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$"
)
# vLLM flags only: a value that is not a flag must follow a flag (it is that flag's value).
EXTRA_ARG_PATTERN = re.compile(r"^--[a-z0-9][a-z0-9-]*(=.*)?$")
# These are set from the spec (or from the secret store) and must not be overridden by extraArgs.
MANAGED_FLAGS = (
    "--host",
    "--port",
    "--model",
    "--served-model-name",
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--max-model-len",
    "--api-key",
    "--distributed-executor-backend",
)


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return True


def _parse_gpu(text: str | None, cloud: str) -> Gpu | None:
    if text is None or text.lower() == "none":
        if cloud == "kubernetes":
            return None
        raise SpecError(
            f"{PROJECT}:gpu",
            text or "",
            f"a GPU as TYPE:COUNT (e.g. H100:8); {cloud} offers {', '.join(catalog.gpus_offered(cloud))}",
        )
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


def _check_extra_args(args: tuple[str, ...]) -> None:
    for index, arg in enumerate(args):
        flag = arg.split("=", 1)[0]
        if flag in MANAGED_FLAGS:
            raise SpecError(
                f"{PROJECT}:extraArgs",
                arg,
                f"flags other than {', '.join(MANAGED_FLAGS)} (set by the spec and the secret store)",
            )
        if not arg.startswith("--") and (index == 0 or not args[index - 1].startswith("--")):
            raise SpecError(f"{PROJECT}:extraArgs", arg, "vllm serve flags such as --enable-prefix-caching")
        if arg.startswith("--") and not EXTRA_ARG_PATTERN.match(arg):
            raise SpecError(f"{PROJECT}:extraArgs", arg, "a flag of the form --name or --name=value")


def _check_unknown_keys(values: Mapping[str, Any]) -> None:
    known = {f"{PROJECT}:{k}" for k in (*VLLM_KEYS, *SECRET_KEYS)}
    for key in values:
        if key.startswith(f"{PROJECT}:") and key not in known:
            raise SpecError(key, values[key], f"a known key: {', '.join(sorted(known))}")


def build_spec(
    stack: str, config: Mapping[str, str], secret_keys: frozenset[str] = frozenset()
) -> ServiceSpec:
    """Validate ``config`` (the stack's raw config) over its preset; raise SpecError on the first bad key."""
    for key in SECRET_KEYS:
        full = f"{PROJECT}:{key}"
        if _present(config.get(full)) is not None and full not in secret_keys:
            raise SpecError(full, "(plaintext)", f"a secret: pulumi config set --secret {full} <value>")
    preset, merged = effective_config(stack, config)
    _check_unknown_keys(merged)
    read = _Reader(merged)

    cloud = read.choice("cloud", CLOUDS)
    if cloud is None:
        raise SpecError(f"{PROJECT}:cloud", "", f"one of {', '.join(CLOUDS)} (or pick a preset)")
    spot = read.boolean("spot", False)
    if spot and cloud == "kubernetes":
        raise SpecError(f"{PROJECT}:spot", "true", "false on kubernetes (the cluster's node pools decide)")
    gpu = _parse_gpu(read.string("gpu"), cloud)
    nodes = read.integer("nodes", 1, minimum=1, maximum=64)
    offering = None
    if gpu is not None:
        try:
            offering = catalog.select(cloud, gpu.type, gpu.count, spot)
        except catalog.CatalogError as error:
            raise SpecError(f"{PROJECT}:gpu", str(gpu), str(error)) from None
    elif nodes > 1:
        raise SpecError(f"{PROJECT}:nodes", nodes, "1 without a GPU (multi-node serving shards across GPUs)")
    if gpu is not None and nodes > 1:
        _check_multi_node_split(cloud, gpu, nodes)

    model = read.string("model")
    if model is None or not MODEL_PATTERN.match(model):
        raise SpecError(f"{PROJECT}:model", model or "", "a Hugging Face model id such as Qwen/Qwen3-8B")
    served = read.string("servedModelName", model)
    if not SERVED_NAME_PATTERN.match(served):
        raise SpecError(f"{PROJECT}:servedModelName", served, "letters, digits and . _ - / : only")
    image = read.string("image", DEFAULT_IMAGE)
    if not IMAGE_PATTERN.match(image) or image.endswith((":latest", ":nightly")):
        raise SpecError(
            f"{PROJECT}:image", image, "a pinned image reference such as vllm/vllm-openai:v0.33.0"
        )
    extra_args = read.string_list("extraArgs")
    _check_extra_args(extra_args)
    allowed = read.string_list("allowedCidrs", _is_cidr, "a CIDR such as 203.0.113.0/24 or 0.0.0.0/0")

    region_key = {"gcp": "gcp:region", "aws": "aws:region"}.get(cloud)
    region = read.string(region_key, DEFAULT_REGIONS.get(cloud)) if region_key else None
    if cloud == "aws" and not AWS_REGION.match(region):
        raise SpecError("aws:region", region, "an AWS region such as us-east-1")
    zone = read.string("gcp:zone") if cloud == "gcp" else None
    if zone is not None and region is not None and not zone.startswith(f"{region}-"):
        raise SpecError("gcp:zone", zone, f"a zone of gcp:region {region} (e.g. {region}-a)")
    if cloud == "gcp" and offering is not None and offering.zones:
        _check_gcp_placement(offering, region, zone)

    spec = ServiceSpec(
        stack=stack,
        preset=preset,
        cloud=cloud,
        gpu=gpu,
        offering=offering,
        model=model,
        served_model_name=served,
        replicas=read.integer("replicas", 1, minimum=1, maximum=1000),
        nodes=nodes,
        image=image,
        max_model_len=read.integer("maxModelLen", None, minimum=1),
        extra_args=extra_args,
        disk_size_gb=read.integer("diskSizeGb", DEFAULT_DISK_SIZE_GB, minimum=20, maximum=65536),
        model_size_gb=read.integer("modelSizeGb", None, minimum=1),
        spot=spot,
        allowed_cidrs=allowed or OPEN_TO_ALL,
        project=read.string("gcp:project") if cloud == "gcp" else None,
        region=region,
        zone=zone,
        boot_image=_gcp_boot_image(read.string("bootImage")) if cloud == "gcp" else None,
        kubernetes=_kubernetes_settings(read) if cloud == "kubernetes" else KubernetesSettings(),
        aws=_aws_settings(read) if cloud == "aws" else AwsSettings(),
    )
    _check_disk_fits_model(spec)
    return spec


#: A Compute Engine image name (RFC 1035, up to 63 characters), alone or as ``projects/P/global/images/NAME``.
GCP_IMAGE = re.compile(
    r"^(projects/[a-z][-a-z0-9.:]*[a-z0-9]/global/images/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
#: vLLM 0.33's image is built on CUDA 13, which needs an NVIDIA driver of the 580 series or newer.
MIN_NVIDIA_DRIVER = 580


def _gcp_boot_image(image: str | None) -> str | None:
    """A dated boot image (a family resolves anew for each VM, so VMs of one template could differ)."""
    if image is None:
        return None
    valid = (
        "a dated Deep Learning VM image with NVIDIA driver >= 580 for vLLM's CUDA 13, e.g. "
        "common-cu129-ubuntu-2204-nvidia-580-v20260818 or projects/P/global/images/NAME (not a family)"
    )
    if "/family/" in image or not GCP_IMAGE.match(image):
        raise SpecError(f"{PROJECT}:bootImage", image, valid)
    driver = re.search(r"nvidia-(\d{3})", image)
    if driver is not None and int(driver.group(1)) < MIN_NVIDIA_DRIVER:
        raise SpecError(f"{PROJECT}:bootImage", image, valid)
    return image


def _check_gcp_placement(offering: catalog.Offering, region: str, zone: str | None) -> None:
    """The region, and the zone when pinned, must sell the machine (GPU capacity is per zone)."""
    sold = offering.zones.get(region, ())
    if not sold:
        regions = ", ".join(sorted(offering.zones))
        raise SpecError("gcp:region", region, f"a region that sells {offering.machine_type}: {regions}")
    if zone is not None and zone not in sold:
        raise SpecError(
            "gcp:zone", zone, f"a zone of {region} that sells {offering.machine_type}: {', '.join(sold)}"
        )


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _kubernetes_settings(read: _Reader) -> KubernetesSettings:
    namespace = read.string("namespace", "vllm")
    if not DNS_LABEL.match(namespace):
        raise SpecError(f"{PROJECT}:namespace", namespace, "a DNS label: lowercase letters, digits and '-'")
    if namespace == "default" or namespace.startswith("kube-"):
        raise SpecError(f"{PROJECT}:namespace", namespace, "a namespace of its own (the stack creates it)")
    storage_class = read.string("storageClass")
    if storage_class is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", storage_class):
        raise SpecError(f"{PROJECT}:storageClass", storage_class, "a StorageClass name (DNS subdomain)")
    service_type = read.choice("serviceType", KUBERNETES_SERVICE_TYPES, "LoadBalancer")
    allowed = read.raw("allowedCidrs")
    if service_type == "ClusterIP" and allowed is not None:
        raise SpecError(
            f"{PROJECT}:allowedCidrs",
            allowed,
            "unset with vllm:serviceType ClusterIP (no load balancer: restrict at your Ingress/Gateway)",
        )
    return KubernetesSettings(
        namespace=namespace,
        gpu_node_selector=read.choice("gpuNodeSelector", GPU_NODE_SELECTORS, "nvidia"),
        storage_class=storage_class,
        service_type=service_type,
        cpu=read.number("cpu", 0),
        memory_gb=read.number("memoryGb", 0),
        install_leader_worker_set=read.boolean("installLeaderWorkerSet", False),
        context=read.string("kubernetes:context"),
    )


def _aws_settings(read: _Reader) -> AwsSettings:
    """The default VPC, or a named VPC with its subnets: two or more, since an ALB spans two zones."""
    vpc_id = read.string("vpcId")
    if vpc_id is not None and not re.match(r"^vpc-[0-9a-f]{8,17}$", vpc_id):
        raise SpecError(f"{PROJECT}:vpcId", vpc_id, "a VPC id such as vpc-0abc1234def567890")
    subnets = read.string_list(
        "subnetIds",
        lambda s: re.match(r"^subnet-[0-9a-f]{8,17}$", s) is not None,
        "subnet ids like subnet-0abc1234",
    )
    if subnets and vpc_id is None:
        raise SpecError(f"{PROJECT}:subnetIds", list(subnets), "set together with vllm:vpcId")
    if vpc_id is not None and len(set(subnets)) < 2:
        raise SpecError(
            f"{PROJECT}:subnetIds",
            list(subnets),
            f"two or more subnets of vllm:vpcId {vpc_id} in different availability zones (an ALB spans two)",
        )
    return AwsSettings(vpc_id=vpc_id, subnet_ids=subnets)


def _check_disk_fits_model(spec: ServiceSpec) -> None:
    """Refuse a disk the model cannot fit on: a VM's boot disk also holds the OS and the image (~30 GB);
    a pod's cache volume holds only the weights (and vLLM's compile cache)."""
    overhead = 2 if spec.cloud == "kubernetes" else 30
    if spec.model_size_gb is not None and spec.disk_size_gb < spec.model_size_gb + overhead:
        raise SpecError(
            f"{PROJECT}:diskSizeGb",
            spec.disk_size_gb,
            f">= {spec.model_size_gb + overhead} for a {spec.model_size_gb} GB model "
            f"(weights + {overhead} GB)",
        )


def load_spec() -> ServiceSpec:
    """The spec of the running stack, from Pulumi's config, checked by its platform's rules too."""
    secret_keys = frozenset(
        key for key in (f"{PROJECT}:{k}" for k in SECRET_KEYS) if pulumi.runtime.is_config_secret(key)
    )
    spec = build_spec(pulumi.get_stack(), stack_config(), secret_keys)
    _check_on_platform(spec)
    return spec


def _check_on_platform(spec: ServiceSpec) -> None:
    """Rules that need a platform's own tables (which GPUs GKE labels, how much memory a CPU pod needs):
    a platform package may define ``check(spec)``, which raises SpecError before any resource exists.
    Imported here, lazily, because the package loads that platform's SDK."""
    check = getattr(importlib.import_module(f"components.{spec.cloud}"), "check", None)
    if check is not None:
        check(spec)


def load_secret(key: str) -> pulumi.Output[str] | None:
    """A secret key's value as a secret Output, or None when it is not set (empty counts as not set)."""
    if _present(stack_config().get(f"{PROJECT}:{key}")) is None:
        return None
    return pulumi.Config(PROJECT).require_secret(key)
