"""Quota preflight at ``up``: the GPU quotas a stack needs, read from the Cloud Quotas API before any VM.

A new project has ``GPUS_ALL_REGIONS`` and its per-GPU quotas at 0 (platform-rules.md); a group short of
quota keeps retrying its creates, and ``up`` waits for it until its timeout (hours for a large model). So the
program reads the project's Compute Engine quotas (``gcp.cloudquota.get_s_quota_infos``, Cloud Quotas API
``quotaInfos.list``) and refuses in one line, before the stack's provider exists: which quota, where, its
value, what the stack needs at its peak (every group at ``vllm:maxReplicas`` plus a rollout's surge VMs),
and how to request more. The value is the project's limit; what other workloads use of it is not known
here, so a limit that covers the stack can still be short at run time.

Compute Engine holds a GPU model's quota in one of two forms (Cloud Quotas quota ids): a per-model quota
``NVIDIA-L4-GPUS-per-project-region``, or, for the newer models, ``GPUS-PER-GPU-FAMILY-per-project-region``
with a ``gpu_family`` dimension (``NVIDIA_H100``); Spot VMs draw on the ``PREEMPTIBLE-`` form of either, and
every GPU VM on ``GPUS-ALL-REGIONS-per-project``. A quota the project does not list (an older API, a model
under another name) is not checked rather than guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pulumi

from components import replica_shares
from components.gcp.machine import reservation_affinity
from components.gcp.regions import serving_groups, serving_zones
from components.service_spec import ServiceSpec

#: Every GPU VM of the project counts here, whatever its region and model.
ALL_REGIONS_QUOTA_ID = "GPUS-ALL-REGIONS-per-project"
FAMILY_QUOTA_ID = "GPUS-PER-GPU-FAMILY-per-project-region"
SPOT_PREFIX = "PREEMPTIBLE-"


@dataclass(frozen=True, kw_only=True)
class QuotaNeed:
    """GPUs the stack needs at its peak of one quota, in one region (None: across regions)."""

    metric: str  # as the console names it: NVIDIA_L4_GPUS, PREEMPTIBLE_NVIDIA_L4_GPUS, GPUS_ALL_REGIONS
    quota_ids: tuple[str, ...]  # the Cloud Quotas ids that may hold it, in the order they are looked up
    region: str | None
    gpu_family: str | None  # the gpu_family dimension of FAMILY_QUOTA_ID
    need: int
    why: str  # how the need adds up

    def where(self) -> str:
        return self.region or "all regions"


def gpu_quota_needs(spec: ServiceSpec) -> list[QuotaNeed]:
    """The GPU quotas the stack draws on, each at its peak: every group at its largest size (its share of
    ``vllm:maxReplicas``) plus the VMs a rollout adds (one per zone; none for a group that consumes a
    reservation or a Ray group, which replace in place), on-demand and Spot apart, per region; with
    ``vllm:canary``, both revisions' groups together (they run side by side)."""
    merged: dict[tuple, QuotaNeed] = {}
    for revision in spec.revisions:
        for need in _revision_needs(revision):
            key = (need.metric, need.quota_ids, need.region, need.gpu_family)
            if key in merged:
                known = merged[key]
                why = f"{known.why}; revision {revision.revision}: {need.why}"
                need = replace(known, need=known.need + need.need, why=why)
            merged[key] = need
    return list(merged.values())


def _revision_needs(spec: ServiceSpec) -> list[QuotaNeed]:
    if spec.gpu is None:
        return []
    gpus = spec.gpu.count
    parts: dict[tuple[str, bool], list[str]] = defaultdict(list)
    vms: dict[tuple[str, bool], int] = defaultdict(int)
    if spec.nodes == 1:
        for group in serving_groups(spec):
            group_spec = group.spec(spec)
            surge = 0 if reservation_affinity(group_spec) else len(serving_zones(spec, group.share.region))
            key = (group_spec.region or "", group_spec.spot)
            vms[key] += group_spec.max_replicas + surge
            parts[key].append(f"{group_spec.max_replicas} + {surge} rollout surge")
    else:
        for index in range(spec.replicas):
            key = (spec.region or "", replica_shares.ray_replica_spec(spec, index).spot)
            vms[key] += spec.nodes
            parts[key].append(f"a Ray group of {spec.nodes}")
    model = spec.gpu.type.upper()
    needs = []
    counts = {key: count * gpus for key, count in vms.items()}
    for (region, spot), need in counts.items():
        prefix = SPOT_PREFIX if spot else ""
        needs.append(
            QuotaNeed(
                metric=f"{prefix.replace('-', '_')}NVIDIA_{model.replace('-', '_')}_GPUS",
                quota_ids=(f"{prefix}NVIDIA-{model}-GPUS-per-project-region", f"{prefix}{FAMILY_QUOTA_ID}"),
                region=region,
                gpu_family=f"NVIDIA_{model.replace('-', '_')}",
                need=need,
                why=f"{vms[(region, spot)]} VMs x {gpus} GPUs: {'; '.join(parts[(region, spot)])}",
            )
        )
    total = sum(counts.values())
    needs.append(
        QuotaNeed(
            metric="GPUS_ALL_REGIONS",
            quota_ids=(ALL_REGIONS_QUOTA_ID,),
            region=None,
            gpu_family=None,
            need=total,
            why=f"{sum(vms.values())} VMs x {gpus} GPUs, every group at its peak",
        )
    )
    return needs


class QuotaError(pulumi.RunError):
    """The project's quota cannot hold the stack: one line, like SpecError, before any VM is declared."""


def quota_limit(need: QuotaNeed, quota_infos: Sequence[Mapping[str, Any]]) -> tuple[str, int] | None:
    """(quota id, value) of the project's limit for ``need``, or None when the project lists no such quota.
    ``quota_infos`` as the data source gives them (its output types are mappings of snake-case fields). A
    quota's dimensions infos come most specific first (the API's order), and one without a dimension
    applies to every value of it that has no info of its own."""
    by_id = {info.get("quota_id"): info for info in quota_infos}
    for quota_id in need.quota_ids:
        info = by_id.get(quota_id)
        if info is None:
            continue
        for dimensions_info in info.get("dimensions_infos") or []:
            dimensions = dict(dimensions_info.get("dimensions") or {})
            if (
                quota_id.endswith(FAMILY_QUOTA_ID)
                and dimensions.get("gpu_family", need.gpu_family) != need.gpu_family
            ):
                continue
            if need.region is not None and dimensions.get("region", need.region) != need.region:
                continue
            locations = list(dimensions_info.get("applicable_locations") or [])
            if need.region is not None and locations and need.region not in locations:
                continue
            details = dimensions_info.get("details") or []
            if details:
                return quota_id, int(details[0]["value"])
    return None


def check_quotas(needs: Sequence[QuotaNeed], quota_infos: Sequence[Mapping[str, Any]], project: str) -> None:
    """Raise QuotaError for the first quota whose value is below what the stack needs (-1 is unlimited)."""
    for need in needs:
        found = quota_limit(need, quota_infos)
        if found is None:
            continue
        quota_id, value = found
        if 0 <= value < need.need:
            dimensions = f"region={need.region}," if need.region else ""
            if quota_id.endswith(FAMILY_QUOTA_ID):
                dimensions += f"gpu_family={need.gpu_family},"
            raise QuotaError(
                f"GCP quota {need.metric} ({quota_id}) in {need.where()} of project {project} is {value}; "
                f"the stack needs {need.need} ({need.why}): request more with gcloud beta quotas "
                f"preferences create --service=compute.googleapis.com --quota-id={quota_id} "
                f"--preferred-value={need.need} "
                + (f"--dimensions={dimensions.rstrip(',')} " if dimensions else "")
                + f"--project={project} (or IAM & Admin > Quotas in the console), or lower vllm:maxReplicas"
            )


def describe(needs: Sequence[QuotaNeed]) -> list[str]:
    """What ``up`` checks, one line per quota: for ``tools.plan``, which reads no quota itself."""
    return [f"{need.metric} in {need.where()}: >= {need.need} ({need.why})" for need in needs]
