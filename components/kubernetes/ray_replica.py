"""Multi-node replicas: a LeaderWorkerSet (kubernetes-sigs/lws) of ``vllm:replicas`` Ray groups.

Each group is ``vllm:nodes`` pods of ``GPU:COUNT``: the leader runs ``ray_bootstrap.sh head -- vllm serve
...`` (tensor parallel inside a pod, pipeline parallel across pods), the workers ``ray_bootstrap.sh
worker``. The script comes from a ConfigMap; its contract is its header: ``RAY_HEAD_ADDRESS`` is the
leader's stable DNS name (``$(LWS_LEADER_ADDRESS)``, which LWS puts first in every container's
environment), ``RAY_NODE_IP`` the pod's own IP (no route guessing).

Health: ``RecreateGroupOnPodRestart`` recreates the whole group when any of its containers restarts (a
Ray group cannot lose a member and go on). The leader carries the ``/health`` probes, sized to the group
wait plus the model load; a worker that hangs stalls the pipeline, fails the leader's liveness probe, and
the group is rebuilt. Rollouts follow ``pods.rolling_update`` (groups replaced in place unless
``vllm:maxSurge`` or a single replica surges).

Names: LWS creates a headless Service named after the LeaderWorkerSet (``CreateHeadlessServiceIfNotExists``
with ``lws.Name`` in pkg/controllers/leaderworkerset_controller.go, v0.8.0), through which the leader
address ``<lws>-<group>.<lws>.<namespace>`` resolves; the public Service therefore has a name of its own
(``load_balancer.service_name``). With vllm:canary each revision's LeaderWorkerSet is named by its slot
(``pods.slot_name``: slot 2's ``<name>-rev2``, so its headless Service, StatefulSets and pods too), and its
objects and pods carry the slot's labels (``pods.slot_labels``): the pools, Services, disruption budgets
and network policies of one slot select its pods alone (the network policies by the LWS name label).

Cache: with ``vllm:storageClass`` each pod's cache is a claim from the LeaderWorkerSet's
``volumeClaimTemplates`` (LWS v0.8.0 passes them to its leader and worker StatefulSets): PVCs named after
the stable pod names (``cache-<lws>-<group>[-<worker>]``), kept when a group is recreated (the worker
StatefulSet is deleted with its leader, hence ``whenDeleted: Retain``), so a rebuilt group reads its
weights from disk instead of downloading them on every node. The namespace owns them: ``pulumi destroy``
deletes them with it; groups removed by scaling down leave theirs until then.

With ``vllm:cacheClaim``, the leader's init container fills the shared HF cache before its Ray head starts
(``pods.fill_containers``); the workers have none. Their vLLM workers load only once the leader's vLLM
runs, after the fill, and a worker's Ray node waits for its head without a deadline (``ray_bootstrap.sh``
rejoins every few seconds), so the workers need no fill of their own, and a group has one pod, not
``vllm:nodes``, polling the claim. LWS counts an init container's restart as the pod's
(``ContainerRestarted`` in pkg/utils/pod/pod_utils.go reads ``InitContainerStatuses``): a failed fill
recreates the group, whose new leader fills again (the lock released, the files already fetched kept), and
with the fill on the leader alone, only the leader's failures do.

Network: Ray is unauthenticated. A NetworkPolicy per group index admits every port only from pods of the
same group (LWS labels pods with their group index), for every index LWS can create: ``vllm:replicas``
plus the rollout's surge groups (LWS numbers them from ``replicas``, and caps the surge at ``replicas``).
Another admits the vLLM port from anywhere (the Service). This needs a CNI that enforces NetworkPolicy
(Calico, Cilium, GKE Dataplane V2, the VPC CNI with network policies on); NCCL then runs over the pod
network (TCP): RDMA/InfiniBand needs the cluster's own network operator and is out of scope here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core import v1 as core
from pulumi_kubernetes.networking import v1 as networking
from pulumi_kubernetes.policy import v1 as policy

from components import scripts, vm
from components.kubernetes import pods, spot_pods
from components.kubernetes.replica_group import disruption_budget, traffic_annotations
from components.kubernetes.settings import settings
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: This component's type token before it was renamed for what it is: the alias keeps the URNs of
#: existing stacks' resources (this component's and, through it, its children's), so nothing is replaced.
FORMER_TYPE = "vllm:kubernetes:RayGroup"

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
#: The released controller, pinned: the install guide's current release (kubernetes-sigs/lws
#: site/content/en/docs/installation/_index.md, read 2026-11), applied server-side like `kubectl apply
#: --server-side` (its CRD is too large for client-side apply).
LWS_VERSION = "v0.8.0"
LWS_MANIFEST = f"https://github.com/kubernetes-sigs/lws/releases/download/{LWS_VERSION}/manifests.yaml"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
RAY_WORKER = "ray-worker"
SCRIPT = "ray_bootstrap.sh"
SCRIPT_DIR = "/opt/vllm"
SCRIPT_VOLUME = "ray-bootstrap"
#: pulumi-kubernetes waits for nothing on a custom resource unless told (4.18+): LWS reports ``Available``
#: once every group is ready and updated (updateConditions in pkg/controllers/leaderworkerset_controller.go).
#: Its conditions carry no observedGeneration, so on an update the await can see the previous generation's
#: ``Available`` before the controller reacts and return early; on create it waits for the groups.
#:
#: It is also vllm:canary's traffic gate (``replica_group.traffic_annotations``): the provider awaits this
#: condition after every update, a change of metadata alone included, unless the new inputs say
#: ``skipAwait`` (provider/pkg/await/await.go ``Update`` and pkg/metadata/overrides.go ``ReadyCondition``,
#: read at 94977969d). Raising a slot's weight from 0 removes its ``skipAwait``: an update that bumps no
#: generation, so ``Available`` is the live one, True only when every one of the live ``spec.replicas``
#: groups (KEDA's count when autoscaled) is ready and updated (``readyNonBurstWorkerCount ==
#: Spec.Replicas``, LWS v0.8.0). A fixed ``jsonpath={.status.readyReplicas}=N`` could not follow KEDA's
#: count, and counts groups of the old template as ready. A weight raised in the same ``up`` as a template
#: change of that slot may pass on the old generation's condition, as above: raise it in an ``up`` of its own.
WAIT_FOR = {"pulumi.com/waitFor": "condition=Available"}


#: The released controller (config/manager/manager.yaml with config/default's ``lws-`` prefix and
#: ``lws-system`` namespace): its Deployment, its container, and the port of its webhook server
#: (config/default/manager_webhook_patch.yaml).
CONTROLLER_NAMESPACE, CONTROLLER_DEPLOYMENT, CONTROLLER_CONTAINER = (
    "lws-system",
    "lws-controller-manager",
    "manager",
)
WEBHOOK_PORT = "webhook-server"
#: The LeaderWorkerSet validating webhook's path (config/webhook/manifests.yaml, vleaderworkerset.kb.io).
WEBHOOK_PATH = "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset"
#: Ready when the webhook serves. As released, the controller is ready at once (its readyz check is
#: ``healthz.Ping``, cmd/main.go setupHealthzAndReadyzCheck), while it registers its webhooks only once
#: cert-controller has written the certificates and injected the CA into the webhook configurations
#: (setupControllers waits on ``certsReady``); the webhooks fail closed (``failurePolicy: Fail``), so a
#: LeaderWorkerSet created in between is refused with "failed calling webhook". This probe asks the webhook
#: itself, over HTTPS (the kubelet does not verify the certificate): refused before the server has its
#: certificate, 404 before the handler is registered, 200 after (controller-runtime v0.22.4, which LWS
#: v0.8.0 pins, pkg/webhook/admission/http.go: a request without a body is answered with an
#: AdmissionReview carrying the error, written without a status code, so 200; logged as "bad request").
WEBHOOK_READINESS = {
    "httpGet": {"path": WEBHOOK_PATH, "port": WEBHOOK_PORT, "scheme": "HTTPS"},
    "periodSeconds": 5,
    "failureThreshold": 3,
}


def ready_when_webhooks_serve(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """The release manifest's controller Deployment with ``WEBHOOK_READINESS``; every other object as it is.

    pulumi-kubernetes then holds everything that depends on the manifest until the webhook serves: it waits
    for the Deployment's ready replicas (its await; the webhook Service's await alone would not do, as it
    completes while the pod has no address yet, provider/pkg/await/service.go). It retries a failed create
    only on NotFound and NoMatch (provider/pkg/await/await.go Creation), not on a webhook's refusal: there
    must be no window to retry."""
    # A manifest's objects reach a transform as plain values (ConfigFile registers them from the YAML).
    props: dict[str, Any] = copy.deepcopy(dict(args.props))
    metadata = props.get("metadata") or {}
    if args.type_ != "kubernetes:apps/v1:Deployment" or (
        metadata.get("name"),
        metadata.get("namespace"),
    ) != (CONTROLLER_DEPLOYMENT, CONTROLLER_NAMESPACE):
        return None
    for container in props["spec"]["template"]["spec"]["containers"]:
        if container["name"] == CONTROLLER_CONTAINER:
            container["readinessProbe"] = WEBHOOK_READINESS
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


class LeaderWorkerSetController(pulumi.ComponentResource):
    """The LWS controller and CRD from the pinned release manifest (``vllm:installLeaderWorkerSet``), for
    clusters that do not run it yet, ready only once its webhooks serve (``ready_when_webhooks_serve``), so
    the LeaderWorkerSet that depends on it is created in the same ``up``. It is cluster-wide: one stack per
    cluster should own it.

    Attributes:
        manifest: the ``ConfigFile`` of the release manifest (the CRD, the controller and its RBAC).
    """

    manifest: pulumi.ComponentResource  # pulumi_kubernetes.yaml.v2.ConfigFile

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vllm:kubernetes:LeaderWorkerSetController", name, None, opts)
        # Imported here: pulumi_kubernetes.yaml loads every API group's module, which only the stacks that
        # install the controller need.
        from pulumi_kubernetes.yaml import v2 as k8s_yaml

        self.manifest = k8s_yaml.ConfigFile(
            f"{name}-manifest",
            file=LWS_MANIFEST,
            opts=pulumi.ResourceOptions(parent=self, transforms=[ready_when_webhooks_serve]),
        )
        self.register_outputs({"manifest": LWS_MANIFEST})


@dataclass(frozen=True, kw_only=True)
class RayReplicaGroupArgs:
    spec: ServiceSpec
    launch: LaunchSpec
    namespace: pulumi.Input[str]
    secret_name: pulumi.Input[str]
    controller: LeaderWorkerSetController | None = None  # installed by this stack; the LWS waits for it
    takes_traffic: bool = True  # False: a vllm:canary slot at weight 0 (``traffic_annotations``)


class RayReplicaGroup(pulumi.ComponentResource):
    """``spec.replicas`` Ray replicas, each a group of ``spec.nodes`` pods, as one LeaderWorkerSet; leaders
    serve. (On GCP and AWS each Ray replica is a component of its own, ``RayReplica``.)

    Attributes:
        script: the ConfigMap holding ``ray_bootstrap.sh``, mounted in every pod.
        leader_worker_set: the LeaderWorkerSet of ``spec.replicas`` Ray replicas (``workload``).
        ray_policies: per group index, the NetworkPolicy admitting all ports only from pods of the same group.
        serving_policy: the NetworkPolicy admitting the vLLM port from anywhere (the Service).
        disruption_budget: at most one pod of the groups evicted at a time.
    """

    script: core.ConfigMap
    leader_worker_set: CustomResource
    ray_policies: list[networking.NetworkPolicy]
    serving_policy: networking.NetworkPolicy
    disruption_budget: policy.PodDisruptionBudget

    @property
    def workload(self) -> CustomResource:
        """The object whose readiness (``WAIT_FOR``) means these groups serve."""
        return self.leader_worker_set

    def __init__(
        self, name: str, args: RayReplicaGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=FORMER_TYPE)])
        super().__init__(
            "vllm:kubernetes:RayReplicaGroup", name, None, pulumi.ResourceOptions.merge(opts, renamed)
        )
        spec, launch = args.spec, args.launch
        child = pulumi.ResourceOptions(parent=self)
        # Auto-named: a changed script is a new ConfigMap, so the templates change and the groups roll.
        self.script = core.ConfigMap(
            f"{name}-ray-bootstrap",
            metadata={"namespace": args.namespace, "labels": pods.slot_labels(spec, "ray-bootstrap")},
            data={SCRIPT: scripts.source(SCRIPT)},
            opts=child,
        )
        script_volume = {
            "name": SCRIPT_VOLUME,
            "configMap": {"name": self.script.metadata.name, "defaultMode": 0o555},
        }
        script_mount = {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_DIR, "readOnly": True}
        script_path = f"{SCRIPT_DIR}/{SCRIPT}"
        ray_env = vm.ray_env(spec, "$(LWS_LEADER_ADDRESS)")
        claimed = settings(spec).storage_class is not None  # the cache comes from volumeClaimTemplates

        def template(component: str, command: list[str], serves: bool) -> dict:
            container = pods.container(
                spec,
                launch,
                args.secret_name,
                command=command,
                serves=serves,
                extra_env=ray_env,
                env_from_pod={"RAY_NODE_IP": "status.podIP"},
                extra_mounts=[script_mount],
            )
            # The leader alone fills vllm:cacheClaim: see the module docstring.
            fill = pods.fill_containers(spec, launch, args.secret_name) if serves else []
            return {
                "metadata": {"labels": pods.slot_labels(spec, component)},
                "spec": pods.pod_spec(
                    spec, component, [container], [script_volume], claimed_cache=claimed, init_containers=fill
                ),
            }

        lws_name = pods.slot_name(spec)
        rollout = pods.rolling_update(spec)
        group_template: dict = {
            "size": spec.nodes,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": template(pods.SERVER, [script_path, "head", "--", *launch.argv], True),
            "workerTemplate": template(RAY_WORKER, [script_path, "worker"], False),
        }
        if claimed:
            group_template["volumeClaimTemplates"] = [
                {
                    "metadata": {"name": pods.CACHE_VOLUME, "labels": pods.slot_labels(spec, "ray-group")},
                    "spec": pods.cache_claim_spec(spec),
                }
            ]
            group_template["persistentVolumeClaimRetentionPolicy"] = {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            }
        start = pods.start_budget_seconds(spec, launch)
        self.leader_worker_set = CustomResource(
            f"{name}-lws",
            api_version=LWS_API_VERSION,
            kind="LeaderWorkerSet",
            metadata={
                "name": lws_name,
                "namespace": args.namespace,
                "labels": pods.slot_labels(spec, "ray-group"),
                "annotations": {**WAIT_FOR, **traffic_annotations(spec, args.takes_traffic)},
            },
            spec={
                # With an autoscaler, its start; the count is then the autoscaler's (ignore_changes).
                "replicas": spot_pods.start_replicas(spec),
                "startupPolicy": "LeaderCreated",
                "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rollout},
                "leaderWorkerTemplate": group_template,
            },
            # Every group starts at once on create; at worst one after another on update.
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[args.controller] if args.controller else [],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{start}s", update=f"{start * spec.max_replicas}s"
                    ),
                    ignore_changes=spot_pods.scaled_options(spec),
                ),
            ),
        )
        group_pods = {LWS_NAME_LABEL: lws_name}
        group_indices = range(spec.max_replicas + min(rollout["maxSurge"], spec.max_replicas))
        self.ray_policies = [
            networking.NetworkPolicy(
                f"{name}-ray-group-{index}",
                metadata={"namespace": args.namespace, "labels": pods.slot_labels(spec, "ray-group")},
                spec={
                    "pod_selector": {"match_labels": {**group_pods, LWS_GROUP_INDEX_LABEL: str(index)}},
                    "policy_types": ["Ingress"],
                    "ingress": [
                        {
                            "from_": [
                                {
                                    "pod_selector": {
                                        "match_labels": {**group_pods, LWS_GROUP_INDEX_LABEL: str(index)}
                                    }
                                }
                            ]
                        }
                    ],
                },
                opts=child,
            )
            for index in group_indices
        ]
        self.serving_policy = networking.NetworkPolicy(
            f"{name}-serving",
            metadata={"namespace": args.namespace, "labels": pods.slot_labels(spec, "ray-group")},
            spec={
                "pod_selector": {"match_labels": group_pods},
                "policy_types": ["Ingress"],
                "ingress": [{"ports": [{"port": pods.PORT_NAME, "protocol": "TCP"}]}],
            },
            opts=child,
        )
        self.disruption_budget = disruption_budget(f"{name}-pdb", spec, args.namespace, group_pods, child)
        self.register_outputs({"leaderWorkerSet": lws_name})
