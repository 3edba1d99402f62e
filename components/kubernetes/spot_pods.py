"""Spot pods on Kubernetes: the cluster's spot nodes for the replicas above the on-demand base.

A pod cannot ask for spot capacity itself; the nodes say what they are, and the pod's node affinity picks
them. Two labelling schemes say it (``vllm:gpuNodeSelector``):

- ``gke``: GKE labels its Spot VM nodes ``cloud.google.com/gke-spot: "true"`` and on-demand nodes not at
  all (GKE "Spot VMs": select them with that label, e.g. a nodeSelector ``cloud.google.com/gke-spot:
  "true"``, as in Google's gke-cost-optimization sample ``spot-deployment-example.yaml``); on-demand pods
  require the label to be absent. Spot node pools that a team tainted ``cloud.google.com/gke-spot=true:
  NoSchedule`` admit spot pods through the matching toleration.
- ``karpenter``: Karpenter labels every node it launches ``karpenter.sh/capacity-type`` = ``spot`` or
  ``on-demand`` (a well-known label; a NodePool's requirements name the same key, e.g.
  aws/karpenter-provider-aws ``examples/v1beta1/spot.yaml``), so a pod requiring either value gets a node
  of that kind, launched for it when the NodePool allows that capacity type.

The on-demand base and the spot rest are two Deployments (a Deployment's pods share one template, so one
affinity), each selecting its own pods by ``CAPACITY_LABEL``; the Service selects both. A stack without
``vllm:spot`` carries no capacity constraint at all: its pods go wherever the cluster puts them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from components.replica_shares import fixed_base_replicas, share_scaling
from components.service_spec import ServiceSpec

GKE_SPOT = "cloud.google.com/gke-spot"
KARPENTER_CAPACITY_TYPE = "karpenter.sh/capacity-type"
#: The pod label that tells the two Deployments' pods apart (their selectors must not overlap).
CAPACITY_LABEL = "vllm.ai/capacity-type"
SPOT, ON_DEMAND = "spot", "on-demand"


def capacity_type(spec: ServiceSpec) -> str | None:
    """The capacity a group's pods need: spot, on-demand (the base of a spot stack, which the group sees as
    a spec with ``spot`` off and the base still set), or None (no constraint)."""
    if spec.spot:
        return SPOT
    return ON_DEMAND if spec.on_demand_base_replicas else None


def node_expression(scheme: str, capacity: str) -> dict[str, Any]:
    """The node selector requirement for ``capacity`` under a labelling scheme (gke or karpenter)."""
    if scheme == "gke":
        if capacity == SPOT:
            return {"key": GKE_SPOT, "operator": "In", "values": ["true"]}
        return {"key": GKE_SPOT, "operator": "DoesNotExist"}
    return {"key": KARPENTER_CAPACITY_TYPE, "operator": "In", "values": [capacity]}


def constrain(pod: dict[str, Any], scheme: str, capacity: str | None) -> dict[str, Any]:
    """``pod`` with its required node affinity narrowed to ``capacity`` nodes (every term gets the
    requirement, since terms are ORed), and the GKE spot toleration for spot pods."""
    if capacity is None:
        return pod
    expression = node_expression(scheme, capacity)
    affinity = pod.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.setdefault("nodeSelectorTerms", [{"matchExpressions": []}])
    for term in terms:
        term.setdefault("matchExpressions", []).append(expression)
    if scheme == "gke" and capacity == SPOT:
        toleration = {"key": GKE_SPOT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        pod["tolerations"] = [*pod.get("tolerations", []), toleration]
    return pod


@dataclass(frozen=True)
class ServingGroup:
    """One Deployment of single-node replicas: the whole stack, or its on-demand base or spot rest."""

    name: str  # its component's and its Deployment's name
    spec: ServiceSpec  # the stack's spec as the group sees it (its replicas and purchase option)
    labels: dict[str, str] | None  # what its selector adds (None: the stack's selector alone)


def serving_groups(spec: ServiceSpec) -> list[ServingGroup]:
    """One Deployment of a revision, named as it always was (slot 2's: ``<name>-rev2``), unless a spot stack
    keeps an on-demand base: then the base keeps that name and the spot rest is ``<name>-spot`` (a base of
    every replica has no spot group).

    With autoscaling the base is fixed (``autoscaling`` None: it declares its count) and the spot rest is
    what KEDA scales, between the bounds less the base; it exists even when the lower bound is the base
    (the spec keeps the base below ``vllm:maxReplicas``), as it may then be scaled to zero."""
    name = spec.name + spec.revision_suffix  # each revision's by its slot (pods.slot_name)
    base = fixed_base_replicas(spec)
    if not base:
        return [ServingGroup(name, spec, None)]
    on_demand = replace(spec, spot=False, replicas=base, autoscaling=None)
    groups = [ServingGroup(name, on_demand, {CAPACITY_LABEL: ON_DEMAND})]
    if spec.replicas > base or spec.autoscaling is not None:
        rest = replace(
            spec, replicas=spec.replicas - base, autoscaling=share_scaling(spec, spec.region, spot=True)
        )
        groups.append(ServingGroup(f"{name}-spot", rest, {CAPACITY_LABEL: SPOT}))
    return groups


def start_replicas(spec: ServiceSpec) -> int:
    """The count a workload is created with: its fixed count, or the autoscaler's lower bound.

    A scaled workload declares its start too: without ``replicas`` the API server defaults it to 1
    (Deployment and LeaderWorkerSet alike), which is not the bound KEDA starts from, and the first ``up``
    waits for that one pod (on spot, one that may never be scheduled). At least 1 when nothing else serves
    (no on-demand base), so that the first ``up`` proves a replica loads and serves (the workload's await);
    KEDA takes a workload whose lower bound is 0 down once idle for the cooldown."""
    policy = spec.autoscaling
    if policy is None:
        return spec.replicas
    return max(policy.min_replicas, 0 if fixed_base_replicas(spec) else 1)


#: With an autoscaler, the count is the HPA's after create. pulumi-kubernetes' server-side apply keeps an
#: ignored field as it is live (``handleSSAIgnoreFields``, provider/pkg/await/await.go: dropped from the
#: apply when another manager, the HPA's scale subresource writes, owns it, else sent at its live value), so
#: neither an update nor switching a running stack to autoscaling (the field Pulumi owned at its fixed count
#: is otherwise dropped from the apply, and the API server resets it to 1 before the HPA acts) moves it.
SCALED_REPLICAS = "spec.replicas"


def scaled_options(spec: ServiceSpec) -> list[str]:
    """``ignore_changes`` of a workload: its replica count when an autoscaler owns it."""
    return [SCALED_REPLICAS] if spec.autoscaling is not None else []


#: pulumi-kubernetes skips its readiness wait for an object so annotated (``metadata.SkipAwaitLogic``).
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def best_effort(spec: ServiceSpec) -> bool:
    """Spot pods beside an on-demand base: ``up`` does not wait for them. The base (awaited) is what makes
    the service serve; spot capacity comes when the cloud has it, possibly never, and an ``up`` that
    waited would fail at its timeout before creating the ScaledObject that may scale them to 0."""
    return spec.spot and fixed_base_replicas(spec) > 0
