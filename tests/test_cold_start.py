"""The start-time model: one cited table of rates (components/rates.py), the estimate and the budget it
gives each cache path (components/launch.py), and docs/cold-start.md's tables printed from it."""

from __future__ import annotations

import math

import pytest

from components import launch, rates
from components.rates import Basis, Rate, Step
from components.spec import build_spec
from tests.test_kubernetes_cache_claim import CONFIG as CLAIM_STACK
from tools import cold_start
from tools.mockrun import ROOT

GCP_H100 = {"vllm:cloud": "gcp", "vllm:gpu": "H100:8", "vllm:model": "meta-llama/Llama-3.1-70B-Instruct"}


def every_entry() -> list[Rate | Step]:
    entries = [value for value in vars(rates).values() if isinstance(value, Rate | Step)]
    for storage in (rates.SHARED_CLAIM, rates.NETWORK_VOLUME, rates.gcp_local_ssd(16), rates.gp3(1000, 200)):
        entries += [storage.read, storage.write]
    return [*entries, rates.ec2_instance_store(8, 3840).read, rates.image_pull()]


@pytest.mark.parametrize("entry", every_entry(), ids=lambda entry: entry.source[:40])
def test_every_rate_and_step_says_where_it_comes_from(entry):
    assert isinstance(entry.basis, Basis) and len(entry.source) > 20


@pytest.mark.parametrize("entry", every_entry(), ids=lambda entry: entry.source[:40])
def test_the_slowest_figure_is_never_faster_than_the_expected_one(entry):
    if isinstance(entry, Rate):
        assert 0 < entry.slowest_mbps <= entry.expected_mbps
    else:
        assert 0 < entry.expected_seconds <= entry.slowest_seconds


def test_one_gcp_local_ssd_reads_660_mibps_over_nvme_and_16_read_6240():
    assert rates.gcp_local_ssd(1).read.expected_mbps == int(660 * rates.MIB)
    assert rates.gcp_local_ssd(16).read.expected_mbps == int(6240 * rates.MIB)
    assert rates.gcp_local_ssd(8).write.expected_mbps == int(1400 * rates.MIB)  # 4-8 disks share a limit


def test_a_200_gb_balanced_boot_disk_moves_about_190_mibps():
    disk = rates.gcp_balanced_disk("pd-balanced", 200)
    assert disk.read.expected_mbps == disk.write.expected_mbps == int(196 * rates.MIB)


def test_the_bucket_reaches_a_small_machine_at_its_nics_rate():
    assert rates.bucket_to_vm("g2-standard-4").expected_mbps == 1250
    assert rates.bucket_to_vm("a3-highgpu-8g") == rates.BUCKET


def test_the_budget_of_every_path_is_at_least_its_estimate():
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "141"})
    for path in launch.paths(spec):
        for estimate, budget in zip(
            launch.cold_starts(spec, path), launch.cold_starts(spec, path, slowest=True), strict=True
        ):
            assert budget.total_seconds >= estimate.total_seconds


def test_a_slow_hub_at_150_mbps_stays_within_the_budget_of_a_400_gb_model():
    """Issue 28: a Hub at 150 MB/s was declared broken at 2,310 s; the budget now assumes 100 MB/s."""
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "400", "vllm:weightCache": "hub"})
    assert launch.health_caps(spec).weights >= math.ceil(400 * 1000 / 150)


def test_the_hub_path_of_a_bucket_stack_is_the_first_replicas_path():
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "141"})
    first, later = launch.cold_starts(spec)
    hub, _ = launch.cold_starts(spec, launch.HUB)
    assert first.total_seconds == hub.total_seconds > later.total_seconds


@pytest.mark.parametrize("replicas", [2, launch.MAX_HUB_DOWNLOADERS])
def test_followers_within_the_hub_slots_start_as_fast_as_the_first_replica(replicas):
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "141"})
    first, _ = launch.cold_starts(spec, launch.BUCKET)
    assert launch.at_once(spec, launch.BUCKET, replicas) == first.total_seconds


def test_followers_past_the_hub_slots_wait_for_the_fill_and_copy_it():
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "141"})
    first, later = launch.cold_starts(spec, launch.BUCKET)
    at_once = launch.at_once(spec, launch.BUCKET, launch.MAX_HUB_DOWNLOADERS + 1)
    assert at_once == first.total_seconds + first.fill_seconds + later.fetch_seconds


def test_pods_reading_a_shared_claim_at_once_share_its_rate():
    spec = build_spec("shared-test", CLAIM_STACK)
    first, later = launch.cold_starts(spec, launch.SHARED)
    assert launch.at_once(spec, launch.SHARED, 3) == first.total_seconds + 2 * later.read_seconds


def test_time_to_ready_exports_the_estimate_the_budget_and_every_path():
    spec = build_spec("b", {**GCP_H100, "vllm:modelSizeGb": "141", "vllm:replicas": "6"})
    ready = launch.time_to_ready(spec)
    assert ready["firstReplica"]["seconds"] < ready["budget"]["firstReplica"]["seconds"]
    assert [path["path"] for path in ready["paths"]] == [launch.BUCKET, launch.HUB]
    assert ready["replicasAtOnce"] == 6
    assert ready["budget"]["phaseCapSeconds"] == launch.health_caps(spec).as_output()
    assert ready["budget"]["stallSeconds"] == launch.STALL_SECONDS


def test_the_cold_start_page_prints_the_table_and_the_goal_from_the_rates():
    assert cold_start.render() in (ROOT / "docs" / "cold-start.md").read_text(), (
        "run: python -m tools.cold_start"
    )


def test_the_goal_is_modelled_on_both_machines_named_in_the_issue():
    text = cold_start.render()
    assert "| Step | a3-highgpu-8g | p5.48xlarge | Basis |" in text


# --- a later replica: vLLM's compile cache, and the image pulled beside the bucket copy ---------------------

H100_141 = {**GCP_H100, "vllm:modelSizeGb": "141"}


def test_a_later_replica_with_the_bucket_compiles_from_the_cache_the_first_saved():
    first, later = launch.cold_starts(build_spec("b", H100_141), launch.BUCKET)
    assert first.compile_cache_seconds == 0  # the first compiles, then saves
    saved = rates.TORCH_COMPILE.expected_seconds - rates.TORCH_COMPILE_FROM_CACHE.expected_seconds
    assert later.compile_cache_seconds > 0
    assert later.start_seconds == first.start_seconds - saved + later.compile_cache_seconds


def test_a_later_replicas_budget_still_allows_a_whole_compilation_for_a_cache_miss():
    first, later = launch.cold_starts(build_spec("b", H100_141), launch.BUCKET, slowest=True)
    assert later.start_seconds == first.start_seconds + later.compile_cache_seconds


def test_the_compile_caches_restore_reads_its_size_from_the_bucket_beside_the_clis_calls():
    _, later = launch.cold_starts(build_spec("b", H100_141), launch.BUCKET)
    size_mb = rates.COMPILE_CACHE_GB_PER_GPU * 8 * 1000
    restore = rates.COMPILE_CACHE_RESTORE.expected_seconds + math.ceil(size_mb / rates.BUCKET.expected_mbps)
    assert later.compile_cache_seconds == restore


def test_a_streaming_replica_restores_the_compile_cache_too():
    spec = build_spec("b", {**H100_141, "vllm:weightCache": "stream"})
    _, later = launch.cold_starts(spec, launch.BUCKET)
    assert later.path == "bucket, streamed" and later.compile_cache_seconds > 0


def test_a_ray_groups_nodes_on_vms_compile_at_every_start():
    """components/vm.py ships compile_cache.sh to single-node replicas only."""
    spec = build_spec("b", {"vllm:preset": "gcp-h100-multinode", "vllm:modelSizeGb": "400"})
    first, later = launch.cold_starts(spec, launch.BUCKET)
    assert later.compile_cache_seconds == 0 and later.start_seconds == first.start_seconds


def test_a_later_pod_reads_the_compiled_code_from_the_shared_claim():
    spec = build_spec("shared-test", CLAIM_STACK)
    first, later = launch.cold_starts(spec, launch.SHARED)
    claim_read = math.ceil(
        rates.COMPILE_CACHE_GB_PER_GPU * spec.gpus_per_replica * 1000 / rates.SHARED_CLAIM.read.expected_mbps
    )
    assert first.compile_cache_seconds == 0 and later.compile_cache_seconds == claim_read
    assert later.start_seconds < first.start_seconds


def test_only_a_copy_from_the_bucket_runs_beside_the_image_pull():
    """A Hub download runs in the image (weight_cache.sh's hf, or vLLM itself), and a streaming replica asks
    the image for its streamer before it chooses to stream: only the bucket copy needs no image."""
    spec = build_spec("b", H100_141)
    first, later = launch.cold_starts(spec, launch.BUCKET)
    hub, _ = launch.cold_starts(spec, launch.HUB)
    _, streamed = launch.cold_starts(build_spec("b", {**H100_141, "vllm:weightCache": "stream"}))
    assert first.pull_overlap_seconds == hub.pull_overlap_seconds == streamed.pull_overlap_seconds == 0
    pull = rates.image_pull().expected_seconds
    assert later.pull_overlap_seconds == min(pull, later.fetch_seconds)


def test_the_pull_and_the_copy_beside_it_share_the_nodes_disk():
    """On a pd-balanced boot disk both write at the disk's rate: together no sooner than all their bytes
    at that rate, whatever each source could give."""
    spec = build_spec("b", {"vllm:preset": "gcp-l4"})
    _, later = launch.cold_starts(spec, launch.BUCKET)
    pull = rates.image_pull().expected_seconds
    together = pull + later.fetch_seconds - later.pull_overlap_seconds
    disk = later.storage.write.expected_mbps
    assert not later.storage.local
    assert together == math.ceil((later.weights_gb + rates.VLLM_IMAGE_GB) * 1000 / disk)


def test_the_goal_tables_steps_add_up_to_the_modelled_total():
    table = [line for line in cold_start.goal() if line.startswith("| ") and "---" not in line][1:]
    *steps, total = ([cell.strip() for cell in line.strip("|").split("|")] for line in table)
    for column in (1, 2):
        added = sum(int(step[column].split(" s")[0]) for step in steps)
        assert f"**{added} s**" == total[column]


def test_a_later_70b_replica_is_modelled_within_the_goal_on_both_machines():
    for config in cold_start.GOAL_STACKS:
        _, later = launch.cold_starts(build_spec("goal", config), launch.BUCKET)
        assert later.total_seconds <= cold_start.GOAL_SECONDS
