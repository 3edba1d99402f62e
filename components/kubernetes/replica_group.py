"""Single-node replicas: one Deployment of ``vllm:replicas`` identical vLLM pods and its disruption budget.

Why a Deployment even with a storage class (and not a StatefulSet with volumeClaimTemplates): a single
replica must keep serving through a rollout, so its new pod loads the model *before* the old one stops
(``pods.rolling_update``; several replicas roll in place by default, ``vllm:maxSurge`` surges them). A
StatefulSet cannot surge: it replaces pods in place, which with one replica means an outage as long as
the model's load on every image or flag change. A per-replica PVC
would only save the download after a pod is *replaced*; a restarted container already keeps its cache,
which lives as long as the pod (an emptyDir, or with ``vllm:storageClass`` a generic ephemeral volume: one
ReadWriteOnce PVC per pod, created and deleted with it, on the class the cluster's fast disks use). One
shared RWO PVC cannot be mounted by replicas on different nodes; a shared RWX cache (Filestore, EFS)
fits models fetched once for many replicas, and is the user's call.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apps import v1 as apps
from pulumi_kubernetes.core import v1 as core
from pulumi_kubernetes.meta import v1 as meta
from pulumi_kubernetes.policy import v1 as policy

from components.kubernetes import pods, spot_pods
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:kubernetes:VllmReplica"


@dataclass(frozen=True, kw_only=True)
class ReplicaGroupArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    namespace: pulumi.Input[str]
    secret_name: pulumi.Input[str]
    deployment_name: str | None = None  # when several Deployments serve (the on-demand base and spot)
    group_labels: dict[str, str] | None = None  # what tells its pods from the other Deployment's
    takes_traffic: bool = True  # False: a vllm:canary slot at weight 0 (``traffic_annotations``)


#: On a revision's Deployments while its slot takes no requests (vllm:canary weight 0). Metadata, not the
#: pod template's: turning it on or off restarts no pod.
TRAFFIC = "vllm.ai/traffic"
TRAFFIC_OFF = "off"


def traffic_annotations(spec: ServiceSpec, takes_traffic: bool) -> dict[str, str]:
    """A Deployment's annotations: the gate that makes ``up`` move traffic onto a revision only once every
    replica of it is ready, from pulumi-kubernetes' own await (read at 94977969d, after v4.32.0; the same
    logic since v4.20.0, the floor of requirements.txt).

    A slot at weight 0 is annotated ``vllm.ai/traffic: off`` and ``pulumi.com/skipAwait: "true"``; a slot
    with traffic carries neither (a stack without vllm:canary, or a canary with weight, keeps the inputs
    it always had). Raising the weight from 0 removes both: an update of the Deployment's metadata alone,
    which the provider still awaits, and the HTTPRoute (which depends on every serving Deployment) is
    updated only after it:

    - provider/pkg/await/await.go ``Update`` (454-545) runs the Deployment's awaiter after every update,
      whatever changed; the awaiter is skipped only when the *new* inputs say ``skipAwait``
      (``newLegacyReadyCondition``, 1096-1102; ``metadata.ReadyCondition``, overrides.go 100-110). So an
      ``up`` that takes a revision's traffic away never waits on its pods, and one that gives it back does.
    - provider/pkg/await/deployment.go: with no new ReplicaSet (the revision annotation unchanged,
      ``changeTriggeredRollout`` 720-726), the update succeeds when the Deployment's ``Available``
      condition is True, its ``Progressing`` condition is True with reason ``NewReplicaSetAvailable`` (the
      controller's "complete": every replica updated and available; 512-560, 430) and the current
      ReplicaSet's ``status.readyReplicas`` reaches its *live* ``spec.replicas`` (676-699): every current
      replica, the count KEDA set for an autoscaled revision (whose ``spec.replicas`` the program
      ignores), not a fixed one. A ReplicaSet at 0 replicas passes at once (679-684).
    - Its time is the Deployment's update timeout (``custom_timeouts.update``, the start budget times
      vllm:maxReplicas): provider.go ``Update`` passes ``req.Timeout`` (2448) and
      ``metadata.TimeoutDuration`` (overrides.go 53-66) puts it before the 10-minute default. At the
      timeout the update fails as a partial failure (provider.go 2494-2503): ``up`` fails before the
      route moves, and the next ``up`` awaits the Deployment again even with nothing changed (pulumi
      pkg/resource/deploy/step_generator.go: an unchanged resource with init errors gets "an empty update
      step to attempt to 'continue' awaiting initialization").

    The spot Deployment beside an on-demand base is never awaited (``spot_pods.best_effort``): the gate of
    such a slot is its base's replicas; spot pods join when Ready (the Service's endpoints and the
    endpoint picker take only Ready pods: GIE v1.5.0 pkg/epp/controller/pod_reconciler.go 92).
    ``skipAwait`` also makes the provider's delete of a Deployment return without waiting for its pods to
    go (overrides.go ``allowsSkipAwaitWithDelete``), which a revision with no traffic does not need."""
    annotations = {} if takes_traffic else {TRAFFIC: TRAFFIC_OFF, **spot_pods.SKIP_AWAIT}
    if spot_pods.best_effort(spec):
        annotations.update(spot_pods.SKIP_AWAIT)
    return annotations


def disruption_budget(
    name: str,
    spec: ServiceSpec,
    namespace: pulumi.Input[str],
    pod_selector: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> policy.PodDisruptionBudget:
    """At most one pod evicted at a time (node drains, upgrades, consolidation).

    ``maxUnavailable: 1`` rather than ``minAvailable``: with one replica, ``minAvailable: 1`` would block
    every drain until someone deletes the pod by hand; ``maxUnavailable: 1`` lets the drain proceed (a
    single replica is down while it reloads elsewhere, the price of running one), and with more replicas
    keeps all but one serving. Pods that are not Ready (still loading, crash-looping) may always be
    evicted, so they never hold up a drain.
    """
    return policy.PodDisruptionBudget(
        name,
        metadata={"namespace": namespace, "labels": pods.slot_labels(spec, "disruption-budget")},
        spec={
            "max_unavailable": 1,
            "selector": {"match_labels": pod_selector},
            "unhealthy_pod_eviction_policy": "AlwaysAllow",
        },
        opts=opts,
    )


class ReplicaGroup(pulumi.ComponentResource):
    """``spec.replicas`` pods, each a whole vLLM server, rolled as ``pods.rolling_update`` says and restarted
    when ``/health`` fails after the model's load budget.

    Attributes:
        deployment: the Deployment of ``spec.replicas`` pods (``workload``).
        disruption_budget: at most one of its pods evicted at a time.
    """

    deployment: apps.Deployment
    disruption_budget: policy.PodDisruptionBudget

    @property
    def workload(self) -> apps.Deployment:
        """The object whose readiness means these replicas serve."""
        return self.deployment

    def __init__(self, name: str, args: ReplicaGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__(
            "vllm:kubernetes:ReplicaGroup", name, None, pulumi.ResourceOptions.merge(opts, renamed)
        )
        spec, launch = args.spec, args.launch
        child = pulumi.ResourceOptions(parent=self)
        group = args.group_labels or {}
        match = {**pods.slot_selector(spec, pods.SERVER), **group}
        container = pods.container(spec, launch, args.secret_name, command=list(launch.argv), serves=True)
        start = pods.start_budget_seconds(spec, launch)
        rollout = pods.rolling_update(spec)
        template: core.PodTemplateSpecArgsDict = {
            "metadata": {"labels": {**pods.slot_labels(spec, pods.SERVER), **group}},
            # pods.py builds pod specs as plain camelCase data, shared with the LeaderWorkerSet (a custom
            # resource, untyped): the keys around it are checked, not those inside it.
            "spec": pods.pod_spec(  # pyright: ignore[reportAssignmentType]
                spec,
                pods.SERVER,
                [container],
                init_containers=pods.fill_containers(spec, launch, args.secret_name),
            ),
        }
        metadata: meta.ObjectMetaArgsDict = {
            "name": args.deployment_name or pods.slot_name(spec),
            "namespace": args.namespace,
            "labels": pods.slot_labels(spec, pods.SERVER),
        }
        annotations = traffic_annotations(spec, args.takes_traffic)
        if annotations:
            metadata["annotations"] = annotations
        self.deployment = apps.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec={
                # With an autoscaler, its start; the count is then the autoscaler's (ignore_changes).
                "replicas": spot_pods.start_replicas(spec),
                "selector": {"match_labels": match},
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {
                        "max_surge": rollout["maxSurge"],
                        "max_unavailable": rollout["maxUnavailable"],
                    },
                },
                # A new pod makes no visible progress while it loads: the deadline covers one whole start.
                "progress_deadline_seconds": start,
                "revision_history_limit": 5,
                "template": template,
            },
            # pulumi-kubernetes waits for a Deployment's rollout to complete (updated, ready and available
            # replicas; provider/pkg/await/deployment.go), 10 minutes unless told: `pulumi up` returns once
            # every pod serves (unless skipAwait: traffic_annotations). All start at once on create, at
            # worst one by one on update.
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{start}s", update=f"{start * spec.max_replicas}s"
                    ),
                    ignore_changes=spot_pods.scaled_options(spec),
                ),
            ),
        )
        self.disruption_budget = disruption_budget(f"{name}-pdb", spec, args.namespace, match, child)
        self.register_outputs({"deployment": self.deployment.metadata.name})
