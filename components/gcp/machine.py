"""What every GPU VM of the stack shares: its instance template, its autohealing check and its roll timings.

``ReplicaGroup`` (one machine per replica) and ``RayReplica`` (a head and workers per replica) both build
their VMs here, so a serving VM and a Ray node differ only in their role, tags and placement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from components import platforms, vm
from components.config import SpecError
from components.gcp import platform
from components.gcp.identity import ServiceIdentity
from components.gcp.network import HEALTH_AGENT_PORT, Network
from components.gcp.platform import settings
from components.gcp.registry import ImageMirror
from components.gcp.weight_cache import WeightCache
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: Deep Learning VM images live here (Google's public project for them).
DLVM_PROJECT = "deeplearning-platform-release"
#: The default boot image family: Ubuntu 22.04 with NVIDIA driver 580 (CUDA 12.9 toolkit on the host), Docker
#: and the NVIDIA container toolkit (vm_bootstrap.sh still verifies both). vLLM 0.33's image is built on
#: CUDA 13 (vLLM's docker/Dockerfile: ARG CUDA_VERSION=13.0.x), which needs driver >= 580; the older
#: ``common-cu128-ubuntu-2204-nvidia-570`` family's driver 570 cannot run it. Check the family with
#: ``gcloud compute images describe-from-family common-cu129-ubuntu-2204-nvidia-580 --project
#: deeplearning-platform-release``. A family resolves anew for each VM: ``vllm:bootImage`` pins a dated image
#: (e.g. ``common-cu129-ubuntu-2204-nvidia-580-v20260818``) so every VM of a template boots the same one.
BOOT_IMAGE_FAMILY = "common-cu129-ubuntu-2204-nvidia-580"


def boot_disk_gb(spec: ServiceSpec, opts: pulumi.ResourceOptions) -> pulumi.Input[int]:
    """The boot disk's size: ``vllm:diskSizeGb`` (or its default), except where the local NVMe holds the
    weights and Docker's data root and the stack does not set it (``spec.boot_disk_from_image``): then the
    boot image's own minimum (the ``diskSizeGb`` of the image the template names, read at ``up`` with the
    provider's image data source) plus what stays on the disk (``platforms.BOOT_DISK_KEPT_GB``). GCP
    refuses a disk smaller than its image ("Requested disk size cannot be smaller than the image size").
    A family resolves anew for each VM: a later image of the family that outgrows the disk is refused
    until the next ``up`` reads it (``vllm:bootImage`` pins one)."""
    if not spec.boot_disk_from_image:
        return spec.disk_size_gb
    path = boot_image(spec).split("/")  # projects/P/global/images/NAME or .../images/family/F
    family = path[-1] if path[-2] == "family" else None
    image = compute.get_image_output(
        project=path[1],
        family=family,
        name=None if family else path[-1],
        opts=pulumi.InvokeOptions(parent=opts.parent),
    )
    return image.disk_size_gb.apply(lambda size: size + platforms.BOOT_DISK_KEPT_GB)


def boot_image(spec: ServiceSpec) -> str:
    """``vllm:bootImage`` (a name in the DLVM project, or a full path), else the default family."""
    boot_image = settings(spec).boot_image
    if boot_image is None:
        return f"projects/{DLVM_PROJECT}/global/images/family/{BOOT_IMAGE_FAMILY}"
    if boot_image.startswith("projects/"):
        return boot_image
    return f"projects/{DLVM_PROJECT}/global/images/{boot_image}"


#: GCP bound (compute API, InstanceGroupManagerAutoHealingPolicy): initialDelaySec 0-3600, and health checks
#: keep running during the delay (only their results are ignored), so no check tolerance extends it.
MAX_INITIAL_DELAY_SECONDS = 3600
#: From VM creation to the health agent answering: boot, then the startup script's first step. A Deep
#: Learning VM's first boot also installs the NVIDIA driver (install-nvidia-driver), for which the script
#: itself allows 900 s; the agent normally answers within a minute or two. The agent then carries the
#: model's load budget itself (scripts/health_agent.py), however long it is.
AGENT_START_SECONDS = 900
#: The autohealing check reads the agent: a replica that hangs after it was ready is recreated after
#: about ``interval x unhealthy threshold`` (30 s), plus the agent's own look every 5 s.
AUTOHEAL_PATH = "/"

#: GCP bound (compute API, InstanceGroupManagerUpdatePolicy.minReadySec): 0-3600. In a rolling update a new VM
#: counts as ready once its health check passes plus minReadySec; the agent passes while the model loads, so
#: minReadySec is what keeps an old replica serving until the new one has loaded.
MAX_MIN_READY_SECONDS = 3600
#: Per rollout step, besides the new VM's agent start and load wait and the old VM's connection draining:
#: creating and deleting the VMs and the group's own bookkeeping.
ROLLOUT_STEP_MARGIN_SECONDS = 900

#: Instance metadata naming the secrets' current versions (resource names, never the values): a rotation
#: changes the template. A VM reads the latest version at boot, so a rolled VM reads the rotated value.
SECRET_VERSIONS_METADATA_KEY = "vllm-credential-versions"  # "secret" in a key name reads as a secret

#: The guest attributes namespace the health agent writes its phase and timings into (``vllm/phase``,
#: ``vllm/timings``) through the metadata server, once the instance metadata ``enable-guest-attributes`` is
#: TRUE; a VM writes its own without any IAM role, and ``tools.status`` reads them with
#: instances.getGuestAttributes (compute.instances.getGuestAttributes, in roles/compute.viewer). GCP,
#: "Set and query guest attributes", cloud.google.com/compute/docs/metadata/manage-guest-attributes
#: (read 2026-12-07): not for secrets, and none are written here.
GUEST_ATTRIBUTES_NAMESPACE = "vllm"

#: Instance metadata naming vllm:image in the stack's Artifact Registry mirror of Docker Hub.
IMAGE_METADATA_KEY = "vllm-image"

#: The named port the backend service sends traffic to, on every serving group.
PORT_NAME = "http"

#: Compact placement needs a machine series that supports it; N1 (T4/V100) does not.
COMPACT_PLACEMENT_SERIES = ("a2", "a3", "a4", "g2")

VM_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def machine_series(spec: ServiceSpec) -> str:
    return vm.machine_type(spec).split("-")[0]


def boot_disk_type(spec: ServiceSpec) -> str:
    return platform.boot_disk_type(vm.machine_type(spec))


def scheduling(spec: ServiceSpec) -> compute.InstanceTemplateSchedulingArgsDict:
    """GPU VMs cannot live-migrate (TERMINATE on host maintenance); spot VMs are deleted on preemption
    so the managed group recreates them when capacity returns."""
    if spec.spot:
        return {
            "on_host_maintenance": "TERMINATE",
            "automatic_restart": False,
            "preemptible": True,
            "provisioning_model": "SPOT",
            "instance_termination_action": "DELETE",
        }
    return {"on_host_maintenance": "TERMINATE", "automatic_restart": True, "provisioning_model": "STANDARD"}


def health_report(launch: LaunchSpec) -> list[str]:
    """The agent serves its verdict for the managed group's autohealing check (``autohealing_check``), and
    publishes its phase as the VM's guest attributes (``GUEST_ATTRIBUTES_NAMESPACE``)."""
    hold = roll_timings(launch).hold_until_uptime
    report = ["--report", "http", "--port", str(HEALTH_AGENT_PORT), "--hold-until-uptime", str(hold)]
    return [*report, "--publish", "guest-attributes"]


#: The reservation affinity key that names one reservation (compute API, ReservationAffinity.key; the
#: pinned pulumi_gcp's InstanceTemplateReservationAffinitySpecificReservation: "To target a
#: SPECIFIC_RESERVATION by name, specify compute.googleapis.com/reservation-name as the key and specify the
#: name of your reservation as the only value"). The value may also be projects/P/reservations/NAME, a
#: reservation shared from another project in the same zone.
RESERVATION_NAME_KEY = "compute.googleapis.com/reservation-name"


def reservation_affinity(spec: ServiceSpec) -> compute.InstanceTemplateReservationAffinityArgsDict | None:
    """On-demand VMs consume ``vllm:reservation`` and only it (SPECIFIC_RESERVATION: a VM that finds no
    room in it fails to be created rather than falling back to other capacity, so a full reservation shows
    in the group's errors instead of on the bill). Spot VMs cannot consume reservations and get none (GCP
    "Choose a reservation type", Limitations: reservations are zone-specific, and reserved capacity cannot
    create Spot VMs or preemptible instances)."""
    name = settings(spec).reservation
    if name is None or spec.spot:
        return None
    return {
        "type": "SPECIFIC_RESERVATION",
        "specific_reservation": {"key": RESERVATION_NAME_KEY, "values": [name]},
    }


def autohealing_check(name: str, launch: LaunchSpec, opts: pulumi.ResourceOptions) -> compute.HealthCheck:
    """The managed groups' autohealing check: the host's health agent, never vLLM itself.

    GCP cannot wait longer than 3600 s before judging a new VM, and a model may take longer to load. The
    agent answers healthy while the container loads within its budget and mirrors vLLM's /health once it
    was ready; the load balancer's own check keeps reading vLLM's /health for routing.
    """
    probes = launch.probes
    return compute.HealthCheck(
        name,
        description="vLLM autohealing: the host health agent (loading within budget, then vLLM /health)",
        check_interval_sec=probes.period_seconds,
        timeout_sec=probes.timeout_seconds,
        healthy_threshold=probes.healthy_threshold,
        unhealthy_threshold=probes.unhealthy_threshold,
        http_health_check={"port": HEALTH_AGENT_PORT, "request_path": AUTOHEAL_PATH},
        opts=opts,
    )


@dataclass(frozen=True)
class RollTimings:
    """When a new VM is judged, and when a rolling update may count it as ready.

    A rolling update removes an old VM once its replacement's health check passes plus minReadySec (at
    most 3600 s). The agent passes while the model loads, so for a budget over 3600 s a new VM's agent
    first holds its answer at unhealthy until ``hold_until_uptime`` s after boot: autohealing ignores it
    during its initial delay, which ends ``HOLD_MARGIN_SECONDS`` after the hold. A rolling update thus waits
    hold + minReadySec for a new replica to load; a ready vLLM ends the hold at once.
    """

    initial_delay_seconds: int
    hold_until_uptime: int  # 0: no hold
    min_ready_seconds: int

    @property
    def roll_wait_seconds(self) -> int:
        """The longest a rolling update waits for a new VM before it counts it as ready."""
        return self.hold_until_uptime + self.min_ready_seconds


#: Between the end of the hold and the end of the initial delay: the agent's next look, the check's healthy
#: threshold (1 x 10 s) and the VM's boot before its clock (uptime) starts, with room to spare.
HOLD_MARGIN_SECONDS = 300
#: The longest load budget a rolling update can wait for: the longest hold plus the longest minReadySec.
MAX_ROLL_WAIT_SECONDS = MAX_INITIAL_DELAY_SECONDS - HOLD_MARGIN_SECONDS + MAX_MIN_READY_SECONDS


def roll_timings(launch: LaunchSpec) -> RollTimings:
    """A rollout waits for the estimate (the expected load), not the budget: a new VM slower than that is
    not killed for it (its agent judges it by the budget), the rollout only moves on sooner."""
    budget = launch.probes.expected_startup_seconds
    if budget <= MAX_MIN_READY_SECONDS:
        return RollTimings(AGENT_START_SECONDS, 0, budget)
    hold = min(budget - MAX_MIN_READY_SECONDS, MAX_INITIAL_DELAY_SECONDS - HOLD_MARGIN_SECONDS)
    return RollTimings(max(AGENT_START_SECONDS, hold + HOLD_MARGIN_SECONDS), hold, MAX_MIN_READY_SECONDS)


def autohealing_policy(
    check: compute.HealthCheck, launch: LaunchSpec
) -> compute.InstanceGroupManagerAutoHealingPoliciesArgsDict:
    """Zonal (Ray) and regional groups take the same policy: their two TypedDicts have the same keys."""
    return {"health_check": check.id, "initial_delay_sec": roll_timings(launch).initial_delay_seconds}


def rollout_timeout(launch: LaunchSpec, steps: int, draining_seconds: int) -> str:
    """A ``custom_timeouts`` duration for a group that rolls in ``steps`` waves: each wave boots new VMs,
    waits for them to load (hold + minReadySec) and drains the old ones, plus a margin."""
    wave = AGENT_START_SECONDS + roll_timings(launch).roll_wait_seconds + draining_seconds
    return f"{math.ceil(steps * (wave + ROLLOUT_STEP_MARGIN_SECONDS) / 60)}m"


def check_rollout_budget(spec: ServiceSpec, launch: LaunchSpec) -> None:
    """Refuse a load budget a rolling update cannot wait for while it keeps another replica serving.

    A single-node replica is replaced by a surge VM, and Ray groups roll one after another: either way an
    old replica leaves once its replacement had ``MAX_ROLL_WAIT_SECONDS`` to load. A longer budget would
    let an update remove the last serving replica while the new ones still load. A single multi-node
    replica is recreated in place (its head keeps its IP), so it is down during its roll whatever the
    budget, and is not refused. Autohealing itself honours any budget (the agent carries it).
    """
    budget = launch.probes.expected_startup_seconds
    if budget <= MAX_ROLL_WAIT_SECONDS or (spec.nodes > 1 and spec.replicas == 1):
        return
    shown = spec.model_size_gb if spec.model_size_gb is not None else "unset"
    raise SpecError(
        "vllm:modelSizeGb",
        shown,
        f"the size of a checkpoint whose estimated load fits the {MAX_ROLL_WAIT_SECONDS} s a GCP rolling "
        f"update can wait for a new replica (GCP caps the initial delay and minReadySec at 3600 s each); "
        f"this spec's estimate is {budget} s (unset, the weights are assumed to fill 90% of GPU memory: set "
        f"the real size), or vllm:replicas 1 with vllm:nodes > 1",
    )


@dataclass
class VmRole:
    """What distinguishes the VMs of one instance template."""

    role: str  # vm.VM_ROLES
    tags: Sequence[str]
    ray_env: Mapping[str, str] | None = None
    placement_policy: pulumi.Input[str] | None = None


def instance_template(
    name: str,
    spec: ServiceSpec,
    launch: LaunchSpec,
    vm_role: VmRole,
    network: Network,
    identity: ServiceIdentity,
    mirror: ImageMirror | None,
    opts: pulumi.ResourceOptions,
    subnetwork: pulumi.Input[str] | None = None,
    *,
    weight_cache: WeightCache | None = None,
) -> compute.InstanceTemplate:
    """A GPU VM: catalog machine, DLVM boot disk, gVNIC without external IP, the stack's service account,
    and the boot script, which names its secrets but never holds them (and the weight cache's bucket,
    known once created). ``subnetwork``: the subnet of the VMs' region when it is not the stack's own
    (``vllm:regions``)."""
    offering = vm.vm_offering(spec)

    def startup_script(weight_cache_url: str = "") -> str:
        return vm.bootstrap_script(
            spec,
            launch,
            api_key_secret=identity.api_key_secret,
            hf_token_secret=identity.hf_token_secret,
            role=vm_role.role,
            ray_env=vm_role.ray_env,
            health_report=health_report(launch),
            image_metadata_key=IMAGE_METADATA_KEY if mirror is not None else "",
            weight_cache_url=weight_cache_url,
        )

    script: pulumi.Input[str] = (
        startup_script() if weight_cache is None else weight_cache.url.apply(startup_script)
    )
    image_metadata = {IMAGE_METADATA_KEY: mirror.pulled(spec.image)} if mirror is not None else {}
    if mirror is not None:  # the VMs pull with the reader grant in place
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[mirror.reader]))
    if weight_cache is not None:  # and use the bucket with theirs
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[weight_cache.grant, weight_cache.bucket_reader])
        )
    return compute.InstanceTemplate(
        name,
        description=f"vLLM {vm_role.role} on {vm.machine_type(spec)} ({spec.gpu}) for stack {spec.stack}",
        machine_type=vm.machine_type(spec),
        guest_accelerators=(
            [{"type": offering.accelerator_type, "count": offering.gpu_count}]
            if offering.accelerator_type
            else None
        ),
        scheduling=scheduling(spec),
        reservation_affinity=reservation_affinity(spec),
        disks=[
            {
                "boot": True,
                "auto_delete": True,
                "source_image": boot_image(spec),
                "disk_size_gb": boot_disk_gb(spec, opts),
                "disk_type": boot_disk_type(spec),
            }
        ],
        # No access_configs: no external IP. Egress goes through Cloud NAT.
        network_interfaces=[{"subnetwork": subnetwork or network.subnetwork.id, "nic_type": "GVNIC"}],
        # Secure Boot stays off: the DLVM installs the NVIDIA kernel modules at first boot, unsigned.
        shielded_instance_config={
            "enable_secure_boot": False,
            "enable_vtpm": True,
            "enable_integrity_monitoring": True,
        },
        service_account={"email": identity.account.email, "scopes": list(VM_SCOPES)},
        metadata={
            "startup-script": script,
            "install-nvidia-driver": "True",
            "enable-oslogin": "TRUE",
            "block-project-ssh-keys": "TRUE",
            # The health agent publishes its phase as guest attributes (GUEST_ATTRIBUTES_NAMESPACE).
            "enable-guest-attributes": "TRUE",
            # A new HF token or API key is a new secret version: naming the versions (never the values)
            # makes it a new template, so the group rolls and no server keeps a stale key.
            SECRET_VERSIONS_METADATA_KEY: pulumi.Output.all(
                *(version.name for version in identity.versions.values())
            ).apply(lambda names: " ".join(names)),
            **image_metadata,
        },
        tags=list(vm_role.tags),
        labels={"app": "vllm", "stack": spec.name, "role": vm_role.role},
        resource_policies=vm_role.placement_policy,  # one policy at most (the SDK takes a single link)
        opts=opts,
    )
