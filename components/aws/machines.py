"""GPU machines on EC2, shared by single-node replicas and Ray groups: image, launch template, user data,
and the Auto Scaling group that keeps each machine alive."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.autoscaling as autoscaling
import pulumi_aws.ec2 as ec2
import pulumi_aws.servicequotas as servicequotas
import pulumi_aws.ssm as ssm
import zopfli.gzip

from components import platforms, scripts, vm
from components.aws import purchase_options, sizing
from components.aws.load_balancer import serving_budget_seconds
from components.aws.platform import ROOT_THROUGHPUT_MIBPS
from components.aws.settings import settings
from components.aws.sizing import (
    max_healthy_percentage,
    min_healthy_percentage,
    reserved,
    surge_machines,
)
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: AWS's public pointer to the current Deep Learning Base OSS NVIDIA Driver GPU AMI for x86_64 on Ubuntu
#: 24.04 (NVIDIA open kernel driver, Docker, NVIDIA container toolkit, AWS CLI, EFA; P4d, P5, P5en, G4dn-
#: G6e). The pinned vLLM 0.33 image is built on CUDA 13, which needs an NVIDIA driver >= 580. The Ubuntu
#: 24.04 DLAMI families ship it: the 20251205 Base OSS Nvidia Driver release lists driver 580.105.08 with
#: CUDA 13.0, and the 2026 releases driver 595 with CUDA 13.2 (e.g. Base AMI with Single CUDA (Ubuntu
#: 24.04) 20260717: driver 595.71.05, x86_64, P5/P5en supported); AWS DLAMI release notes,
#: docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html. The 22.04 family this
#: replaced stayed on the 570 driver (CUDA 12.8) into 2025. Parameter names follow AWS's rule: the AMI's
#: name without "Deep", "Learning" and "AMI" (docs.aws.amazon.com/dlami/latest/devguide/find-dlami-id).
DLAMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
#: EC2 refuses user data over 16 KB before base64; cloud-init unpacks gzip'd user data itself.
USER_DATA_LIMIT = 16 * 1024
#: Instance tag naming the secret versions a machine booted with (see ``launch_template``).
SECRETS_REVISION_TAG = "vllm:secrets-revision"
ROOT_IOPS = 4000
#: ``DefaultInstanceWarmup`` accepts 0-3600 s (EC2 Auto Scaling user guide, "Enable the default instance
#: warmup for a group"; API CreateAutoScalingGroup). Terraform does not validate it, so a longer load budget
#: (an autoscaled H200:8 serving a 1 TB model renders 4850 s) fails CreateAutoScalingGroup at apply. The
#: group's value is capped here; the scaling policy's ``estimated_instance_warmup`` and the refresh's
#: ``instance_warmup`` take the full budget, which they override it with.
DEFAULT_WARMUP_MAX_SECONDS = 3600


@dataclass(frozen=True)
class MachineImage:
    """What the launch template boots: an AMI id, or ``resolve:ssm:<parameter>`` that EC2 resolves at each
    launch; and the image's root device, whose volume the template sizes."""

    image_id: str
    root_device_name: pulumi.Output[str]
    #: The size of the image's root snapshot in GiB (its root device's block device mapping,
    #: ``ebs.volume_size``): the smallest root volume EC2 launches it with (InvalidBlockDeviceMapping below).
    root_snapshot_gb: pulumi.Output[int]


def machine_image(spec: ServiceSpec, opts: pulumi.InvokeOptions) -> MachineImage:
    """``vllm:amiId`` when pinned, else the current DLAMI resolved by EC2 at launch, not by Pulumi.

    A launch template holding the looked-up AMI id would change with every DLAMI release and start an
    instance refresh of every GPU machine at the next ``pulumi up``. ``resolve:ssm:`` keeps the template
    unchanged: machines launched from then on (scale-out, replacement, the next rollout) boot the release
    current at their launch. Pin ``vllm:amiId`` to keep every machine on one image. Only the root device
    name is read at deploy time (from the image the parameter points to now): it is ``/dev/sda1`` on every
    Ubuntu DLAMI and does not change between releases.
    """
    ami_id = settings(spec).ami_id
    if ami_id is not None:
        image_id = ami_id
        pointed: pulumi.Input[str] = ami_id
    else:
        image_id = f"resolve:ssm:{DLAMI_PARAMETER}"
        pointed = ssm.get_parameter_output(name=DLAMI_PARAMETER, opts=opts).insecure_value
    image = ec2.get_ami_output(filters=pulumi.Output.from_input(pointed).apply(_image_id_filter), opts=opts)
    snapshot_gb = pulumi.Output.all(image.root_device_name, image.block_device_mappings).apply(
        lambda found: _root_snapshot_gb(found[0], found[1])
    )
    return MachineImage(
        image_id=image_id, root_device_name=image.root_device_name, root_snapshot_gb=snapshot_gb
    )


def _root_snapshot_gb(root_device: str, mappings: Sequence[Mapping[str, Any]]) -> int:
    """``ebs.volume_size`` of the root device's mapping. Read by key: the data source's mappings are output
    types, which are dicts by their snake_case names (pulumi_aws GetAmiBlockDeviceMappingResult), and its
    ``ebs`` is a map of strings (``ebs["volume_size"]``)."""
    for mapping in mappings:
        ebs = mapping.get("ebs") or {}
        if mapping.get("device_name") == root_device and ebs.get("volume_size"):
            return int(ebs["volume_size"])
    raise ValueError(f"the AMI has no EBS mapping with a size for its root device {root_device}")


def root_volume_gb(spec: ServiceSpec, image: MachineImage) -> pulumi.Input[int]:
    """The root volume's size: ``vllm:diskSizeGb`` (or its default), except where the instance store holds
    the weights and Docker's data root and the stack does not set it (``spec.boot_disk_from_image``): then
    the AMI's root snapshot plus what stays on the volume (``platforms.BOOT_DISK_KEPT_GB``). The snapshot
    is the one of the AMI the parameter names at ``up``; EC2 resolves ``resolve:ssm:`` again at each launch,
    so a later DLAMI whose snapshot outgrows the volume fails its launches until the next ``up`` reads it
    (``vllm:amiId`` pins one)."""
    if not spec.boot_disk_from_image:
        return spec.disk_size_gb
    return image.root_snapshot_gb.apply(lambda size: size + platforms.BOOT_DISK_KEPT_GB)


def _image_id_filter(image_id: str) -> list[ec2.GetAmiFilterArgsDict]:
    return [{"name": "image-id", "values": [image_id]}]


def health_report(spec: ServiceSpec) -> list[str]:
    """The health agent marks its own instance Unhealthy in its Auto Scaling group (the group uses EC2
    health, so nothing else replaces a machine); the instance role may do that for this stack's groups. It
    tags its instance with its start's phase (identity.publish_phase_statement)."""
    region = ["--region", spec.region] if spec.region else []
    return ["--report", "autoscaling-group", *region, "--publish", "instance-tags"]


def drain_args(spec: ServiceSpec, target_group_arn: str) -> list[str]:
    """On a spot machine behind the load balancer (a replica, a Ray head), the health agent takes it out of
    ``target_group_arn`` on EC2's two-minute interruption notice (health_agent.py ``SpotDrain``).
    DeregisterTargets rather than the group's EnterStandby or DetachInstances: those accept only an
    InService instance (not one still in its launch hook's Pending:Wait) and the Standby one needs a
    desired capacity above the minimum or a decrement; DeregisterTargets acts on the target group alone,
    in any state, and succeeds again on a target already gone (ELB API reference, DeregisterTargets). The
    load balancer then sends the machine no new request and lets those in flight finish (its deregistration
    delay), while the group replaces the machine once EC2 has reclaimed it. The earlier rebalance
    recommendation is left to the group's Capacity Rebalancing (purchase_options.py), which launches a
    replacement and, once that serves, terminates the machine through the group, itself leaving the target
    group first: draining on the recommendation would take a machine out that may never be interrupted."""
    return ["--drain-target-group", target_group_arn] if spec.spot else []


class QuotaError(pulumi.RunError):
    """An EC2 vCPU quota of the region cannot hold the stack: found at preview, before any machine is
    launched, in one line with the request that raises it (sizing.refusal)."""


def quota_preflight(spec: ServiceSpec, opts: pulumi.InvokeOptions) -> pulumi.Output[list[str]]:
    """The codes of the vCPU quotas the stack draws on, once the account's values (Service Quotas
    ``GetServiceQuota``: the applied value, else AWS's default) hold what the stack needs at its peak;
    a QuotaError otherwise. Without it a fresh account's 0 vCPUs of P instances leave ``up`` done and the
    group retrying VcpuLimitExceeded launches for as long as nobody looks. The caller makes the groups
    depend on it, so a refusal stops ``up`` at its preview."""
    region = vm.vm_region(spec)

    def held(quota: sizing.Quota, value: float) -> str:
        refused = sizing.refusal(quota, value, region)
        if refused is not None:
            raise QuotaError(refused)
        return quota.code

    checks = [
        servicequotas.get_service_quota_output(
            service_code="ec2", quota_code=quota.code, opts=opts
        ).value.apply(lambda value, quota=quota: held(quota, value))
        for quota in sizing.stack_vcpu_quotas(spec)
    ]
    return pulumi.Output.all(*checks)


def user_data(script: str) -> str:
    """Base64 user data: the script without its comment lines when that fits EC2's 16 KB, else gzip'd
    by Zopfli (byte-stable: no mtime, a pinned version). The commented script is
    components/scripts/vm_bootstrap.sh.

    Zopfli writes the gzip format that cloud-init unpacks, searched harder than zlib's level 9: about
    1.7% less on a Ray head's user data (16,510 -> 16,237 bytes), 3.5% on a single-node replica's, in a
    tenth of a second."""
    raw = scripts.without_comments(script).encode()
    if len(raw) > USER_DATA_LIMIT:
        raw = zopfli.gzip.compress(raw)
    if len(raw) > USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(raw)} bytes gzip'd, over EC2's {USER_DATA_LIMIT}")
    return base64.b64encode(raw).decode()


def launch_template(
    name: str,
    *,
    spec: ServiceSpec,
    role: str,
    image: MachineImage,
    script: pulumi.Input[str],
    instance_profile_arn: pulumi.Input[str],
    security_group_ids: Sequence[pulumi.Input[str]],
    public_ip: bool | None,
    secret_versions: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> ec2.LaunchTemplate:
    """One machine of ``spec``'s catalog type in ``role`` (serve, ray-head, ray-worker), named ``name``.

    IMDSv2 only, with a hop limit of 1: every container runs with host networking, so the host's own
    requests are the only ones that need the instance role; a bridged container cannot reach it.
    ``public_ip`` None leaves the choice to the subnet (a user's subnets), True asks for one.

    Instances and their volumes get the stack's tags here (``tag_specifications``): the provider's
    ``default_tags`` stop at the launch template itself. Each instance also carries
    ``vllm:secrets-revision``, the current secret versions (ids, never values): machines read the
    secrets only at vLLM's start, so a rotated ``hfToken``/``apiKey`` must replace them, and a changed
    tag is a new template version, which starts the group's instance refresh.
    """
    tags = {"Name": name, "vllm:role": role, **stack_tags(spec)}
    instance_tags = {**tags, SECRETS_REVISION_TAG: secret_versions}
    spot_options: ec2.LaunchTemplateInstanceMarketOptionsArgsDict = {
        "market_type": "spot",
        "spot_options": {"spot_instance_type": "one-time", "instance_interruption_behavior": "terminate"},
    }
    reserved = purchase_options.reservation_options(settings(spec).reservation, settings(spec).capacity_block)
    return ec2.LaunchTemplate(
        name,
        description=f"{spec.name} {role}: {spec.gpu} on {vm.machine_type(spec)}, {spec.image}",
        image_id=image.image_id,
        instance_type=vm.machine_type(spec),
        iam_instance_profile={"arn": instance_profile_arn},
        user_data=pulumi.Output.from_input(script).apply(user_data),
        block_device_mappings=[
            {
                "device_name": image.root_device_name,
                "ebs": {
                    "volume_size": root_volume_gb(spec, image),
                    "volume_type": "gp3",
                    "throughput": ROOT_THROUGHPUT_MIBPS,
                    "iops": ROOT_IOPS,
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        network_interfaces=[
            {
                "device_index": 0,
                "security_groups": list(security_group_ids),
                "associate_public_ip_address": None if public_ip is None else str(public_ip).lower(),
                "delete_on_termination": "true",
            }
        ],
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": 1,
            "instance_metadata_tags": "disabled",
        },
        instance_market_options=reserved.pop("instance_market_options", spot_options if spec.spot else None),
        **reserved,
        tag_specifications=[
            {"resource_type": "instance", "tags": instance_tags},
            *({"resource_type": kind, "tags": tags} for kind in ("volume", "network-interface")),
        ],
        tags=tags,
        update_default_version=True,
        opts=opts,
    )


def rolling_refresh(
    size: int, warmup_seconds: int, keep_serving: bool, reserved: bool = False
) -> autoscaling.GroupInstanceRefreshArgsDict:
    """Instance refresh preferences for an ASG of ``size`` machines.

    ``keep_serving``: launch a replacement before terminating (min healthy 100%) and surge by one machine
    at a time (max healthy 100% + one machine's share), so serving capacity never drops and a GPU shortage
    stalls the rollout instead of taking a replica down. ``reserved`` (``vllm:reservation``): terminate one
    machine, then launch its replacement (max healthy 100%, min healthy one machine's share below it): a
    launch-first refresh needs a free reserved slot, and a sized reservation has none to spare (a Capacity
    Block never falls back to on-demand; an instance that targets a full On-Demand Capacity Reservation
    fails to launch). Otherwise replace in place (min healthy 0%). Limits (RefreshPreferences): min 0-100,
    max 100-200, at most 100 apart; AWS rounds the min healthy count up, so 100% less one machine's share
    replaces one machine at a time.
    """
    return {
        "strategy": "Rolling",
        "preferences": {
            "min_healthy_percentage": min_healthy_percentage(size, keep_serving, reserved),
            "max_healthy_percentage": max_healthy_percentage(size, keep_serving, reserved),
            "instance_warmup": str(warmup_seconds),
            "skip_matching": True,
        },
    }


#: ``pulumi up`` does not wait for the group's machines (``"0"``). What it would wait for is InService
#: machines, not served models (EC2 health), and on a GPU stock-out the wait ends badly either way: a
#: failed launch (InsufficientInstanceCapacity) fails it at once unless failed activities are ignored
#: (terraform-provider-aws#33665), and a create that times out leaves the group running in AWS but
#: missing from the stack (pulumi-aws#5178), where it keeps launching GPU machines nobody manages. The
#: group keeps launching on its own; ``python -m tools.status`` and the group's activity history show
#: where capacity stands.
WAIT_FOR_CAPACITY_TIMEOUT = "0"
#: A group's serving wait (ServingWait) as the provider spells its fields, which no group's later ``up``
#: changes: a promote swaps which slot is the canary (components/canary.py) and must not touch either group.
SERVING_WAIT_FIELDS = ("waitForCapacityTimeout", "minElbCapacity", "ignoreFailedScalingActivities")


@dataclass(frozen=True, kw_only=True)
class ServingWait:
    """The one wait ``up`` holds on a group: the create of a canary revision's group (vllm:canary) returns
    only once ``replicas`` of its machines are healthy in its target group (the load balancer's check on
    vLLM's ``/health``: READY), and fails after ``timeout_seconds`` otherwise; the listener rules that
    weight traffic depend on the group, so no request moves to it before then.

    terraform-provider-aws (internal/service/autoscaling/group.go, resourceGroupCreate and
    statusGroupCapacity, read 2026-12-08): with ``wait_for_capacity_timeout`` above 0 a create waits until
    at least the desired capacity is InService and Healthy (here: each machine's launch hook completed by
    its health agent once vLLM answered, lifecycle.py) and at least ``min_elb_capacity`` of them are healthy
    in every target group of the group; an update waits only when desired capacity, its type or min size
    change, and then for exact counts (so the wait stays a create's: ``min_elb_capacity``, never
    ``wait_for_elb_capacity``, whose exact count an autoscaled group would miss). A failed scaling activity
    (a GPU stock-out in one zone) ends the wait at once unless ``ignore_failed_scaling_activities``
    (terraform-provider-aws#33665): here the group keeps trying other zones until the deadline. A create
    that times out may leave the group outside the stack (pulumi-aws#5178, closed awaiting feedback;
    the provider sets the group's id before it waits): check the group's activity history, and
    ``pulumi refresh`` or delete it by hand before the next ``up``."""

    replicas: int
    timeout_seconds: int


def serving_wait(replicas: int, launch: LaunchSpec) -> ServingWait:
    """A canary revision's group of ``replicas`` serving machines (a single-node revision's group, a Ray
    replica's head): its create returns once each is healthy in its target groups, within the load budget
    and the target group's most healthy checks in a row after it."""
    return ServingWait(replicas=replicas, timeout_seconds=serving_budget_seconds(launch))


def stack_tags(spec: ServiceSpec) -> dict[str, str]:
    """What every resource of the stack carries; the provider's ``default_tags`` do not reach Auto Scaling
    groups nor the instances and volumes a launch template starts, so those name them explicitly."""
    return {"vllm:stack": spec.stack, "vllm:service": spec.name, "managed-by": "pulumi"}


def auto_scaling_group(
    name: str,
    *,
    spec: ServiceSpec,
    size: int,
    template: ec2.LaunchTemplate,
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
    target_group_arns: Sequence[pulumi.Input[str]],
    grace_seconds: int,
    keep_serving: bool,
    placement_group: pulumi.Input[str] | None = None,
    bounds: tuple[int, int] | None = None,
    mixed_instances_policy: autoscaling.GroupMixedInstancesPolicyArgsDict | None = None,
    serving_wait: ServingWait | None = None,
    beside_a_canary: bool = False,
    opts: pulumi.ResourceOptions,
) -> autoscaling.Group:
    """``size`` machines from ``template``, replaced when EC2 or the machine itself says they are broken.

    Health is ``EC2``: a restarting vLLM (or a Ray head re-forming its group) fails the load balancer's
    checks for a while, and with ``ELB`` health 30 s of that would replace the machine: a new GPU
    machine, a new download, a capacity gamble. The target groups only route. A machine whose vLLM has
    not been healthy for longer than its load budget since its last start, or keeps crash-looping,
    reports itself Unhealthy (``aws autoscaling set-instance-health``; the instance role may do that on
    this stack's groups only, see identity.py), and the group replaces it. ``grace_seconds`` (the load
    budget) keeps a booting machine from being judged by EC2 checks or such a report too early.
    A reclaimed spot machine is replaced like any other lost one.

    ``bounds`` (autoscaling, components/aws/autoscaler.py): the group runs between them, ``size`` machines
    at first; then its desired capacity is the scaling policy's, which later ``up``s leave alone. Its
    max size keeps the rollout's surge machine above the upper bound, where a refresh at the top needs it
    (target tracking may use it too: AWS has no cap of its own below MaxSize). Machines count towards the
    policy's metric once the default warm-up, the load budget, has passed.
    With ``mixed_instances_policy`` (components/aws/purchase_options.py) the policy holds the template and the
    group rebalances spot capacity.
    ``serving_wait``: its create waits for its machines to serve (ServingWait); ``beside_a_canary``: the
    group is one of two revisions, whose wait fields no later ``up`` changes (a promote swaps the roles).
    """
    low, high = bounds if bounds is not None else (size, size)
    refresh = rolling_refresh(high, grace_seconds, keep_serving, reserved(spec))
    headroom = surge_machines(high, keep_serving, reserved(spec))
    ignored = [
        *(["desiredCapacity"] if bounds is not None else []),
        *(SERVING_WAIT_FIELDS if beside_a_canary else ()),
    ]
    scaled = pulumi.ResourceOptions(ignore_changes=ignored) if ignored else None
    return autoscaling.Group(
        name,
        min_size=low,
        max_size=high + headroom,
        desired_capacity=size,
        default_instance_warmup=(
            min(grace_seconds, DEFAULT_WARMUP_MAX_SECONDS) if bounds is not None else None
        ),
        vpc_zone_identifiers=subnet_ids,
        launch_template=(
            None
            if mixed_instances_policy is not None
            else {"id": template.id, "version": template.latest_version.apply(str)}
        ),
        mixed_instances_policy=mixed_instances_policy,
        capacity_rebalance=True if mixed_instances_policy is not None else None,
        target_group_arns=list(target_group_arns),
        health_check_type="EC2",
        health_check_grace_period=grace_seconds,
        instance_refresh=refresh,
        placement_group=placement_group,
        wait_for_capacity_timeout=(
            f"{serving_wait.timeout_seconds}s" if serving_wait is not None else WAIT_FOR_CAPACITY_TIMEOUT
        ),
        min_elb_capacity=serving_wait.replicas if serving_wait is not None else None,
        ignore_failed_scaling_activities=True if serving_wait is not None else None,
        tags=[
            {"key": key, "value": value, "propagate_at_launch": False}
            for key, value in stack_tags(spec).items()
        ],
        opts=pulumi.ResourceOptions.merge(opts, scaled),
    )
