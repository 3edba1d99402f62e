"""vLLM's metrics in CloudWatch: what each serving machine's metrics agent (scripts/metrics_agent.py)
publishes, in the stack's own namespace. The agent's own table (its ``PUBLISHED``) is what the
dashboard (monitoring.py) charts and the scaling policy (autoscaler.py) reads; the instance role
(identity.py) may write to this namespace only, and the boot script (vm.py) runs the agent with it: one
table, so they cannot diverge, and no flags for it in the user data.
"""

from __future__ import annotations

from components import vm
from components.launch import LaunchSpec
from components.service_spec import ServiceSpec

#: Seconds between two reads of /metrics: CloudWatch's standard resolution (PutMetricData's
#: StorageResolution 60), the dashboard's period.
INTERVAL_SECONDS = 60


def namespace(spec: ServiceSpec) -> str:
    """The stack's CloudWatch namespace (1-255 characters; ``AWS/`` is reserved to AWS services:
    PutMetricData, CloudWatch API reference); ``spec.name`` is at most 40 of ``[a-z0-9-]``."""
    return f"vLLM/{spec.name}"


def agent_args(spec: ServiceSpec, launch: LaunchSpec) -> list[str]:
    """``metrics_agent.py``'s flags on this stack's machines: vLLM's /metrics on the host itself."""
    args = ["--namespace", namespace(spec), "--region", vm.vm_region(spec)]
    args += ["--url", f"http://127.0.0.1:{launch.port}/metrics", "--interval", str(INTERVAL_SECONDS)]
    return args
