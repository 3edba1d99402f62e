"""What a deployed stack exports, read the one way every tool reads it: its outputs through the pulumi CLI,
its endpoint and API key, where its replicas are (``replicaSource``) and its platform's modules.

The tools (status, logs, bench, plan) build on this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from components import platforms
from components.observe import ListError, Replica, ReplicaSource

PULUMI_TIMEOUT_SECONDS = 120
#: What a tool that also takes --endpoint offers when the pulumi CLI is missing.
ENDPOINT_INSTEAD = "or pass --endpoint URL with the key in VLLM_API_KEY"


class ConfigError(Exception):
    """Nothing to check, or no way to learn what to check."""


@dataclass(frozen=True)
class Target:
    endpoint: str  # base URL without a trailing slash or /v1
    api_key: str | None
    model: str | None  # the stack's served model name, used when /v1/models lists none
    cacert: str | None = None  # CAs that verify an HTTPS endpoint; None: the system's (REQUESTS_CA_BUNDLE)
    stack: str | None = None
    replica_source: ReplicaSource | None = None  # the stack's replicaSource output

    @property
    def verify(self) -> str | bool:
        """``verify=`` per request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE in requests."""
        return self.cacert or True


def base_url(endpoint: str) -> str:
    """Accept what people paste: a bare host, a trailing slash, or an OpenAI ``base_url`` ending in /v1."""
    url = endpoint.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    return url.removesuffix("/v1")


def stack_outputs(
    stack: str, env: Mapping[str, str], show_secrets: bool = True, without_cli: str = ENDPOINT_INSTEAD
) -> dict[str, Any]:
    """The stack's outputs, read with the pulumi CLI (secrets in plain text only when asked);
    ``without_cli`` says what the calling tool offers instead when the CLI is missing."""
    pulumi = shutil.which("pulumi", path=env.get("PATH", ""))
    if pulumi is None:
        raise ConfigError(
            f"the pulumi CLI is not on PATH: install it to read the stack's outputs, {without_cli}"
        )
    command = [
        pulumi,
        "stack",
        "output",
        "--json",
        *(["--show-secrets"] if show_secrets else []),
        "--stack",
        stack,
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=PULUMI_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ConfigError(
            f"pulumi stack output --stack {stack} took over {PULUMI_TIMEOUT_SECONDS} s"
        ) from error
    if completed.returncode != 0:
        reason = completed.stderr.strip().splitlines()[-1:] or [f"exit code {completed.returncode}"]
        raise ConfigError(f"pulumi stack output --stack {stack} failed: {reason[0]}")
    try:
        outputs = json.loads(completed.stdout)
    except ValueError as error:
        raise ConfigError(f"pulumi stack output --stack {stack} did not print JSON") from error
    return outputs if isinstance(outputs, dict) else {}


def replica_source(stack: str, outputs: Mapping[str, Any]) -> ReplicaSource | None:
    """The stack's ``replicaSource`` output; None for a stack deployed before it existed."""
    if not isinstance(outputs.get("replicaSource"), dict):
        return None
    try:
        return ReplicaSource.from_output(outputs["replicaSource"])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"stack {stack}: replicaSource output unreadable ({error!r})") from error


def stack_target(stack: str, env: Mapping[str, str]) -> Target:
    """Read the stack's ``endpoint``, ``apiKey``, ``model`` and ``replicaSource`` outputs."""
    outputs = stack_outputs(stack, env)
    endpoint = outputs.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ConfigError(f"stack {stack} has no endpoint output: has `pulumi up --stack {stack}` run?")
    return Target(
        base_url(endpoint),
        outputs.get("apiKey") or None,
        outputs.get("model") or None,
        stack=stack,
        replica_source=replica_source(stack, outputs),
    )


def tool_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A tool's parser: its module docstring's first paragraph is the description, the rest the epilog."""
    summary, _, details = (doc or "").partition("\n\n")
    return argparse.ArgumentParser(
        prog=prog, description=summary, epilog=details, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_target_options(parser: argparse.ArgumentParser, outputs: str, cacert_default: str) -> None:
    """The options ``resolve_target`` reads: a stack (whose ``outputs`` the tool reads) or an endpoint, the
    key, and the CAs that verify an HTTPS endpoint (``cacert_default`` says which the tool uses unset)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack", help=f"read {outputs} from this stack's outputs")
    source.add_argument("--endpoint", help="the endpoint's base URL (default: $VLLM_ENDPOINT)")
    parser.add_argument(
        "--api-key", help="the vLLM API key (default: $VLLM_API_KEY, which keeps it out of ps)"
    )
    parser.add_argument(
        "--cacert", help=f"PEM file of CAs that verify an HTTPS endpoint (default: {cacert_default})"
    )


def resolve_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    """The endpoint a tool talks to: a stack's outputs (--stack), else --endpoint / VLLM_ENDPOINT."""
    if args.stack:
        return stack_target(args.stack, env)
    endpoint = args.endpoint or env.get("VLLM_ENDPOINT")
    if not endpoint:
        raise ConfigError("no endpoint: pass --stack NAME, or --endpoint URL (or set VLLM_ENDPOINT)")
    return Target(base_url(endpoint), args.api_key or env.get("VLLM_API_KEY") or None, None)


def platform_module(platform: str, name: str) -> ModuleType:
    """A platform's module by name (``status``, ``deployment``), found through the platform registry."""
    if platform not in platforms.names():
        raise ListError(f"platform {platform!r} is not one of {', '.join(platforms.names())}")
    return platforms.get(platform).module(name)


def status_module(source: ReplicaSource) -> Any:
    """The stack's platform's ``status`` module (which loads its client library when asked)."""
    return platform_module(source.platform, "status")


def list_replicas(source: ReplicaSource) -> list[Replica]:
    """The platform's own view of the replicas."""
    return status_module(source).list_replicas(source)


def desired_replicas(source: ReplicaSource) -> int:
    """How many replicas the platform is converging on: a group's target size, desired capacity or
    ``spec.replicas``, which the autoscaler moves between the stack's bounds."""
    return status_module(source).desired_replicas(source)
