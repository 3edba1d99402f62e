"""The replicas' identity: the API key and HF token in Secrets Manager, and the only role that reads them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_aws.cloudwatch as cloudwatch
import pulumi_aws.iam as iam
import pulumi_aws.secretsmanager as secretsmanager

from components import vm
from components.aws import metrics
from components.service_spec import ServiceSpec

EC2_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def partition(region: str) -> str:
    """The ARN partition of a region: aws-cn for China, aws-us-gov for GovCloud, aws elsewhere."""
    if region.startswith("cn-"):
        return "aws-cn"
    if "-gov-" in region:
        return "aws-us-gov"
    return "aws"


def own_groups_arn(spec: ServiceSpec) -> str:
    """Every Auto Scaling group this stack declares: their names all start ``<service name>-`` (Pulumi's
    auto-name of the replica's or Ray group's ``-group``/``-head``/``-workers`` resource)."""
    return (
        f"arn:{partition(vm.vm_region(spec))}:autoscaling:{vm.vm_region(spec)}:*:autoScalingGroup:*:"
        f"autoScalingGroupName/{spec.name}-*"
    )


def report_health_statement(spec: ServiceSpec) -> dict:
    """``autoscaling:SetInstanceHealth`` on this stack's own groups and no other: by ARN (Auto Scaling
    supports the ``autoScalingGroup`` resource type for it) and, since another stack's group names may
    share the prefix, by the group's ``vllm:stack`` tag (``autoscaling:ResourceTag/<key>``; Service
    Authorization Reference, Amazon EC2 Auto Scaling). The on-instance watchdog needs nothing else:
    ``set-instance-health`` takes only the instance id, which it reads from IMDSv2."""
    return {
        "Effect": "Allow",
        "Action": "autoscaling:SetInstanceHealth",
        "Resource": own_groups_arn(spec),
        "Condition": {"StringEquals": {"autoscaling:ResourceTag/vllm:stack": spec.stack}},
    }


#: The instance tags the health agent keeps its phase and the timings of the phases reached in
#: (health_agent.py ``Publisher``), which ``tools.status`` reads with the instance (components/aws/status.py).
PHASE_TAGS = ("vllm:phase", "vllm:timings")


def publish_phase_statement(spec: ServiceSpec) -> dict:
    """``ec2:CreateTags`` on this stack's own instances and for the phase tags only: by the instance's
    ``vllm:stack`` tag (``ec2:ResourceTag/<key>``) and the keys written (``aws:TagKeys``, every one of
    them in ``PHASE_TAGS``); Service Authorization Reference, Amazon EC2, CreateTags (instance resources,
    condition keys aws:TagKeys and ec2:ResourceTag/${TagKey}; read 2026-12-07). No other tag can be
    changed, no other stack's instance touched."""
    return {
        "Effect": "Allow",
        "Action": "ec2:CreateTags",
        "Resource": f"arn:aws:ec2:{spec.region or '*'}:*:instance/*",
        "Condition": {
            "StringEquals": {"ec2:ResourceTag/vllm:stack": spec.stack},
            "ForAllValues:StringEquals": {"aws:TagKeys": list(PHASE_TAGS)},
        },
    }


def launch_hook_statements(spec: ServiceSpec) -> list[dict]:
    """What the health agent needs to complete its machine's launch lifecycle hook (lifecycle.py):
    ``CompleteLifecycleAction`` and ``RecordLifecycleActionHeartbeat`` on this stack's own groups, scoped
    like ``report_health_statement``, and ``DescribeAutoScalingInstances`` to learn its group's name and
    whether it waits (a Describe action, which supports no resource-level permissions: ``*``)."""
    return [
        {
            **report_health_statement(spec),
            "Action": ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
        },
        {"Effect": "Allow", "Action": "autoscaling:DescribeAutoScalingInstances", "Resource": "*"},
    ]


def drain_statement(target_group_arn: pulumi.Input[str] | pulumi.Input[list[str]]) -> dict:
    """What a spot machine's health agent needs to leave the load balancer on an interruption notice
    (machines.drain_args): ``elasticloadbalancing:DeregisterTargets`` on the stack's target group alone (its
    resource type is ``targetgroup``, by ARN; Service Authorization Reference, Elastic Load Balancing V2)."""
    return {
        "Effect": "Allow",
        "Action": "elasticloadbalancing:DeregisterTargets",
        "Resource": target_group_arn,
    }


def weight_cache_statements(bucket_arn: pulumi.Input[str]) -> list[dict]:
    """What scripts/weight_cache.sh needs, on the stack's weight cache bucket only: read and write objects
    (the lock, the files, the marker) and list the bucket (``aws s3 sync``; a missing marker is then a 404,
    not a 403). No DeleteObject: a stale lock is taken over by another conditional create, never removed."""
    objects = pulumi.Output.concat(bucket_arn, "/*")
    return [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": objects},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": objects},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
    ]


#: How long CloudWatch keeps the containers' logs: one of the retention periods CloudWatch Logs accepts
#: (PutRetentionPolicy: 1, 3, 5, 7, 14, 30, 60, 90, ... days); without one, logs are kept and billed forever.
LOG_RETENTION_DAYS = 30


def log_group_name(spec: ServiceSpec) -> str:
    """The stack's CloudWatch Logs group (names: 1-512 of ``[.-_/#A-Za-z0-9]``), known at preview time
    because the boot script names it."""
    return f"/vllm/{spec.name}"


def write_logs_statement(log_group_arn: pulumi.Input[str]) -> dict:
    """What docker's awslogs driver needs, on the stack's log group's streams only: it creates its stream
    (``awslogs-create-group`` stays off, so no ``logs:CreateLogGroup``) and puts events into it
    (docs.docker.com, "Amazon CloudWatch Logs logging driver", Credentials)."""
    return {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": pulumi.Output.concat(log_group_arn, ":log-stream:*"),
    }


@dataclass(frozen=True)
class LoggedRole:
    """A role, the CloudWatch Logs group it writes to, and what it may do (``logged_role``)."""

    log_group: cloudwatch.LogGroup
    role: iam.Role
    policy: iam.RolePolicy


def logged_role(
    names: tuple[str, str, str],
    *,
    log_group_name: str,
    trust_policy: str,
    description: str,
    statements: Callable[[pulumi.Output[str]], list],
    opts: pulumi.ResourceOptions,
) -> LoggedRole:
    """A role of the stack's (the replicas', the serving gate's) and its own log group, kept
    LOG_RETENTION_DAYS: ``names`` are the log group's, the role's and its policy's resource names, and
    ``statements`` what the policy allows, given the log group's ARN (write_logs_statement)."""
    log_name, role_name, policy_name = names
    log_group = cloudwatch.LogGroup(
        log_name, name=log_group_name, retention_in_days=LOG_RETENTION_DAYS, opts=opts
    )
    role = iam.Role(role_name, assume_role_policy=trust_policy, description=description, opts=opts)
    policy = iam.RolePolicy(
        policy_name,
        role=role.id,
        policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements(log_group.arn)}),
        opts=opts,
    )
    return LoggedRole(log_group, role, policy)


def publish_metrics_statement(spec: ServiceSpec) -> dict:
    """What scripts/metrics_agent.py needs: ``cloudwatch:PutMetricData`` into the stack's own namespace
    and no other. PutMetricData has no resource-level permissions (``Resource: "*"``); the
    ``cloudwatch:namespace`` condition key scopes it ("Using condition keys to limit access to CloudWatch
    namespaces", Amazon CloudWatch user guide)."""
    return {
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": metrics.namespace(spec)}},
    }


def api_key_secret_name(spec: ServiceSpec) -> str:
    return f"{spec.name}/api-key"


def hf_token_secret_name(spec: ServiceSpec) -> str:
    return f"{spec.name}/hf-token"


@dataclass(frozen=True, kw_only=True)
class ServiceIdentityArgs:
    spec: ServiceSpec
    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None
    weight_cache_arn: pulumi.Input[str] | None = None  # the stack's weight cache bucket (vllm:weightCache)
    #: The load balancer's target group (each revision's with vllm:canary): spot machines leave it.
    target_group_arn: pulumi.Input[str] | pulumi.Input[list[str]] | None = None


class ServiceIdentity(pulumi.ComponentResource):
    """One Secrets Manager secret per value, and an instance profile allowed to read exactly those.

    Secret names are deterministic (``<name>/api-key``, ``<name>/hf-token``) because the boot script names
    them at preview time. ``recovery_window_in_days=0`` deletes a secret at once on destroy: with fixed
    names, a 7-30 day recovery window would make ``pulumi destroy`` then ``pulumi up`` fail on "scheduled
    for deletion", and both values live on in the stack's config and state, so the window protects nothing.

    The role may call ``secretsmanager:GetSecretValue`` on those ARNs (the secrets use the AWS-managed
    key, which needs no ``kms:Decrypt`` grant) and ``autoscaling:SetInstanceHealth`` on this stack's own
    Auto Scaling groups (the watchdog's way to have a broken machine replaced) and complete their launch
    lifecycle hook (a single-node stack's, lifecycle.py), take a spot machine out of the stack's target
    group on an interruption notice (``drain_statement``), get, put and list in the
    stack's weight cache bucket when it has one (weight_cache.py), tag itself with its start's phase
    (``publish_phase_statement``), write its container's output to the
    stack's CloudWatch Logs group (kept ``LOG_RETENTION_DAYS``), publish vLLM's metrics into the stack's
    CloudWatch namespace (metrics.py), and nothing else. For a
    shell on a replica without SSH, attach ``AmazonSSMManagedInstanceCore`` to ``role`` (Session Manager);
    it is left out by default.

    Attributes:
        secrets, versions: per secret name, the Secrets Manager secret and its current version.
        role, policy, instance_profile: the machines' IAM role, its inline policy, the profile carrying it.
        api_key_secret, hf_token_secret: the secret names the boot script reads (no HF token for open models).
        secret_versions: which secret versions are current (below).
    """

    secrets: dict[str, secretsmanager.Secret]
    versions: dict[str, secretsmanager.SecretVersion]
    role: iam.Role
    policy: iam.RolePolicy
    log_group: cloudwatch.LogGroup
    log_group_name: str
    instance_profile: iam.InstanceProfile
    api_key_secret: str
    hf_token_secret: str | None
    #: ``api-key=<version id> hf-token=<version id>``: which secret versions are current. Not secret
    #: (Secrets Manager version ids are UUIDs); launch templates carry it so a new value rolls the fleet.
    secret_versions: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:aws:ServiceIdentity", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.api_key_secret = api_key_secret_name(spec)
        self.hf_token_secret = hf_token_secret_name(spec) if args.hf_token is not None else None
        values = {self.api_key_secret: args.api_key}
        if self.hf_token_secret is not None and args.hf_token is not None:
            values[self.hf_token_secret] = args.hf_token
        self.secrets, self.versions = {}, {}
        for secret_name, value in values.items():
            resource_name = secret_name.replace("/", "-")
            self.secrets[secret_name] = secretsmanager.Secret(
                resource_name,
                name=secret_name,
                description=f"read by the {spec.name} replicas at every vLLM start",
                recovery_window_in_days=0,
                opts=child,
            )
            self.versions[secret_name] = secretsmanager.SecretVersion(
                f"{resource_name}-version",
                secret_id=self.secrets[secret_name].id,
                secret_string=pulumi.Output.secret(value),
                opts=child,
            )

        self.secret_versions = pulumi.Output.all(
            *(version.version_id for version in self.versions.values())
        ).apply(
            lambda ids: " ".join(
                f"{secret_name.rsplit('/', 1)[-1]}={version_id}"
                for secret_name, version_id in zip(self.versions, ids, strict=True)
            )
        )
        weight_cache = [] if args.weight_cache_arn is None else weight_cache_statements(args.weight_cache_arn)
        self.log_group_name = log_group_name(spec)

        def statements(log_group_arn: pulumi.Output[str]) -> list:
            return [
                {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": [secret.arn for secret in self.secrets.values()],
                },
                report_health_statement(spec),
                publish_phase_statement(spec),
                *(launch_hook_statements(spec) if spec.nodes == 1 else []),
                *(
                    [drain_statement(args.target_group_arn)]
                    if spec.spot and args.target_group_arn is not None
                    else []
                ),
                *weight_cache,
                write_logs_statement(log_group_arn),
                publish_metrics_statement(spec),
            ]

        logged = logged_role(
            (f"{name}-logs", f"{name}-role", f"{name}-read-secrets"),
            log_group_name=self.log_group_name,
            trust_policy=EC2_TRUST_POLICY,
            description=f"{spec.name} replicas: read the service secrets, report their own health",
            statements=statements,
            opts=child,
        )
        self.log_group, self.role, self.policy = logged.log_group, logged.role, logged.policy
        self.instance_profile = iam.InstanceProfile(f"{name}-profile", role=self.role.name, opts=child)
        self.register_outputs({"instanceProfile": self.instance_profile.arn, "secrets": list(values)})
