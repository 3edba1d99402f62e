"""The validated spec of one stack: what every layer above the config reads, as plain frozen data.

``ServiceSpec`` holds the effective, checked, non-secret values (components/spec.py assembles it); its GPU
request (``Gpu``), its catalog machine (components/offerings.py), its replica policy (``Autoscaling``) and
the model's facts from the Hub (components/model_facts.py). It imports nothing above the leaf modules, so
each layer may name it; what it costs, how its replicas split and what the stack outputs show of it are
computed by the modules above (components/replica_shares.py, components/spec.py ``public_view``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from components import model_facts
from components.config import PROJECT
from components.extra_args import option_value
from components.model_facts import ModelFacts
from components.offerings import Offering

#: The longest base name of a stack's resources (``ServiceSpec.name``): the platforms' name rules leave
#: room for a role and an auto-name suffix after it (components/*/names.py).
NAME_MAX = 40
NAME_HASH_LENGTH = 8
NAME_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

#: SkyServe's defaults (sky/serve/constants.py: AUTOSCALER_DEFAULT_UPSCALE_DELAY_SECONDS = 300,
#: AUTOSCALER_DEFAULT_DOWNSCALE_DELAY_SECONDS = 1200).
DEFAULT_UPSCALE_DELAY_SECONDS = 300
DEFAULT_DOWNSCALE_DELAY_SECONDS = 1200

#: The vllm:weightCache values that are the stack's own bucket (components/spec.py WEIGHT_CACHES).
BUCKET_WEIGHT_CACHES = ("bucket", "stream")


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """A validated ``replica_policy``. A delay is None when the stack leaves it to the default; a target is
    None when the stack scales on the other one (at least one is set)."""

    min_replicas: int
    max_replicas: int
    target_qps_per_replica: float | None
    target_queue_per_replica: float | None = None
    upscale_delay: int | None = None
    downscale_delay: int | None = None

    @property
    def upscale_delay_seconds(self) -> int:
        return DEFAULT_UPSCALE_DELAY_SECONDS if self.upscale_delay is None else self.upscale_delay

    @property
    def downscale_delay_seconds(self) -> int:
        return DEFAULT_DOWNSCALE_DELAY_SECONDS if self.downscale_delay is None else self.downscale_delay

    @property
    def initial_replicas(self) -> int:
        """Replicas a first ``up`` starts (at least one, so the stack serves and its waits pass)."""
        return max(self.min_replicas, 1)

    def public_view(self) -> dict[str, Any]:
        return {
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "targetQpsPerReplica": self.target_qps_per_replica,
            "targetQueuePerReplica": self.target_queue_per_replica,
            "upscaleDelaySeconds": self.upscale_delay_seconds,
            "downscaleDelaySeconds": self.downscale_delay_seconds,
        }


@dataclass(frozen=True)
class Gpu:
    """A GPU request per node, written ``TYPE:COUNT`` as in SkyPilot (``H100:8``)."""

    type: str
    count: int

    def __str__(self) -> str:
        return f"{self.type}:{self.count}"


#: The two revision slots a stack's replicas can occupy: the stable revision in one (vllm:stableRevision,
#: default the first), a canary in the other.
REVISIONS = ("1", "2")
CANARY_MODE, BLUE_GREEN_MODE = "canary", "blue-green"


@dataclass(frozen=True, kw_only=True)
class Canary:
    """``vllm:canary``: a second revision behind the same endpoint, getting ``weight`` percent of requests.

    ``spec`` is the stable spec with the canary's overrides, checked like any stack's; ``mode`` is
    ``canary`` (any weight) or ``blue-green`` (full size by default, weight 0 or 100 only: all requests
    switch at once)."""

    spec: ServiceSpec
    weight: int
    mode: str = CANARY_MODE
    overrides: tuple[str, ...] = ()  # the stable keys the canary sets for itself (components/canary.py)
    #: vllm:canaryModelName: the value of the ``x-vllm-model`` request header that sends a request to this
    #: revision alone (vllm:servedModelName's sends it to the stable one); None: weighted traffic only.
    model_name: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """The validated, effective, non-secret spec of one stack."""

    stack: str
    preset: str | None
    cloud: str
    gpu: Gpu | None  # None: CPU-only replicas (Kubernetes dev clusters)
    offering: Offering | None  # the catalog machine chosen for ``gpu``; None for CPU
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
    weight_cache: str = "hub"  # vllm:weightCache: components/spec.py WEIGHT_CACHES
    #: The boot disk is sized at ``up`` from the boot image's own minimum plus what stays on it (a machine
    #: whose weights and Docker data root go on its local NVMe, without vllm:diskSizeGb): ``disk_size_gb``
    #: is then only the offline default, never a resource input.
    boot_disk_from_image: bool = False

    @property
    def bucket_weight_cache(self) -> bool:
        """Whether the stack owns a bucket of the model's files (vllm:weightCache bucket or stream)."""
        return self.weight_cache in BUCKET_WEIGHT_CACHES

    #: The revision slot this spec's replicas occupy (``REVISIONS``): the stable spec's is
    #: vllm:stableRevision, a canary's the other one. Resource names carry the slot, never the role, so
    #: promoting a canary (swapping the roles) renames nothing.
    revision: str = "1"
    canary: Canary | None = None  # vllm:canary: a second revision beside this one (components/canary.py)

    @property
    def revision_suffix(self) -> str:
        """What the names of this revision's replica groups end with: nothing in the first slot (the names
        every stack had before canaries), ``-rev2`` in the second (``-r<n>`` is a Ray replica's)."""
        return "" if self.revision == REVISIONS[0] else f"-rev{self.revision}"

    @property
    def revisions(self) -> tuple[ServiceSpec, ...]:
        """The stable revision, then the canary's when there is one."""
        return (self,) if self.canary is None else (self, self.canary.spec)

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
