"""The Kubernetes platform, single node: the real program under mocks, asserted on the objects it declares."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components import catalog, launch, scripts
from components.kubernetes import fakes as fakes_kubernetes
from components.kubernetes import gpu_nodes, pods
from components.kubernetes.settings import settings
from components.scripts import health_agent
from components.service_spec import ServiceSpec
from components.spec import SpecError, build_spec
from tests.harness import ROOT, Resource, Run, checked_spec, run_program
from tools import mockrun

HF_TOKEN, API_KEY = "hf_testtoken123", "sk-test-key-4567890"
SECRETS = {"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY}
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
K8S_SCHEMA_VERSION = kubernetes_validate.latest_version()
#: The oldest Kubernetes the program supports (docs/kubernetes.md): every object must validate there too.
K8S_MINIMUM_VERSION = "1.27.0"

PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
MODEL = "Qwen/Qwen3-8B"


def k8s_stack(gpu: str = "L4:1", **config: Any) -> dict[str, Any]:
    return {"vllm:cloud": "kubernetes", "vllm:gpu": gpu, "vllm:model": MODEL, **config}


def dev_config() -> dict[str, Any]:
    """Pulumi.dev.yaml's config map: the harness reads no stack file, so the test hands it over."""
    return yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]


SCENARIOS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "l4": ("k8s-l4", {}, SECRETS),
    "h100": ("k8s-h100", {}, SECRETS),
    "gke": (
        "gke-test",
        k8s_stack(
            "A100-80GB:4",
            **{
                "vllm:gpuNodeSelector": "gke",
                "vllm:storageClass": "premium-rwo",
                "vllm:namespace": "llm",
                "vllm:allowedCidrs": ["203.0.113.0/24"],
                "vllm:cpu": "12.5",
                "vllm:memoryGb": "300",
                "kubernetes:context": "gke_proj_us-central1_serving",
            },
        ),
        {"vllm:apiKey": API_KEY},
    ),
    "clusterip": ("internal-test", k8s_stack(**{"vllm:serviceType": "ClusterIP"}), SECRETS),
    "dev": ("dev", dev_config(), {}),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {key: run_program(stack, config, secrets) for key, (stack, config, secrets) in SCENARIOS.items()}


def deployment(run: Run) -> dict[str, Any]:
    return run.one(DEPLOYMENT).inputs


def pod(run: Run) -> dict[str, Any]:
    return deployment(run)["spec"]["template"]["spec"]


def vllm_container(run: Run) -> dict[str, Any]:
    (container,) = pod(run)["containers"]
    return container


def spec_error(stack: str, config: dict[str, Any]) -> SpecError:
    """The SpecError the program's checks stop ``config`` with, without running it (``checked_spec``)."""
    with pytest.raises(SpecError) as caught:
        checked_spec(stack, config)
    return caught.value


def program_refusal(stack: str, config: dict[str, Any]) -> SpecError:
    """The SpecError the real program stops with, checking nothing was declared."""
    with pytest.raises(SpecError) as caught:
        run_program(stack, config)
    assert caught.value.declared_resources == [], "a bad value must fail before any resource"
    return caught.value


# --- manifests -------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Recorded inputs as a manifest: secrets unwrapped, whole floats back to ints (the wire has no ints)."""
    if isinstance(value, dict):
        if SECRET_SIGNATURE in value:
            return plain(value["value"])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifest(resource: Resource) -> dict[str, Any]:
    return plain(resource.inputs)


def kubernetes_objects(run: Run) -> list[Resource]:
    return [r for r in run.resources if r.custom and r.type.startswith("kubernetes:")]


def start_budget(spec: ServiceSpec) -> int:
    """One pod's start budget, as every wait on a workload uses it."""
    return pods.start_budget_seconds(spec, launch.launch_spec(spec, has_hf_token=True))


def validate(obj: dict[str, Any]) -> None:
    for version in (K8S_MINIMUM_VERSION, K8S_SCHEMA_VERSION):
        kubernetes_validate.validate(obj, version, strict=True)


class Registration:
    """What the program asked of the engine for one resource beyond its inputs."""

    def __init__(self, request: Any) -> None:
        self.dependencies = list(request.dependencies)
        timeouts = request.customTimeouts
        self.timeouts = {"create": timeouts.create, "update": timeouts.update, "delete": timeouts.delete}
        self.retain_on_delete = request.retainOnDelete


def registrations(monkeypatch, stack: str, config: dict[str, Any] | None = None) -> tuple[Run, dict]:
    """Run the program, recording each resource's dependencies and custom timeouts by resource name."""
    recorded: dict[str, Registration] = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(monitor, request):
        recorded[request.name] = Registration(request)
        return register(monitor, request)

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    return run_program(stack, config, SECRETS), recorded


def seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


# --- provider and structure -----------------------------------------------------------------------------


def test_one_explicit_kubernetes_provider_is_a_child_of_the_service(runs):
    run = runs["l4"]
    provider = run.one(PROVIDER)
    assert run.by_urn(provider.parent).type == "vllm:index:VllmService"
    for resource in kubernetes_objects(run):
        assert resource.provider.startswith(provider.urn), resource.name


def test_provider_targets_the_configured_context_or_the_current_one(runs):
    assert runs["gke"].one(PROVIDER).inputs["context"] == "gke_proj_us-central1_serving"
    assert "context" not in runs["l4"].one(PROVIDER).inputs


def test_components_use_kubernetes_type_tokens(runs):
    types = runs["l4"].types()
    for component in ("ReplicaGroup", "LoadBalancer", "ServiceNamespace"):
        assert f"vllm:kubernetes:{component}" in types


def test_every_object_is_a_child_of_a_kubernetes_component(runs):
    run = runs["h100"]
    for resource in kubernetes_objects(run):
        assert run.by_urn(resource.parent).type.startswith("vllm:kubernetes:"), resource.name


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_object_validates_against_the_kubernetes_schema(runs, scenario):
    for resource in kubernetes_objects(runs[scenario]):
        validate(manifest(resource))


# --- namespace and secrets ------------------------------------------------------------------------------


def test_namespace_is_the_configured_one(runs):
    assert runs["gke"].one(NAMESPACE).inputs["metadata"]["name"] == "llm"
    assert deployment(runs["gke"])["metadata"]["namespace"] == "llm"
    assert runs["l4"].one(NAMESPACE).inputs["metadata"]["name"] == "vllm-k8s-l4"  # the stack's own


def secret_data(run: Run) -> dict[str, str]:
    return plain(run.one(SECRET).inputs["stringData"])


def test_secret_holds_the_api_key_and_hf_token_marked_secret(runs):
    string_data = runs["l4"].one(SECRET).inputs["stringData"]
    assert SECRET_SIGNATURE in string_data  # the whole map travels as a Pulumi secret
    assert secret_data(runs["l4"]) == {launch.API_KEY_ENV: API_KEY, launch.HF_TOKEN_ENV: HF_TOKEN}


def test_secret_has_no_hf_token_without_one(runs):
    assert set(secret_data(runs["gke"])) == {launch.API_KEY_ENV}


def test_secret_variables_come_from_the_secret_by_reference(runs):
    secret_name = runs["l4"].one(SECRET).outputs["metadata"]["name"]
    env = {item["name"]: item for item in vllm_container(runs["l4"])["env"]}
    for name in (launch.API_KEY_ENV, launch.HF_TOKEN_ENV):
        assert "value" not in env[name]
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": secret_name, "key": name}}


@pytest.mark.parametrize("scenario", ["l4", "h100", "clusterip"])
def test_no_secret_value_appears_outside_the_secret(runs, scenario):
    for resource in runs[scenario].resources:
        if resource.type != SECRET:
            assert HF_TOKEN not in resource.text(), resource.name
            assert API_KEY not in resource.text(), resource.name


# --- the pod --------------------------------------------------------------------------------------------


def test_container_runs_the_shared_launch_argv_on_the_pinned_image(runs):
    spec = build_spec("k8s-l4", {}, frozenset(SECRETS))
    container = vllm_container(runs["l4"])
    # The shared argv, draining on SIGTERM (see the termination test).
    assert container["command"] == list(pods.with_drain(launch.launch_spec(spec, has_hf_token=True)).argv)
    assert container["image"] == spec.image
    assert {"name": "VLLM_NO_USAGE_STATS", "value": "1"} in container["env"]


def test_downloads_use_the_shared_launch_environment(runs):
    """huggingface_hub >= 1.0 ignores HF_HUB_ENABLE_HF_TRANSFER; Xet's high-performance mode replaces it."""
    env = {item["name"]: item.get("value") for item in vllm_container(runs["l4"])["env"]}
    assert "HF_HUB_ENABLE_HF_TRANSFER" not in env
    assert env["HF_XET_HIGH_PERFORMANCE"] == "1"


def test_gpu_limit_is_the_gpu_count(runs):
    assert vllm_container(runs["h100"])["resources"]["limits"][gpu_nodes.GPU_RESOURCE] == "8"
    assert vllm_container(runs["l4"])["resources"]["limits"][gpu_nodes.GPU_RESOURCE] == "1"


def test_requests_default_to_half_the_catalog_share_per_gpu(runs):
    vcpus, memory = pods.per_gpu_share("H100")
    requested = vllm_container(runs["h100"])["resources"]["requests"]
    assert requested["cpu"] == f"{math.floor(vcpus * 8 * pods.NODE_SHARE) * 1000}m"
    assert requested["memory"] == f"{math.floor(memory * 8 * pods.NODE_SHARE) * 1024}Mi"
    l4 = vllm_container(runs["l4"])["resources"]["requests"]
    assert (l4["cpu"], l4["memory"]) == ("2000m", "8192Mi")


def test_node_disk_for_the_weights_is_requested_without_a_storage_class(runs):
    spec = build_spec("k8s-l4", {})
    requested = vllm_container(runs["l4"])["resources"]["requests"]["ephemeral-storage"]
    assert requested == f"{launch.weights_gb(spec) + pods.CACHE_HEADROOM_GB}Gi"  # 17 GB weights + headroom
    volumes = {volume["name"]: volume for volume in pod(runs["l4"])["volumes"]}
    assert int(volumes[pods.CACHE_VOLUME]["emptyDir"]["sizeLimit"][:-2]) >= int(requested[:-2])


def test_node_disk_request_never_exceeds_the_cache_size_limit():
    run = run_program("k8s-l4", {"vllm:diskSizeGb": 20}, SECRETS)
    assert vllm_container(run)["resources"]["requests"]["ephemeral-storage"] == "20Gi"


def test_no_node_disk_is_requested_when_the_cache_is_a_claim(runs):
    assert "ephemeral-storage" not in vllm_container(runs["gke"])["resources"]["requests"]


def test_configured_cpu_and_memory_override_the_rule(runs):
    resources = vllm_container(runs["gke"])["resources"]
    assert resources["requests"] == {"cpu": "12500m", "memory": f"{300 * 1024}Mi"}
    assert resources["limits"]["memory"] == resources["requests"]["memory"]
    assert "cpu" not in resources["limits"]


def test_shared_memory_is_a_memory_backed_volume_sized_per_gpu(runs):
    volumes = {volume["name"]: volume for volume in pod(runs["h100"])["volumes"]}
    assert volumes[pods.SHM_VOLUME]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    mounts = {m["name"]: m["mountPath"] for m in vllm_container(runs["h100"])["volumeMounts"]}
    assert mounts[pods.SHM_VOLUME] == "/dev/shm"


def test_cache_is_an_empty_dir_sized_to_the_disk_without_a_storage_class(runs):
    volumes = {volume["name"]: volume for volume in pod(runs["l4"])["volumes"]}
    assert volumes[pods.CACHE_VOLUME] == {"name": pods.CACHE_VOLUME, "emptyDir": {"sizeLimit": "60Gi"}}
    mounts = {m["name"]: m["mountPath"] for m in vllm_container(runs["l4"])["volumeMounts"]}
    assert launch.HF_CACHE_DIR.startswith(mounts[pods.CACHE_VOLUME] + "/")


def test_cache_is_a_per_pod_claim_on_the_storage_class(runs):
    volumes = {volume["name"]: volume for volume in pod(runs["gke"])["volumes"]}
    claim = volumes[pods.CACHE_VOLUME]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "premium-rwo",
        "resources": {"requests": {"storage": "200Gi"}},
    }


def progress_judge(container: dict[str, Any]) -> dict[str, list[str]]:
    """The progress probe's source and flags: ``python3 -c SOURCE probe --flag value...``."""
    python, dash_c, source, mode, *flags = container["livenessProbe"]["exec"]["command"]
    assert (python, dash_c, mode) == ("python3", "-c", "probe")
    values: dict[str, list[str]] = {"source": [source]}
    for word in flags:
        if word.startswith("--"):
            values[word] = []
        else:
            values[list(values)[-1]].append(word)
    return values


def progress_caps(container: dict[str, Any]) -> int:
    """The progress probe's caps, added: the longest a start may take in vLLM's container."""
    return sum(int(cap) for cap in progress_judge(container)["--caps"])


def test_without_a_claim_vllm_downloading_from_the_hub_is_judged_by_its_progress_not_a_startup_probe(runs):
    # Kubernetes runs liveness only once a startup probe succeeds: a startup probe would hide the judge
    container = vllm_container(runs["l4"])
    assert "startupProbe" not in container
    judge = progress_judge(container)
    assert judge["source"] == [scripts.source(pods.PROGRESS_SCRIPT)]
    assert judge["--stall"] == [str(launch.STALL_SECONDS)]  # the VMs' window and unit, not copies
    assert judge["--progress-bytes"] == [str(health_agent.PROGRESS_BYTES)]
    assert judge["--dir"] == [f"{launch.HF_CACHE_DIR}/hub"]  # where vLLM's huggingface_hub downloads
    assert judge["--health-url"] == [f"http://127.0.0.1:{launch.PORT}{launch.HEALTH_PATH}"]


def test_the_progress_probes_caps_are_the_download_and_load_caps_not_the_estimate(runs):
    for scenario, stack in (("l4", "k8s-l4"), ("h100", "k8s-h100")):
        timings = launch.probe_timings(build_spec(stack, {}))
        judge = progress_judge(vllm_container(runs[scenario]))
        assert judge["--caps"] == [str(timings.caps.weights), str(timings.caps.load)]
        assert timings.caps.weights + timings.caps.load >= timings.startup_seconds - timings.caps.start


def test_the_progress_probe_as_rendered_runs_in_python3(runs, tmp_path):
    command = vllm_container(runs["l4"])["livenessProbe"]["exec"]["command"]
    # a fresh container with nothing downloaded yet: healthy (the last flag of a repeated one wins)
    local = [
        "--dir",
        str(tmp_path),
        "--state",
        str(tmp_path / "state.json"),
        "--health-url",
        "http://127.0.0.1:9/",
    ]
    result = subprocess.run(
        [sys.executable, *command[1:], *local], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "state.json").read_text())["ok_at"] == 0


def test_readiness_probes_health(runs):
    container = vllm_container(runs["l4"])
    assert container["readinessProbe"]["httpGet"] == {"path": launch.HEALTH_PATH, "port": pods.PORT_NAME}
    assert container["readinessProbe"]["failureThreshold"] == launch.ProbeTimings(0).unhealthy_threshold


def test_liveness_tolerates_a_busy_server_far_longer_than_readiness(runs):
    container = vllm_container(runs["l4"])
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    judge = progress_judge(container)
    hang, timeout = float(judge["--hang"][0]), float(judge["--timeout"][0])
    assert timeout >= 4 * readiness["timeoutSeconds"]
    assert hang >= 300 >= 10 * readiness["failureThreshold"] * readiness["periodSeconds"]
    assert timeout < liveness["timeoutSeconds"] < liveness["periodSeconds"]  # the judge answers in time


def test_gpu_pods_tolerate_the_gpu_taint(runs):
    assert pod(runs["l4"])["tolerations"] == [gpu_nodes.GPU_TOLERATION]


def test_node_affinity_follows_the_configured_scheme(runs):
    (term,) = pod(runs["gke"])["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": gpu_nodes.GKE_ACCELERATOR, "operator": "In", "values": ["nvidia-a100-80gb"]}
    ]


@pytest.mark.parametrize(
    ("scheme", "gpu", "expected"),
    [
        ("gke", "H100", {gpu_nodes.GKE_ACCELERATOR: ["nvidia-h100-80gb", "nvidia-h100-mega-80gb"]}),
        ("gke", "L4", {gpu_nodes.GKE_ACCELERATOR: ["nvidia-l4"]}),
        ("gke", "T4", {gpu_nodes.GKE_ACCELERATOR: ["nvidia-tesla-t4"]}),
        ("nvidia", "H100", {gpu_nodes.NVIDIA_PRODUCT: ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]}),
        ("nvidia", "L40S", {gpu_nodes.NVIDIA_PRODUCT: ["NVIDIA-L40S"]}),
        ("karpenter", "A10G", {gpu_nodes.KARPENTER_GPU_NAME: ["a10g"]}),
        (
            "karpenter",
            "A100-80GB",
            {gpu_nodes.KARPENTER_GPU_NAME: ["a100"], gpu_nodes.KARPENTER_GPU_MEMORY: ["81920"]},
        ),
        (
            "karpenter",
            "A100",
            {gpu_nodes.KARPENTER_GPU_NAME: ["a100"], gpu_nodes.KARPENTER_GPU_MEMORY: ["40960"]},
        ),
    ],
)
def test_node_affinity_per_scheme_and_gpu(scheme, gpu, expected):
    (term,) = gpu_nodes.node_affinity(scheme, gpu)["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert {e["key"]: e["values"] for e in term["matchExpressions"]} == expected
    assert {e["operator"] for e in term["matchExpressions"]} == {"In"}


@pytest.mark.parametrize("scheme", ["nvidia", "karpenter"])
def test_every_catalog_gpu_has_labels_in_the_general_schemes(scheme):
    for gpu in catalog.GPU_TYPES:
        assert gpu_nodes.node_requirements(scheme, gpu), gpu


def test_gke_labels_every_gpu_gke_sells():
    assert set(gpu_nodes.GPU_NODE_LABELS["gke"]) == set(catalog.GPU_TYPES) - {"L40S", "A10G"}


def test_gpu_pods_select_no_node_labels_by_default(runs):
    """Neither GKE's managed GPU nodes nor a bare device plugin set GPU feature discovery's labels: the
    ``nvidia.com/gpu`` limit alone places the pod on any cluster."""
    assert settings(build_spec("k8s-l4", {})).gpu_node_selector == "none"
    assert "affinity" not in pod(runs["l4"]) and "affinity" not in pod(runs["h100"])


def test_scheme_none_selects_no_node_labels():
    run = run_program("none-test", k8s_stack("H200:8", **{"vllm:gpuNodeSelector": "none"}))
    spec = pod(run)
    assert "affinity" not in spec
    assert spec["tolerations"] == [gpu_nodes.GPU_TOLERATION]


def test_pod_restricts_what_the_image_allows(runs):
    spec = pod(runs["l4"])
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert vllm_container(runs["l4"])["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_termination_lets_the_longest_request_finish_once_the_endpoint_is_gone(runs):
    # The VM backends drain a replica for 3,600 s (GCP's connection draining, the longest request they
    # promise). The kubelet's grace counts from the pod's deletion and covers the preStop pause, during
    # which the endpoint is removed; vLLM sees SIGTERM only after it (Kubernetes "Pod Lifecycle").
    # vLLM aborts what it serves on SIGTERM unless --shutdown-timeout (vllm-project/vllm#36666; its
    # Kubernetes guide: grace >= preStop sleep + --shutdown-timeout).
    spec = pod(runs["l4"])
    (command,) = [vllm_container(runs["l4"])["lifecycle"]["preStop"]["exec"]["command"]]
    assert command[0] == "/bin/sleep" and int(command[1]) >= 30
    argv = vllm_container(runs["l4"])["command"]
    drain = int(argv[len(argv) - 1 - argv[::-1].index("--shutdown-timeout") + 1])  # the last one wins
    assert drain >= 3600
    assert spec["terminationGracePeriodSeconds"] > int(command[1]) + drain


def test_the_drain_wins_over_a_shutdown_timeout_in_extra_args():
    run = run_program("k8s-l4", {"vllm:extraArgs": ["--shutdown-timeout", "5"]}, SECRETS)
    argv = vllm_container(run)["command"]
    assert argv[-2:] == ["--shutdown-timeout", "3600"]


# --- rollout and disruption -----------------------------------------------------------------------------


def test_deployment_runs_the_replica_count(runs):
    assert deployment(runs["h100"])["spec"]["replicas"] == 2
    assert deployment(runs["l4"])["spec"]["replicas"] == 1


def test_several_replicas_roll_in_place_so_a_full_gpu_cluster_cannot_deadlock(runs):
    assert deployment(runs["h100"])["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def test_a_single_replica_surges_to_keep_serving(runs):
    assert deployment(runs["l4"])["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize(("stack", "surge"), [("k8s-h100", 2), ("k8s-l4", 0)])
def test_max_surge_chooses_the_rollout(stack, surge):
    run = run_program(stack, {"vllm:maxSurge": surge}, SECRETS)
    assert deployment(run)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": surge,
        "maxUnavailable": 0 if surge else 1,
    }


def test_deployment_waits_for_its_pods_one_start_on_create_one_per_replica_on_update(monkeypatch):
    _, recorded = registrations(monkeypatch, "k8s-h100")
    start = start_budget(build_spec("k8s-h100", {}))
    timeouts = recorded["vllm-k8s-h100-deployment"].timeouts
    assert seconds(timeouts["create"]) == start
    assert seconds(timeouts["update"]) == 2 * start


def test_progress_deadline_covers_one_pod_start(runs):
    timings = launch.probe_timings(build_spec("k8s-h100", {}))
    deadline = deployment(runs["h100"])["spec"]["progressDeadlineSeconds"]
    assert deadline >= pods.POD_SCHEDULE_AND_PULL_SECONDS + timings.caps.weights + timings.caps.load


def test_disruption_budget_allows_one_pod_down_and_selects_the_servers(runs):
    budget = runs["l4"].one(PDB).inputs["spec"]
    assert budget["maxUnavailable"] == 1
    assert "minAvailable" not in budget
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["selector"]["matchLabels"] == deployment(runs["l4"])["spec"]["selector"]["matchLabels"]


# --- the Service and the endpoint -----------------------------------------------------------------------


def test_service_is_a_load_balancer_from_port_80_to_the_vllm_port(runs):
    service = runs["l4"].one(SERVICE).inputs["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": pods.PORT_NAME, "protocol": "TCP"}]
    (container_port,) = vllm_container(runs["l4"])["ports"]
    assert container_port == {"name": pods.PORT_NAME, "containerPort": launch.PORT, "protocol": "TCP"}
    assert service["selector"] == deployment(runs["l4"])["spec"]["selector"]["matchLabels"]


def test_allowed_cidrs_become_load_balancer_source_ranges(runs):
    assert runs["gke"].one(SERVICE).inputs["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert "loadBalancerSourceRanges" not in runs["l4"].one(SERVICE).inputs["spec"]


def test_endpoint_is_the_load_balancer_ip(runs):
    assert runs["l4"].outputs["endpoint"] == f"http://{fakes_kubernetes.LB_IP}"


def test_endpoint_is_the_load_balancer_hostname_when_the_cloud_gives_one(monkeypatch):
    outputs = fakes_kubernetes.service_outputs(ip=None, hostname=fakes_kubernetes.LB_HOSTNAME)
    monkeypatch.setitem(mockrun.OUTPUTS, SERVICE, outputs)
    run = run_program("k8s-l4", secrets=SECRETS)
    assert run.outputs["endpoint"] == f"http://{fakes_kubernetes.LB_HOSTNAME}"


def test_aws_load_balancers_keep_idle_connections_as_long_as_the_vm_backends(runs):
    # EKS without annotations: a Classic ELB cuts a connection silent for 60 s (cloud-provider-aws), the
    # AWS Load Balancer Controller's NLB after 350 s (its listener's tcp.idle_timeout.seconds, 60-6000).
    # The VM backends' load balancers allow 600 s, below vLLM's keep-alive.
    annotations = runs["l4"].one(SERVICE).inputs["metadata"]["annotations"]
    aws = "service.beta.kubernetes.io/aws-load-balancer"
    assert annotations == {
        f"{aws}-connection-idle-timeout": "600",
        f"{aws}-listener-attributes.TCP-80": "tcp.idle_timeout.seconds=600",
    }
    assert 60 <= launch.LOAD_BALANCER_IDLE_SECONDS <= 4000 < 6000  # Classic ELB's and the NLB's ranges
    assert launch.LOAD_BALANCER_IDLE_SECONDS < launch.KEEP_ALIVE_SECONDS


def test_the_nlb_idle_timeout_is_set_on_the_https_listener_when_vllm_serves_tls():
    run = run_program(
        "tls-test", k8s_stack(**{"vllm:domain": "llm.example.com", "vllm:tlsSecretName": "llm-tls"}), SECRETS
    )
    annotations = run.one(SERVICE).inputs["metadata"]["annotations"]
    assert "service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-443" in annotations


def test_a_cluster_ip_service_has_no_load_balancer_annotations(runs):
    assert "annotations" not in runs["clusterip"].one(SERVICE).inputs["metadata"]


def test_cluster_ip_service_gives_the_in_cluster_dns_name(runs):
    run = runs["clusterip"]
    assert run.one(SERVICE).inputs["spec"]["type"] == "ClusterIP"
    assert run.outputs["endpoint"] == "http://vllm-internal-test-api.vllm-internal-test.svc.cluster.local"


def test_service_is_named_apart_from_the_workload(runs):
    service = runs["l4"].one(SERVICE).inputs["metadata"]["name"]
    assert service == "vllm-k8s-l4-api" != deployment(runs["l4"])["metadata"]["name"]


@pytest.mark.parametrize("stack", ["k8s-l4", "internal-test"])
def test_service_waits_for_the_serving_pods_within_their_start_budget(monkeypatch, stack):
    # pulumi-kubernetes' Service await (provider/pkg/await/service.go, 4.17+) completes on
    # `serviceReady && endpointsSettled && !endpointsPending`: no address may be not ready, but none at all
    # will do. Pods that are loading are not-ready addresses, so the Service waits as long as one start;
    # what makes `up` wait for the model at all is the Deployment's await, which the Service depends on.
    config = SCENARIOS["clusterip"][1] if stack == "internal-test" else {}
    run, recorded = registrations(monkeypatch, stack, config)
    service = recorded[run.one(SERVICE).name]
    assert run.one(DEPLOYMENT).urn in service.dependencies
    start = start_budget(build_spec(stack, config))
    assert seconds(service.timeouts["create"]) == start
    assert seconds(service.timeouts["update"]) == start


# --- the dev stack --------------------------------------------------------------------------------------


def test_dev_stack_runs_one_cpu_pod_without_gpu(runs):
    run = runs["dev"]
    container = vllm_container(run)
    assert deployment(run)["spec"]["replicas"] == 1
    assert gpu_nodes.GPU_RESOURCE not in container["resources"]["limits"]
    assert "tolerations" not in pod(run) and "affinity" not in pod(run)
    assert "--tensor-parallel-size" not in container["command"]
    assert container["image"].startswith("vllm/vllm-openai-cpu:v")


def test_dev_stack_has_no_hf_token(runs):
    run = runs["dev"]
    assert launch.HF_TOKEN_ENV not in secret_data(run)
    assert {item["name"] for item in vllm_container(run)["env"] if "valueFrom" in item} == {
        launch.API_KEY_ENV
    }


def test_dev_stack_fits_a_laptop(runs):
    resources = vllm_container(runs["dev"])["resources"]
    assert resources["requests"] == {"cpu": "2000m", "memory": "6144Mi", "ephemeral-storage": "12Gi"}


def test_dev_stack_sizes_the_cpu_kv_cache_from_its_memory(runs):
    env = {item["name"]: item.get("value") for item in vllm_container(runs["dev"])["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"  # 6 GB - 2 GB weights - 3 GB runtime


def test_dev_stack_keeps_sys_nice_for_cpu_numa_binding(runs):
    assert vllm_container(runs["dev"])["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["SYS_NICE"],
    }


def test_dev_stack_is_reached_in_cluster(runs):
    assert runs["dev"].outputs["endpoint"] == "http://vllm-dev-api.vllm-dev.svc.cluster.local"


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("vllm:gpuNodeSelector", "bogus"),
        ("vllm:namespace", "Bad_NS"),
        ("vllm:serviceType", "NodePort"),
        ("vllm:spot", "true"),
        ("vllm:maxSurge", "-1"),
        ("vllm:maxSurge", "one"),
    ],
)
def test_bad_kubernetes_values_are_rejected_naming_the_key(key, value):
    error = spec_error("bad-test", k8s_stack(**{key: value}))
    assert error.key == key
    assert key in str(error)


def test_gke_scheme_rejects_a_gpu_gke_does_not_sell():
    error = spec_error("gke-a10g", k8s_stack("A10G:1", **{"vllm:gpuNodeSelector": "gke"}))
    assert error.key == "vllm:gpuNodeSelector"
    assert "A10G" in str(error)


def test_cpu_pod_memory_must_hold_weights_runtime_and_cache():
    config = {**dev_config(), "vllm:memoryGb": "4"}
    error = program_refusal("dev", config)
    assert error.key == "vllm:memoryGb"
    assert ">= 6" in str(error)
