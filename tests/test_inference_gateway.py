"""``vllm:router: inference-gateway``: the Gateway API Inference Extension in front of the replicas, as the
program declares it, validated against the CRDs of the pinned releases (tests/crds/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.kubernetes import fakes as fakes_kubernetes
from components.kubernetes import inference_gateway as gie
from components.kubernetes import pods
from components.launch import PORT
from components.spec import SpecError, build_spec
from tests.harness import Run, run_program
from tests.test_kubernetes import API_KEY, HF_TOKEN, SECRET, SECRETS, manifest, plain, validate

CRDS = Path(__file__).parent / "crds"
POOL = "kubernetes:inference.networking.k8s.io/v1:InferencePool"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
BACKEND_POLICY = "kubernetes:networking.gke.io/v1:GCPBackendPolicy"
HEALTH_CHECK_POLICY = "kubernetes:networking.gke.io/v1:HealthCheckPolicy"
ROUTER = {"vllm:router": "inference-gateway", "vllm:gatewayClassName": "istio"}
DOMAIN = "llm.example.com"
GKE_HTTPS = {
    "vllm:router": "inference-gateway",
    "vllm:gatewayClassName": "gke-l7-regional-external-managed",
    "vllm:domain": DOMAIN,
    "vllm:tlsSecretName": "llm-example-com-tls",
}
#: A Gateway of the cluster's (shared, created by its operators), whose HTTPS listener serves the domain.
EXISTING = {
    "vllm:router": "inference-gateway",
    "vllm:gatewayName": "gateway-system/public-gateway",
    "vllm:domain": DOMAIN,
}
SPOT_BASE = {
    "vllm:gpuNodeSelector": "gke",
    "vllm:spot": True,
    "vllm:onDemandBaseReplicas": 1,
    "vllm:replicas": 3,
}
AUTOSCALED = {
    "vllm:replicas": "unset",
    "vllm:maxReplicas": "4",
    "vllm:targetQpsPerReplica": "2.5",
    "vllm:prometheusUrl": "http://prometheus.monitoring:9090",
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {
        "single": run_program("k8s-l4", ROUTER, SECRETS),
        "https": run_program("k8s-l4", GKE_HTTPS, SECRETS),
        "multinode": run_program("k8s-h100-multinode", ROUTER, SECRETS),
        "spot+base": run_program("k8s-l4", {**ROUTER, **SPOT_BASE}, SECRETS),
        "autoscaled": run_program("k8s-l4", {**ROUTER, **AUTOSCALED}, SECRETS),
        "existing": run_program("k8s-l4", EXISTING, SECRETS),
    }


SCENARIOS = ["single", "https", "multinode", "spot+base", "autoscaled"]
#: The API groups of Kubernetes' own kinds, which its OpenAPI schema validates (the rest are CRDs').
KUBERNETES_GROUPS = ("core", "apps", "rbac.authorization.k8s.io")


def crd_schema(filename: str, version: str = "v1") -> dict[str, Any]:
    """A vendored CRD's schema for ``version``, refusing unknown fields (the API server would prune them
    silently). CEL rules (``x-kubernetes-validations``) are the API server's alone and are not checked."""
    crd = yaml.safe_load((CRDS / filename).read_text())
    (served,) = [entry for entry in crd["spec"]["versions"] if entry["name"] == version]
    return strict(served["schema"]["openAPIV3Schema"])


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    result = dict(schema)
    if "properties" in result:
        result["properties"] = {name: strict(value) for name, value in result["properties"].items()}
        if "additionalProperties" not in result and not result.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(result.get(key), dict):
            result[key] = strict(result[key])
    return result


SCHEMAS = {
    POOL: crd_schema("inference.networking.k8s.io_inferencepools.yaml"),
    GATEWAY: crd_schema("gateway.networking.k8s.io_gateways.yaml"),
    ROUTE: crd_schema("gateway.networking.k8s.io_httproutes.yaml"),
}

#: GIE v1.5.0's EndpointPickerConfig (apix/config/v1alpha1/endpointpickerconfig_types.go), decoded strictly
#: (pkg/epp/config/loader/configloader.go: serializer.EnableStrict), with the plugin types this program uses
#: among those the release registers (pkg/epp/framework/plugins: the ``...Type`` constants).
PLUGIN_TYPES = [
    "queue-scorer",
    "kv-cache-utilization-scorer",
    "prefix-cache-scorer",
    "metrics-data-source",
    "core-metrics-extractor",
    "max-score-picker",
    "single-profile-handler",
]
ENDPOINT_PICKER_CONFIG_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "plugins", "schedulingProfiles"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "inference.networking.x-k8s.io/v1alpha1"},
        "kind": {"const": "EndpointPickerConfig"},
        "featureGates": {"type": "array", "items": {"type": "string"}},
        "plugins": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "type": {"enum": PLUGIN_TYPES},
                    "parameters": {"type": "object"},
                },
            },
        },
        "schedulingProfiles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "plugins"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "plugins": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["pluginRef"],
                            "additionalProperties": False,
                            "properties": {"pluginRef": {"type": "string"}, "weight": {"type": "number"}},
                        },
                    },
                },
            },
        },
    },
}


def epp_container(run: Run) -> dict[str, Any]:
    (epp,) = [d for d in run.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"].endswith("-epp")]
    (container,) = epp.inputs["spec"]["template"]["spec"]["containers"]
    return container


def epp_config(run: Run) -> dict[str, Any]:
    args = epp_container(run)["args"]
    return yaml.safe_load(args[args.index("--config-text") + 1])


def route_rule(run: Run) -> dict[str, Any]:
    (rule,) = run.one(ROUTE).inputs["spec"]["rules"]
    return rule


def serving_templates(run: Run) -> dict[str, dict[str, Any]]:
    """The pod templates of every serving workload, by name (a LeaderWorkerSet's leader and worker)."""
    templates = {
        d.inputs["metadata"]["name"]: d.inputs["spec"]["template"]
        for d in run.of_type(DEPLOYMENT)
        if not d.inputs["metadata"]["name"].endswith("-epp")
    }
    for lws in run.of_type(LWS):
        group = lws.inputs["spec"]["leaderWorkerTemplate"]
        templates["leader"], templates["worker"] = group["leaderTemplate"], group["workerTemplate"]
    return templates


def selects(selector: dict[str, str], template: dict[str, Any]) -> bool:
    return selector.items() <= template["metadata"]["labels"].items()


# --- the resources, against their CRDs -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("kind", [POOL, GATEWAY, ROUTE])
def test_the_gateway_resources_validate_against_the_pinned_crds(runs, scenario, kind):
    jsonschema.validate(manifest(runs[scenario].one(kind)), SCHEMAS[kind])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_endpoint_picker_config_is_one_the_pinned_epp_decodes(runs, scenario):
    config = epp_config(runs[scenario])
    jsonschema.validate(config, ENDPOINT_PICKER_CONFIG_SCHEMA)
    declared = {plugin.get("name", plugin["type"]) for plugin in config["plugins"]}
    for profile in config["schedulingProfiles"]:
        assert {plugin["pluginRef"] for plugin in profile["plugins"]} <= declared


#: The metrics data source's parameters (pkg/epp/framework/plugins/datalayer/source/metrics/datasource.go,
#: v1.5.0): what its JSON decoding knows.
METRICS_SOURCE_PARAMETERS = {"scheme", "path", "insecureSkipVerify"}


#: The core metrics extractor's engine config (pkg/epp/framework/plugins/datalayer/extractor/metrics/
#: factories.go, ``engineConfigParams``, v1.5.0).
ENGINE_CONFIG_FIELDS = {
    "name",
    "queuedRequestsSpec",
    "runningRequestsSpec",
    "kvUsageSpec",
    "loraSpec",
    "cacheInfoSpec",
    "cacheBlockSizeLabelName",
    "cacheNumBlocksLabelName",
    "cacheBlockSizeSpec",
    "cacheNumBlocksSpec",
}


def test_the_endpoint_picker_reads_the_load_vllm_exports_and_no_lora_info(runs):
    from components import dashboard

    (extractor,) = [p for p in epp_config(runs["single"])["plugins"] if p["type"] == "core-metrics-extractor"]
    (vllm,) = extractor["parameters"]["engineConfigs"]
    assert set(vllm) <= ENGINE_CONFIG_FIELDS and vllm["name"] == "vllm"
    specs = {vllm["queuedRequestsSpec"], vllm["runningRequestsSpec"], vllm["kvUsageSpec"]}
    assert specs == set(dashboard.VLLM_GAUGES)
    # vLLM exports vllm:lora_requests_info only when serving LoRA adapters: an empty spec disables it.
    assert vllm["loraSpec"] == ""


def test_the_endpoint_picker_scrapes_vllms_metrics_path_over_plain_http(runs):
    (source,) = [p for p in epp_config(runs["https"])["plugins"] if p["type"] == "metrics-data-source"]
    assert set(source["parameters"]) <= METRICS_SOURCE_PARAMETERS
    assert source["parameters"] == {"scheme": "http", "path": "/metrics"}


@pytest.mark.parametrize("scenario", ["single", "multinode"])
def test_the_endpoint_picker_objects_validate_against_the_kubernetes_schema(runs, scenario):
    router = runs[scenario].by_urn(runs[scenario].one(POOL).parent)
    assert router is not None
    built_in = [
        r for r in runs[scenario].children(router) if r.type.split(":")[1].split("/")[0] in KUBERNETES_GROUPS
    ]
    assert {r.type.rsplit(":", 1)[1] for r in built_in} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    }
    for resource in built_in:
        validate(manifest(resource))


def test_the_crds_are_the_pinned_releases():
    assert gie.GIE_VERSION == "v1.5.0"
    pool_crd = yaml.safe_load((CRDS / "inference.networking.k8s.io_inferencepools.yaml").read_text())
    assert (
        pool_crd["metadata"]["annotations"]["inference.networking.k8s.io/bundle-version"] == gie.GIE_VERSION
    )
    for name in ("gateways", "httproutes"):
        crd = yaml.safe_load((CRDS / f"gateway.networking.k8s.io_{name}.yaml").read_text())
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.5.1"
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard"


# --- the pool ---------------------------------------------------------------------------------------------


def test_the_pool_selects_the_serving_pods_on_vllms_port(runs):
    spec = runs["single"].one(POOL).inputs["spec"]
    assert spec["targetPorts"] == [{"number": PORT}]
    (template,) = serving_templates(runs["single"]).values()
    assert selects(spec["selector"]["matchLabels"], template)
    assert {"name": pods.PORT_NAME, "containerPort": PORT, "protocol": "TCP"} in plain(
        template["spec"]["containers"][0]["ports"]
    )


def test_a_multi_node_pool_selects_the_leaders_and_not_the_workers(runs):
    selector = runs["multinode"].one(POOL).inputs["spec"]["selector"]["matchLabels"]
    templates = serving_templates(runs["multinode"])
    assert selects(selector, templates["leader"]) and not selects(selector, templates["worker"])


def test_a_spot_and_base_pool_selects_the_pods_of_both_deployments(runs):
    selector = runs["spot+base"].one(POOL).inputs["spec"]["selector"]["matchLabels"]
    templates = serving_templates(runs["spot+base"])
    assert len(templates) == 2 and all(selects(selector, t) for t in templates.values())


def test_an_autoscaled_pool_selects_the_pods_keda_scales(runs):
    run = runs["autoscaled"]
    target = run.one(SCALED_OBJECT).inputs["spec"]["scaleTargetRef"]["name"]
    (template,) = [t for name, t in serving_templates(run).items() if name == target]
    assert selects(run.one(POOL).inputs["spec"]["selector"]["matchLabels"], template)


def test_the_pool_names_the_endpoint_pickers_service_and_port(runs):
    ref = runs["single"].one(POOL).inputs["spec"]["endpointPickerRef"]
    (service,) = [s for s in runs["single"].of_type(SERVICE) if s.inputs["metadata"]["name"] == ref["name"]]
    assert ref["port"]["number"] in [port["port"] for port in service.inputs["spec"]["ports"]]
    assert ref["failureMode"] == "FailOpen"


def test_the_gateway_reaches_the_pods_in_plain_http(runs):
    assert runs["https"].one(POOL).inputs["spec"]["appProtocol"] == "http"


# --- the endpoint picker ----------------------------------------------------------------------------------


def test_the_endpoint_picker_is_the_pinned_releases_image_reading_its_pool(runs):
    container = epp_container(runs["single"])
    args = container["args"]
    assert container["image"] == "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"
    pool = runs["single"].one(POOL).inputs["metadata"]
    assert args[args.index("--pool-name") + 1] == pool["name"]
    assert args[args.index("--pool-namespace") + 1] == pool["namespace"]
    assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"


def test_the_scheduling_profile_scores_prefix_cache_queue_depth_and_kv_cache_use(runs):
    (profile,) = epp_config(runs["single"])["schedulingProfiles"]
    weights = {plugin["pluginRef"]: plugin["weight"] for plugin in profile["plugins"]}
    assert weights == {"prefix-cache-scorer": 3, "queue-scorer": 2, "kv-cache-utilization-scorer": 2}


def test_the_endpoint_picker_may_read_the_pool_and_its_pods(runs):
    run = runs["single"]
    (role,) = run.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    readable = {
        (group, r) for rule in role.inputs["rules"] for group in rule["apiGroups"] for r in rule["resources"]
    }
    assert {("", "pods"), ("inference.networking.k8s.io", "inferencepools")} <= readable
    (binding,) = run.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    epp_pod = next(
        d for d in run.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"].endswith("-epp")
    ).inputs["spec"]["template"]["spec"]
    assert binding.inputs["subjects"][0]["name"] == epp_pod["serviceAccountName"]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]


# --- the Gateway and its route ----------------------------------------------------------------------------


def test_the_gateway_is_of_the_users_class_and_waits_until_programmed(runs):
    gateway = runs["single"].one(GATEWAY).inputs
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert gateway["metadata"]["annotations"] == {"pulumi.com/waitFor": "condition=Programmed"}


def test_the_route_exposes_only_the_public_paths_to_the_pool(runs):
    rule = route_rule(runs["single"])
    assert rule["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/v1"}},
        {"path": {"type": "Exact", "value": "/health"}},
    ]
    assert rule["backendRefs"] == [
        {
            "group": "inference.networking.k8s.io",
            "kind": "InferencePool",
            "name": runs["single"].one(POOL).inputs["metadata"]["name"],
        }
    ]
    assert runs["single"].one(ROUTE).inputs["spec"]["parentRefs"] == [
        {"name": runs["single"].one(GATEWAY).inputs["metadata"]["name"]}
    ]


def test_a_request_may_take_as_long_as_a_replica_drains(runs):
    assert route_rule(runs["single"])["timeouts"] == {"request": f"{pods.LONGEST_REQUEST_SECONDS}s"}


def test_on_gke_the_backend_timeout_and_health_check_are_policies_on_the_pool(runs):
    run = runs["https"]
    assert "timeouts" not in route_rule(run)
    target = {
        "group": "inference.networking.k8s.io",
        "kind": "InferencePool",
        "name": run.one(POOL).inputs["metadata"]["name"],
    }
    backend = run.one(BACKEND_POLICY).inputs["spec"]
    assert backend == {"targetRef": target, "default": {"timeoutSec": pods.LONGEST_REQUEST_SECONDS}}
    check = run.one(HEALTH_CHECK_POLICY).inputs["spec"]
    assert check["targetRef"] == target
    assert check["default"]["config"]["httpHealthCheck"] == {"requestPath": "/health", "port": PORT}


def test_other_classes_get_no_gke_policies(runs):
    assert not runs["single"].of_type(BACKEND_POLICY) and not runs["single"].of_type(HEALTH_CHECK_POLICY)


def test_without_a_domain_the_gateway_listens_on_http_and_is_the_endpoint(runs):
    (listener,) = runs["single"].one(GATEWAY).inputs["spec"]["listeners"]
    assert (listener["protocol"], listener["port"]) == ("HTTP", 80)
    assert runs["single"].outputs["endpoint"] == f"http://{fakes_kubernetes.GATEWAY_IP}"


def test_with_a_domain_the_gateway_terminates_tls_from_the_secret(runs):
    run = runs["https"]
    (listener,) = run.one(GATEWAY).inputs["spec"]["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == ("HTTPS", 443, DOMAIN)
    assert listener["tls"]["certificateRefs"] == [{"kind": "Secret", "name": GKE_HTTPS["vllm:tlsSecretName"]}]
    assert run.one(ROUTE).inputs["spec"]["hostnames"] == [DOMAIN]
    assert run.outputs["endpoint"] == f"https://{DOMAIN}"


def test_with_a_domain_the_record_points_at_the_gateway(runs):
    (record,) = runs["https"].outputs["dnsRecords"]
    assert (record["name"], record["type"], record["value"]) == (DOMAIN, "A", fakes_kubernetes.GATEWAY_IP)


def test_behind_the_gateway_vllm_serves_plain_http_in_the_cluster(runs):
    (template,) = serving_templates(runs["https"]).values()
    (container,) = template["spec"]["containers"]
    assert not any(
        arg.startswith("--ssl") for arg in container.get("args", []) + container.get("command", [])
    )
    assert container["readinessProbe"]["httpGet"].get("scheme", "HTTP") == "HTTP"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_service_stays_in_the_cluster(runs, scenario):
    (service,) = [s for s in runs[scenario].of_type(SERVICE) if s.inputs["metadata"]["name"].endswith("-api")]
    assert service.inputs["spec"]["type"] == "ClusterIP"


def test_no_secret_value_appears_outside_the_secret(runs):
    for resource in runs["single"].resources:
        if resource.type != SECRET:
            assert HF_TOKEN not in resource.text() and API_KEY not in resource.text(), resource.name


def test_the_resources_are_children_of_the_router_component(runs):
    run = runs["single"]
    for kind in (POOL, GATEWAY, ROUTE):
        parent = run.by_urn(run.one(kind).parent)
        assert parent is not None and parent.type == "vllm:kubernetes:InferenceGateway"


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({"vllm:router": "gateway"}, "vllm:router", "inference-gateway"),
        ({"vllm:router": "inference-gateway"}, "vllm:gatewayClassName", "required with vllm:router"),
        (
            {"vllm:gatewayClassName": "istio"},
            "vllm:gatewayClassName",
            "set with vllm:router inference-gateway",
        ),
        ({**ROUTER, "vllm:gatewayClassName": "Istio_1"}, "vllm:gatewayClassName", "GatewayClass name"),
        ({**ROUTER, "vllm:serviceType": "LoadBalancer"}, "vllm:serviceType", "ClusterIP with vllm:router"),
        ({**ROUTER, "vllm:allowedCidrs": ["10.0.0.0/8"]}, "vllm:allowedCidrs", "Gateway implementation"),
        ({**ROUTER, "vllm:domain": DOMAIN}, "vllm:domain", "vllm:tlsSecretName"),
        ({"vllm:router": "inference-gateway"}, "vllm:gatewayClassName", "unless vllm:gatewayName"),
        ({"vllm:gatewayName": "gw/public"}, "vllm:gatewayName", "set with vllm:router inference-gateway"),
        ({**EXISTING, "vllm:gatewayName": "public-gateway"}, "vllm:gatewayName", "<namespace>/<name>"),
        (
            {**EXISTING, "vllm:tlsSecretName": "llm-tls"},
            "vllm:tlsSecretName",
            "that Gateway's HTTPS listener",
        ),
    ],
)
def test_refuses_what_the_inference_gateway_cannot_do(config, key, says):
    with pytest.raises(SpecError) as raised:
        build_spec("k8s-l4", config)
    assert raised.value.key == key and says in raised.value.valid


# --- the policy pack's plain-HTTP advisory ------------------------------------------------------------------


def test_the_policy_advisory_names_a_gateway_without_https(runs):
    from policy.validators import cleartext_endpoint_violations
    from tests.test_https import stack_resources

    (urn,) = {urn for urn, _ in cleartext_endpoint_violations(stack_resources(runs["single"]))}
    assert urn == runs["single"].one(GATEWAY).urn
    assert cleartext_endpoint_violations(stack_resources(runs["https"])) == []


# --- the order of creation --------------------------------------------------------------------------------


def test_the_endpoint_picker_starts_after_its_pool_and_the_route_after_the_replicas(monkeypatch):
    # Without leader election the EPP's gRPC health, liveness included, is NOT_SERVING until it has read
    # its pool (cmd/epp/runner/health.go, v1.5.0): created before the pool, it would be restarted until the
    # pool came. The route waits for the replicas, as the Service does.
    from tests.test_kubernetes import registrations

    run, recorded = registrations(monkeypatch, "k8s-l4", ROUTER)
    (epp,) = [d for d in run.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"].endswith("-epp")]
    (replicas,) = [d for d in run.of_type(DEPLOYMENT) if d is not epp]
    assert run.one(POOL).urn in recorded[epp.name].dependencies
    assert replicas.urn not in recorded[run.one(POOL).name].dependencies
    assert {replicas.urn, run.one(POOL).urn, run.one(GATEWAY).urn} <= set(
        recorded[run.one(ROUTE).name].dependencies
    )


def test_on_istio_the_gateway_speaks_tls_to_the_endpoint_picker(runs):
    run = runs["single"]
    rule = run.one("kubernetes:networking.istio.io/v1beta1:DestinationRule").inputs["spec"]
    service = next(s for s in run.of_type(SERVICE) if s.inputs["metadata"]["name"].endswith("-epp")).inputs
    namespace = service["metadata"]["namespace"]
    assert rule["host"] == f"{service['metadata']['name']}.{namespace}.svc.cluster.local"
    assert rule["trafficPolicy"] == {"tls": {"mode": "SIMPLE", "insecureSkipVerify": True}}


def test_other_classes_get_no_istio_destination_rule(runs):
    assert not runs["https"].of_type("kubernetes:networking.istio.io/v1beta1:DestinationRule")


def test_the_endpoint_picker_runs_unprivileged(runs):
    container = epp_container(runs["single"])
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


# --- an existing Gateway ----------------------------------------------------------------------------------


def test_with_an_existing_gateway_the_stack_creates_none_and_routes_from_it(runs):
    run = runs["existing"]
    assert not run.of_type(GATEWAY)
    route = run.one(ROUTE).inputs["spec"]
    assert route["parentRefs"] == [{"name": "public-gateway", "namespace": "gateway-system"}]
    assert route["hostnames"] == [DOMAIN]
    jsonschema.validate(manifest(run.one(ROUTE)), SCHEMAS[ROUTE])


def test_with_an_existing_gateway_the_domain_points_at_its_address(runs):
    run = runs["existing"]
    assert run.outputs["endpoint"] == f"https://{DOMAIN}"
    (record,) = run.outputs["dnsRecords"]
    assert (record["type"], record["value"]) == ("A", fakes_kubernetes.GATEWAY_IP)


# --- a Gateway implementation installed on request (vllm:installGateway) ----------------------------------

CHART = "kubernetes:helm.sh/v4:Chart"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
DESTINATION_RULE = "kubernetes:networking.istio.io/v1beta1:DestinationRule"


@pytest.fixture(scope="module")
def installs() -> dict[str, Run]:
    return {
        name: run_program(
            "k8s-l4", {"vllm:router": "inference-gateway", "vllm:installGateway": name}, SECRETS
        )
        for name in ("agentgateway", "istio")
    }


def charts(run: Run) -> dict[str, dict[str, Any]]:
    return {chart.inputs["name"]: chart.inputs for chart in run.of_type(CHART)}


@pytest.mark.parametrize("implementation", ["agentgateway", "istio"])
def test_an_installed_gateway_comes_with_the_pinned_gateway_api_and_inference_crds(installs, implementation):
    files = {config.inputs["file"] for config in installs[implementation].of_type(CONFIG_FILE)}
    assert files == {
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml",
        "https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/v1.5.0/manifests.yaml",
    }


def test_the_installed_crds_are_the_releases_the_resources_are_validated_against():
    from components.kubernetes import gateway_install

    assert gateway_install.GIE_VERSION == gie.GIE_VERSION
    crd = yaml.safe_load((CRDS / "gateway.networking.k8s.io_gateways.yaml").read_text())
    assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == (
        gateway_install.GATEWAY_API_VERSION
    )


def test_agentgateway_is_its_pinned_oci_charts_with_the_inference_extension_enabled(installs):
    installed = charts(installs["agentgateway"])
    assert set(installed) == {"agentgateway-crds", "agentgateway"}
    assert installed["agentgateway-crds"]["chart"] == "oci://cr.agentgateway.dev/charts/agentgateway-crds"
    assert installed["agentgateway"]["chart"] == "oci://cr.agentgateway.dev/charts/agentgateway"
    assert installed["agentgateway"]["values"] == {"inferenceExtension": {"enabled": True}}
    for chart in installed.values():
        assert (chart["version"], chart["namespace"]) == ("v1.0.0", "agentgateway-system")


def test_istio_is_its_pinned_base_and_istiod_charts_with_the_inference_extension_enabled(installs):
    installed = charts(installs["istio"])
    assert set(installed) == {"istio-base", "istiod"}
    assert (installed["istio-base"]["chart"], installed["istiod"]["chart"]) == ("base", "istiod")
    assert installed["istiod"]["values"] == {"env": {"ENABLE_GATEWAY_API_INFERENCE_EXTENSION": "true"}}
    for chart in installed.values():
        assert chart["repositoryOpts"] == {"repo": "https://istio-release.storage.googleapis.com/charts"}
        assert (chart["version"], chart["namespace"]) == ("1.28.3", "istio-system")


@pytest.mark.parametrize("implementation", ["agentgateway", "istio"])
def test_the_implementation_gets_a_namespace_of_its_own(installs, implementation):
    namespaces = {
        ns.inputs["metadata"]["name"]
        for ns in installs[implementation].of_type("kubernetes:core/v1:Namespace")
    }
    assert {chart["namespace"] for chart in charts(installs[implementation]).values()} < namespaces


@pytest.mark.parametrize("implementation", ["agentgateway", "istio"])
def test_the_gateway_is_of_the_class_the_installed_implementation_creates(installs, implementation):
    gateway = installs[implementation].one(GATEWAY)
    assert gateway.inputs["spec"]["gatewayClassName"] == implementation
    jsonschema.validate(manifest(gateway), SCHEMAS[GATEWAY])


def test_with_istio_installed_the_endpoint_picker_gets_its_destination_rule(installs):
    assert installs["istio"].of_type(DESTINATION_RULE)
    assert not installs["agentgateway"].of_type(DESTINATION_RULE)


def test_without_the_request_the_gateway_implementation_is_the_clusters(runs):
    for run in runs.values():
        assert not run.of_type(CHART) and not run.of_type(CONFIG_FILE)


def test_the_gateway_objects_wait_for_the_crds_and_the_controller_they_need(monkeypatch):
    # A custom resource is refused until its CRD exists, and a Gateway of a class nobody runs is never
    # Programmed: the Gateway, the route, the pool and Istio's DestinationRule follow the whole install.
    from tests.test_kubernetes import registrations

    run, recorded = registrations(
        monkeypatch, "k8s-l4", {"vllm:router": "inference-gateway", "vllm:installGateway": "istio"}
    )
    install = {resource.urn for resource in [*run.of_type(CHART), *run.of_type(CONFIG_FILE)]}
    for kind in (GATEWAY, ROUTE, POOL, DESTINATION_RULE):
        assert install <= set(recorded[run.one(kind).name].dependencies), kind


def test_the_controller_starts_after_the_crds_it_watches(
    monkeypatch,
):
    from tests.test_kubernetes import registrations

    run, recorded = registrations(
        monkeypatch, "k8s-l4", {"vllm:router": "inference-gateway", "vllm:installGateway": "istio"}
    )
    crds = {config.urn for config in run.of_type(CONFIG_FILE)}
    base, istiod = (
        next(c for c in run.of_type(CHART) if c.inputs["name"] == n) for n in ("istio-base", "istiod")
    )
    assert crds <= set(recorded[base.name].dependencies)
    assert base.urn in recorded[istiod.name].dependencies


@pytest.mark.parametrize(
    ("config", "key", "says"),
    [
        ({"vllm:installGateway": "istio"}, "vllm:installGateway", "set with vllm:router inference-gateway"),
        (
            {"vllm:router": "inference-gateway", "vllm:installGateway": "gke"},
            "vllm:installGateway",
            "built in and need no install",
        ),
        (
            {"vllm:router": "inference-gateway", "vllm:installGateway": "envoy"},
            "vllm:installGateway",
            "one of agentgateway, istio",
        ),
        (
            {**ROUTER, "vllm:installGateway": "agentgateway"},
            "vllm:gatewayClassName",
            "unset or agentgateway with vllm:installGateway agentgateway",
        ),
        ({**EXISTING, "vllm:installGateway": "istio"}, "vllm:installGateway", "unset with vllm:gatewayName"),
    ],
)
def test_refuses_an_install_that_contradicts_the_gateway(config, key, says):
    with pytest.raises(SpecError) as raised:
        build_spec("k8s-l4", config)
    assert raised.value.key == key and says in raised.value.valid


def test_the_installed_implementations_own_class_may_be_named_too():
    spec = build_spec("k8s-l4", {**ROUTER, "vllm:installGateway": "istio"})
    assert spec.platform.gateway_class_name == "istio"
