"""HTTPS with a custom domain (issue 17): vllm:domain, vllm:dnsZone, vllm:tlsSecretName on every platform."""

from __future__ import annotations

import pulumi
import pytest

from components import domain as domain_module
from components.gcp import https as gcp_https
from components.spec import SpecError, build_spec, public_view
from tests.harness import Run, checked_spec, run_program

API_KEY = "sk-test-key-4567890"
SECRETS = {"vllm:apiKey": API_KEY}
MODEL = {"vllm:model": "Qwen/Qwen3-8B"}
GCP = {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", **MODEL}
AWS = {"vllm:cloud": "aws", "vllm:gpu": "L4:1", **MODEL}
K8S = {"vllm:cloud": "kubernetes", "vllm:gpu": "L4:1", **MODEL}
DOMAIN = "llm.example.com"
GCP_ZONE = "example-com"
AWS_ZONE = "Z0123456789ABCDEFGHIJ"

URL_MAP = "gcp:compute/uRLMap:URLMap"
HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
MANAGED_CERT = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
SSL_POLICY = "gcp:compute/sSLPolicy:SSLPolicy"
GLOBAL_ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
RECORD_SET = "gcp:dns/recordSet:RecordSet"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
GCP_API = "gcp:projects/service:Service"


def run(config: dict, **kwargs) -> Run:
    return run_program("https", config, SECRETS, **kwargs)


def refusal(config: dict) -> SpecError:
    """The SpecError the program's checks stop ``config`` with, without running it (``checked_spec``)."""
    with pytest.raises(SpecError) as caught:
        checked_spec("https", config, SECRETS)
    return caught.value


def program_refusal(config: dict) -> SpecError:
    """The SpecError the real program stops with, before any resource is declared."""
    with pytest.raises(SpecError) as caught:
        run(config)
    assert caught.value.declared_resources == []
    return caught.value


def named(run_: Run, type_: str, suffix: str):
    (found,) = [r for r in run_.of_type(type_) if r.name.endswith(suffix)]
    return found


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: said.append(message))
    return said


# --- vllm:domain and vllm:dnsZone: what is refused --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("https://llm.example.com", "without a scheme"),
        ("llm.example.com:8443", "without a port"),
        ("llm.example.com/v1", "without a path"),
        ("*.example.com", "not a wildcard"),
        ("203.0.113.7", "not an IP address"),
        ("2001:db8::1", "not an IP address"),
        ("localhost", "under a public domain"),
        ("llm.example.123", "under a public domain"),
        ("-llm.example.com", "RFC 1123"),
        ("llm-.example.com", "RFC 1123"),
        ("llm..example.com", "RFC 1123"),
        ("llm_1.example.com", "RFC 1123"),
        (f"{'a' * 64}.example.com", "RFC 1123"),
        (".".join(["a" * 63] * 4) + ".com", "at most 253"),
    ],
)
def test_a_domain_that_is_not_a_bare_host_name_is_refused(value, reason):
    error = refusal({**GCP, "vllm:domain": value})
    assert (error.key, error.value) == ("vllm:domain", value)
    assert reason in error.valid and "llm.example.com" in error.valid


@pytest.mark.parametrize(
    "value", ["llm.example.com", "LLM.Example.COM", "llm.example.com.", "1st.api.example.io"]
)
def test_a_bare_host_name_is_accepted_lower_cased_without_the_trailing_dot(value):
    assert build_spec("https", {**GCP, "vllm:domain": value}).domain == value.lower().rstrip(".")


def test_a_dns_zone_without_a_domain_is_refused():
    error = program_refusal({**GCP, "vllm:dnsZone": GCP_ZONE})
    assert (error.key, error.value) == ("vllm:dnsZone", GCP_ZONE)
    assert "vllm:domain" in error.valid


@pytest.mark.parametrize("zone", ["example.com.", "Example-Com", "1zone", "zone-", "z" * 64])
def test_gcp_refuses_a_dns_zone_that_is_not_a_managed_zone_name(zone):
    error = refusal({**GCP, "vllm:domain": DOMAIN, "vllm:dnsZone": zone})
    assert (error.key, error.value) == ("vllm:dnsZone", zone)
    assert "Cloud DNS managed zone name" in error.valid


@pytest.mark.parametrize("zone", ["example.com", "z0123456789", "Z", "Zabc", "Z" + "A" * 32])
def test_aws_refuses_a_dns_zone_that_is_not_a_hosted_zone_id(zone):
    error = refusal({**AWS, "vllm:domain": DOMAIN, "vllm:dnsZone": zone})
    assert (error.key, error.value) == ("vllm:dnsZone", zone)
    assert "Route 53 hosted zone id" in error.valid


def test_the_domain_and_zone_are_in_the_public_spec():
    spec = build_spec("https", {**GCP, "vllm:domain": DOMAIN, "vllm:dnsZone": GCP_ZONE})
    assert (public_view(spec)["domain"], public_view(spec)["dnsZone"]) == (DOMAIN, GCP_ZONE)


# --- without a domain: plain HTTP, and a warning ------------------------------------------------------------


@pytest.mark.parametrize("config", [GCP, AWS, K8S], ids=["gcp", "aws", "kubernetes"])
def test_without_a_domain_the_endpoint_stays_http_and_up_warns_of_cleartext(config, warnings):
    result = run(config)
    assert domain_module.CLEARTEXT_WARNING in warnings
    assert "cleartext" in domain_module.CLEARTEXT_WARNING and "vllm:domain" in domain_module.CLEARTEXT_WARNING
    assert "dnsRecords" not in result.outputs


def test_a_cluster_ip_service_without_a_domain_does_not_warn(warnings):
    run({**K8S, "vllm:serviceType": "ClusterIP"})  # no public endpoint: port-forward, or your Ingress
    assert domain_module.CLEARTEXT_WARNING not in warnings


@pytest.mark.parametrize(
    "config",
    [
        {**GCP, "vllm:domain": DOMAIN},
        {**AWS, "vllm:domain": DOMAIN},
        {**K8S, "vllm:domain": DOMAIN, "vllm:tlsSecretName": "llm-tls"},
    ],
    ids=["gcp", "aws", "kubernetes"],
)
def test_with_a_domain_the_endpoint_is_https_and_nothing_warns_of_cleartext(config, warnings):
    result = run(config)
    assert result.outputs["endpoint"] == f"https://{DOMAIN}"
    assert domain_module.CLEARTEXT_WARNING not in warnings


# --- GCP ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gcp_https_run() -> Run:
    return run({**GCP, "vllm:domain": DOMAIN})


@pytest.fixture(scope="module")
def gcp_zone_run() -> Run:
    return run({**GCP, "vllm:domain": DOMAIN, "vllm:dnsZone": GCP_ZONE})


def test_gcp_without_a_domain_declares_no_certificate_and_port_80_serves_the_api():
    result = run(GCP)
    assert not result.of_type(MANAGED_CERT) and not result.of_type(HTTPS_PROXY)
    assert result.outputs["endpoint"].startswith("http://")
    proxy = result.one(HTTP_PROXY)
    assert proxy.inputs["urlMap"] == named(result, URL_MAP, "-urls").urn.split("::")[-1] + "-id"


def test_gcp_has_a_google_managed_certificate_for_the_domain(gcp_https_run):
    certificate = gcp_https_run.one(MANAGED_CERT)
    assert certificate.inputs["type"] == "MANAGED"
    assert certificate.inputs["managed"] == {"domains": [DOMAIN]}


def test_gcp_https_proxy_serves_the_api_url_map_with_the_certificate_and_a_tls_1_2_policy(gcp_https_run):
    proxy = gcp_https_run.one(HTTPS_PROXY)
    policy = gcp_https_run.one(SSL_POLICY)
    assert (policy.inputs["minTlsVersion"], policy.inputs["profile"]) == ("TLS_1_2", "RESTRICTED")
    assert proxy.inputs["sslPolicy"] == f"{policy.name}-id"
    assert proxy.inputs["sslCertificates"] == [f"{gcp_https_run.one(MANAGED_CERT).name}-id"]
    # the /v1-only map: Cloud Armor (on its backend service) and the path rules keep applying on 443
    assert proxy.inputs["urlMap"] == f"{named(gcp_https_run, URL_MAP, '-urls').name}-id"


def test_gcp_443_and_80_share_the_global_static_address(gcp_https_run):
    address = gcp_https_run.one(GLOBAL_ADDRESS)
    assert address.inputs["addressType"] == "EXTERNAL"
    rules = {rule.inputs["portRange"]: rule for rule in gcp_https_run.of_type(FORWARDING_RULE)}
    assert set(rules) == {"80", "443"}
    assert {rule.inputs["ipAddress"] for rule in rules.values()} == {address.outputs["address"]}
    assert rules["443"].inputs["target"] == f"{gcp_https_run.one(HTTPS_PROXY).name}-id"
    assert rules["443"].inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"


def test_gcp_port_80_redirects_every_request_to_https_and_reaches_no_backend(gcp_https_run):
    redirect = named(gcp_https_run, URL_MAP, "-to-https")
    assert redirect.inputs["defaultUrlRedirect"] == {
        "httpsRedirect": True,
        "stripQuery": False,
        "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT",
    }
    assert "defaultService" not in redirect.inputs and "pathMatchers" not in redirect.inputs
    assert gcp_https_run.one(HTTP_PROXY).inputs["urlMap"] == f"{redirect.name}-id"


def test_gcp_cloud_armor_still_guards_the_backend_behind_https():
    result = run({**GCP, "vllm:domain": DOMAIN, "vllm:allowedCidrs": ["203.0.113.0/24"]})
    backend = result.one(BACKEND_SERVICE)
    assert backend.inputs["securityPolicy"].endswith("-allowed-cidrs-id")
    assert result.one(HTTPS_PROXY).inputs["urlMap"] == f"{named(result, URL_MAP, '-urls').name}-id"


def test_gcp_without_a_zone_the_dns_records_output_names_the_a_record(gcp_https_run):
    assert not gcp_https_run.of_type(RECORD_SET)
    address = gcp_https_run.one(GLOBAL_ADDRESS).outputs["address"]
    (record,) = gcp_https_run.outputs["dnsRecords"]
    assert (record["name"], record["type"], record["value"]) == (DOMAIN, "A", address)


def test_gcp_with_a_zone_the_program_writes_the_a_record_and_enables_cloud_dns(gcp_zone_run):
    record = gcp_zone_run.one(RECORD_SET)
    address = gcp_zone_run.one(GLOBAL_ADDRESS).outputs["address"]
    assert record.inputs["managedZone"] == GCP_ZONE
    assert (record.inputs["name"], record.inputs["type"], record.inputs["rrdatas"]) == (
        f"{DOMAIN}.",
        "A",
        [address],
    )
    assert record.inputs["ttl"] == gcp_https.DNS_TTL_SECONDS
    assert "dnsRecords" not in gcp_zone_run.outputs
    assert "dns.googleapis.com" in {api.inputs["service"] for api in gcp_zone_run.of_type(GCP_API)}


def test_gcp_https_resource_names_fit_gcps_63_characters_for_a_long_stack_name():
    # GCP names: 1-63 characters, RFC 1035 (pulumi_gcp docstrings); Pulumi's auto-name adds "-" + 7 characters
    result = run_program(
        "production-inference-llama-4-maverick-us-east-1-blue", {**GCP, "vllm:domain": DOMAIN}, SECRETS
    )
    for type_ in (MANAGED_CERT, SSL_POLICY, HTTPS_PROXY, FORWARDING_RULE, URL_MAP):
        for resource in result.of_type(type_):
            assert len(resource.name) + 8 <= 63, resource.name


def test_gcp_https_resources_use_the_stacks_provider(gcp_zone_run):
    for type_ in (MANAGED_CERT, SSL_POLICY, HTTPS_PROXY, RECORD_SET):
        assert gcp_zone_run.one(type_).provider.endswith("$pulumi:providers:gcp::gcp::gcp-id")  # not gcp-apis


# --- AWS ----------------------------------------------------------------------------------------------------

CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
ROUTE53_RECORD = "aws:route53/record:Record"
ALB = "aws:lb/loadBalancer:LoadBalancer"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@pytest.fixture(scope="module")
def aws_https_run() -> Run:
    return run({**AWS, "vllm:domain": DOMAIN})


@pytest.fixture(scope="module")
def aws_zone_run() -> Run:
    return run({**AWS, "vllm:domain": DOMAIN, "vllm:dnsZone": AWS_ZONE})


def listeners(run_: Run) -> dict[int, object]:
    return {int(listener.inputs["port"]): listener for listener in run_.of_type(LISTENER)}


def test_aws_without_a_domain_port_80_serves_the_api_and_no_certificate_exists():
    result = run(AWS)
    assert not result.of_type(CERTIFICATE)
    assert set(listeners(result)) == {80}
    assert result.one(LISTENER_RULE).inputs["listenerArn"].endswith("listener/vllm-https-http")
    assert {int(rule.inputs["fromPort"]) for rule in result.of_type(INGRESS_RULE)} == {80, 8000}


def test_aws_has_a_dns_validated_acm_certificate_for_the_domain(aws_https_run):
    certificate = aws_https_run.one(CERTIFICATE)
    assert (certificate.inputs["domainName"], certificate.inputs["validationMethod"]) == (DOMAIN, "DNS")
    validation = aws_https_run.one(VALIDATION)
    assert validation.inputs["certificateArn"] == certificate.outputs["arn"]


def test_aws_https_listener_uses_the_issued_certificate_and_a_tls_1_3_policy(aws_https_run):
    https = listeners(aws_https_run)[443]
    assert https.inputs["protocol"] == "HTTPS"
    assert https.inputs["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    # from the validation, so the listener waits until ACM has issued the certificate
    assert https.inputs["certificateArn"] == aws_https_run.one(VALIDATION).inputs["certificateArn"]
    assert https.inputs["loadBalancerArn"] == aws_https_run.one(ALB).outputs["arn"]


def test_aws_the_public_path_rule_moves_to_443_and_its_default_stays_a_404(aws_https_run):
    https = listeners(aws_https_run)[443]
    rule = aws_https_run.one(LISTENER_RULE)
    assert rule.inputs["listenerArn"] == https.outputs["arn"]
    assert rule.inputs["conditions"] == [{"pathPattern": {"values": ["/v1/*", "/health"]}}]
    assert [action["type"] for action in https.inputs["defaultActions"]] == ["fixed-response"]
    assert https.inputs["defaultActions"][0]["fixedResponse"]["statusCode"] == "404"


def test_aws_port_80_redirects_every_request_to_https_with_a_301(aws_https_run):
    http = listeners(aws_https_run)[80]
    assert http.inputs["defaultActions"] == [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
    ]


def test_aws_the_alb_security_group_admits_443_and_80_from_the_allowed_cidrs():
    result = run({**AWS, "vllm:domain": DOMAIN, "vllm:allowedCidrs": ["203.0.113.0/24", "198.51.100.0/24"]})
    alb_rules = [rule for rule in result.of_type(INGRESS_RULE) if "-alb-" in rule.name]
    opened = {(int(rule.inputs["fromPort"]), rule.inputs["cidrIpv4"]) for rule in alb_rules}
    assert opened == {(port, cidr) for port in (80, 443) for cidr in ("203.0.113.0/24", "198.51.100.0/24")}


def test_aws_without_a_zone_dns_records_name_the_validation_cname_and_the_endpoint_cname(aws_https_run):
    assert not aws_https_run.of_type(ROUTE53_RECORD)
    option = aws_https_run.one(CERTIFICATE).outputs["domainValidationOptions"][0]
    validation, endpoint = aws_https_run.outputs["dnsRecords"]
    assert (validation["name"], validation["type"], validation["value"]) == (
        option["resourceRecordName"].rstrip("."),
        "CNAME",
        option["resourceRecordValue"].rstrip("."),
    )
    assert (endpoint["name"], endpoint["type"], endpoint["value"]) == (
        DOMAIN,
        "CNAME",
        aws_https_run.one(ALB).outputs["dnsName"],
    )


def test_aws_dns_records_say_acm_waits_for_its_validation_cname_only(aws_https_run):
    # ACM issues a DNS-validated certificate once its validation CNAME resolves (ACM user guide, "DNS
    # validation"); the endpoint's record is for clients only.
    validation, endpoint = aws_https_run.outputs["dnsRecords"]
    assert "only record ACM waits for" in validation["purpose"]
    assert "issuance" not in endpoint["purpose"] and "waits" not in endpoint["purpose"]


def test_aws_without_a_zone_up_prints_the_validation_record_while_it_waits(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: said.append(message))
    result = run({**AWS, "vllm:domain": DOMAIN})
    option = result.one(CERTIFICATE).outputs["domainValidationOptions"][0]
    (message,) = [m for m in said if "ACM's validation" in m]
    assert option["resourceRecordName"] in message and option["resourceRecordValue"] in message
    validation = result.one(VALIDATION)
    assert "validationRecordFqdns" not in validation.inputs  # it waits for the user's record


def test_aws_with_a_zone_the_program_writes_the_validation_record_and_waits_on_it(aws_zone_run):
    option = aws_zone_run.one(CERTIFICATE).outputs["domainValidationOptions"][0]
    record = named(aws_zone_run, ROUTE53_RECORD, "-validation")
    assert record.inputs["zoneId"] == AWS_ZONE
    assert (record.inputs["name"], record.inputs["type"], record.inputs["records"]) == (
        option["resourceRecordName"],
        option["resourceRecordType"],
        [option["resourceRecordValue"]],
    )
    assert aws_zone_run.one(VALIDATION).inputs["validationRecordFqdns"] == [record.outputs["fqdn"]]
    assert "dnsRecords" not in aws_zone_run.outputs


def test_aws_with_a_zone_the_domain_is_an_alias_of_the_alb(aws_zone_run):
    alias = named(aws_zone_run, ROUTE53_RECORD, "-alias")
    alb = aws_zone_run.one(ALB)
    assert (alias.inputs["zoneId"], alias.inputs["name"], alias.inputs["type"]) == (AWS_ZONE, DOMAIN, "A")
    assert alias.inputs["aliases"] == [
        {"name": alb.outputs["dnsName"], "zoneId": alb.outputs["zoneId"], "evaluateTargetHealth": True}
    ]


def test_aws_https_resources_use_the_stacks_provider(aws_zone_run):
    for resource in [
        *aws_zone_run.of_type(ROUTE53_RECORD),
        aws_zone_run.one(CERTIFICATE),
        listeners(aws_zone_run)[443],
    ]:
        assert resource.provider.endswith("$pulumi:providers:aws::aws::aws-id")


# --- Kubernetes ---------------------------------------------------------------------------------------------

SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
TLS_SECRET = "llm-tls"
K8S_TLS = {**K8S, "vllm:domain": DOMAIN, "vllm:tlsSecretName": TLS_SECRET}


@pytest.fixture(scope="module")
def k8s_tls_run() -> Run:
    return run(K8S_TLS)


def serving_pod(run_: Run) -> dict:
    return run_.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def test_kubernetes_vllm_serves_the_mounted_tls_secret(k8s_tls_run):
    pod = serving_pod(k8s_tls_run)
    (container,) = pod["containers"]
    command = container["command"]
    cert, key = command[command.index("--ssl-certfile") + 1], command[command.index("--ssl-keyfile") + 1]
    assert (cert, key) == ("/etc/vllm/tls/tls.crt", "/etc/vllm/tls/tls.key")
    assert "--enable-ssl-refresh" in command  # a renewed Secret reaches vLLM without a restart
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/vllm/tls"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == TLS_SECRET
    assert int(volume["secret"]["defaultMode"]) == 0o400


def test_kubernetes_tls_flags_exist_in_the_pinned_vllm():
    from components.extra_args import load_flags
    from components.kubernetes.tls import SERVE_FLAGS

    known = {option for flag in load_flags().flags for option in flag.options}
    assert set(SERVE_FLAGS) <= known


def test_kubernetes_probes_use_https_when_vllm_serves_tls(k8s_tls_run):
    (container,) = serving_pod(k8s_tls_run)["containers"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    judge = container["livenessProbe"]["exec"]["command"]  # the progress probe asks /health itself
    assert judge[judge.index("--health-url") + 1].startswith("https://127.0.0.1:")


def test_kubernetes_service_exposes_443_when_vllm_serves_tls(k8s_tls_run):
    service = k8s_tls_run.one(SERVICE)
    assert service.inputs["spec"]["ports"] == [
        {"name": "https", "port": 443.0, "targetPort": "http", "protocol": "TCP"}
    ]


def test_kubernetes_dns_records_point_the_domain_at_the_load_balancer(k8s_tls_run):
    ingress = k8s_tls_run.one(SERVICE).outputs["status"]["loadBalancer"]["ingress"][0]
    (record,) = k8s_tls_run.outputs["dnsRecords"]
    assert (record["name"], record["type"], record["value"]) == (DOMAIN, "A", ingress["ip"])


def test_kubernetes_tls_objects_validate_against_the_schema(k8s_tls_run):
    from tests.test_kubernetes import kubernetes_objects, manifest, validate

    for resource in kubernetes_objects(k8s_tls_run):
        validate(manifest(resource))


def test_kubernetes_multinode_leaders_serve_tls_and_workers_do_not():
    result = run(
        {
            **K8S_TLS,
            "vllm:gpu": "H100:8",
            "vllm:nodes": 2,
            "vllm:model": "deepseek-ai/DeepSeek-R1",
            "vllm:modelSizeGb": 700,
            "vllm:diskSizeGb": 800,
        }
    )
    template = result.one(LWS).inputs["spec"]["leaderWorkerTemplate"]
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert "--ssl-certfile" in leader["command"] and leader["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert all(m["mountPath"] != "/etc/vllm/tls" for m in worker["volumeMounts"])
    assert all("secret" not in v for v in template["workerTemplate"]["spec"]["volumes"])


def test_kubernetes_without_tls_the_pod_serves_http_on_port_80():
    result = run(K8S)
    (container,) = serving_pod(result)["containers"]
    assert "--ssl-certfile" not in container["command"]
    assert "scheme" not in container["readinessProbe"]["httpGet"]
    assert [port["port"] for port in result.one(SERVICE).inputs["spec"]["ports"]] == [80.0]


def test_kubernetes_clusterip_with_a_domain_leaves_tls_to_the_users_ingress():
    result = run({**K8S, "vllm:domain": DOMAIN, "vllm:serviceType": "ClusterIP"})
    assert result.outputs["endpoint"] == f"https://{DOMAIN}"
    assert "dnsRecords" not in result.outputs
    assert [port["port"] for port in result.one(SERVICE).inputs["spec"]["ports"]] == [80.0]


def test_kubernetes_refuses_a_domain_on_a_load_balancer_without_a_certificate():
    error = program_refusal({**K8S, "vllm:domain": DOMAIN})
    assert (error.key, error.value) == ("vllm:domain", DOMAIN)
    assert "vllm:tlsSecretName" in error.valid and "ClusterIP" in error.valid


def test_kubernetes_refuses_a_tls_secret_without_a_domain():
    error = refusal({**K8S, "vllm:tlsSecretName": TLS_SECRET})
    assert (error.key, error.value) == ("vllm:tlsSecretName", TLS_SECRET)
    assert "vllm:domain" in error.valid


@pytest.mark.parametrize("name", ["LLM-TLS", "llm_tls", "-llm", "llm-", "a" * 254])
def test_kubernetes_refuses_a_tls_secret_name_that_is_not_a_secret_name(name):
    error = refusal({**K8S_TLS, "vllm:tlsSecretName": name})
    assert (error.key, error.value) == ("vllm:tlsSecretName", name)
    assert "kubernetes.io/tls" in error.valid


def test_kubernetes_refuses_a_dns_zone():
    error = refusal({**K8S_TLS, "vllm:dnsZone": "example-com"})
    assert (error.key, error.value) == ("vllm:dnsZone", "example-com")
    assert "dnsRecords" in error.valid


@pytest.mark.parametrize("flag", ["--ssl-keyfile", "--ssl-certfile=/tmp/cert.pem", "--ssl-cert"])
def test_extra_args_may_not_set_the_tls_flags_the_spec_owns(flag):
    error = refusal({**GCP, "vllm:extraArgs": [flag, "/tmp/x"] if "=" not in flag else [flag]})
    assert error.key == "vllm:extraArgs"


# --- The policy pack's advisory -----------------------------------------------------------------------------


def stack_resources(run_: Run) -> list:
    from policy.validators import StackResource

    return [StackResource(type=r.type, urn=r.urn, props=r.inputs) for r in run_.resources if r.custom]


@pytest.mark.parametrize("config", [GCP, AWS, K8S], ids=["gcp", "aws", "kubernetes"])
def test_the_policy_advisory_names_a_plain_http_endpoint(config):
    from policy.validators import CLEARTEXT_ADVICE, cleartext_endpoint_violations

    violations = cleartext_endpoint_violations(stack_resources(run(config)))
    assert violations and {message for _, message in violations} == {CLEARTEXT_ADVICE}
    assert "cleartext" in CLEARTEXT_ADVICE and "vllm:domain" in CLEARTEXT_ADVICE


def test_the_policy_advisory_is_quiet_for_https_endpoints(gcp_https_run, aws_https_run, k8s_tls_run):
    from policy.validators import cleartext_endpoint_violations

    for result in (gcp_https_run, aws_https_run, k8s_tls_run):
        assert cleartext_endpoint_violations(stack_resources(result)) == []


def test_the_policy_advisory_ignores_a_cluster_ip_service():
    from policy.validators import cleartext_endpoint_violations

    result = run({**K8S, "vllm:serviceType": "ClusterIP"})
    assert cleartext_endpoint_violations(stack_resources(result)) == []


def test_the_policy_pack_declares_the_https_advisory_as_advisory_only():
    import ast

    from tests.harness import ROOT

    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    (policy,) = [
        call
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and any(
            k.arg == "name" and getattr(k.value, "value", None) == "endpoint-serves-https"
            for k in call.keywords
        )
    ]
    keywords = {k.arg: ast.unparse(k.value) for k in policy.keywords}
    assert keywords["enforcement_level"] == "EnforcementLevel.ADVISORY"
    assert keywords["validate"] == "validate_cleartext"


def test_the_mandatory_policies_pass_the_https_stacks(gcp_zone_run, aws_zone_run, aws_https_run, k8s_tls_run):
    from components.aws import policy as aws_policy
    from policy import validators

    checks = (
        validators.public_path_violations,
        validators.exposure_violations,
        validators.secret_violations,
        aws_policy.aws_elb_name_violations,
        aws_policy.aws_description_violations,
        validators.weak_tls_violations,
    )
    for result in (gcp_zone_run, aws_zone_run, aws_https_run, k8s_tls_run):
        for resource in result.resources:
            for check in checks:
                assert check(resource.type, resource.inputs) == [], (check.__name__, resource.name)


@pytest.mark.parametrize(
    ("resource_type", "props", "says"),
    [
        (HTTPS_PROXY, {"urlMap": "m", "sslCertificates": ["c"]}, "without an sslPolicy"),
        (SSL_POLICY, {"minTlsVersion": "TLS_1_1", "profile": "MODERN"}, "TLS_1_1"),
        (SSL_POLICY, {"profile": "RESTRICTED"}, "TLS_1_0"),
        (LISTENER, {"protocol": "HTTPS", "port": 443.0}, "ELBSecurityPolicy-2016-08"),
        (LISTENER, {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-2016-08"}, "below 1.2"),
        (LISTENER, {"protocol": "HTTPS", "sslPolicy": "ELBSecurityPolicy-TLS13-1-0-2021-06"}, "below 1.2"),
    ],
)
def test_the_tls_policy_refuses_fronts_that_accept_tls_below_1_2(resource_type, props, says):
    from policy.validators import weak_tls_violations

    (violation,) = weak_tls_violations(resource_type, props)
    assert says in violation


@pytest.mark.parametrize(
    "policy",
    [
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    ],
)
def test_the_tls_policy_accepts_aws_tls_1_2_and_later_policies(policy):
    from policy.validators import UNKNOWN, weak_tls_violations

    assert weak_tls_violations(LISTENER, {"protocol": "HTTPS", "sslPolicy": policy}) == []
    assert weak_tls_violations(LISTENER, {"protocol": "HTTPS", "sslPolicy": UNKNOWN}) == []
    assert weak_tls_violations(LISTENER, {"protocol": "HTTP"}) == []
