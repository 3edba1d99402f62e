"""The policy pack's rules, called directly on representative resource properties (camelCase, as Pulumi
hands them to a policy). ``UNKNOWN`` stands for a value a preview cannot know yet."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi_policy.deserialize import deserialize_properties

from components import launch
from components.aws.policy import (
    aws_description_violations,
    aws_elb_name_violations,
    aws_health_check_violations,
)
from policy.validators import (
    UNKNOWN,
    StackResource,
    autohealing_violations,
    exposure_violations,
    is_secret_name,
    public_path_violations,
    secret_violations,
)
from tests.harness import run_program

pytestmark = pytest.mark.timeout(30)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
URL_MAP = "gcp:compute/uRLMap:URLMap"
AWS_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_GROUP = "aws:autoscaling/group:Group"
AWS_SG = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"

HF_TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
API_KEY = "sk-live-8d7f6e5a4b3c"
BACKEND_SERVICE = "https://www.googleapis.com/compute/v1/projects/p/global/backendServices/vllm"
BUCKET = "https://www.googleapis.com/compute/v1/projects/p/global/backendBuckets/not-found"


def deployment(*env: dict, args: tuple[str, ...] = ()) -> dict:
    container = {"name": "vllm", "image": "vllm/vllm-openai", "env": list(env), "args": list(args)}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def from_secret(name: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "vllm-secrets", "key": name}}}


# --- Secrets ------------------------------------------------------------------------------------------------


def test_literal_hf_token_in_container_env_is_a_violation():
    violations = secret_violations(DEPLOYMENT, deployment({"name": "HF_TOKEN", "value": HF_TOKEN}))
    assert violations == ["container 'vllm' env HF_TOKEN is not from a Secret: use valueFrom.secretKeyRef"]


def test_secrets_from_secret_key_refs_are_compliant():
    props = deployment(
        from_secret("HF_TOKEN"), from_secret("VLLM_API_KEY"), {"name": "VLLM_NO_USAGE_STATS", "value": "1"}
    )
    assert secret_violations(DEPLOYMENT, props) == []


def test_secret_env_from_a_config_map_key_is_a_violation():
    env = {"name": "VLLM_API_KEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "key"}}}
    assert secret_violations(DEPLOYMENT, deployment(env)) != []


def test_leader_worker_set_worker_template_is_checked():
    worker = {
        "spec": {
            "containers": [{"name": "ray-worker", "env": [{"name": "HUGGING_FACE_HUB_TOKEN", "value": "x"}]}]
        }
    }
    props = {
        "spec": {
            "leaderWorkerTemplate": {"leaderTemplate": {"spec": {"containers": []}}, "workerTemplate": worker}
        }
    }
    assert secret_violations(LWS, props) == [
        "container 'ray-worker' env HUGGING_FACE_HUB_TOKEN is not from a Secret: use valueFrom.secretKeyRef"
    ]


def test_literal_api_key_on_the_command_line_is_a_violation():
    props = deployment(args=("Qwen/Qwen3-8B", "--api-key", API_KEY))
    assert secret_violations(DEPLOYMENT, props) == [
        "container 'vllm' command line carries --api-key with a literal value: the secret store must "
        "deliver it at boot"
    ]


def test_api_key_expanded_from_env_on_the_command_line_is_compliant():
    props = deployment(from_secret("VLLM_API_KEY"), args=("Qwen/Qwen3-8B", "--api-key", "$(VLLM_API_KEY)"))
    assert secret_violations(DEPLOYMENT, props) == []


def test_config_map_with_a_token_key_is_a_violation():
    props = {"data": {"MODEL": "Qwen/Qwen3-8B", "HF_TOKEN": HF_TOKEN}}
    assert secret_violations(CONFIG_MAP, props)[0].startswith(
        "ConfigMap data key 'HF_TOKEN' is named like a secret"
    )


def test_config_map_without_secrets_is_compliant():
    props = {"data": {"MODEL": "Qwen/Qwen3-8B", "TOKENIZERS_PARALLELISM": "false"}}
    assert secret_violations(CONFIG_MAP, props) == []


def test_hf_token_in_a_gcp_startup_script_is_a_violation():
    props = {"metadataStartupScript": f"#!/bin/bash\nhuggingface-cli login --token {HF_TOKEN}\n"}
    assert secret_violations(GCP_TEMPLATE, props) == [
        "metadataStartupScript carries a Hugging Face token (hf_...): the secret store must deliver it at "
        "boot"
    ]


def test_secret_assignment_in_a_startup_script_is_a_violation():
    props = {"metadataStartupScript": f"export VLLM_API_KEY={API_KEY}\nvllm serve m"}
    assert secret_violations(GCP_INSTANCE, props) == [
        "metadataStartupScript carries VLLM_API_KEY set to a literal value: the secret store must deliver "
        "it at boot"
    ]


def test_startup_script_reading_secret_manager_is_compliant():
    script = """#!/bin/bash
set -euo pipefail
HF_TOKEN="$(gcloud secrets versions access latest --secret=hf-token)"
VLLM_API_KEY=$(gcloud secrets versions access latest --secret=vllm-api-key)
export HF_TOKEN VLLM_API_KEY HF_XET_HIGH_PERFORMANCE=1
pip install hf_transfer
exec vllm serve Qwen/Qwen3-8B --port 8000 --api-key "$VLLM_API_KEY" \\
  --api-key ${VLLM_API_KEY}
"""
    assert secret_violations(GCP_TEMPLATE, {"metadataStartupScript": script}) == []


def test_gcp_metadata_key_named_like_a_token_is_a_violation():
    violations = secret_violations(GCP_TEMPLATE, {"metadata": {"hf-token": "x", "enable-oslogin": "TRUE"}})
    assert len(violations) == 1
    assert violations[0].startswith("metadata key 'hf-token' is named like a secret")


def test_gcp_metadata_naming_a_secret_manager_secret_is_compliant():
    props = {"metadata": {"hf-token-secret": "projects/p/secrets/hf-token/versions/latest"}}
    assert secret_violations(GCP_TEMPLATE, props) == []


def test_gcp_label_named_like_an_api_key_is_a_violation():
    assert secret_violations(GCP_INSTANCE, {"labels": {"vllm-api-key": "abc", "model": "qwen"}}) != []


def test_aws_launch_template_user_data_is_read_after_base64_decoding():
    user_data = base64.b64encode(f"#!/bin/bash\nexport HF_TOKEN={HF_TOKEN}\n".encode()).decode()
    assert secret_violations(AWS_TEMPLATE, {"userData": user_data}) == [
        "userData carries a Hugging Face token (hf_...): the secret store must deliver it at boot",
        "userData carries HF_TOKEN set to a literal value: the secret store must deliver it at boot",
    ]


def test_gzip_compressed_user_data_is_read_too():
    user_data = base64.b64encode(gzip.compress(f"vllm serve m --api-key={API_KEY}".encode())).decode()
    assert secret_violations(AWS_INSTANCE, {"userDataBase64": user_data}) != []


def test_aws_user_data_reading_secrets_manager_is_compliant():
    script = "VLLM_API_KEY=$(aws secretsmanager get-secret-value --secret-id vllm --query SecretString)"
    user_data = base64.b64encode(script.encode()).decode()
    assert secret_violations(AWS_TEMPLATE, {"userData": user_data, "tags": {"Name": "vllm"}}) == []


def test_violation_messages_never_repeat_the_secret():
    props = {"metadataStartupScript": f"HF_TOKEN={HF_TOKEN} vllm serve m --api-key {API_KEY}"}
    messages = " ".join(secret_violations(GCP_TEMPLATE, props))
    assert HF_TOKEN not in messages
    assert API_KEY not in messages


def test_values_unknown_at_preview_are_not_judged():
    assert secret_violations(GCP_TEMPLATE, {"metadataStartupScript": UNKNOWN, "metadata": UNKNOWN}) == []


@pytest.mark.parametrize(
    "name", ["HF_TOKEN", "hf-token", "vllm_api_key", "API-KEY", "db.password", "client_secret"]
)
def test_names_that_carry_secrets(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "HF_XET_HIGH_PERFORMANCE", "ssh-keys", "MODEL"])
def test_names_that_do_not_carry_secrets(name):
    assert not is_secret_name(name)


def test_policy_covers_every_secret_the_launch_spec_passes():
    assert all(is_secret_name(name) for name in (launch.HF_TOKEN_ENV, launch.API_KEY_ENV))


# --- Exposure: Ray and SSH ----------------------------------------------------------------------------------


def gcp_firewall(ports: list[str], sources: list[str] | None = None, **extra) -> dict:
    props = {"allows": [{"protocol": "tcp", "ports": ports}], **extra}
    return props if sources is None else {**props, "sourceRanges": sources}


def test_ray_gcs_port_open_to_the_internet_is_a_violation():
    violations = exposure_violations(GCP_FIREWALL, gcp_firewall(["6379"], ["0.0.0.0/0"]))
    assert violations == [
        "firewall opens port 6379 to 0.0.0.0/0, reaching Ray GCS (6379): only the load balancer faces the "
        "internet"
    ]


def test_firewall_allow_without_ports_opens_every_port():
    violations = exposure_violations(GCP_FIREWALL, gcp_firewall([], ["::/0"]))
    assert len(violations) == 1
    assert "SSH (22)" in violations[0]
    assert "Ray dashboard (8265)" in violations[0]


def test_port_range_overlapping_ray_worker_ports_is_a_violation():
    assert exposure_violations(GCP_FIREWALL, gcp_firewall(["15000-15010"], ["0.0.0.0/0"])) != []


def test_firewall_without_any_source_defaults_to_the_internet():
    assert exposure_violations(GCP_FIREWALL, gcp_firewall(["22"])) != []


def test_load_balancer_health_check_ranges_to_the_vllm_port_are_compliant():
    props = gcp_firewall(["8000"], ["35.191.0.0/16", "130.211.0.0/22"])
    assert exposure_violations(GCP_FIREWALL, props) == []


def test_ray_ports_open_inside_the_vpc_are_compliant():
    props = gcp_firewall(["6379", "8265", "10001-19999"], ["10.128.0.0/9"])
    assert exposure_violations(GCP_FIREWALL, props) == []


def test_egress_firewall_rules_are_not_exposure():
    assert exposure_violations(GCP_FIREWALL, gcp_firewall([], ["0.0.0.0/0"], direction="EGRESS")) == []


def test_https_open_to_the_internet_is_compliant():
    props = {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"}
    assert exposure_violations(AWS_INGRESS_RULE, props) == []


def test_all_protocols_open_to_the_internet_is_a_violation():
    props = {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"}
    assert exposure_violations(AWS_INGRESS_RULE, props) != []


def test_ssh_in_an_inline_security_group_ingress_is_a_violation():
    props = {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "ipv6CidrBlocks": ["::/0"]}]}
    assert exposure_violations(AWS_SG, props) == [
        "security group ingress opens port 22 to ::/0, reaching SSH (22): only the load balancer faces the "
        "internet"
    ]


def test_security_group_rule_opening_ray_client_is_a_violation():
    props = {
        "type": "ingress",
        "protocol": "tcp",
        "fromPort": 10001,
        "toPort": 10001,
        "cidrBlocks": ["0.0.0.0/0"],
    }
    assert exposure_violations(AWS_SG_RULE, props) != []


def test_security_group_egress_rule_is_not_exposure():
    props = {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}
    assert exposure_violations(AWS_SG_RULE, props) == []


# --- Public paths -------------------------------------------------------------------------------------------

ABORT_404 = {
    "weightedBackendServices": [{"backendService": BACKEND_SERVICE, "weight": 100}],
    "faultInjectionPolicy": {"abort": {"httpStatus": 404, "percentage": 100}},
}


def url_map(path_rules: list[dict], **default) -> dict:
    matcher = {"name": "vllm", "defaultRouteAction": ABORT_404, "pathRules": path_rules}
    return {
        **(default or {"defaultRouteAction": ABORT_404}),
        "hostRules": [{"hosts": ["*"], "pathMatcher": "vllm"}],
        "pathMatchers": [matcher],
    }


OPENAI_RULES = [
    {"paths": ["/v1/*"], "service": BACKEND_SERVICE},
    {"paths": ["/health"], "service": BACKEND_SERVICE},
]


def test_url_map_serving_only_v1_and_health_is_compliant():
    assert public_path_violations(URL_MAP, url_map(OPENAI_RULES)) == []


def test_url_map_default_backend_service_is_a_violation():
    violations = public_path_violations(URL_MAP, url_map(OPENAI_RULES, defaultService=BACKEND_SERVICE))
    assert len(violations) == 1
    assert violations[0].startswith("URL map default sends every other path")


def test_url_map_default_backend_bucket_is_compliant():
    assert public_path_violations(URL_MAP, url_map(OPENAI_RULES, defaultService=BUCKET)) == []


def test_url_map_default_redirect_is_compliant():
    props = url_map(OPENAI_RULES, defaultUrlRedirect={"pathRedirect": "/health", "stripQuery": True})
    assert public_path_violations(URL_MAP, props) == []


def test_path_rule_for_metrics_is_a_violation():
    rules = [*OPENAI_RULES, {"paths": ["/metrics"], "service": BACKEND_SERVICE}]
    assert public_path_violations(URL_MAP, url_map(rules)) == [
        "path matcher 'vllm' routes '/metrics', outside /v1/ and /health"
    ]


def test_path_rule_rewriting_into_private_paths_is_a_violation():
    rules = [
        {
            "paths": ["/v1/*"],
            "routeAction": {
                "weightedBackendServices": [{"backendService": BACKEND_SERVICE}],
                "urlRewrite": {"pathPrefixRewrite": "/"},
            },
        }
    ]
    assert public_path_violations(URL_MAP, url_map(rules)) != []


def test_route_rule_matching_every_prefix_is_a_violation():
    matcher = {
        "name": "vllm",
        "defaultService": BUCKET,
        "routeRules": [{"priority": 1, "service": BACKEND_SERVICE, "matchRules": [{"prefixMatch": "/"}]}],
    }
    props = {"defaultService": BUCKET, "pathMatchers": [matcher]}
    assert public_path_violations(URL_MAP, props) == [
        "path matcher 'vllm' route rule 1 matches '/', outside /v1/ and /health"
    ]


def test_route_rule_with_a_regex_match_is_a_violation():
    matcher = {
        "name": "vllm",
        "defaultService": BUCKET,
        "routeRules": [
            {"priority": 1, "service": BACKEND_SERVICE, "matchRules": [{"regexMatch": "^/v1/.*"}]}
        ],
    }
    assert public_path_violations(URL_MAP, {"defaultService": BUCKET, "pathMatchers": [matcher]}) != []


def test_url_map_default_unknown_at_preview_is_not_judged():
    assert public_path_violations(URL_MAP, url_map(OPENAI_RULES, defaultService=UNKNOWN)) == []


FORWARD = {"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:tg/vllm"}
NOT_FOUND = {"type": "fixed-response", "fixedResponse": {"contentType": "text/plain", "statusCode": "404"}}


def test_listener_forwarding_by_default_is_a_violation():
    assert public_path_violations(LISTENER, {"defaultActions": [FORWARD]}) == [
        "listener default action forwards every other path (/metrics, /tokenize, /pause, ...): make it a "
        "fixed-response (404)"
    ]


def test_network_load_balancer_listener_forwarding_tcp_is_not_a_path_route():
    # the Ray head's NLB on the GCS port: a layer-4 listener has no paths to keep private
    assert (
        public_path_violations(LISTENER, {"protocol": "TCP", "port": 6379.0, "defaultActions": [FORWARD]})
        == []
    )


def test_listener_answering_404_by_default_is_compliant():
    assert public_path_violations(LISTENER, {"defaultActions": [NOT_FOUND]}) == []


def listener_rule(*patterns: str, action: dict = FORWARD) -> dict:
    conditions = (
        [{"pathPattern": {"values": list(patterns)}}]
        if patterns
        else [{"hostHeader": {"values": ["llm.example.com"]}}]
    )
    return {"actions": [action], "conditions": conditions}


def test_listener_rule_forwarding_v1_and_health_is_compliant():
    assert public_path_violations(LISTENER_RULE, listener_rule("/v1/*", "/health")) == []


def test_listener_rule_forwarding_everything_is_a_violation():
    assert public_path_violations(LISTENER_RULE, listener_rule("/*")) == [
        "listener rule forwards '/*', outside /v1/ and /health"
    ]


def test_listener_rule_forwarding_without_a_path_condition_is_a_violation():
    assert public_path_violations(LISTENER_RULE, listener_rule()) == [
        "listener rule forwards without a path-pattern condition, so it forwards every path"
    ]


def test_listener_rule_answering_private_paths_itself_is_compliant():
    assert public_path_violations(LISTENER_RULE, listener_rule("/metrics", action=NOT_FOUND)) == []


# --- Health: GPU VMs autoheal -------------------------------------------------------------------------------

TEMPLATE_LINK = "https://www.googleapis.com/compute/v1/projects/p/global/instanceTemplates/vllm-7f3a"
HEALING = {"healthCheck": "projects/p/global/healthChecks/vllm", "initialDelaySec": 1800}


def urn(kind: str, name: str) -> str:
    return f"urn:pulumi:gcp-h100::vllm::vllm:gcp:ReplicaGroup${kind}::{name}"


def gpu_template(parent: str | None = "urn:replica", **props) -> StackResource:
    known = {
        "selfLink": TEMPLATE_LINK,
        "id": "projects/p/global/instanceTemplates/vllm-7f3a",
        "machineType": "a3-highgpu-8g",
    }
    return StackResource(GCP_TEMPLATE, urn(GCP_TEMPLATE, "template"), {**known, **props}, parent)


def mig(
    reference: object = TEMPLATE_LINK, healing: object = HEALING, parent: str | None = "urn:replica", **deps
) -> StackResource:
    props = {"versions": [{"instanceTemplate": reference, "name": "primary"}], "autoHealingPolicies": healing}
    return StackResource(GCP_MIG, urn(GCP_MIG, "group"), props, parent, deps)


def test_gpu_template_in_a_healing_group_is_compliant():
    assert autohealing_violations([gpu_template(), mig()]) == []


def test_gpu_template_in_a_group_without_autohealing_is_a_violation():
    violations = autohealing_violations([gpu_template(), mig(healing=None)])
    assert [(where, message.split(":")[0]) for where, message in violations] == [
        (urn(GCP_MIG, "group"), "group group runs GPU template template without autohealing")
    ]


def test_autohealing_without_an_initial_delay_is_a_violation():
    healing = {"healthCheck": HEALING["healthCheck"], "initialDelaySec": 0}
    assert autohealing_violations([gpu_template(), mig(healing=healing)]) != []


def test_gpu_template_used_by_no_group_is_a_violation():
    assert autohealing_violations([gpu_template()]) == [
        (
            urn(GCP_TEMPLATE, "template"),
            "GPU template template is used by no group: use it from an instance group manager with "
            "autoHealingPolicies (healthCheck, initialDelaySec)",
        )
    ]


def test_group_links_to_its_template_by_property_dependency_in_preview():
    template = gpu_template(parent="urn:a", selfLink=UNKNOWN, id=UNKNOWN)
    group = mig(reference=UNKNOWN, healing=None, parent="urn:b", versions=(template.urn,))
    assert [where for where, _ in autohealing_violations([template, group])] == [group.urn]


def test_unknown_reference_from_the_same_component_counts_as_a_link():
    template = gpu_template(selfLink=UNKNOWN, id=UNKNOWN)
    assert autohealing_violations([template, mig(reference=UNKNOWN)]) == []


def test_unknown_reference_from_another_component_is_no_link():
    template = gpu_template(selfLink=UNKNOWN, id=UNKNOWN)
    assert [
        where for where, _ in autohealing_violations([template, mig(reference=UNKNOWN, parent="urn:other")])
    ] == [template.urn]


def test_group_of_another_template_does_not_cover_this_one():
    other = "https://www.googleapis.com/compute/v1/projects/p/global/instanceTemplates/other"
    assert [where for where, _ in autohealing_violations([gpu_template(), mig(reference=other)])] == [
        urn(GCP_TEMPLATE, "template")
    ]


def test_guest_accelerators_make_a_template_a_gpu_template():
    template = gpu_template(
        machineType="n1-standard-8", guestAccelerators=[{"type": "nvidia-tesla-t4", "count": 1}]
    )
    assert autohealing_violations([template]) != []


def test_cpu_template_needs_no_group():
    assert autohealing_violations([gpu_template(machineType="n2-standard-8")]) == []


def test_standalone_gpu_instance_is_a_violation():
    vm = StackResource(
        GCP_INSTANCE,
        urn(GCP_INSTANCE, "head"),
        {"machineType": "zones/us-central1-a/machineTypes/g2-standard-8"},
    )
    assert autohealing_violations([vm]) == [
        (
            vm.urn,
            "GPU VM head is a standalone instance: run it from an instance group manager with "
            "autoHealingPolicies (healthCheck, initialDelaySec)",
        )
    ]


def test_standalone_cpu_instance_is_compliant():
    vm = StackResource(GCP_INSTANCE, urn(GCP_INSTANCE, "bastion"), {"machineType": "e2-small"})
    assert autohealing_violations([vm]) == []


def aws_template(instance_type: str = "g6e.xlarge") -> StackResource:
    props = {"id": "lt-0abc", "name": "vllm-lt", "instanceType": instance_type}
    return StackResource(AWS_TEMPLATE, urn(AWS_TEMPLATE, "lt"), props, "urn:replica")


def asg(**props) -> StackResource:
    healthy = {
        "launchTemplate": {"id": "lt-0abc", "version": "$Latest"},
        "healthCheckType": "ELB",
        "targetGroupArns": ["arn:tg"],
    }
    return StackResource(AWS_GROUP, urn(AWS_GROUP, "asg"), {**healthy, **props}, "urn:replica")


def test_gpu_launch_template_in_an_elb_checked_group_is_compliant():
    assert autohealing_violations([aws_template(), asg()]) == []


def test_group_with_ec2_health_checks_and_no_target_group_is_compliant():
    # the load balancer only routes; the on-instance watchdog reports /health through SetInstanceHealth
    assert autohealing_violations([aws_template(), asg(healthCheckType="EC2", targetGroupArns=[])]) == []


def test_group_with_an_unknown_health_check_type_is_a_violation():
    assert [where for where, _ in autohealing_violations([aws_template(), asg(healthCheckType="NONE")])] == [
        asg().urn
    ]


def test_cpu_launch_template_needs_no_group():
    assert autohealing_violations([aws_template("m7i.large")]) == []


def test_ec2_instance_from_a_gpu_launch_template_is_a_violation():
    vm = StackResource(AWS_INSTANCE, urn(AWS_INSTANCE, "vm"), {"launchTemplate": {"id": "lt-0abc"}})
    assert autohealing_violations([aws_template(), asg(), vm]) == [
        (
            vm.urn,
            "GPU VM vm is a standalone instance: run it from an Auto Scaling group (EC2 health, and the "
            "machine reporting its /health through SetInstanceHealth)",
        )
    ]


# --- AWS names and descriptions -----------------------------------------------------------------------------

AWS_LB = "aws:lb/loadBalancer:LoadBalancer"
AWS_TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"


def test_pulumis_auto_name_for_a_multi_node_head_is_a_violation():
    # the resource name plus Pulumi's "-" and 7 characters: 39 characters
    violations = aws_elb_name_violations(AWS_LB, {"name": "vllm-aws-h200-multinode-r0-head-1a2b3c4"})
    assert violations == [
        "load balancer name 'vllm-aws-h200-multinode-r0-head-1a2b3c4' (39 characters): AWS allows at most 32 "
        "letters, digits and hyphens, no hyphen first or last"
    ]


@pytest.mark.parametrize("name", ["vllm_prod-tg", "-vllm-tg", "vllm-tg-", "vllm.tg"])
def test_target_group_names_with_other_characters_or_end_hyphens_are_violations(name):
    assert aws_elb_name_violations(AWS_TARGET_GROUP, {"name": name}) != []


def test_a_32_character_name_of_letters_digits_and_hyphens_is_compliant():
    name = "vllm-production-inference-a1b2c3"
    assert len(name) == 32
    assert aws_elb_name_violations(AWS_TARGET_GROUP, {"name": name}) == []


def test_a_load_balancer_named_internal_dash_is_a_violation():
    assert aws_elb_name_violations(AWS_LB, {"name": "internal-vllm"}) == [
        "load balancer name 'internal-vllm' may not start with 'internal-'"
    ]


def test_a_name_prefix_over_six_characters_is_a_violation():
    assert aws_elb_name_violations(AWS_TARGET_GROUP, {"namePrefix": "vllm-tg"}) != []
    assert aws_elb_name_violations(AWS_TARGET_GROUP, {"namePrefix": "vllm-"}) == []


def test_an_elb_name_unknown_at_preview_is_not_judged():
    assert aws_elb_name_violations(AWS_LB, {"name": UNKNOWN}) == []


def test_other_resources_names_are_not_elb_names():
    assert aws_elb_name_violations(AWS_SG, {"name": "a-security-group-name-well-over-thirty-two-chars"}) == []


def test_an_apostrophe_in_a_rule_description_is_a_violation():
    violations = aws_description_violations(AWS_INGRESS_RULE, {"description": "the replicas' vLLM port"})
    assert violations == [
        'security group rule description "the replicas\' vLLM port": EC2 accepts up to 255 characters of '
        'a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*, not "\'"'
    ]


def test_inline_rule_and_group_descriptions_are_checked():
    props = {
        "description": "vllm: the load balancer",
        "ingress": [{"description": "HTTP from anywhere", "fromPort": 80.0, "toPort": 80.0}],
        "egress": [{"description": "to the replicas\u2019 port", "fromPort": 8000.0, "toPort": 8000.0}],
    }
    assert [v.split(" '")[0].split(' "')[0] for v in aws_description_violations(AWS_SG, props)] == [
        "inline egress rule description"
    ]


def test_descriptions_within_ec2s_character_set_are_compliant():
    text = "vllm-prod replicas: vLLM port 8000 from the ALB (sg-0abc) #1, [a+b=c] & {d}; e@f! $g*"
    assert aws_description_violations(AWS_SG_RULE, {"description": text}) == []


def test_a_description_over_255_characters_is_a_violation():
    assert aws_description_violations(AWS_SG, {"description": "a" * 256}) != []


def test_a_description_unknown_at_preview_is_not_judged():
    assert aws_description_violations(AWS_INGRESS_RULE, {"description": UNKNOWN}) == []


def test_a_health_check_timeout_equal_to_its_interval_is_a_violation_with_numbers_as_floats():
    props = {"healthCheck": {"protocol": "TCP", "interval": 10.0, "timeout": 10.0}}
    assert aws_health_check_violations(AWS_TARGET_GROUP, props) == [
        "target group health check timeout 10 s is not below its interval 10 s: AWS refuses it"
    ]


def test_a_health_check_timing_out_before_the_next_check_is_compliant():
    props = {"healthCheck": {"interval": 10, "timeout": 5.0}}
    assert aws_health_check_violations(AWS_TARGET_GROUP, props) == []


def test_a_health_check_left_to_aws_defaults_or_unknown_is_not_judged():
    assert aws_health_check_violations(AWS_TARGET_GROUP, {"healthCheck": {"interval": 30.0}}) == []
    assert (
        aws_health_check_violations(AWS_TARGET_GROUP, {"healthCheck": {"interval": UNKNOWN, "timeout": 5.0}})
        == []
    )


# --- As the policy SDK hands resources over -------------------------------------------------------------


def as_the_sdk_hands_it_over(props: dict) -> dict:
    """Properties as CrossGuard's Python SDK gives them to a policy: the engine sends a protobuf Struct, in
    which every number is a double, and pulumi_policy/policy.py deserializes it with
    ``deserialize_properties(json_format.MessageToDict(request.properties))``."""
    struct = struct_pb2.Struct()
    struct.update(_as_sent(props))
    return deserialize_properties(json_format.MessageToDict(struct))


#: How the engine marks an asset or archive in a Struct (pulumi/runtime/rpc.py ``_special_sig_key``,
#: ``_special_asset_sig``, ``_special_archive_sig``).
SIG, ASSET_SIG, ARCHIVE_SIG = (
    "4dabf18193072939515e22adb298388d",
    "c44067f5952c0a294b673a41bacd8c17",
    "0def7320c3a5731c473e5ecbe6d01bc7",
)


def _as_sent(value: Any) -> Any:
    """A recorded input as the engine sends it: assets and archives (a Lambda function's code) as their
    signed maps."""
    if isinstance(value, pulumi.AssetArchive):
        return {SIG: ARCHIVE_SIG, "assets": {name: _as_sent(asset) for name, asset in value.assets.items()}}
    if isinstance(value, pulumi.FileAsset):
        return {SIG: ASSET_SIG, "path": str(value.path)}
    if isinstance(value, dict):
        return {key: _as_sent(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_sent(item) for item in value]
    return value


def via_sdk(resource: StackResource) -> StackResource:
    return StackResource(
        resource.type,
        resource.urn,
        as_the_sdk_hands_it_over(dict(resource.props)),
        resource.parent,
        dict(resource.property_dependencies),
    )


def test_the_sdk_hands_integers_over_as_floats():
    assert as_the_sdk_hands_it_over({"initialDelaySec": 3480}) == {"initialDelaySec": 3480.0}


def test_a_healing_group_as_the_sdk_hands_it_over_is_compliant():
    assert autohealing_violations([via_sdk(gpu_template()), via_sdk(mig())]) == []


def test_a_zero_initial_delay_as_the_sdk_hands_it_over_is_still_a_violation():
    healing = {"healthCheck": HEALING["healthCheck"], "initialDelaySec": 0}
    assert autohealing_violations([via_sdk(gpu_template()), via_sdk(mig(healing=healing))]) != []


def test_float_accelerator_counts_make_a_gpu_template():
    template = gpu_template(
        machineType="n1-standard-8", guestAccelerators=[{"type": "nvidia-tesla-t4", "count": 2}]
    )
    assert autohealing_violations([via_sdk(template)]) != []


GCP_STACKS = {
    "gcp-h100": ("gcp-h100", {}),
    "gcp-h100-multinode x2": ("gcp-h100-multinode", {"vllm:replicas": 2}),
    "l4 europe, long name": (
        "a-rather-long-stack-name-for-the-policy-pack-in-europe-west4",
        {
            "vllm:cloud": "gcp",
            "vllm:gpu": "L4:1",
            "vllm:model": "Qwen/Qwen3-8B",
            "gcp:region": "europe-west4",
        },
    ),
}


@pytest.mark.parametrize("key", GCP_STACKS)
def test_gcp_stacks_pass_every_policy_as_the_sdk_hands_them_over(key):
    stack, config = GCP_STACKS[key]
    run = run_program(stack, config, secrets={"vllm:apiKey": API_KEY, "vllm:hfToken": HF_TOKEN})
    resources = [
        StackResource(r.type, r.urn, as_the_sdk_hands_it_over({**r.outputs, **r.inputs}), r.parent or None)
        for r in run.resources
    ]
    assert autohealing_violations(resources) == []
    for resource in resources:
        check = (secret_violations, exposure_violations, public_path_violations)
        assert [v for rule in check for v in rule(resource.type, resource.props)] == [], resource.name
