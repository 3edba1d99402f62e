"""What GCP and AWS share for GPU VMs: the boot script that turns a VM into a vLLM replica."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping

from components import scripts
from components.launch import RAY_GROUP_WAIT_SECONDS, LaunchSpec
from components.spec import ServiceSpec

VM_ROLES = ("serve", "ray-head", "ray-worker")
RAY_GCS_PORT = 6379
#: Where the health agent (scripts/health_agent.py) serves its verdict on GCP: apart from vLLM's 8000, Ray's
#: 6379 and Ray's worker port range (10002-19999), and open only to Google's health checkers.
HEALTH_AGENT_PORT = 8090
#: How many times the vLLM unit may restart without ever becoming ready before the agent calls the replica
#: broken (a crash loop). A Ray head legitimately restarts when a worker boots slower than its group wait.
MAX_FAILED_STARTS = 3


def ray_env(spec: ServiceSpec, head_address: str) -> dict[str, str]:
    """``ray_bootstrap.sh`` settings of one group: the head waits for every node and GPU before vLLM starts.

    A worker slower than ``RAY_GROUP_WAIT_SECONDS`` makes the head's container exit, restart and wait
    again, within the head's health budget (which includes one such wait).
    """
    return {
        "RAY_HEAD_ADDRESS": head_address,
        "RAY_PORT": str(RAY_GCS_PORT),
        "RAY_EXPECTED_NODES": str(spec.nodes),
        "RAY_GPUS_PER_NODE": str(spec.gpu.count),
        "RAY_WAIT_TIMEOUT_SECONDS": str(RAY_GROUP_WAIT_SECONDS),
    }


def health_agent_args(
    spec: ServiceSpec, launch: LaunchSpec, role: str, ray_env: Mapping[str, str], hold_until_uptime: int = 0
) -> list[str]:
    """``health_agent.py`` flags: the load budget of one start is the launch spec's startup budget.

    GCP serves the verdict on ``HEALTH_AGENT_PORT`` for the managed group's autohealing check; AWS marks
    the instance Unhealthy in its Auto Scaling group itself. A Ray worker is judged on its connection to
    its head's GCS port instead of vLLM's /health (vLLM serves on the head only).
    """
    args = ["--cloud", spec.cloud, "--role", role, "--budget", str(launch.probes.startup_seconds)]
    args += ["--max-failed-starts", str(MAX_FAILED_STARTS)]
    args += ["--health-url", f"http://127.0.0.1:{launch.port}{launch.health_path}"]
    if spec.cloud == "gcp":
        args += ["--port", str(HEALTH_AGENT_PORT), "--hold-until-uptime", str(hold_until_uptime)]
    elif spec.region:
        args += ["--region", spec.region]
    if role == "ray-worker":
        args += [
            "--ray-head",
            ray_env["RAY_HEAD_ADDRESS"],
            "--ray-port",
            ray_env.get("RAY_PORT", str(RAY_GCS_PORT)),
        ]
    return args


def bootstrap_script(
    spec: ServiceSpec,
    launch: LaunchSpec,
    *,
    api_key_secret: str,
    hf_token_secret: str | None,
    role: str = "serve",
    ray_env: Mapping[str, str] | None = None,
    health_hold_seconds: int = 0,
    image_metadata_key: str = "",
    log_group: str = "",
) -> str:
    """``vm_bootstrap.sh`` rendered for one VM role; secrets appear only as the names of store entries.
    ``log_group``: the CloudWatch Logs group of the container's output (AWS)."""
    if role not in VM_ROLES:
        raise ValueError(f"role must be one of {VM_ROLES}, not {role!r}")
    multi_node = role != "serve"
    return scripts.render(
        "vm_bootstrap.sh",
        cloud=spec.cloud,
        region=spec.region or "",
        image=spec.image,
        role=role,
        api_key_secret=api_key_secret,
        hf_token_secret=hf_token_secret or "",
        container_env=[f"{name}={value}" for name, value in sorted(launch.env.items())],
        vllm_argv=list(launch.argv),
        ray_env=[f"{name}={value}" for name, value in sorted((ray_env or {}).items())],
        ray_bootstrap_gzip_base64=_packed(scripts.source("ray_bootstrap.sh")) if multi_node else "",
        health_agent_args=health_agent_args(spec, launch, role, ray_env or {}, health_hold_seconds),
        health_agent_gzip_base64=_packed(scripts.source("health_agent.py")),
        image_metadata_key=image_metadata_key,
        log_group=log_group,
        metrics_job=spec.name,
        metrics_port=launch.port,
    )


def _packed(text: str) -> str:
    """gzip + base64, byte-for-byte reproducible (mtime 0) so an unchanged script is no diff."""
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()
