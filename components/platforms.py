"""The platform seam: what a platform (GCP, AWS, Kubernetes, ...) is to the rest of the program.

Each platform is a package under ``components/`` whose ``platform.py`` defines ``PLATFORM``, a ``Platform``:
its name (the ``vllm:cloud`` value), its settings (it reads and validates its own keys), its checks on the
spec, its catalog of machines, its public view, what the plan shows of its resources, its fakes for the
offline tools, its policy scanners, and the features it does not support. ``spec``, ``catalog``,
``service``, ``tools`` and ``policy`` iterate the registry and never compare a platform's name: adding a
platform is adding a package. Modelled on SkyPilot's cloud registry (``sky/clouds/cloud_registry.py``) and
its declared unsupported features (``CloudImplementationFeatures`` in ``sky/clouds/cloud.py``).

A ``platform.py`` imports no cloud SDK (so does everything it names but ``deployment``): validating a spec,
planning or policing a stack loads only the SDK of the platform the stack uses, and only to build it.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from components.rates import NETWORK_VOLUME, Storage

if TYPE_CHECKING:
    from components.config import ConfigReader
    from components.offerings import Offering
    from components.service_spec import ServiceSpec

PLATFORMS_DIR = Path(__file__).resolve().parent


class Feature(enum.Enum):
    """What a stack may ask for that not every platform can do. A platform lists the ones it cannot in
    ``Platform.unsupported``, each with what to do instead; the spec refuses them before any resource."""

    SPOT = "vllm:spot"  # spot / preemptible capacity chosen by the program
    CPU_REPLICAS = "vllm:gpu"  # replicas without GPUs (laptop clusters)
    AUTOSCALING_MULTI_NODE = "vllm:maxReplicas"  # autoscaling replicas of several machines (Ray groups)
    SCALE_TO_ZERO = "vllm:minReplicas"  # autoscaling down to no replica at all
    UPSCALE_DELAY = "vllm:upscaleDelaySeconds"  # a configurable wait before scaling out
    DOWNSCALE_DELAY = "vllm:downscaleDelaySeconds"  # a configurable wait before scaling in
    QUEUE_SCALING = "vllm:targetQueuePerReplica"  # scaling on the requests each replica holds
    DNS_ZONE = "vllm:dnsZone"  # DNS records for vllm:domain written by the program
    REGIONS = "vllm:regions"  # replicas spread over several regions behind one endpoint
    RESERVATION = "vllm:reservation"  # reserved capacity the machines consume
    WEIGHT_CACHE_BUCKET = "vllm:weightCache"  # a stack-owned bucket of the model's files
    IPV6_CLIENTS = "vllm:allowedCidrs"  # IPv6 ranges: clients reaching a load balancer by an IPv6 address
    CANARY = "vllm:canary"  # a second revision behind the same endpoint, with weighted traffic


class Catalog(Protocol):
    """The machines a platform offers for a GPU type and count (``components.catalog`` picks one)."""

    @property
    def verb(self) -> str:
        """How messages say it offers them: "sells" (machine shapes), or what a cluster's node does."""
        ...

    def gpus(self) -> list[str]:
        """Canonical GPU names it offers, sorted."""
        ...

    def counts(self, gpu: str) -> list[int]:
        """GPU counts per machine it offers for a canonical GPU name, sorted."""
        ...

    def offerings(self, gpu: str, count: int) -> list[Offering]:
        """Every machine with exactly ``count`` of the canonical ``gpu``, in table order."""
        ...


#: What stays on a VM's boot disk besides its image where local NVMe holds the weights and Docker's data
#: root (scripts/local_nvme.sh): the journal (journald's default cap, SystemMaxUse: 10% of the file
#: system, at most 4 GB; journald.conf(5)), vLLM's own cache (torch.compile artifacts, kernel autotuning:
#: ~/.cache/vllm, a few GB) and packages installed at boot (Docker and the NVIDIA toolkit where the image
#: lacks them, under 1 GB); the rest is headroom. A budget, not a measurement.
BOOT_DISK_KEPT_GB = 20


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where a stack runs, as its platform reads it from its provider keys."""

    region: str | None = None
    #: Every region the stack serves from, ``region`` first; empty means ``region`` alone.
    regions: tuple[str, ...] = ()
    settings: Any = None  # the platform's own settings (a frozen dataclass of its package)


@dataclass(frozen=True, kw_only=True)
class Platform:
    """One platform, as the shared modules see it. Every callable gets the validated ``ServiceSpec``
    or the config reader; none of them loads a cloud SDK."""

    name: str  # the vllm:cloud value, and the package's name under components/
    title: str  # how messages name it: "GCP", "AWS", "Kubernetes"
    provider_namespace: str  # its Pulumi provider's config namespace
    provider_sdk: str  # the Python package whose config module lists that namespace's keys
    provider_keys: tuple[str, ...]  # the provider keys it reads itself (``gcp:region``)
    keys: tuple[str, ...]  # the vllm: keys only this platform reads
    catalog: Catalog
    #: Reads and validates the platform's own keys (and its provider's region keys) for a stack whose
    #: machine is ``offering`` (None without GPUs): its ``Placement``. Raises SpecError.
    read_placement: Callable[[ConfigReader, str, Offering | None], Placement]
    #: The platform's public view of its settings, merged into the stack's ``spec`` output.
    public_view: Callable[[ServiceSpec], dict[str, Any]]
    #: The platform's one hook for rules across keys: checks the whole spec against the platform's own
    #: tables (build_spec calls it); raises SpecError before any resource. Loads no SDK. What the resources
    #: themselves can hold (a rollout's wait, a node's labels) is its ``deployment`` module's
    #: ``check_deployment``.
    check_spec: Callable[[ServiceSpec], None] = lambda spec: None
    #: Disk a replica needs besides the weights (a VM's OS and image; a pod's cache volume holds only them).
    disk_overhead_gb: int = 0
    #: Where a node of ``spec`` keeps the model's files (local NVMe where the machine has it), with its
    #: rates from components/rates.py.
    weight_storage: Callable[[ServiceSpec], Storage] = lambda spec: NETWORK_VOLUME
    #: A VM platform's ``vm_hooks.sh``: the shell functions ``scripts/vm_bootstrap.sh`` calls where VM
    #: platforms differ (secret store, image registry, log driver, metrics), a template ``components/vm.py``
    #: renders onto this platform's VMs only. None: the platform runs no VMs.
    vm_hooks: Path | None = None
    #: Top-level definitions of ``scripts/health_agent.py`` this platform's VMs never run (another
    #: platform's reporting): ``components/vm.py`` ships the agent without them, within EC2's 16 KB of user
    #: data. Python resolves a name when it runs, and the agent reaches them only with another platform's
    #: flags (tests/test_health_agent.py runs each platform's shipped agent on its own flags).
    agent_omits: tuple[str, ...] = ()
    #: Features this platform cannot do, each with what to do instead.
    unsupported: Mapping[Feature, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Replicas an autoscaled stack's autoscaler may run above ``vllm:maxReplicas``: room the platform keeps
    #: for a rollout's surge that its autoscaler can use too (``costPerHour`` counts them). Also the spec
    #: output's ``scaleOutSurge``, which ``tools.plan`` prices.
    scale_out_surge: Callable[[ServiceSpec], int] = lambda spec: 0
    #: From a load step to the platform's autoscaler asking for another replica: each wait on the way, in
    #: seconds, at most (the spec output's ``autoscaling.scaleOut``, which ``tools.plan`` adds up).
    scale_out_steps: Callable[[ServiceSpec], tuple[tuple[str, int], ...]] = lambda spec: ()
    #: What ``tools.plan`` shows of each resource type: dotted paths into its inputs (see tools/plan.py).
    plan_properties: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def package(self) -> str:
        return f"components.{self.name}"

    def module(self, name: str) -> ModuleType:
        """One of the package's modules with the same name on every platform: ``deployment`` (``build``,
        and ``check_deployment`` where its resources limit the spec; loads the SDK), ``fakes`` (the offline
        tools' answers, plain data), ``policy`` (its scanners for the policy pack, plain functions; the
        contract it fulfils is in policy/validators.py's docstring) or ``status`` (the operator tools'
        ``list_replicas``/``read_logs`` from the stack output ``replicaSource``; loads the platform's client
        library from requirements-tools.txt, lazily, and is never imported by the Pulumi program)."""
        return importlib.import_module(f"{self.package}.{name}")

    def refuse_unsupported(self, feature: Feature) -> str | None:
        """What to do instead of ``feature`` here, or None when the platform supports it."""
        return self.unsupported.get(feature)


@cache
def _registry() -> Mapping[str, Platform]:
    found: dict[str, Platform] = {}
    for module in sorted(pkgutil.iter_modules([str(PLATFORMS_DIR)]), key=lambda m: m.name):
        if module.ispkg and (PLATFORMS_DIR / module.name / "platform.py").exists():
            platform: Platform = importlib.import_module(f"components.{module.name}.platform").PLATFORM
            if platform.name != module.name:
                raise RuntimeError(f"components/{module.name}/platform.py registers {platform.name!r}")
            found[platform.name] = platform
    return MappingProxyType(found)


def registered() -> tuple[Platform, ...]:
    """Every registered platform, by name."""
    return tuple(_registry().values())


def names() -> tuple[str, ...]:
    return tuple(_registry())


def get(name: str) -> Platform:
    """The platform named ``name``; KeyError for an unknown one (the spec validates ``vllm:cloud`` first)."""
    return _registry()[name]
