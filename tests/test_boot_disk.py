"""The boot disk of a machine whose local NVMe holds the weights and Docker's data root: sized at ``up`` from
the boot image's own minimum (GCP's image data source ``diskSizeGb``; the AMI's root snapshot,
``blockDeviceMappings[].ebs.volume_size``) plus what stays on it (``platforms.BOOT_DISK_KEPT_GB``), unless
the stack sets vllm:diskSizeGb. Machines whose weights are on the boot disk keep vllm:diskSizeGb's 200 GB."""

from __future__ import annotations

import pytest

from components import platforms
from components.aws import fakes as aws_fakes
from components.aws import machines
from components.gcp import fakes as gcp_fakes
from components.spec import DEFAULT_DISK_SIZE_GB, SpecError, build_spec, public_view
from tests.harness import Run, run_program

SECRETS = {"vllm:hfToken": "hf_bootdisktest", "vllm:apiKey": "sk-boot-disk-test-0123"}
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GET_IMAGE = "gcp:compute/getImage:getImage"
GET_AMI = "aws:ec2/getAmi:getAmi"
KEPT = platforms.BOOT_DISK_KEPT_GB


@pytest.fixture(scope="module")
def gcp_h100() -> Run:
    return run_program("gcp-h100", secrets=SECRETS)


@pytest.fixture(scope="module")
def aws_h100() -> Run:
    return run_program("aws-h100", secrets=SECRETS)


def boot_disks(run: Run) -> list[float]:
    return [template.inputs["disks"][0]["diskSizeGb"] for template in run.of_type(TEMPLATE)]


def root_volumes(run: Run) -> list[float]:
    return [t.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] for t in run.of_type(LAUNCH_TEMPLATE)]


# --- GCP -------------------------------------------------------------------------------------------------


def test_gcp_a3_boot_disk_is_the_images_minimum_plus_what_stays_on_it(gcp_h100):
    assert boot_disks(gcp_h100) == [gcp_fakes.BOOT_IMAGE_DISK_GB + KEPT]


def test_gcp_the_image_read_is_the_templates_family_through_the_stacks_provider(gcp_h100):
    (lookup,) = [invoke for invoke in gcp_h100.invokes if invoke.token == GET_IMAGE]
    source = gcp_h100.one(TEMPLATE).inputs["disks"][0]["sourceImage"]
    assert source == f"projects/{lookup.args['project']}/global/images/family/{lookup.args['family']}"
    provider = next(p for p in gcp_h100.of_type("pulumi:providers:gcp") if p.name == "gcp")
    assert lookup.provider == f"{provider.urn}::{provider.name}-id"


def test_gcp_a_pinned_image_is_read_by_name():
    image = "common-cu129-ubuntu-2204-nvidia-580-v20260818"
    run = run_program("gcp-h100", {"vllm:bootImage": image}, secrets=SECRETS)
    (lookup,) = [invoke for invoke in run.invokes if invoke.token == GET_IMAGE]
    assert lookup.args == {"project": "deeplearning-platform-release", "name": image}
    assert boot_disks(run) == [gcp_fakes.BOOT_IMAGE_DISK_GB + KEPT]


def test_gcp_every_ray_node_reads_the_image_size():
    run = run_program("gcp-h100-multinode", secrets=SECRETS)
    assert boot_disks(run) and set(boot_disks(run)) == {gcp_fakes.BOOT_IMAGE_DISK_GB + KEPT}


def test_gcp_a_machine_without_local_nvme_keeps_the_default_and_reads_no_image():
    run = run_program("gcp-l4", secrets=SECRETS)
    assert boot_disks(run) == [DEFAULT_DISK_SIZE_GB]
    assert not [invoke for invoke in run.invokes if invoke.token == GET_IMAGE]


def test_gcp_a_disk_size_the_stack_sets_wins_over_the_image():
    run = run_program("gcp-h100", {"vllm:diskSizeGb": "120"}, secrets=SECRETS)
    assert boot_disks(run) == [120]
    assert not [invoke for invoke in run.invokes if invoke.token == GET_IMAGE]


# --- AWS -------------------------------------------------------------------------------------------------


def test_aws_p5_root_volume_is_the_amis_root_snapshot_plus_what_stays_on_it(aws_h100):
    assert root_volumes(aws_h100) == [aws_fakes.DLAMI_ROOT_SNAPSHOT_GB + KEPT]


def test_aws_a_pinned_ami_sizes_the_volume_from_that_ami():
    run = run_program("aws-h100", {"vllm:amiId": "ami-0abc1234def567890"}, secrets=SECRETS)
    (lookup,) = [invoke for invoke in run.invokes if invoke.token == GET_AMI]
    assert lookup.args["filters"] == [{"name": "image-id", "values": ["ami-0abc1234def567890"]}]
    assert root_volumes(run) == [aws_fakes.DLAMI_ROOT_SNAPSHOT_GB + KEPT]


def test_aws_a_machine_without_instance_store_keeps_the_default():
    assert root_volumes(run_program("aws-l4", secrets=SECRETS)) == [DEFAULT_DISK_SIZE_GB]


def test_the_root_snapshot_is_the_root_devices_mapping_not_another():
    mappings = [
        {"device_name": "/dev/sdb", "ebs": {}, "virtual_name": "ephemeral0"},
        {"device_name": "/dev/sdf", "ebs": {"volume_size": "500"}},
        {"device_name": "/dev/sda1", "ebs": {"volume_size": "75", "volume_type": "gp3"}},
    ]
    assert machines._root_snapshot_gb("/dev/sda1", mappings) == 75


def test_an_ami_without_an_ebs_root_is_an_error_naming_the_device():
    with pytest.raises(ValueError, match="/dev/xvda"):
        machines._root_snapshot_gb("/dev/xvda", [{"device_name": "/dev/sdb", "ebs": {}}])


# --- the spec --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100", "gcp-h100-multinode", "aws-h200-multinode"])
def test_local_nvme_presets_size_the_boot_disk_from_the_image(stack):
    spec = build_spec(stack, {})
    assert spec.boot_disk_from_image
    assert public_view(spec)["diskSizeGb"] == f"boot image's minimum + {KEPT}"


@pytest.mark.parametrize("stack", ["gcp-l4", "aws-l4", "k8s-h100"])
def test_machines_whose_weights_use_the_disk_keep_a_number(stack):
    spec = build_spec(stack, {})
    assert not spec.boot_disk_from_image and isinstance(public_view(spec)["diskSizeGb"], int)


def test_a_set_disk_below_the_os_images_is_still_refused_on_local_nvme():
    with pytest.raises(SpecError) as refused:
        build_spec("gcp-h100", {"vllm:diskSizeGb": "25"})
    assert refused.value.key == "vllm:diskSizeGb"
