"""Who the VMs are and what they may read: one service account and the secrets only it can access."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_gcp.projects as projects
import pulumi_gcp.secretmanager as secretmanager
import pulumi_gcp.serviceaccount as serviceaccount

from components.service_spec import ServiceSpec

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
#: Project-level roles so the guest agent ships the boot log and the VM's metrics; write-only, no reads.
OBSERVABILITY_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")


def account_id(spec: ServiceSpec) -> str:
    """A service account id (6-30 chars): the stack's base name, shortened with a hash when too long."""
    if len(spec.name) <= 30:
        return spec.name
    digest = hashlib.sha256(spec.name.encode()).hexdigest()[:8]
    return f"{spec.name[:21].rstrip('-')}-{digest}"


def api_key_secret_id(spec: ServiceSpec) -> str:
    return f"{spec.name}-api-key"


def hf_token_secret_id(spec: ServiceSpec) -> str:
    return f"{spec.name}-hf-token"


@dataclass(frozen=True, kw_only=True)
class ServiceIdentityArgs:
    spec: ServiceSpec
    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None


class ServiceIdentity(pulumi.ComponentResource):
    """The replicas' service account and Secret Manager entries, shared by every VM of the stack.

    Secret ids are deterministic (``<name>-api-key``, ``<name>-hf-token``) because the boot script names
    them at preview time; each secret grants ``secretAccessor`` to this account alone (no project grant).

    Attributes:
        account: the service account every VM of the stack runs as.
        secrets, versions, grants: per secret id, the Secret Manager secret, its current version and its
            ``secretAccessor`` grant to ``account``.
        observability: the project grants of ``OBSERVABILITY_ROLES`` (log and metric writer) to ``account``.
        api_key_secret, hf_token_secret: the secret ids the boot script reads (no HF token for open models).
    """

    account: serviceaccount.Account
    secrets: dict[str, secretmanager.Secret]
    versions: dict[str, secretmanager.SecretVersion]
    grants: dict[str, secretmanager.SecretIamMember]
    observability: list[projects.IAMMember]
    api_key_secret: str
    hf_token_secret: str | None

    def __init__(
        self, name: str, args: ServiceIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("vllm:gcp:ServiceIdentity", name, None, opts)
        spec = args.spec
        child = pulumi.ResourceOptions(parent=self)
        self.account = serviceaccount.Account(
            f"{name}-sa",
            account_id=account_id(spec),
            display_name=f"vLLM replicas of stack {spec.stack}",
            opts=child,
        )
        self.api_key_secret = api_key_secret_id(spec)
        self.hf_token_secret = hf_token_secret_id(spec) if args.hf_token is not None else None
        values = {self.api_key_secret: args.api_key}
        if self.hf_token_secret is not None and args.hf_token is not None:
            values[self.hf_token_secret] = args.hf_token
        self.secrets, self.versions, self.grants = {}, {}, {}
        for secret_id, value in values.items():
            secret = secretmanager.Secret(
                secret_id,
                secret_id=secret_id,
                replication={"auto": {}},
                labels={"app": "vllm", "stack": spec.name},
                opts=child,
            )
            self.secrets[secret_id] = secret
            self.versions[secret_id] = secretmanager.SecretVersion(
                f"{secret_id}-version", secret=secret.id, secret_data=pulumi.Output.secret(value), opts=child
            )
            self.grants[secret_id] = secretmanager.SecretIamMember(
                f"{secret_id}-accessor",
                secret_id=secret.id,
                role=SECRET_ACCESSOR,
                member=self.account.member,
                opts=child,
            )
        self.observability = [
            projects.IAMMember(
                f"{name}-{role.split('/')[1].lower()}",
                project=self.account.project,
                role=role,
                member=self.account.member,
                opts=child,
            )
            for role in OBSERVABILITY_ROLES
        ]
        self.register_outputs({"serviceAccount": self.account.email, "secrets": list(values)})
