"""The GCP platform, single node: the real program under mocks, asserted on the resources it declares."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

import components.gcp.deployment as gcp_deployment
from components import catalog, launch
from components.gcp.fakes import BOOT_IMAGE_DISK_GB
from components.gcp.load_balancer import CONNECTION_DRAINING_SECONDS
from components.gcp.machine import (
    AGENT_START_SECONDS,
    BOOT_IMAGE_FAMILY,
    HOLD_MARGIN_SECONDS,
    IMAGE_METADATA_KEY,
    MAX_INITIAL_DELAY_SECONDS,
    MAX_MIN_READY_SECONDS,
    MAX_ROLL_WAIT_SECONDS,
    SECRET_VERSIONS_METADATA_KEY,
    roll_timings,
)
from components.gcp.network import GOOGLE_LB_RANGES, HEALTH_AGENT_PORT
from components.gcp.registry import docker_hub_path
from components.launch import ProbeTimings
from components.platforms import BOOT_DISK_KEPT_GB
from components.spec import SpecError, build_spec
from tests.harness import Resource, Run, checked_spec, run_program
from tests.test_vm_bootstrap import shellcheck
from tools import mockrun

HF_TOKEN, API_KEY = "hf_testtoken123", "sk-test-key-4567890"
SECRETS = {"vllm:hfToken": HF_TOKEN, "vllm:apiKey": API_KEY}
MODEL = "Qwen/Qwen3-8B"
#: How Pulumi marks a serialized secret value.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"

PROVIDER = "pulumi:providers:gcp"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
REGIONAL_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
FIREWALL = "gcp:compute/firewall:Firewall"
SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_GRANT = "gcp:secretmanager/secretIamMember:SecretIamMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
SERVICE = "gcp:projects/service:Service"
#: The API behind each pulumi_gcp module the stack declares resources of.
API_OF_MODULE = {
    "compute": "compute.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "serviceaccount": "iam.googleapis.com",
    "projects": "cloudresourcemanager.googleapis.com",  # project IAM bindings
    "artifactregistry": "artifactregistry.googleapis.com",
    "storage": "storage.googleapis.com",
    "monitoring": "monitoring.googleapis.com",  # the service dashboard
}

# One program run per scenario, shared by the tests that read it.
SCENARIOS = {
    "h100": ("gcp-h100", {}),
    "l4": ("l4-test", {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL, "vllm:replicas": 1}),
    "t4": (
        "t4-test",
        {
            "vllm:cloud": "gcp",
            "vllm:gpu": "T4:2",
            "vllm:model": MODEL,
            "vllm:replicas": 3,
            "vllm:allowedCidrs": ["203.0.113.0/24", "198.51.100.7/32"],
        },
    ),
    "a100-spot": (
        "a100-spot-test",
        {"vllm:cloud": "gcp", "vllm:gpu": "A100-80GB:4", "vllm:model": MODEL, "vllm:spot": True},
    ),
    "zone": (
        "zone-test",
        {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL, "gcp:zone": "us-central1-b"},
    ),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {key: run_program(stack, config, secrets=SECRETS) for key, (stack, config) in SCENARIOS.items()}


@pytest.fixture
def registrations(monkeypatch) -> dict:
    """Each registration request of the next run by URN: its dependencies and custom timeouts, which the
    mock runtime's resource records leave out."""
    seen: dict = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(self, request):
        response = register(self, request)
        seen[response.urn] = request
        return response

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    return seen


@pytest.fixture(scope="module")
def h100(runs) -> Run:
    return runs["h100"]


def spec_of(key: str):
    stack, config = SCENARIOS[key]
    return build_spec(stack, config)


def launch_of(key: str) -> launch.LaunchSpec:
    return launch.launch_spec(spec_of(key), has_hf_token=True)


def startup_script(run: Run) -> str:
    return run.one(TEMPLATE).inputs["metadata"]["startup-script"]


def reaches_backend(url_map: dict, host: str, path: str) -> bool:
    """GCP's URL map evaluation for one request: host rule -> path matcher -> path rule or default. A
    route action that aborts every request answers in the proxy: the request reaches no backend."""

    def served(service: str | None, route_action: dict | None) -> bool:
        abort = (route_action or {}).get("faultInjectionPolicy", {}).get("abort")
        return service is not None and not (abort and abort["percentage"] >= 100)

    matcher_name = next(
        (
            rule["pathMatcher"]
            for rule in url_map.get("hostRules", [])
            if host in rule["hosts"] or "*" in rule["hosts"]
        ),
        None,
    )
    if matcher_name is None:
        return served(url_map.get("defaultService"), url_map.get("defaultRouteAction"))
    matcher = next(m for m in url_map["pathMatchers"] if m["name"] == matcher_name)
    for rule in matcher.get("pathRules", []):
        for pattern in rule["paths"]:
            if path == pattern or (pattern.endswith("/*") and path.startswith(pattern[:-1])):
                return served(rule.get("service"), rule.get("routeAction"))
    return served(matcher.get("defaultService"), matcher.get("defaultRouteAction"))


# --- machines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_template_uses_the_catalog_machine(runs, key):
    assert runs[key].one(TEMPLATE).inputs["machineType"] == spec_of(key).offering.machine_type


def test_n1_machines_get_their_gpus_as_guest_accelerators(runs):
    template = runs["t4"].one(TEMPLATE).inputs
    assert template["machineType"].startswith("n1-")
    assert template["guestAccelerators"] == [{"type": "nvidia-tesla-t4", "count": 2}]


def test_machines_with_built_in_gpus_get_no_guest_accelerator(h100):
    assert not h100.one(TEMPLATE).inputs.get("guestAccelerators")


@pytest.mark.parametrize("key", SCENARIOS)
def test_gpu_vms_terminate_on_host_maintenance(runs, key):
    assert runs[key].one(TEMPLATE).inputs["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_on_demand_vms_restart_automatically_and_are_not_spot(h100):
    scheduling = h100.one(TEMPLATE).inputs["scheduling"]
    assert scheduling["automaticRestart"] is True
    assert scheduling["provisioningModel"] == "STANDARD"
    assert not scheduling.get("preemptible")


def test_spot_vms_are_spot_preemptible_and_deleted_on_preemption(runs):
    scheduling = runs["a100-spot"].one(TEMPLATE).inputs["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["preemptible"] is True
    assert scheduling["automaticRestart"] is False
    assert scheduling["instanceTerminationAction"] == "DELETE"


@pytest.mark.parametrize("key", SCENARIOS)
def test_vms_use_gvnic_and_have_no_external_ip(runs, key):
    (interface,) = runs[key].one(TEMPLATE).inputs["networkInterfaces"]
    assert interface["nicType"] == "GVNIC"
    assert not interface.get("accessConfigs")
    assert not interface.get("ipv6AccessConfigs")


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_boot_disk_has_the_spec_size_and_the_gpu_image(runs, key):
    """The spec's size, or on local NVMe the image's (tests/test_boot_disk.py)."""
    (disk,) = runs[key].one(TEMPLATE).inputs["disks"]
    assert disk["boot"] is True
    spec = spec_of(key)
    expected = BOOT_IMAGE_DISK_GB + BOOT_DISK_KEPT_GB if spec.boot_disk_from_image else spec.disk_size_gb
    assert disk["diskSizeGb"] == expected
    assert (
        disk["sourceImage"]
        == f"projects/deeplearning-platform-release/global/images/family/{BOOT_IMAGE_FAMILY}"
    )


def driver_of(image: str) -> int:
    return int(re.search(r"nvidia-(\d+)", image).group(1))


def test_the_default_image_familys_driver_runs_vllms_cuda_13_image():
    assert driver_of(BOOT_IMAGE_FAMILY) >= 580


@pytest.mark.parametrize(
    ("image", "source"),
    [
        (
            "common-cu129-ubuntu-2204-nvidia-580-v20260818",
            "projects/deeplearning-platform-release/global/images/common-cu129-ubuntu-2204-nvidia-580-v20260818",
        ),
        ("projects/my-images/global/images/vllm-host-v3", "projects/my-images/global/images/vllm-host-v3"),
    ],
)
def test_boot_image_pins_a_dated_image_for_every_vm(image, source):
    stack, config = SCENARIOS["l4"]
    run = run_program(stack, {**config, "vllm:bootImage": image}, secrets=SECRETS)
    assert run.one(TEMPLATE).inputs["disks"][0]["sourceImage"] == source


@pytest.mark.parametrize(
    "image",
    [
        "projects/deeplearning-platform-release/global/images/family/common-cu129-ubuntu-2204-nvidia-580",
        "common-cu128-ubuntu-2204-nvidia-570-v20250801",  # driver 570: no CUDA 13
        "Common_Image",
    ],
)
def test_a_family_an_old_driver_or_a_malformed_boot_image_is_refused(image):
    error = spec_error(
        {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:model": MODEL, "vllm:bootImage": image}
    )
    assert error.key == "vllm:bootImage" and "580" in str(error)


@pytest.mark.parametrize(
    ("key", "disk_type"), [("h100", "hyperdisk-balanced"), ("l4", "pd-balanced"), ("t4", "pd-balanced")]
)
def test_the_boot_disk_type_is_one_the_machine_series_supports(runs, key, disk_type):
    assert runs[key].one(TEMPLATE).inputs["disks"][0]["diskType"] == disk_type


def test_vms_run_as_the_stack_service_account_with_the_cloud_platform_scope(h100):
    account = h100.one(TEMPLATE).inputs["serviceAccount"]
    assert account["email"] == h100.one(ACCOUNT).outputs["email"]
    assert account["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]


def test_vms_are_shielded_with_vtpm_and_integrity_monitoring(h100):
    shielded = h100.one(TEMPLATE).inputs["shieldedInstanceConfig"]
    assert shielded["enableVtpm"] and shielded["enableIntegrityMonitoring"]


def test_the_startup_script_is_the_vm_bootstrap_with_the_driver_installed(h100):
    metadata = h100.one(TEMPLATE).inputs["metadata"]
    assert metadata["install-nvidia-driver"] == "True"
    assert "ROLE=serve" in metadata["startup-script"]
    assert "API_KEY_SECRET=vllm-gcp-h100-api-key" in metadata["startup-script"]
    assert "HF_TOKEN_SECRET=vllm-gcp-h100-hf-token" in metadata["startup-script"]


@pytest.mark.parametrize("key", ["h100", "t4"])
def test_the_startup_script_passes_shellcheck(runs, key):
    result = shellcheck(startup_script(runs[key]))
    assert result.returncode == 0, result.stdout


# --- managed instance group -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_group_runs_one_vm_per_replica(runs, key):
    assert runs[key].one(REGIONAL_MIG).inputs["targetSize"] == spec_of(key).replicas


def test_the_group_spreads_over_the_region_zones_that_sell_the_machine(h100):
    spec = spec_of("h100")
    assert h100.one(REGIONAL_MIG).inputs["distributionPolicyZones"] == list(spec.offering.zones[spec.region])


def test_a_pinned_zone_is_the_only_zone(runs):
    assert runs["zone"].one(REGIONAL_MIG).inputs["distributionPolicyZones"] == ["us-central1-b"]


def test_the_group_names_the_serving_port(h100):
    assert h100.one(REGIONAL_MIG).inputs["namedPorts"] == [{"name": "http", "port": launch.PORT}]


def test_the_group_uses_the_template(h100):
    mig = h100.one(REGIONAL_MIG).inputs
    assert mig["versions"][0]["instanceTemplate"] == h100.one(TEMPLATE).outputs["selfLinkUnique"]


@pytest.mark.parametrize("key", SCENARIOS)
def test_up_waits_until_the_group_is_updated_so_a_roll_finishes_or_fails_inside_up(runs, key):
    mig = runs[key].one(REGIONAL_MIG).inputs
    assert mig["waitForInstances"] is True
    assert mig["waitForInstancesStatus"] == "UPDATED"


def minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration[:-1])


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_groups_wait_is_sized_to_every_surge_wave_of_a_roll(key, registrations):
    stack, config = SCENARIOS[key]
    run = run_program(stack, config, secrets=SECRETS)
    mig = run.one(REGIONAL_MIG)
    timeouts = registrations[mig.urn].customTimeouts
    zones = len(mig.inputs["distributionPolicyZones"])
    waves = math.ceil(spec_of(key).replicas / zones)
    timings = roll_timings(launch.launch_spec(spec_of(key), has_hf_token=True))
    wave = AGENT_START_SECONDS + timings.roll_wait_seconds + CONNECTION_DRAINING_SECONDS
    for timeout in (timeouts.create, timeouts.update):
        assert minutes(timeout) * 60 >= waves * wave


@pytest.mark.parametrize("key", SCENARIOS)
def test_a_roll_keeps_an_old_vm_until_its_replacement_had_the_load_budget(runs, key):
    mig = runs[key].one(REGIONAL_MIG).inputs
    budget = launch.probe_timings(spec_of(key)).expected_startup_seconds  # a roll waits for the estimate
    assert mig["updatePolicy"]["minReadySec"] == min(budget, MAX_MIN_READY_SECONDS)
    hold = roll_timings(launch.launch_spec(spec_of(key), has_hf_token=True)).hold_until_uptime
    assert hold + mig["updatePolicy"]["minReadySec"] >= budget
    assert f"--hold-until-uptime {hold}" in startup_script(runs[key])


@pytest.mark.parametrize("budget", [705, 3480, 3600, 3601, 4650, 5675, MAX_ROLL_WAIT_SECONDS])
def test_a_budget_over_gcps_3600_s_caps_is_waited_for_by_holding_the_agent_within_the_initial_delay(budget):
    probes = ProbeTimings(startup_seconds=budget, expected_startup_seconds=budget)
    timings = roll_timings(dataclasses.replace(launch_of("l4"), probes=probes))
    assert timings.roll_wait_seconds >= budget
    assert timings.min_ready_seconds <= MAX_MIN_READY_SECONDS
    assert timings.initial_delay_seconds <= MAX_INITIAL_DELAY_SECONDS
    assert timings.initial_delay_seconds >= timings.hold_until_uptime + HOLD_MARGIN_SECONDS


@pytest.mark.parametrize(
    "config",
    [
        {"vllm:gpu": "H200:8", "vllm:spot": True},  # default weights: 90% of 8 x 141 GB, within the wait
        {  # 1000 GB of weights fit 8 x 141 GB at vLLM's 90%: a 5600 s budget
            "vllm:gpu": "H200:8",
            "vllm:spot": True,
            "vllm:modelSizeGb": 1000,
            "vllm:diskSizeGb": 1200,
        },
    ],
)
def test_budgets_a_roll_can_wait_for_are_accepted(config):
    spec = build_spec("variant", {"vllm:cloud": "gcp", "vllm:model": MODEL, **config})
    gcp_deployment.check_deployment(spec)


@pytest.mark.parametrize(
    "config",
    [
        # B200:8's largest models now load within a roll's wait from the local SSDs (test_weight_cache_clouds)
        {"vllm:gpu": "H100:8", "vllm:nodes": 3, "vllm:replicas": 2},  # two Ray groups, 2 x 1728 GB weights
    ],
)
def test_a_budget_no_roll_can_wait_for_is_refused_before_any_resource(config):
    full = {"vllm:cloud": "gcp", "vllm:model": MODEL, **config}
    with pytest.raises(SpecError) as raised:
        run_program("a-very-long-stack-name-for-a-gcp-rollout-check", full, secrets=SECRETS)
    assert raised.value.key == "vllm:modelSizeGb" and str(MAX_ROLL_WAIT_SECONDS) in str(raised.value)
    assert raised.value.declared_resources == []


def test_a_single_multi_node_replica_rolls_in_place_whatever_its_budget():
    spec = build_spec(
        "one-group", {"vllm:cloud": "gcp", "vllm:model": MODEL, "vllm:gpu": "H100:8", "vllm:nodes": 3}
    )
    assert launch.probe_timings(spec).startup_seconds > MAX_ROLL_WAIT_SECONDS
    gcp_deployment.check_deployment(spec)


def autohealing_check_of(run: Run, policy: dict) -> Resource:
    return next(c for c in run.of_type(HEALTH_CHECK) if f"{c.name}-id" == policy["healthCheck"])


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_group_autoheals_on_the_host_health_agent_not_on_vllm(runs, key):
    run = runs[key]
    policy = run.one(REGIONAL_MIG).inputs["autoHealingPolicies"]
    check = autohealing_check_of(run, policy)
    assert check.inputs["httpHealthCheck"]["port"] == HEALTH_AGENT_PORT != launch.PORT


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_autohealing_delay_covers_the_agents_start_and_hold_and_fits_gcps_cap(runs, key):
    policy = runs[key].one(REGIONAL_MIG).inputs["autoHealingPolicies"]
    assert policy["initialDelaySec"] == roll_timings(launch_of(key)).initial_delay_seconds
    assert AGENT_START_SECONDS <= policy["initialDelaySec"] <= MAX_INITIAL_DELAY_SECONDS


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_health_agent_gets_the_models_phase_caps_and_the_stall_window(runs, key):
    script = startup_script(runs[key])
    caps = " ".join(launch.health_caps(spec_of(key)).as_args())
    assert f"HEALTH_AGENT_ARGS=(--report http --port {HEALTH_AGENT_PORT} --hold-until-uptime " in script
    assert f" --role serve {caps} --stall {launch.STALL_SECONDS} " in script
    assert f"--port {HEALTH_AGENT_PORT}" in script


@pytest.mark.parametrize("key", SCENARIOS)
def test_only_googles_health_checkers_reach_the_health_agent_port(runs, key):
    run = runs[key]
    rules = [r for r in run.of_type(FIREWALL) if str(HEALTH_AGENT_PORT) in str(r.inputs["allows"])]
    assert len(rules) == 1
    assert sorted(rules[0].inputs["sourceRanges"]) == sorted(GOOGLE_LB_RANGES)
    assert set(rules[0].inputs["targetTags"]) <= set(run.one(TEMPLATE).inputs["tags"])


@pytest.mark.parametrize("key", ["h100", "zone"])
def test_updates_surge_by_the_zone_count_and_never_go_below_the_replica_count(runs, key):
    mig = runs[key].one(REGIONAL_MIG).inputs
    policy = mig["updatePolicy"]
    assert policy["type"] == "PROACTIVE"
    assert policy["maxUnavailableFixed"] == 0
    assert policy["maxSurgeFixed"] == len(mig["distributionPolicyZones"])
    assert policy["instanceRedistributionType"] == "NONE"


# --- load balancer --------------------------------------------------------------------------------------


def test_the_lb_health_check_probes_health_on_the_serving_port(h100):
    check = next(
        c
        for c in h100.of_type(HEALTH_CHECK)
        if f"{c.name}-id" == h100.one(BACKEND_SERVICE).inputs["healthChecks"]
    )
    probes = launch.probe_timings(spec_of("h100"))
    assert check.inputs["httpHealthCheck"] == {"port": 8000, "requestPath": "/health"}
    assert check.inputs["checkIntervalSec"] == probes.period_seconds
    assert check.inputs["timeoutSec"] == probes.timeout_seconds
    assert check.inputs["unhealthyThreshold"] == probes.unhealthy_threshold


def test_the_backend_service_is_a_global_external_managed_http_backend(h100):
    backend = h100.one(BACKEND_SERVICE).inputs
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert backend["protocol"] == "HTTP"
    assert backend["portName"] == "http"
    assert backend["localityLbPolicy"] == "LEAST_REQUEST"
    assert backend["timeoutSec"] >= 3600  # whole-response timeout: streamed completions run for minutes
    assert backend["connectionDrainingTimeoutSec"] > 0


def test_the_backend_serves_the_replica_instance_group(h100):
    (backend,) = h100.one(BACKEND_SERVICE).inputs["backends"]
    assert backend["group"] == h100.one(REGIONAL_MIG).outputs["instanceGroup"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health"])
def test_the_url_map_routes_the_openai_api_and_health_to_vllm(h100, path):
    assert reaches_backend(h100.one(URL_MAP).inputs, "203.0.113.10", path)


@pytest.mark.parametrize(
    "path",
    ["/metrics", "/pause", "/update_weights", "/tokenize", "/invocations", "/version", "/", "/v1", "/v2/x"],
)
def test_the_url_map_keeps_every_other_path_from_vllm(h100, path):
    assert not reaches_backend(h100.one(URL_MAP).inputs, "203.0.113.10", path)


def test_requests_matching_no_host_rule_do_not_reach_vllm(h100):
    url_map = {**h100.one(URL_MAP).inputs, "hostRules": []}
    assert not reaches_backend(url_map, "example.com", "/v1/models")


def test_the_forwarding_rule_is_the_only_public_entry_on_port_80(h100):
    rule = h100.one(FORWARDING_RULE).inputs
    assert rule["portRange"] == "80"
    assert rule["loadBalancingScheme"] == "EXTERNAL_MANAGED"


# --- firewall and Cloud Armor -------------------------------------------------------------------------


@pytest.mark.parametrize("key", SCENARIOS)
def test_googles_ranges_reach_only_the_serving_and_health_agent_ports(runs, key):
    rules = [r.inputs for r in runs[key].of_type(FIREWALL) if r.inputs.get("sourceRanges")]
    assert rules, "no firewall rule admits the load balancer"
    for rule in rules:
        assert sorted(rule["sourceRanges"]) == sorted(GOOGLE_LB_RANGES)
    assert sorted(port for rule in rules for allow in rule["allows"] for port in allow["ports"]) == sorted(
        [str(launch.PORT), str(HEALTH_AGENT_PORT)]
    )


@pytest.mark.parametrize("key", SCENARIOS)
def test_no_firewall_rule_admits_the_internet(runs, key):
    for rule in runs[key].of_type(FIREWALL):
        assert "0.0.0.0/0" not in rule.inputs.get("sourceRanges", [])
        assert rule.inputs.get("direction", "INGRESS") == "INGRESS"


def test_allowed_cidrs_attach_a_cloud_armor_policy_that_denies_everyone_else(runs):
    run = runs["t4"]
    policy = run.one(SECURITY_POLICY)
    assert run.one(BACKEND_SERVICE).inputs["securityPolicy"] == f"{policy.name}-id"
    rules = sorted(policy.inputs["rules"], key=lambda rule: rule["priority"])
    allowed = [cidr for rule in rules[:-1] for cidr in rule["match"]["config"]["srcIpRanges"]]
    assert all(rule["action"] == "allow" for rule in rules[:-1])
    assert allowed == ["203.0.113.0/24", "198.51.100.7/32"]
    assert rules[-1]["action"] == "deny(403)"
    assert rules[-1]["match"]["config"]["srcIpRanges"] == ["*"]


def test_an_open_service_has_no_cloud_armor_policy(h100):
    assert not h100.of_type(SECURITY_POLICY)
    assert not h100.one(BACKEND_SERVICE).inputs.get("securityPolicy")


# --- secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", SCENARIOS)
def test_secret_values_appear_only_in_secret_versions(runs, key):
    run = runs[key]
    for resource in run.resources:
        if resource.type != SECRET_VERSION:
            assert HF_TOKEN not in resource.text(), resource.name
            assert API_KEY not in resource.text(), resource.name
    public_outputs = json.dumps({k: v for k, v in run.outputs.items() if k != "apiKey"})
    assert HF_TOKEN not in public_outputs and API_KEY not in public_outputs


def test_each_secret_version_holds_its_own_value_marked_secret(h100):
    data = {r.inputs["secret"]: r.inputs["secretData"] for r in h100.of_type(SECRET_VERSION)}
    assert {secret: value["value"] for secret, value in data.items()} == {
        "vllm-gcp-h100-api-key-id": API_KEY,
        "vllm-gcp-h100-hf-token-id": HF_TOKEN,
    }
    assert all(SECRET_SIGNATURE in value for value in data.values())


def test_secrets_have_deterministic_ids_and_automatic_replication(h100):
    secrets = {r.inputs["secretId"]: r.inputs for r in h100.of_type(SECRET)}
    assert set(secrets) == {"vllm-gcp-h100-api-key", "vllm-gcp-h100-hf-token"}
    assert all(secret["replication"] == {"auto": {}} for secret in secrets.values())


def test_only_the_replica_service_account_may_read_each_secret(h100):
    member = h100.one(ACCOUNT).outputs["member"]
    grants = h100.of_type(SECRET_GRANT)
    assert sorted(g.inputs["secretId"] for g in grants) == sorted(
        f"{s.name}-id" for s in h100.of_type(SECRET)
    )
    for grant in grants:
        assert grant.inputs["member"] == member
        assert grant.inputs["role"] == "roles/secretmanager.secretAccessor"
    project_roles = [r.inputs["role"] for r in h100.of_type("gcp:projects/iAMMember:IAMMember")]
    assert "roles/secretmanager.secretAccessor" not in project_roles


@pytest.mark.parametrize("key", SCENARIOS)
def test_the_template_names_each_secret_version_so_a_rotation_rolls_the_group(runs, key):
    run = runs[key]
    names = sorted(version.outputs["name"] for version in run.of_type(SECRET_VERSION))
    assert len(names) == 2 and all("/versions/" in name for name in names)
    assert sorted(run.one(TEMPLATE).inputs["metadata"][SECRET_VERSIONS_METADATA_KEY].split()) == names
    assert API_KEY not in json.dumps(run.one(TEMPLATE).inputs) and HF_TOKEN not in json.dumps(
        run.one(TEMPLATE).inputs
    )


# --- images from Google's network ------------------------------------------------------------------------

REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_READER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"


@pytest.mark.parametrize("key", SCENARIOS)
def test_a_docker_hub_remote_repository_in_the_region_caches_the_image(runs, key):
    repository = runs[key].one(REPOSITORY).inputs
    assert repository["mode"] == "REMOTE_REPOSITORY" and repository["format"] == "DOCKER"
    assert repository["remoteRepositoryConfig"]["dockerRepository"]["publicRepository"] == "DOCKER_HUB"
    assert repository["location"] == spec_of(key).region
    assert re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", repository["repositoryId"])


@pytest.mark.parametrize("key", SCENARIOS)
def test_vms_pull_the_pinned_image_through_the_mirror(runs, key):
    run = runs[key]
    repository = run.one(REPOSITORY)
    metadata = run.one(TEMPLATE).inputs["metadata"]
    assert metadata[IMAGE_METADATA_KEY] == f"{repository.outputs['registryUri']}/{spec_of(key).image}"
    assert f"IMAGE_METADATA_KEY={IMAGE_METADATA_KEY}" in startup_script(run)


def test_only_the_replicas_account_may_read_the_mirror_and_only_that_repository(h100):
    (grant,) = h100.of_type(REPOSITORY_READER)
    assert grant.inputs["role"] == "roles/artifactregistry.reader"
    assert grant.inputs["member"] == h100.one(ACCOUNT).outputs["member"]
    assert grant.inputs["repository"] == h100.one(REPOSITORY).outputs["name"]
    project_roles = {m.inputs["role"] for m in h100.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not any("artifactregistry" in role for role in project_roles)


def test_the_long_stack_names_repository_id_fits():
    run = run_program("x" * 60, {**SCENARIOS["l4"][1]}, secrets=SECRETS)
    assert len(run.one(REPOSITORY).inputs["repositoryId"]) <= 63


@pytest.mark.parametrize(
    ("image", "path"),
    [
        ("vllm/vllm-openai:v0.33.0", "vllm/vllm-openai:v0.33.0"),
        ("docker.io/vllm/vllm-openai:v0.33.0", "vllm/vllm-openai:v0.33.0"),
        ("ubuntu:22.04", "library/ubuntu:22.04"),
        ("ghcr.io/org/vllm:1", None),
        ("registry.local:5000/vllm:1", None),
    ],
)
def test_only_docker_hub_images_go_through_the_mirror(image, path):
    assert docker_hub_path(image) == path


def test_an_image_of_another_registry_is_pulled_directly():
    stack, config = SCENARIOS["l4"]
    run = run_program(stack, {**config, "vllm:image": "ghcr.io/org/vllm-openai:v0.33.0"}, secrets=SECRETS)
    assert run.of_type(REPOSITORY) == []
    assert IMAGE_METADATA_KEY not in run.one(TEMPLATE).inputs["metadata"]
    assert "IMAGE_METADATA_KEY=''" in startup_script(run)


def test_an_open_model_gets_no_hf_token_secret():
    run = run_program("l4-test", SCENARIOS["l4"][1], secrets={"vllm:apiKey": API_KEY})
    assert [r.inputs["secretId"] for r in run.of_type(SECRET)] == ["vllm-l4-test-api-key"]
    assert "HF_TOKEN_SECRET=''" in startup_script(run)


# --- engine rules ---------------------------------------------------------------------------------------


def gcp_provider(run: Run, name: str = "gcp") -> Resource:
    return next(p for p in run.of_type(PROVIDER) if p.name == name)


@pytest.mark.parametrize("key", ["h100", "t4"])
def test_every_gcp_resource_uses_the_stacks_explicit_provider(runs, key):
    run = runs[key]
    provider, apis_provider = gcp_provider(run), gcp_provider(run, "gcp-apis")
    for resource in run.resources:
        if resource.custom and resource.type.startswith("gcp:"):
            expected = apis_provider if resource.type == SERVICE else provider
            assert resource.provider.startswith(f"{expected.urn}::"), resource.name


@pytest.mark.parametrize("key", SCENARIOS)
def test_every_api_the_stack_uses_is_enabled_and_left_on_at_destroy(runs, key):
    services = runs[key].of_type(SERVICE)
    enabled = {s.inputs["service"] for s in services}
    modules = {
        resource.type.split(":")[1].split("/")[0]
        for resource in runs[key].resources
        if resource.custom and resource.type.startswith("gcp:") and resource.type != SERVICE
    }
    assert {API_OF_MODULE[module] for module in modules} <= enabled  # a KeyError: a module new to this test
    assert {"logging.googleapis.com", "monitoring.googleapis.com"} <= enabled  # the VMs' guest agent writes
    for service in services:
        assert service.inputs["disableOnDestroy"] is False


def test_the_stacks_provider_waits_for_every_api(registrations):
    run = run_program(*SCENARIOS["l4"], secrets=SECRETS)
    provider = gcp_provider(run)
    assert {s.urn for s in run.of_type(SERVICE)} <= set(registrations[provider.urn].dependencies)


def test_the_provider_takes_the_region_and_the_pinned_zone(runs):
    provider = gcp_provider(runs["zone"]).inputs
    assert provider["region"] == "us-central1"
    assert provider["zone"] == "us-central1-b"


@pytest.mark.parametrize("key", ["h100", "t4"])
def test_every_resource_descends_from_the_vllm_service(runs, key):
    run = runs[key]
    for resource in run.resources:
        if resource.type != "vllm:index:VllmService":
            assert any(a.type == "vllm:index:VllmService" for a in run.ancestors(resource)), resource.name


def test_components_use_vllm_gcp_type_tokens(h100):
    components = {r.type for r in h100.resources if not r.custom and r.type.startswith("vllm:gcp:")}
    assert components == {
        "vllm:gcp:ImageMirror",
        "vllm:gcp:ProjectApis",
        "vllm:gcp:Network",
        "vllm:gcp:ServiceIdentity",
        "vllm:gcp:ReplicaGroup",
        "vllm:gcp:LoadBalancer",
        "vllm:gcp:WeightCache",
        "vllm:gcp:ServiceDashboard",
    }


# --- stack outputs --------------------------------------------------------------------------------------


def test_the_endpoint_is_the_lb_address_over_http_without_a_trailing_slash(h100):
    assert h100.outputs["endpoint"] == "http://203.0.113.10"


def test_the_model_output_is_the_served_model_name(h100):
    assert h100.outputs["model"] == spec_of("h100").served_model_name


@pytest.mark.parametrize("key", SCENARIOS)
def test_cost_per_hour_is_the_catalog_price_times_replicas(runs, key):
    spec = spec_of(key)
    offering = catalog.select("gcp", spec.gpu.type, spec.gpu.count, spec.spot)
    assert runs[key].outputs["costPerHour"] == pytest.approx(
        round(offering.hourly(spec.spot) * spec.replicas, 2)
    )


# --- bad input ------------------------------------------------------------------------------------------


def spec_error(config: dict) -> SpecError:
    """The SpecError the program's checks stop ``config`` with, without running it (``checked_spec``)."""
    with pytest.raises(SpecError) as raised:
        checked_spec("bad-test", {"vllm:cloud": "gcp", "vllm:model": MODEL, **config})
    return raised.value


def program_refusal(config: dict) -> SpecError:
    """The SpecError the real program stops with, before any resource is declared."""
    with pytest.raises(SpecError) as raised:
        run_program("bad-test", {"vllm:cloud": "gcp", "vllm:model": MODEL, **config})
    assert raised.value.declared_resources == []
    return raised.value


def test_a_gpu_gcp_does_not_sell_is_rejected_with_what_it_offers():
    error = spec_error({"vllm:gpu": "A10G:1"})
    assert error.key == "vllm:gpu"
    assert "H100" in error.valid and "L4" in error.valid


def test_a_gpu_count_gcp_does_not_sell_is_rejected():
    assert spec_error({"vllm:gpu": "H100:3"}).key == "vllm:gpu"


def test_a_region_that_does_not_sell_the_machine_is_rejected():
    error = spec_error({"vllm:gpu": "H100:8", "gcp:region": "us-east1"})
    assert error.key == "gcp:region"
    assert "us-central1" in error.valid


def test_a_pinned_zone_that_does_not_sell_the_machine_is_rejected_with_the_zones_that_do():
    error = program_refusal({"vllm:gpu": "H100:8", "gcp:zone": "us-central1-f"})
    assert error.key == "gcp:zone"
    assert "us-central1-a" in error.valid


# --- reservations and rollouts --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reserved() -> Run:
    """An on-demand base that consumes a reservation, Spot replicas above it."""
    config = {
        "vllm:cloud": "gcp",
        "vllm:model": MODEL,
        "vllm:gpu": "L4:1",
        "vllm:replicas": 3,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 1,
        "gcp:zone": "us-central1-a",
        "vllm:reservation": "l4-reservation",
    }
    return run_program("reserved", config, secrets=SECRETS)


def group_policies(run: Run) -> dict[str, tuple[dict, dict]]:
    """Each regional group's update policy, with the reservation affinity of its template."""
    templates = {t.name: t for t in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")}
    policies = {}
    for group in run.of_type("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
        link = group.inputs["versions"][0]["instanceTemplate"]  # .../instanceTemplates/NAME?uniqueId=...
        template = templates[link.rsplit("/", 1)[1].split("?")[0]]
        policies[group.name] = (
            group.inputs["updatePolicy"],
            template.inputs.get("reservationAffinity") or {},
        )
    return policies


def test_a_group_that_consumes_a_reservation_rolls_without_surge(reserved):
    # A VM that consumes a specific reservation fails rather than falling back when it is full
    # (platform-rules.md), so a surge VM would need a free reserved slot: remove one, then replace it.
    consuming = [policy for policy, affinity in group_policies(reserved).values() if affinity]
    assert len(consuming) == 1
    (policy,) = consuming
    assert (policy["maxSurgeFixed"], policy["maxUnavailableFixed"]) == (0, 1)


def test_spot_groups_beside_a_reservation_still_surge(reserved):
    others = [policy for policy, affinity in group_policies(reserved).values() if not affinity]
    assert others and all(
        (policy["maxSurgeFixed"], policy["maxUnavailableFixed"]) == (1, 0) for policy in others
    )
