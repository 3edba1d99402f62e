"""Every physical name the program declares obeys its platform's rule, for any stack name and any options.

The mock runtime computes no physical names and enforces no naming rule, so this module does both: it runs
the real program for a long stack name full of characters that get slugged, on each platform's widest
variants, and checks each declared resource's physical name (its explicit name, else the auto-name Pulumi
would give it) against the rule documented for that resource type. A resource type not listed here fails
the test until someone looks its rule up: a new resource cannot slip past unchecked.

Auto-names: pulumi-terraform-bridge (``AutoName``, ``Randlen: 7``) appends ``-`` and 7 random characters to
the logical name for GCP and AWS resources; pulumi-kubernetes (``AssignNameIfAutonamable``) appends ``-``
and 8 (provider/pkg/metadata/naming.go).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from components.aws import names as aws_names
from components.gcp import names as gcp_names
from components.gcp import policy as gcp_policy
from components.service_spec import NAME_MAX
from components.spec import build_spec
from tests.harness import Resource, Run, run_program

SECRETS = {"vllm:hfToken": "hf_testtoken123", "vllm:apiKey": "sk-test-key-4567890"}
#: 79 characters: upper case, '_', '.', '--' and "google" (which Cloud Storage refuses in a bucket name).
LONG_STACK = "Team_ML.Google-Production--Inference.Llama4.Maverick.FP8.northamerica.blue-green"
MODEL = {"vllm:model": "Qwen/Qwen3-8B"}
SCALING = {"vllm:replicas": "unset", "vllm:targetQpsPerReplica": "2.5"}
PROMETHEUS = {"vllm:prometheusUrl": "http://prometheus.monitoring:9090"}
K8S_TLS = {"vllm:domain": "llm.example.com", "vllm:tlsSecretName": "llm-tls"}

#: A second revision of 12 Ray replicas beside the stable one: its names end in -rev2-r11.
MULTI_NODE_CANARY = {
    "vllm:servedModelName": "chat",
    "vllm:canary": {"image": "vllm/vllm-openai:v0.32.0", "replicas": 12},
}
VARIANTS: dict[str, dict] = {
    # Three regions (the catalog's longest names for g2), spot over an on-demand base, autoscaled, HTTPS,
    # the bucket weight cache: one group, template, health check and autoscaler per region and market.
    "gcp-regions-spot-autoscaled-https-bucket": {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        **MODEL,
        **SCALING,
        "vllm:minReplicas": 6,
        "vllm:maxReplicas": 9,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 3,
        "gcp:region": "asia-southeast1",
        "vllm:regions": ["asia-southeast1", "europe-west4", "us-central1"],
        "vllm:domain": "llm.example.com",
        "vllm:dnsZone": "example-com",
        "vllm:weightCache": "bucket",
    },
    "gcp-multinode-https-bucket-canary": {
        "vllm:preset": "gcp-h100-multinode",
        "vllm:replicas": 12,
        "vllm:domain": "llm.example.com",
        "vllm:weightCache": "bucket",
        **MULTI_NODE_CANARY,
    },
    "aws-spot-base-autoscaled-https": {
        "vllm:cloud": "aws",
        "vllm:gpu": "L4:1",
        **MODEL,
        **SCALING,
        "vllm:maxReplicas": 6,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 1,
        "vllm:domain": "llm.example.com",
        "vllm:dnsZone": "Z0123456789ABCDEFGHIJ",
    },
    "aws-multinode-https-canary": {
        "vllm:preset": "aws-h200-multinode",
        "vllm:replicas": 12,
        "vllm:domain": "llm.ai",
        **MULTI_NODE_CANARY,
    },
    "k8s-spot-base-keda-operator-tls": {
        "vllm:cloud": "kubernetes",
        "vllm:gpu": "L4:1",
        **MODEL,
        **SCALING,
        **PROMETHEUS,
        "vllm:maxReplicas": 6,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 1,
        "vllm:gpuNodeSelector": "gke",
        "vllm:prometheusOperator": True,
        **K8S_TLS,
    },
    "k8s-cold-start-http-add-on": {
        "vllm:cloud": "kubernetes",
        "vllm:gpu": "L4:1",
        **MODEL,
        **SCALING,
        **PROMETHEUS,
        "vllm:maxReplicas": 6,
        "vllm:minReplicas": 0,
        "vllm:targetQueuePerReplica": 8,
        "vllm:serviceType": "ClusterIP",
        "vllm:domain": "llm.example.com",
        "vllm:installKedaHttpAddOn": True,
    },
    "k8s-canary-spot-base-keda-gateway": {
        "vllm:cloud": "kubernetes",
        "vllm:gpu": "L4:1",
        **MODEL,
        **SCALING,
        **PROMETHEUS,
        "vllm:maxReplicas": 6,
        "vllm:spot": True,
        "vllm:onDemandBaseReplicas": 1,
        "vllm:gpuNodeSelector": "gke",
        "vllm:prometheusOperator": True,
        "vllm:router": "inference-gateway",
        "vllm:gatewayClassName": "gke-l7-regional-external-managed",
        "vllm:servedModelName": "chat",
        "vllm:canary": {"model": "Qwen/Qwen3-4B", "weight": 10},
    },
    "k8s-lws-keda-operator-tls": {
        "vllm:preset": "k8s-h100-multinode",
        **SCALING,
        **PROMETHEUS,
        "vllm:maxReplicas": 999,
        "vllm:maxSurge": 1,
        "vllm:installLeaderWorkerSet": True,
        "vllm:prometheusOperator": True,
        **K8S_TLS,
    },
}


def variants_of(platform: str) -> list[str]:
    return sorted(key for key in VARIANTS if key.startswith(f"{platform}-"))


@pytest.fixture(scope="module", params=variants_of("gcp"))
def gcp_variant(request) -> Run:
    return run_program(LONG_STACK, VARIANTS[request.param], secrets=SECRETS)


@pytest.fixture(scope="module", params=variants_of("aws"))
def aws_variant(request) -> Run:
    return run_program(LONG_STACK, VARIANTS[request.param], secrets=SECRETS)


@pytest.fixture(scope="module", params=variants_of("k8s"))
def k8s_variant(request) -> Run:
    return run_program(LONG_STACK, VARIANTS[request.param], secrets=SECRETS)


def autonamed(resource: Resource, key: str = "name", suffix: str = "a1b2c3d") -> str:
    """The physical name: the explicit one, else the logical name with Pulumi's random suffix."""
    return resource.inputs.get(key) or f"{resource.name}-{suffix}"


Rule = Callable[[str], bool]


def pattern(regex: str, low: int, high: int) -> Rule:
    compiled = re.compile(regex)
    return lambda name: low <= len(name) <= high and compiled.fullmatch(name) is not None


# --- GCP ------------------------------------------------------------------------------------------------

#: Compute Engine names: 1-63 characters, RFC 1035 (``pulumi_gcp.compute.*`` ``name`` docstrings).
GCP_COMPUTE: Rule = pattern(gcp_names.COMPUTE_NAME.pattern, 1, 63)
#: Cloud Storage "Bucket naming rules": 3-63 characters of a-z, 0-9, '-', '_', '.', a letter or digit at
#: both ends, no "goog" prefix and no "google" or close misspelling ("g00gle") anywhere.
GCP_BUCKET: Rule = lambda name: (  # noqa: E731
    pattern(r"[a-z0-9][-_.a-z0-9]*[a-z0-9]", 3, 63)(name)
    and not name.startswith("goog")
    and re.search(r"g[o0]{2}g[l1]e", name) is None
)
GCP_NAMED: dict[str, tuple[str, Rule]] = {
    **{
        f"gcp:compute/{kind}": ("name", GCP_COMPUTE)
        for kind in (
            "network:Network",
            "subnetwork:Subnetwork",
            "router:Router",
            "routerNat:RouterNat",
            "firewall:Firewall",
            "healthCheck:HealthCheck",
            "globalAddress:GlobalAddress",
            "address:Address",
            "backendService:BackendService",
            "securityPolicy:SecurityPolicy",
            "uRLMap:URLMap",
            "targetHttpProxy:TargetHttpProxy",
            "targetHttpsProxy:TargetHttpsProxy",
            "globalForwardingRule:GlobalForwardingRule",
            "managedSslCertificate:ManagedSslCertificate",
            "sSLPolicy:SSLPolicy",
            "instanceTemplate:InstanceTemplate",
            "regionInstanceGroupManager:RegionInstanceGroupManager",
            "instanceGroupManager:InstanceGroupManager",
            "regionAutoscaler:RegionAutoscaler",
            "resourcePolicy:ResourcePolicy",
            "perInstanceConfig:PerInstanceConfig",  # its explicit name is the VM's
        )
    },
    "gcp:storage/bucket:Bucket": ("name", GCP_BUCKET),
    # serviceaccount.Account docstring: 6-30 characters, RFC 1035.
    "gcp:serviceaccount/account:Account": ("accountId", pattern(r"[a-z]([-a-z0-9]*[a-z0-9])", 6, 30)),
    # Secret Manager: secret ids are at most 255 of [A-Za-z0-9_-] (CreateSecret secretId).
    "gcp:secretmanager/secret:Secret": ("secretId", pattern(r"[A-Za-z0-9_-]+", 1, 255)),
    # Artifact Registry repository ids: lowercase letters, digits and '-', a letter first, at most 63.
    "gcp:artifactregistry/repository:Repository": (
        "repositoryId",
        pattern(r"[a-z]([-a-z0-9]*[a-z0-9])?", 1, 63),
    ),
}
#: Types without a physical name of their own (bindings, versions, API enablement), or whose name is the
#: user's (a DNS record is vllm:domain), or a dashboard (its id is generated).
GCP_UNNAMED = {
    "gcp:projects/service:Service",
    "gcp:projects/iAMMember:IAMMember",
    "gcp:secretmanager/secretIamMember:SecretIamMember",
    "gcp:secretmanager/secretVersion:SecretVersion",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:monitoring/dashboard:Dashboard",
    "gcp:dns/recordSet:RecordSet",
}
#: Compute labels: keys 1-63 of [a-z0-9_-] starting with a letter, values 0-63 of [a-z0-9_-] (Compute Engine
#: "Labels" requirements).
GCP_LABEL_KEY: Rule = pattern(r"[a-z][-_a-z0-9]*", 1, 63)
GCP_LABEL_VALUE: Rule = pattern(r"[-_a-z0-9]*", 0, 63)
#: A managed group's ``base_instance_name``: RFC 1035, at most 58 (63 less the group's ``-xxxx``;
#: ``pulumi_gcp.compute.RegionInstanceGroupManager`` docstring).
GCP_BASE_INSTANCE_NAME: Rule = pattern(gcp_names.COMPUTE_NAME.pattern, 1, 58)


def gcp_resources(run: Run) -> list[Resource]:
    return [r for r in run.resources if r.custom and r.type.startswith("gcp:")]


def test_every_gcp_resource_type_has_a_reviewed_naming_rule(gcp_variant):
    unreviewed = {r.type for r in gcp_resources(gcp_variant)} - GCP_NAMED.keys() - GCP_UNNAMED
    assert not unreviewed


def test_every_gcp_physical_name_fits_its_resource_types_rule(gcp_variant):
    named = [
        (r.type, autonamed(r, GCP_NAMED[r.type][0]))
        for r in gcp_resources(gcp_variant)
        if r.type in GCP_NAMED
    ]
    assert named
    assert [(type_, name) for type_, name in named if not GCP_NAMED[type_][1](name)] == []


def test_every_gcp_group_names_its_vms_within_58_characters(gcp_variant):
    groups = [r for r in gcp_resources(gcp_variant) if "baseInstanceName" in r.inputs]
    assert groups
    for group in groups:
        assert GCP_BASE_INSTANCE_NAME(group.inputs["baseInstanceName"]), group.inputs["baseInstanceName"]


def test_every_gcp_label_and_network_tag_fits_gcps_rules(gcp_variant):
    for resource in gcp_resources(gcp_variant):
        for key, value in (resource.inputs.get("labels") or {}).items():
            assert GCP_LABEL_KEY(key) and GCP_LABEL_VALUE(value), (resource.type, key, value)
        for tag in resource.inputs.get("tags") or []:
            assert GCP_COMPUTE(tag), (resource.type, tag)


def test_gcp_names_that_fit_stay_as_they_are():
    assert gcp_names.autoname("vllm-gcp-h100-us-central1-spot", "autoscaler") == (
        "vllm-gcp-h100-us-central1-spot-autoscaler"
    )


def test_gcp_long_names_that_share_a_prefix_stay_apart_and_keep_their_role():
    base = "vllm-" + "x" * 35
    first = gcp_names.autoname(f"{base}-asia-southeast1-spot", "autoscaler")
    second = gcp_names.autoname(f"{base}-asia-southeast1-od", "autoscaler")
    assert first != second
    assert len(first) == len(second) == gcp_names.LOGICAL_NAME_MAX
    assert first.endswith("-spot-autoscaler") and second.endswith("-od-autoscaler")


def test_a_gcp_role_too_long_to_leave_room_for_a_name_is_refused():
    with pytest.raises(ValueError):
        gcp_names.autoname("vllm-x", "r" * gcp_names.LOGICAL_NAME_MAX)


# --- AWS ------------------------------------------------------------------------------------------------

#: IAM names: ``[\w+=,.@-]+``; a role at most 64 characters, an instance profile or inline policy 128
#: (IAM API CreateRole / CreateInstanceProfile / PutRolePolicy; "IAM and AWS STS quotas").
IAM = r"[\w+=,.@-]+"
#: S3 "General purpose bucket naming rules": 3-63 of a-z, 0-9, '.', '-', a letter or digit at both ends,
#: no "..", no reserved prefix (xn--, sthree-, amzn-s3-demo-) or suffix (-s3alias, --ol-s3, .mrap,
#: --x-s3). ``bucket_prefix`` gets 26 characters from the provider (terraform-provider-aws
#: ``id.PrefixedUniqueId``), hence its 37-character limit.
S3_BUCKET: Rule = lambda name: (  # noqa: E731
    pattern(r"[a-z0-9][-.a-z0-9]*[a-z0-9]", 3, 63)(name)
    and ".." not in name
    and not name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
    and not name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
)
AWS_NAMED: dict[str, tuple[str, Rule]] = {
    "aws:iam/role:Role": ("name", pattern(IAM, 1, 64)),
    "aws:iam/instanceProfile:InstanceProfile": ("name", pattern(IAM, 1, 128)),
    "aws:iam/rolePolicy:RolePolicy": ("name", pattern(IAM, 1, 128)),
    # CreateSecurityGroup GroupName: up to 255 of the description characters, not starting "sg-".
    "aws:ec2/securityGroup:SecurityGroup": (
        "name",
        lambda name: (
            len(name) <= 255 and bool(aws_names.EC2_DESCRIPTION.match(name)) and not name.startswith("sg-")
        ),
    ),
    # CreateLaunchTemplate LaunchTemplateName: 3-128 of [a-zA-Z0-9().-/_].
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", pattern(r"[a-zA-Z0-9().\-/_]+", 3, 128)),
    # CreatePlacementGroup GroupName: up to 255.
    "aws:ec2/placementGroup:PlacementGroup": ("name", pattern(r".+", 1, 255)),
    # CreateAutoScalingGroup AutoScalingGroupName and PutScalingPolicy PolicyName: 1-255.
    "aws:autoscaling/group:Group": ("name", pattern(r"[^:]+", 1, 255)),
    "aws:autoscaling/policy:Policy": ("name", pattern(r".+", 1, 255)),
    # PutLifecycleHook LifecycleHookName: 1-255 of [A-Za-z0-9-_/] (EC2 Auto Scaling API, LifecycleHook).
    "aws:autoscaling/lifecycleHook:LifecycleHook": ("name", pattern(r"[A-Za-z0-9\-_/]+", 1, 255)),
    # CreateLogGroup logGroupName: 1-512 of [.-_/#A-Za-z0-9].
    "aws:cloudwatch/logGroup:LogGroup": ("name", pattern(r"[.\-_/#A-Za-z0-9]+", 1, 512)),
    # PutDashboard DashboardName: up to 255 of [A-Za-z0-9_-].
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", pattern(r"[A-Za-z0-9_-]+", 1, 255)),
    # CreateSecret Name: up to 512 of [A-Za-z0-9/_+=.@-].
    "aws:secretsmanager/secret:Secret": ("name", pattern(r"[A-Za-z0-9/_+=.@-]+", 1, 512)),
    # CreateFunction FunctionName: a name of 1-64 of [a-zA-Z0-9-_] (the 140 it allows counts a whole ARN).
    "aws:lambda/function:Function": ("name", pattern(r"[a-zA-Z0-9_-]+", 1, 64)),
    "aws:lb/loadBalancer:LoadBalancer": ("name", lambda name: bool(aws_names.ELB_NAME.match(name))),
    "aws:lb/targetGroup:TargetGroup": ("name", lambda name: bool(aws_names.ELB_NAME.match(name))),
}
AWS_UNNAMED = {
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:lb/listener:Listener",
    "aws:lb/listenerRule:ListenerRule",
    "aws:lambda/invocation:Invocation",
    "aws:acm/certificate:Certificate",
    "aws:acm/certificateValidation:CertificateValidation",
    "aws:route53/record:Record",
    "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
}
S3_UNIQUE_SUFFIX_LENGTH = 26


def aws_resources(run: Run) -> list[Resource]:
    return [r for r in run.resources if r.custom and r.type.startswith("aws:")]


def test_every_aws_resource_type_has_a_reviewed_naming_rule(aws_variant):
    unreviewed = {r.type for r in aws_resources(aws_variant)} - AWS_NAMED.keys() - AWS_UNNAMED
    unreviewed.discard("aws:s3/bucket:Bucket")  # named by its prefix: its own test below
    assert not unreviewed


def test_every_aws_physical_name_fits_its_resource_types_rule(aws_variant):
    named = [
        (r.type, autonamed(r, AWS_NAMED[r.type][0]))
        for r in aws_resources(aws_variant)
        if r.type in AWS_NAMED
    ]
    assert named
    assert [(type_, name) for type_, name in named if not AWS_NAMED[type_][1](name)] == []


def test_every_s3_bucket_name_the_prefix_leads_to_fits_s3s_rules(aws_variant):
    buckets = [r for r in aws_resources(aws_variant) if r.type == "aws:s3/bucket:Bucket"]
    assert buckets
    for bucket in buckets:
        prefix = bucket.inputs["bucketPrefix"]
        assert len(prefix) <= 37 and S3_BUCKET(prefix + "0" * S3_UNIQUE_SUFFIX_LENGTH), prefix


# --- Kubernetes -----------------------------------------------------------------------------------------

#: Kubernetes "Object Names and IDs": most kinds take a DNS-1123 subdomain (253), a Namespace a DNS-1123
#: label (63), a Service a DNS-1035 label (63, a letter first).
DNS1123_SUBDOMAIN: Rule = pattern(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", 1, 253)
DNS1123_LABEL: Rule = pattern(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", 1, 63)
DNS1035_LABEL: Rule = pattern(r"[a-z]([-a-z0-9]*[a-z0-9])?", 1, 63)
#: Label values: at most 63, alphanumerics at both ends, '-', '_', '.' inside ("Labels and Selectors").
LABEL_VALUE: Rule = pattern(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", 0, 63)
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
K8S_RULES: dict[str, Rule] = {
    "kubernetes:core/v1:Namespace": DNS1123_LABEL,
    "kubernetes:core/v1:Service": DNS1035_LABEL,
    # LWS webhook (pkg/webhooks/leaderworkerset_webhook.go): "the lws name is used as the name for headless
    # service, it must be DNS-1035 compliant"; the room its pods need is checked below.
    LWS: DNS1035_LABEL,
    # KEDA's webhook refuses a ScaledObject whose HPA name ``keda-hpa-<name>`` exceeds a label value's 63
    # characters (kedacore/keda ScaledObject webhook tests: "generated HPA name would exceed the label value
    # limit"), so at most 54.
    SCALED_OBJECT: lambda name: DNS1123_SUBDOMAIN(name) and LABEL_VALUE(f"keda-hpa-{name}"),
}
#: The StatefulSet controller labels each pod ``controller-revision-hash: <statefulset>-<hash>``, a hash of
#: up to 10 characters (kubernetes/kubernetes#64023): a StatefulSet name over 52 characters breaks its pods.
REVISION_HASH_SUFFIX = 11


def k8s_resources(run: Run) -> list[Resource]:
    return [
        r for r in run.resources if r.custom and r.type.startswith("kubernetes:") and "metadata" in r.inputs
    ]


def k8s_name(resource: Resource) -> str:
    return resource.inputs["metadata"].get("name") or f"{resource.name}-a1b2c3d4"


def test_every_kubernetes_object_name_fits_its_kinds_rule(k8s_variant):
    named = [(r.type, k8s_name(r)) for r in k8s_resources(k8s_variant)]
    assert named
    assert [(type_, name) for type_, name in named if not K8S_RULES.get(type_, DNS1123_SUBDOMAIN)(name)] == []


def test_every_kubernetes_label_value_fits_63_characters(k8s_variant):
    def label_maps(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("labels", "matchLabels") and isinstance(item, dict):
                    yield item
                else:
                    yield from label_maps(item)
        elif isinstance(value, list):
            for item in value:
                yield from label_maps(item)

    for resource in k8s_resources(k8s_variant):
        for labels in label_maps(resource.inputs):
            for key, value in labels.items():
                assert isinstance(value, str) and LABEL_VALUE(value), (resource.type, key, value)


def test_a_leaderworkersets_pods_and_statefulsets_fit_their_names(k8s_variant):
    """LWS names the leader StatefulSet ``<lws>`` (pods ``<lws>-<group>``) and each group's worker
    StatefulSet ``<lws>-<group>`` (pods ``<lws>-<group>-<worker>``); a pod's name is its hostname (a DNS
    label), and each StatefulSet's revision hash label adds 11 characters."""
    sets = [r for r in k8s_resources(k8s_variant) if r.type == LWS]
    if not sets:
        pytest.skip("a single-node variant: no LeaderWorkerSet")
    for lws in sets:
        name, spec = k8s_name(lws), lws.inputs["spec"]
        most = max(
            [int(spec.get("replicas") or 0)]
            + [
                int(s.inputs["spec"]["maxReplicaCount"])
                for s in k8s_resources(k8s_variant)
                if s.type == SCALED_OBJECT
            ]
        )
        surge = int(spec["rolloutStrategy"]["rollingUpdateConfiguration"]["maxSurge"])
        last_group, last_worker = most + surge - 1, int(spec["leaderWorkerTemplate"]["size"]) - 1
        worker_set = f"{name}-{last_group}"
        assert DNS1035_LABEL(f"{worker_set}-{last_worker}"), worker_set
        assert len(worker_set) + REVISION_HASH_SUFFIX <= 63, worker_set


# --- The policy pack ------------------------------------------------------------------------------------


def test_the_policy_pack_accepts_every_gcp_name_the_program_gives(gcp_variant):
    flagged = [
        (r.type, message)
        for r in gcp_resources(gcp_variant)
        for message in gcp_policy.gcp_name_violations(r.type, {**r.inputs, "name": autonamed(r)})
        if r.type in GCP_NAMED and GCP_NAMED[r.type][0] == "name"
    ]
    assert flagged == []


@pytest.mark.parametrize(
    ("resource_type", "name"),
    [
        (
            "gcp:compute/regionAutoscaler:RegionAutoscaler",
            "vllm-" + "x" * 35 + "-northamerica-northeast1-spot-autoscaler",
        ),
        ("gcp:compute/firewall:Firewall", "Vllm-allow-lb"),
        ("gcp:storage/bucket:Bucket", "vllm-google-serving-weights-a1b2c3d"),
    ],
)
def test_the_policy_pack_flags_a_gcp_name_gcp_refuses(resource_type, name):
    assert gcp_policy.gcp_name_violations(resource_type, {"name": name})


# --- one stack, one set of names ------------------------------------------------------------------------

#: Stack names that slug alike (case, "_" and "." all become "-"), and two long names that differ only
#: after the readable part is cut.
ALIKE = ("prod-a", "prod_a", "PROD.A", "prod.a")
LONG_ALIKE = ("inference-production-europe-west4-llama-blue", "inference-production-europe-west4-llama-green")
#: Where each resource type keeps its physical name: the inputs that name it in the cloud.
NAME_INPUTS = ("name", "secretId", "accountId", "repositoryId", "bucket", "bucketPrefix", "namePrefix")
MINIMAL = {
    "gcp": {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", **MODEL},
    "aws": {"vllm:cloud": "aws", "vllm:gpu": "L4:1", **MODEL},
    "kubernetes": {"vllm:cloud": "kubernetes", "vllm:gpu": "L4:1", **MODEL},
}


#: Resource types whose name lives inside another resource of the stack, so two stacks may share it: an
#: Auto Scaling lifecycle hook's name is unique within its group (PutLifecycleHook takes the group's name).
NAMED_WITHIN_A_PARENT = {"aws:autoscaling/lifecycleHook:LifecycleHook"}


def physical_names(run: Run) -> set[str]:
    """The explicit names a run gives its resources (a Kubernetes object's name within its namespace)."""
    names = set()
    for resource in run.resources:
        if resource.type in NAMED_WITHIN_A_PARENT:
            continue
        for key in NAME_INPUTS:
            if isinstance(resource.inputs.get(key), str):
                names.add(resource.inputs[key])
        metadata = resource.inputs.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            names.add(f"{metadata.get('namespace', '')}/{metadata['name']}")
    return names


def test_stack_names_that_slug_alike_get_distinct_base_names():
    names = {build_spec(stack, MINIMAL["kubernetes"]).name for stack in (*ALIKE, *LONG_ALIKE)}
    assert len(names) == len(ALIKE) + len(LONG_ALIKE)


def test_a_stack_name_that_is_already_a_short_dns_label_keeps_its_base_name():
    # The presets' stack names: their resources, URNs and snapshots keep their names.
    assert build_spec("prod-a", MINIMAL["kubernetes"]).name == "vllm-prod-a"
    assert build_spec("gcp-h100-multinode", {}).name == "vllm-gcp-h100-multinode"


def test_a_base_name_that_is_cut_or_normalised_carries_a_hash_of_the_exact_stack_name():
    for stack in ("prod_a", "PROD.A", LONG_ALIKE[0]):
        name = build_spec(stack, MINIMAL["kubernetes"]).name
        assert re.fullmatch(r"vllm-[a-z0-9-]+-[0-9a-f]{8}", name) and len(name) <= NAME_MAX, name


@pytest.mark.parametrize("platform", sorted(MINIMAL))
@pytest.mark.parametrize("pair", [("prod-a", "PROD.A"), LONG_ALIKE], ids=["slug-alike", "long-alike"])
def test_two_stacks_never_share_a_physical_name(platform, pair):
    first, second = (physical_names(run_program(stack, MINIMAL[platform], secrets=SECRETS)) for stack in pair)
    assert first and not first & second, sorted(first & second)
