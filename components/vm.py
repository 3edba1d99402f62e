"""What GCP and AWS share for GPU VMs: the boot script that turns a VM into a vLLM replica."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Mapping, Sequence

from components import scripts
from components.catalog import Offering
from components.launch import RAY_GROUP_WAIT_SECONDS, LaunchSpec
from components.spec import ServiceSpec

VM_ROLES = ("serve", "ray-head", "ray-worker")
RAY_GCS_PORT = 6379
#: How many times the vLLM unit may restart without ever becoming ready before the agent calls the replica
#: broken (a crash loop). A Ray head legitimately restarts when a worker boots slower than its group wait.
MAX_FAILED_STARTS = 3


def vm_offering(spec: ServiceSpec) -> Offering:
    """The catalog machine a GPU VM stack runs on: ``spec.build_spec`` selects one for every GCP and AWS
    stack, so a missing one is a bug in the caller, said plainly rather than as an ``AttributeError``."""
    if spec.offering is None:
        raise ValueError(f"stack {spec.stack}: a VM platform needs a catalog machine, the spec has none")
    return spec.offering


def machine_type(spec: ServiceSpec) -> str:
    """The VM's machine (GCP) or instance (AWS) type: every VM platform's catalog row names one."""
    machine = vm_offering(spec).machine_type
    if machine is None:
        raise ValueError(
            f"stack {spec.stack}: the {spec.cloud} catalog row for {spec.gpu} has no machine type"
        )
    return machine


def vm_region(spec: ServiceSpec) -> str:
    """The VMs' region: the VM platforms' ``read_placement`` always sets one (gcp:region, aws:region)."""
    if spec.region is None:
        raise ValueError(f"stack {spec.stack}: a VM platform needs a region, the spec has none")
    return spec.region


def ray_env(spec: ServiceSpec, head_address: str) -> dict[str, str]:
    """``ray_bootstrap.sh`` settings of one group: the head waits for every node and GPU before vLLM starts.

    A worker slower than ``RAY_GROUP_WAIT_SECONDS`` makes the head's container exit, restart and wait
    again, within the head's health budget (which includes one such wait).
    """
    if spec.gpu is None:
        raise ValueError("a Ray group shards a model over GPUs: the spec has none")
    return {
        "RAY_HEAD_ADDRESS": head_address,
        "RAY_PORT": str(RAY_GCS_PORT),
        "RAY_EXPECTED_NODES": str(spec.nodes),
        "RAY_GPUS_PER_NODE": str(spec.gpu.count),
        "RAY_WAIT_TIMEOUT_SECONDS": str(RAY_GROUP_WAIT_SECONDS),
    }


def health_agent_args(
    launch: LaunchSpec, role: str, ray_env: Mapping[str, str], report: Sequence[str]
) -> list[str]:
    """``health_agent.py`` flags: the load budget of one start is the launch spec's startup budget.

    ``report`` is how the platform learns the verdict, in the agent's own flags (``--report http --port
    ...`` for a health check that reads it; ``--report autoscaling-group`` to mark the instance itself):
    each platform's package says which. A Ray worker is judged on its connection to its head's GCS port
    instead of vLLM's /health (vLLM serves on the head only).
    """
    args = [*report, "--role", role, "--budget", str(launch.probes.startup_seconds)]
    args += ["--max-failed-starts", str(MAX_FAILED_STARTS)]
    args += ["--health-url", f"http://127.0.0.1:{launch.port}{launch.health_path}"]
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
    health_report: Sequence[str],
    image_metadata_key: str = "",
) -> str:
    """``vm_bootstrap.sh`` rendered for one VM role; secrets appear only as the names of store entries.
    ``health_report``: how the platform learns the health agent's verdict (``health_agent_args``)."""
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
        health_agent_args=health_agent_args(launch, role, ray_env or {}, health_report),
        health_agent_gzip_base64=_packed(scripts.source("health_agent.py")),
        image_metadata_key=image_metadata_key,
    )


def _packed(text: str) -> str:
    """gzip + base64, byte-for-byte reproducible (mtime 0) so an unchanged script is no diff."""
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()
