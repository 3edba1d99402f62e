"""vllm:weightCache on the clouds: the stack's private bucket, the replicas' access to it and nothing more,
the boot script's hook, and the load budgets that follow the weights' path."""

from __future__ import annotations

import argparse
import base64
import gzip
import itertools
import json
import math
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from components import launch, rates, scripts, vm
from components.aws import fakes as aws_fakes
from components.aws.weight_cache import BUCKET_PREFIX_MAX
from components.gcp import fakes as gcp_fakes
from components.launch import launch_spec
from components.platforms import BOOT_DISK_KEPT_GB
from components.spec import DEFAULT_DISK_SIZE_GB, SpecError, build_spec
from components.vm import bootstrap_script
from policy import validators as policy_validators
from tests.harness import Run, run_program
from tests.test_gcp import registrations  # noqa: F401 (a fixture)
from tests.test_vm_bootstrap import health_report, run_script, sandbox, shellcheck  # noqa: F401 (a fixture)

sys.path.insert(0, str(scripts.SCRIPTS_DIR))
import health_agent

SECRETS = {"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-key-0123456789"}
GCS_BUCKET = "gcp:storage/bucket:Bucket"
S3_BUCKET = "aws:s3/bucket:Bucket"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
MODEL = "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"


@pytest.fixture(scope="module")
def gcp() -> Run:
    return run_program("gcp-h100", secrets=SECRETS)


@pytest.fixture(scope="module")
def aws() -> Run:
    return run_program("aws-h100", secrets=SECRETS)


def script_value(script: str, name: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith(f"{name}=")]
    return line.split("=", 1)[1]


def aws_user_data(template) -> str:
    raw = base64.b64decode(template.inputs["userData"])
    return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()


# --- GCP -------------------------------------------------------------------------------------------------


def test_gcp_the_bucket_is_private_regional_and_destroyed_with_the_stack(gcp):
    bucket = gcp.one(GCS_BUCKET).inputs
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["forceDestroy"] is True
    assert bucket["location"] == "us-central1"
    assert "encryption" not in bucket  # Google-managed encryption at rest, the default
    assert bucket["softDeletePolicy"] == {"retentionDurationSeconds": 0}


def test_gcp_only_the_replicas_account_may_use_the_bucket_and_only_that_bucket(gcp):
    grants = gcp.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    account = gcp.one("gcp:serviceaccount/account:Account").outputs["member"]
    # objectUser has no storage.buckets.get, which gcloud storage rsync needs: legacyBucketReader adds it
    # (tests/test_boot_weights.py runs the script's commands against these roles' permissions).
    assert sorted((grant.inputs for grant in grants), key=lambda grant: grant["role"]) == [
        {"bucket": gcp.one(GCS_BUCKET).outputs["name"], "role": role, "member": account}
        for role in ("roles/storage.legacyBucketReader", "roles/storage.objectUser")
    ]
    project_roles = {r.inputs["role"] for r in gcp.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not any("storage" in role for role in project_roles)


def test_gcp_every_vm_fetches_from_the_bucket_and_vllm_loads_the_local_copy(gcp):
    script = gcp.one(TEMPLATE).inputs["metadata"]["startup-script"]
    assert script_value(script, "WEIGHT_CACHE_URL") == gcp.one(GCS_BUCKET).outputs["url"]
    argv = shlex.split(script_value(script, "VLLM_ARGV")[1:-1])
    assert argv[:3] == ["vllm", "serve", f"/root/.cache/huggingface/weights/{MODEL}/main"]  # offline: main
    assert argv[argv.index("--served-model-name") + 1] == MODEL
    assert shellcheck(script).returncode == 0


def test_gcp_with_the_hub_there_is_no_bucket_and_vllm_downloads_itself():
    run = run_program("gcp-h100", {"vllm:weightCache": "hub"}, secrets=SECRETS)
    assert not run.of_type(GCS_BUCKET) and not run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    script = run.one(TEMPLATE).inputs["metadata"]["startup-script"]
    assert script_value(script, "WEIGHT_CACHE_URL") == "''"
    assert f"vllm serve {MODEL}" in " ".join(shlex.split(script_value(script, "VLLM_ARGV")[1:-1]))


def test_gcp_ray_nodes_all_fetch_the_weights():
    run = run_program("gcp-h100-multinode", secrets=SECRETS)
    url = run.one(GCS_BUCKET).outputs["url"]
    for template in run.of_type(TEMPLATE):
        assert script_value(template.inputs["metadata"]["startup-script"], "WEIGHT_CACHE_URL") == url


# --- AWS -------------------------------------------------------------------------------------------------


def test_aws_the_bucket_blocks_public_access_enforces_ownership_encrypts_and_is_destroyed(aws):
    bucket = aws.one(S3_BUCKET)
    assert bucket.inputs["forceDestroy"] is True
    block = aws.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block[flag] is True for flag in flags)
    assert block["bucket"] == bucket.outputs["bucket"]
    ownership = aws.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    encryption = aws.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    assert encryption["rules"] == [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]


def test_aws_the_buckets_configuration_writes_go_one_after_the_other(registrations):  # noqa: F811
    # S3 answers concurrent configuration writes on a new bucket with 409 OperationAborted
    # (terraform-aws-modules/terraform-aws-s3-bucket#101, hashicorp/terraform-provider-aws#36873).
    run = run_program("aws-h100", secrets=SECRETS)
    chain = [
        run.one(kind).urn
        for kind in (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        )
    ]
    for before, after in itertools.pairwise(chain):
        assert before in registrations[after].dependencies, after


def test_aws_the_role_may_get_put_and_list_that_bucket_only(aws):
    arn = aws.one(S3_BUCKET).outputs["arn"]
    statements = json.loads(aws.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"]
    s3 = {
        s["Action"]: s["Resource"]
        for s in statements
        if isinstance(s["Action"], str) and s["Action"].startswith("s3:")
    }
    assert not any(  # no other statement grants S3
        action.startswith("s3:")
        for s in statements
        if isinstance(s["Action"], list)
        for action in s["Action"]
    )
    assert s3 == {"s3:GetObject": f"{arn}/*", "s3:PutObject": f"{arn}/*", "s3:ListBucket": arn}


@pytest.mark.parametrize("stack", ["aws-h100", "a-very-long-stack-name-for-a-production-service-x"])
def test_aws_the_bucket_prefix_fits_s3s_37_characters(stack):
    config = {} if stack == "aws-h100" else {"vllm:preset": "aws-h100"}
    run = run_program(stack, config, secrets=SECRETS)
    prefix = run.one(S3_BUCKET).inputs["bucketPrefix"]
    assert len(prefix) <= BUCKET_PREFIX_MAX and prefix == prefix.lower()


def test_aws_every_machine_fetches_from_the_bucket_in_its_region(aws):
    script = aws_user_data(aws.one(LAUNCH_TEMPLATE))
    assert script_value(script, "WEIGHT_CACHE_URL") == f"s3://{aws.one(S3_BUCKET).outputs['bucket']}"
    assert "WEIGHT_CACHE_REGION=us-east-1" in script_value(script, "WEIGHT_CACHE_ENV")


def test_aws_multi_node_user_data_with_the_cache_fits_ec2s_limit():
    run = run_program("aws-h200-multinode", secrets=SECRETS)
    for template in run.of_type(LAUNCH_TEMPLATE):
        assert len(base64.b64decode(template.inputs["userData"])) <= 16 * 1024
        assert script_value(aws_user_data(template), "WEIGHT_CACHE_URL").startswith("s3://")


# --- the spec --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_the_bucket_is_the_default_on_the_clouds(stack):
    assert build_spec(stack, {}).weight_cache == "bucket"


def test_kubernetes_keeps_the_hub_and_refuses_a_bucket():
    assert build_spec("k8s-h100", {}).weight_cache == "hub"
    with pytest.raises(SpecError) as refused:
        build_spec("k8s-h100", {"vllm:weightCache": "bucket"})
    assert refused.value.key == "vllm:weightCache" and "cacheClaim" in refused.value.valid


def test_an_unknown_weight_cache_is_refused_naming_the_choices():
    with pytest.raises(SpecError) as refused:
        build_spec("gcp-h100", {"vllm:weightCache": "nfs"})
    assert refused.value.key == "vllm:weightCache" and refused.value.valid == "one of bucket, hub, stream"


# --- the boot script's hook ------------------------------------------------------------------------------


def rendered_with_cache(url: str = "gs://vllm-weights-0a1b2c3") -> str:
    spec = build_spec("gcp-h100", {})
    serving = launch_spec(spec, True)
    return bootstrap_script(
        spec,
        serving,
        api_key_secret="k",
        hf_token_secret="t",
        weight_cache_url=url,
        health_report=health_report(spec, serving),
    )


def test_the_weights_are_fetched_before_vllm_starts_into_the_mounted_cache(sandbox):  # noqa: F811
    install = Path(sandbox["VLLM_INSTALL_DIR"])
    install.mkdir(parents=True)
    fake = install / "weight_cache.sh"
    fake.write_text(f"#!/usr/bin/env bash\nenv | grep ^WEIGHT_CACHE_ | sort > {sandbox['TMP']}/fetch-env\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = run_script(rendered_with_cache(), sandbox, "run")
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in (Path(sandbox["TMP"]) / "fetch-env").read_text().splitlines())
    assert env["WEIGHT_CACHE_URL"] == "gs://vllm-weights-0a1b2c3"
    assert env["WEIGHT_CACHE_DIR"] == f"{sandbox['VLLM_HF_CACHE']}/weights/{MODEL}/main"
    assert env["WEIGHT_CACHE_ENV_FILE"] == sandbox["VLLM_SECRETS_FILE"]  # the HF token, for the Hub
    assert env["WEIGHT_CACHE_IMAGE"] == "vllm/vllm-openai:v0.33.0"
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    assert f"/root/.cache/huggingface/weights/{MODEL}/main" in argv  # the local copy, in the mounted cache


def test_a_failed_fetch_does_not_start_vllm(sandbox):  # noqa: F811
    install = Path(sandbox["VLLM_INSTALL_DIR"])
    install.mkdir(parents=True)
    (install / "weight_cache.sh").write_text("#!/usr/bin/env bash\nexit 1\n")
    (install / "weight_cache.sh").chmod(0o755)
    assert run_script(rendered_with_cache(), sandbox, "run").returncode != 0
    docker = Path(sandbox["TMP"]) / "docker-argv"  # docker's last call: a look for the image, not a run
    assert not docker.exists() or docker.read_text().splitlines()[0] != "run"


def test_boot_installs_the_weight_cache_script_without_its_comments_nor_the_other_buckets_calls(sandbox):  # noqa: F811
    assert run_script(rendered_with_cache(), sandbox, "boot").returncode == 0
    installed = (Path(sandbox["VLLM_INSTALL_DIR"]) / "weight_cache.sh").read_text()
    assert installed == vm.shipped("weight_cache.sh", arms=("s3://*",))
    assert shellcheck(installed).returncode == 0
    assert "if-generation-match=0" in installed and "s3://*)" not in installed


def test_the_health_agent_watches_the_bucket_copys_directory_and_the_path_it_takes():
    script = rendered_with_cache()
    spec = build_spec("gcp-h100", {})
    args = shlex.split(script_value(script, "HEALTH_AGENT_ARGS")[1:-1])
    assert args[args.index("--weights-dir") + 1] == f"{vm.HOST_HF_CACHE}/{vm.cached_model_dir(spec)}"
    parsed = health_agent.parse(
        ["--report", "http", "--port", "1", "--role", "serve", "--caps", "1", "2", "3"]
    )
    assert parsed.weight_path_file == vm.WEIGHT_PATH_FILE
    assert script_value(script, "WEIGHT_PATH_FILE") == f"${{VLLM_WEIGHT_PATH_FILE:-{vm.WEIGHT_PATH_FILE}}}"


def test_without_the_cache_the_script_stays_as_it_was():
    spec = build_spec("gcp-h100", {})
    serving = launch_spec(spec, True)
    script = bootstrap_script(
        spec, serving, api_key_secret="k", hf_token_secret="t", health_report=health_report(spec, serving)
    )
    assert "weight_cache.sh" not in vm.scripts_in(script)
    args = shlex.split(script_value(script, "HEALTH_AGENT_ARGS")[1:-1])
    assert (
        args[args.index("--weights-dir") + 1]
        == f"{vm.HOST_HF_CACHE}/hub/models--{spec.model.replace('/', '--')}"
    )


# --- budgets that follow the path ------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_a_replica_that_copies_from_the_bucket_has_a_shorter_budget(stack):
    timings = launch.probe_timings(build_spec(stack, {}))
    assert timings.cached_startup_seconds < timings.startup_seconds


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_the_first_replicas_budget_still_covers_the_hub_download(stack):
    with_bucket = launch.probe_timings(build_spec(stack, {}))
    hub_only = launch.probe_timings(build_spec(stack, {"vllm:weightCache": "hub"}))
    assert with_bucket.startup_seconds == hub_only.startup_seconds
    assert hub_only.cached_startup_seconds == hub_only.startup_seconds  # every replica downloads


def test_the_budget_is_computed_from_the_paths_rates():
    spec = build_spec("aws-h100", {"vllm:modelSizeGb": "100"})
    first, later = launch.cold_starts(spec)
    disk, bucket = later.storage, rates.bucket_to_vm("p5.48xlarge").expected_mbps
    assert first.fetch_seconds == math.ceil(100 * 1000 / min(rates.HUB.expected_mbps, disk.write_mbps))
    assert later.fetch_seconds == math.ceil(100 * 1000 / min(bucket, disk.write_mbps))
    load = min(disk.read_mbps, rates.SAFETENSORS_LOAD.expected_mbps)
    assert later.read_seconds == first.read_seconds == math.ceil(100 * 1000 / load)
    assert (
        first.fill_seconds == math.ceil(100 * 1000 / min(bucket, disk.read_mbps)) and later.fill_seconds == 0
    )
    pulled = later.pull_overlap_seconds  # the image's pull beside the copy
    assert later.total_seconds == later.fixed_seconds + later.fetch_seconds + later.read_seconds - pulled


def test_the_hub_path_on_a_network_disk_is_bound_by_the_slower_of_the_hub_and_the_disk():
    config = {"vllm:cloud": "aws", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}
    spec = build_spec("l4", {**config, "vllm:modelSizeGb": "20", "vllm:weightCache": "hub"})
    assert spec.offering.machine_type == "g6.xlarge"  # no instance store: gp3 at 1,000 MiB/s
    timings = launch.probe_timings(spec)  # the budget: every rate at its slowest
    gp3 = rates.gp3(1000, spec.disk_size_gb)
    fetch = math.ceil(20 * 1000 / min(rates.HUB.slowest_mbps, gp3.write.slowest_mbps))
    read = math.ceil(20 * 1000 / min(gp3.read.slowest_mbps, rates.SAFETENSORS_LOAD.slowest_mbps))
    assert timings.startup_seconds == timings.fixed_seconds + fetch + read


def test_a_waiter_waits_for_the_fill_but_never_longer_than_its_health_agent_lets_it():
    spec = build_spec("gcp-h100", {"vllm:modelSizeGb": "500"})
    timings = launch.probe_timings(spec)
    env = vm.weight_cache_env(spec, launch_spec(spec, True))
    loading = timings.startup_seconds - timings.fixed_seconds  # the Hub path past the fixed start
    assert timings.fill_seconds >= loading  # the upload lasts at least as long as the read from local NVMe
    assert int(env["WEIGHT_CACHE_WAIT_SECONDS"]) == loading
    assert int(env["WEIGHT_CACHE_LOCK_SECONDS"]) == 2 * timings.fill_seconds


def test_a_follower_compares_the_fill_with_its_own_hub_download_at_the_expected_rates():
    spec = build_spec("gcp-l4", {"vllm:modelSizeGb": "20"})
    env = vm.weight_cache_env(spec, launch_spec(spec, True))
    first, later = launch.cold_starts(spec, launch.BUCKET)
    assert int(env["WEIGHT_CACHE_SIZE_BYTES"]) == 20 * 10**9
    # g2-standard-4's pd-balanced boot disk (205 MB/s) is slower than the Hub: it bounds both paths
    assert (
        int(env["WEIGHT_CACHE_HUB_MBPS"]) == first.fetch_mbps == rates.gcp_balanced_disk("pd", 200).write_mbps
    )
    assert int(env["WEIGHT_CACHE_BUCKET_MBPS"]) == later.fetch_mbps
    assert int(env["WEIGHT_CACHE_HUB_DOWNLOADERS"]) == launch.MAX_HUB_DOWNLOADERS


@pytest.mark.parametrize("role", ["ray-head", "ray-worker"])
def test_ray_nodes_do_not_wait_for_another_fill(role):
    spec = build_spec("gcp-h100-multinode", {})
    assert vm.weight_cache_env(spec, launch_spec(spec, True), role)["WEIGHT_CACHE_WAIT_SECONDS"] == "0"


def test_the_shipped_script_is_the_source_without_comment_lines():
    shipped = vm.shipped("weight_cache.sh")
    assert shipped.startswith("#!/usr/bin/env bash\n")
    assert not [line for line in shipped.splitlines()[1:] if line.lstrip().startswith("#")]
    result = subprocess.run(["bash", "-n"], input=shipped, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


# --- the health agent and the path the weights take -------------------------------------------------------


@pytest.mark.parametrize("path", ["wait", "hub", "bucket", "local"])
def test_the_agent_reads_the_path_weight_cache_sh_chose_and_when(tmp_path, path):
    path_file = tmp_path / "weight-path"
    path_file.write_text(f"{path}\n")
    options = argparse.Namespace(weight_path_file=str(path_file))
    assert health_agent.weight_path(options) == (path, path_file.stat().st_mtime)


def test_before_weight_cache_sh_chose_a_path_the_agent_reads_none(tmp_path):
    options = argparse.Namespace(weight_path_file=str(tmp_path / "weight-path"))
    assert health_agent.weight_path(options) == ("", None)


def test_a_replica_that_turns_to_the_hub_after_waiting_gets_the_weights_cap_from_then():
    caps = {"start": 600.0, "weights": 1000.0, "load": 600.0}
    judge = health_agent.Judge("serve", caps, 600.0, max_failed_starts=3, started=0.0)
    seen = {"container_started_at": None, "unit_restarts": 0, "ready": False, "downloading": True}
    waiting = health_agent.Observation(now=100.0, fetch_started_at=100.0, waiting=True, **seen)
    assert judge.judge(waiting).healthy
    for now in (900.0, 1200.0, 1500.0):  # its own download from 900 s on, bytes arriving
        verdict = judge.judge(
            health_agent.Observation(now=now, fetch_started_at=900.0, weight_bytes=int(now) << 30, **seen)
        )
        assert verdict.healthy, verdict.reason
    late = health_agent.Observation(now=1901.0, fetch_started_at=900.0, weight_bytes=1901 << 30, **seen)
    assert not judge.judge(late).healthy


# --- local NVMe ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "config", "disks"),
    [
        ("gcp-h100", {}, 16),  # a3-highgpu-8g: 16 local SSDs
        ("aws-h100", {}, 8),  # p5.48xlarge: 8 instance store volumes
        ("g6e", {"vllm:cloud": "aws", "vllm:gpu": "L40S:1", "vllm:model": "Qwen/Qwen3-8B"}, 1),
    ],
)
def test_machines_with_local_nvme_keep_the_weights_there(stack, config, disks):
    spec = build_spec(stack, config)
    storage = launch.cold_starts(spec)[0].storage
    assert storage.local and f"({disks} x" in storage.name
    assert vm.has_local_nvme(spec)


@pytest.mark.parametrize(("cloud", "gpu"), [("gcp", "L4:1"), ("aws", "L4:1"), ("gcp", "A100:8")])
def test_machines_without_local_nvme_keep_the_boot_disk(cloud, gpu):
    spec = build_spec("plain", {"vllm:cloud": cloud, "vllm:gpu": gpu, "vllm:model": "Qwen/Qwen3-8B"})
    assert not launch.cold_starts(spec)[0].storage.local and not vm.has_local_nvme(spec)
    serving = launch_spec(spec, True)
    script = bootstrap_script(
        spec, serving, api_key_secret="k", hf_token_secret=None, health_report=health_report(spec, serving)
    )
    assert script_value(script, "LOCAL_NVME") == "''" and "local_nvme.sh" not in vm.scripts_in(script)


def test_local_nvme_lets_the_largest_b200_model_fit_a_gcp_rolling_update():
    from components.gcp.machine import MAX_ROLL_WAIT_SECONDS

    config = {"vllm:cloud": "gcp", "vllm:model": MODEL, "vllm:gpu": "B200:8", "vllm:spot": True}
    spec = build_spec("b200", {**config, "vllm:modelSizeGb": "1280", "vllm:diskSizeGb": "1400"})
    # a roll waits for the estimate: 7000 s on the boot disk
    assert launch.probe_timings(spec).expected_startup_seconds <= MAX_ROLL_WAIT_SECONDS


def test_the_unit_mounts_the_local_nvme_before_every_start(sandbox):  # noqa: F811
    script = rendered_with_cache()
    assert script_value(script, "LOCAL_NVME") == "1" and "local_nvme.sh" in vm.scripts_in(script)
    assert run_script(script, sandbox, "boot").returncode == 0
    unit = Path(sandbox["VLLM_UNIT_FILE"]).read_text()
    install = sandbox["VLLM_INSTALL_DIR"]
    assert unit.index(f"{install}/vm_bootstrap.sh disks") < unit.index(f"{install}/vm_bootstrap.sh run")
    assert (Path(install) / "local_nvme.sh").read_text() == vm.shipped("local_nvme.sh")


# --- the policy pack -------------------------------------------------------------------------------------


def test_the_policy_pack_finds_the_stacks_buckets_private(gcp, aws):
    for run in (gcp, aws):
        for resource in run.resources:
            assert policy_validators.bucket_violations(resource.type, resource.inputs) == [], resource.name


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (GCS_BUCKET, {"uniformBucketLevelAccess": True, "publicAccessPrevention": "inherited"}),
        (GCS_BUCKET, {"uniformBucketLevelAccess": False, "publicAccessPrevention": "enforced"}),
        (
            "gcp:storage/bucketIAMMember:BucketIAMMember",
            {"role": "roles/storage.objectViewer", "member": "allUsers"},
        ),
        ("gcp:storage/bucketIAMBinding:BucketIAMBinding", {"members": ["allAuthenticatedUsers"]}),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            {
                "blockPublicAcls": True,
                "blockPublicPolicy": False,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
        ),
    ],
)
def test_the_policy_pack_refuses_a_bucket_made_public(resource_type, props):
    assert policy_validators.bucket_violations(resource_type, props) != []


# --- the boot disk on local NVMe machines ----------------------------------------------------------------


def gcp_boot_disk_gb(run: Run) -> int:
    return run.one(TEMPLATE).inputs["disks"][0]["diskSizeGb"]


def aws_root_volume_gb(run: Run) -> int:
    return run.one(LAUNCH_TEMPLATE).inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"]


def test_gcp_nvme_presets_boot_disk_is_the_images_not_the_weights(gcp):
    assert vm.has_local_nvme(build_spec("gcp-h100", {}))
    # 422 GB of weights go on the local SSDs; the disk is the image's (tests/test_boot_disk.py)
    assert gcp_boot_disk_gb(gcp) == gcp_fakes.BOOT_IMAGE_DISK_GB + BOOT_DISK_KEPT_GB


def test_aws_nvme_presets_root_volume_is_the_amis_not_the_weights(aws):
    assert vm.has_local_nvme(build_spec("aws-h100", {}))
    assert aws_root_volume_gb(aws) == aws_fakes.DLAMI_ROOT_SNAPSHOT_GB + BOOT_DISK_KEPT_GB


def test_a_disk_size_the_user_sets_still_wins_on_local_nvme():
    run = run_program("aws-h100", {"vllm:diskSizeGb": "120"}, secrets=SECRETS)
    assert aws_root_volume_gb(run) == 120


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_on_local_nvme_a_boot_disk_smaller_than_the_weights_is_accepted(stack):
    assert build_spec(stack, {"vllm:modelSizeGb": "422", "vllm:diskSizeGb": "60"}).disk_size_gb == 60


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_on_local_nvme_the_boot_disk_still_holds_the_os_and_the_image(stack):
    with pytest.raises(SpecError) as refused:
        build_spec(stack, {"vllm:diskSizeGb": "25"})
    assert refused.value.key == "vllm:diskSizeGb" and "local NVMe" in refused.value.valid


@pytest.mark.parametrize(("cloud", "gpu"), [("gcp", "A100:8"), ("aws", "L4:1")])
def test_without_local_nvme_the_boot_disk_must_hold_the_weights(cloud, gpu):
    config = {"vllm:cloud": cloud, "vllm:gpu": gpu, "vllm:model": "Qwen/Qwen3-8B", "vllm:modelSizeGb": "16"}
    with pytest.raises(SpecError) as refused:
        build_spec("plain", {**config, "vllm:diskSizeGb": "40"})
    assert refused.value.key == "vllm:diskSizeGb" and ">= 46" in refused.value.valid


def test_without_local_nvme_the_declared_boot_disk_keeps_its_size():
    config = {"vllm:cloud": "gcp", "gcp:project": "p", "vllm:gpu": "L4:1", "vllm:model": "Qwen/Qwen3-8B"}
    assert gcp_boot_disk_gb(run_program("plain", config, secrets=SECRETS)) == DEFAULT_DISK_SIZE_GB
