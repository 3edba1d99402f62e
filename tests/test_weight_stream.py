"""vllm:weightCache stream: vLLM streams the safetensors from the stack's bucket into GPU memory with the
Run:ai model streamer (vLLM 0.33.0: ``--load-format runai_streamer`` with a ``gs://``/``s3://`` model), once
the first replica has filled the bucket from the Hub as with ``bucket``. What the program renders, what the
replicas may do to the bucket, and what it refuses."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from components import launch, model_facts, vm
from components.model_facts import ModelFacts
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_vm_bootstrap import health_report, run_script, sandbox, shellcheck  # noqa: F401 (a fixture)
from tests.test_weight_cache_clouds import (
    GCS_BUCKET,
    LAUNCH_TEMPLATE,
    MODEL,
    S3_BUCKET,
    SECRETS,
    TEMPLATE,
    aws_user_data,
    script_value,
)

STREAM = {"vllm:weightCache": "stream"}
QWEN = "Qwen/Qwen3-8B"


@pytest.fixture(scope="module")
def gcp() -> Run:
    return run_program("gcp-h100", STREAM, secrets=SECRETS)


@pytest.fixture(scope="module")
def aws() -> Run:
    return run_program("aws-h100", STREAM, secrets=SECRETS)


def gcp_script(run: Run) -> str:
    return run.one(TEMPLATE).inputs["metadata"]["startup-script"]


def argv(script: str) -> list[str]:
    return shlex.split(script_value(script, "VLLM_ARGV")[1:-1])


def facts(**overrides) -> ModelFacts:
    values = dict(
        model=QWEN,
        revision="a" * 40,
        gated=False,
        weights_gb=17,
        attention_heads=32,
        kv_heads=8,
        max_context=40960,
        safetensors=True,
    )
    return ModelFacts(**{**values, **overrides})


def spec_with(config: dict, found: ModelFacts | None):
    return build_spec("s", config, lookup=lambda model, token, revision="main": found)


GCP_L4 = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": QWEN, **STREAM}


# --- vLLM's arguments and environment ---------------------------------------------------------------------


def test_vllm_loads_with_the_run_ai_streamer(gcp):
    args = argv(gcp_script(gcp))
    assert args[args.index("--load-format") + 1] == "runai_streamer"


def test_with_several_gpus_each_rank_streams_a_share_and_broadcasts_it(gcp):
    args = argv(gcp_script(gcp))
    assert json.loads(args[args.index("--model-loader-extra-config") + 1]) == {"distributed": True}


def test_one_gpu_streams_without_the_distributed_mode():
    args = launch.vllm_args(build_spec("gcp-l4", STREAM))
    assert "--load-format" in args and "--model-loader-extra-config" not in args


@pytest.mark.parametrize("cache", ["bucket", "hub"])
def test_the_other_weight_caches_keep_vllms_default_loader(cache):
    args = launch.vllm_args(build_spec("gcp-h100", {"vllm:weightCache": cache}))
    assert "--load-format" not in args and "--model-loader-extra-config" not in args


def test_the_boot_script_streams_from_the_files_the_bucket_holds(gcp):
    script = gcp_script(gcp)
    url = gcp.one(GCS_BUCKET).outputs["url"]
    assert script_value(script, "WEIGHT_STREAM_URL") == f"{url}/{MODEL}/main/files"  # offline: main
    assert script_value(script, "WEIGHT_PATH_FILE") == f"${{VLLM_WEIGHT_PATH_FILE:-{vm.WEIGHT_PATH_FILE}}}"
    assert "WEIGHT_CACHE_STREAM=1" in script_value(script, "WEIGHT_CACHE_ENV")
    assert shellcheck(script).returncode == 0


def test_the_s3_streamer_is_told_the_buckets_region(aws):
    script = aws_user_data(aws.one(LAUNCH_TEMPLATE))
    assert script_value(script, "WEIGHT_STREAM_URL").startswith(
        f"s3://{aws.one(S3_BUCKET).outputs['bucket']}/"
    )
    env = shlex.split(script_value(script, "CONTAINER_ENV")[1:-1])
    assert {"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1"} <= set(env)


def test_the_gcs_streamer_gets_no_aws_settings(gcp):
    assert "AWS_" not in script_value(gcp_script(gcp), "CONTAINER_ENV")


@pytest.mark.parametrize("recorded", ["stream", "hub", "bucket", "local"])
def test_vllm_is_pointed_at_the_bucket_only_when_the_weights_are_streamed(sandbox, recorded):  # noqa: F811
    """The rendered script's ``run``, after a weight_cache.sh that recorded ``recorded``: the local model
    path becomes the bucket's on "stream"; a replica that downloaded or copied the files loads its disk."""
    spec = build_spec("gcp-h100", STREAM)
    launch_ = launch.launch_spec(spec, has_hf_token=True)
    url = "gs://vllm-weights-abc"
    text = vm.bootstrap_script(
        spec,
        launch_,
        api_key_secret="k",
        hf_token_secret=None,
        health_report=health_report(spec, launch_),
        weight_cache_url=url,
    )
    tmp = Path(sandbox["TMP"])
    fake = Path(sandbox["VLLM_INSTALL_DIR"]) / "weight_cache.sh"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/usr/bin/env bash\necho {recorded} >"$WEIGHT_CACHE_PATH_FILE"\n')
    fake.chmod(0o755)
    env = {**sandbox, "VLLM_WEIGHT_PATH_FILE": str(tmp / "weight-path")}
    result = run_script(text, env, "run")
    assert result.returncode == 0, result.stderr
    argv_ = (tmp / "docker-argv").read_text().splitlines()
    local = f"/root/.cache/huggingface/{vm.cached_model_dir(spec)}"
    served = argv_[argv_.index("serve") + 1]
    assert served == (vm.weight_stream_url(spec, url) if recorded == "stream" else local)
    assert argv_[argv_.index("--load-format") + 1] == "runai_streamer"


# --- the bucket: filled once, read by every replica ---------------------------------------------------------


def test_gcp_the_replicas_hold_the_bucket_roles_on_that_bucket_alone(gcp):
    """The streamer only reads (objects get and list, both in the grants); the first replica's fill writes."""
    bucket = gcp.one(GCS_BUCKET).outputs["name"]
    grants = gcp.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert {(grant.inputs["bucket"], grant.inputs["role"]) for grant in grants} == {
        (bucket, "roles/storage.objectUser"),
        (bucket, "roles/storage.legacyBucketReader"),
    }
    project_roles = {r.inputs["role"] for r in gcp.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not any("storage" in role for role in project_roles)


def test_aws_the_role_reads_and_lists_that_bucket_and_no_other(aws):
    arn = aws.one(S3_BUCKET).outputs["arn"]
    statements = json.loads(aws.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"]
    s3 = [s for s in statements if "s3:" in json.dumps(s["Action"])]
    reads = {s["Action"]: s["Resource"] for s in s3 if s["Action"] in ("s3:GetObject", "s3:ListBucket")}
    assert reads == {"s3:GetObject": f"{arn}/*", "s3:ListBucket": arn}
    assert all(s["Resource"] in (arn, f"{arn}/*") for s in s3)


# --- budgets ----------------------------------------------------------------------------------------------


def test_a_later_replica_streams_from_the_bucket_without_a_disk_in_between():
    spec = build_spec("gcp-h100", STREAM)
    first, later = launch.cold_starts(spec)
    copied = launch.cold_starts(build_spec("gcp-h100", {"vllm:weightCache": "bucket"}))[1]
    assert first.path == "hub, then fill the bucket" and later.path == "bucket, streamed"
    # no disk write: the weights arrive within vLLM's load, from the bucket at the copy's rate
    assert later.fetch_seconds == 0 and later.read_seconds == copied.fetch_seconds
    assert later.total_seconds < copied.total_seconds


def test_a_streaming_replicas_load_cap_covers_reading_the_weights_from_the_bucket_at_its_slowest():
    """A stream has no weights phase on disk: the weights arrive within vLLM's load, from the bucket, so
    the load phase's cap (what the health agent judges it by) covers that read at the slowest rates."""
    spec = build_spec("gcp-h100", STREAM)
    hub, _ = launch.cold_starts(spec, launch.HUB, slowest=True)
    _, streamed = launch.cold_starts(spec, launch.BUCKET, slowest=True)
    caps = launch.health_caps(spec)
    assert streamed.path == "bucket, streamed" and streamed.fetch_seconds == 0
    assert caps.load >= streamed.start_seconds + streamed.read_seconds
    assert (caps.start, caps.weights) == (hub.prepare_seconds, hub.fetch_seconds)


# --- refusals ---------------------------------------------------------------------------------------------


def test_a_model_without_safetensors_cannot_be_streamed():
    with pytest.raises(SpecError) as refused:
        spec_with(GCP_L4, facts(safetensors=False))
    assert (refused.value.key, refused.value.value) == ("vllm:weightCache", "stream")
    assert refused.value.valid.startswith("bucket or hub") and ".safetensors" in refused.value.valid


def test_a_model_whose_files_are_unknown_is_streamed_and_vllm_judges():
    assert spec_with(GCP_L4, facts(safetensors=None)).weight_cache == "stream"


@pytest.mark.parametrize("flag", ["--load-format", "--model-loader-extra-config"])
def test_extra_args_may_not_change_the_streamers_loader(flag):
    with pytest.raises(SpecError) as refused:
        spec_with({**GCP_L4, "vllm:extraArgs": [flag, "auto" if flag == "--load-format" else "{}"]}, facts())
    assert (refused.value.key, refused.value.value) == ("vllm:extraArgs", flag)


def test_kubernetes_refuses_streaming_and_says_what_to_do_instead():
    with pytest.raises(SpecError) as refused:
        build_spec("k8s-h100", STREAM)
    assert (refused.value.key, refused.value.value) == ("vllm:weightCache", "stream")
    assert "cacheClaim" in refused.value.valid


# --- what the Hub says of the files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "found"),
    [
        (["config.json", "model-00001-of-00002.safetensors"], True),
        (["config.json", "pytorch_model.bin"], False),
        (["config.json", "original/consolidated.safetensors"], False),  # vLLM lists the top level only
    ],
)
def test_the_facts_say_whether_the_commit_has_safetensors(files, found):
    assert model_facts._has_safetensors({"siblings": [{"rfilename": name} for name in files]}) is found


def test_an_answer_without_a_file_list_leaves_it_unknown():
    assert model_facts._has_safetensors({"sha": "a" * 40}) is None


@pytest.mark.parametrize("role", ["ray-head", "ray-worker"])
def test_a_ray_groups_nodes_copy_from_the_bucket_rather_than_stream(role):
    """Each node chooses its path as it boots, and the head's model path is every node's: a head that
    downloaded would send a worker that found the bucket full to a local copy it does not have."""
    spec = build_spec("gcp-h100-multinode", STREAM)
    launch_ = launch.launch_spec(spec, has_hf_token=True)
    script = vm.bootstrap_script(
        spec,
        launch_,
        api_key_secret="k",
        hf_token_secret=None,
        role=role,
        ray_env=vm.ray_env(spec, "10.0.0.2"),
        health_report=health_report(spec, launch_),
        weight_cache_url="gs://vllm-weights-abc",
    )
    assert "WEIGHT_STREAM_URL" not in script  # the serve role's hooks stream, a Ray node's have no stream
    assert "WEIGHT_CACHE_STREAM" not in script_value(script, "WEIGHT_CACHE_ENV")
    assert launch.cold_starts(spec)[1].path == "bucket"
