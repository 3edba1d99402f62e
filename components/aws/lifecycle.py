"""The launch lifecycle hook of a serving group: a new machine counts (InService, in the target group, in
the refresh's and Capacity Rebalancing's bookkeeping) only once its vLLM serves.

Without it, Auto Scaling treats a machine as InService minutes after launch, 15-35 min before the model
is loaded: Capacity Rebalancing then terminates the spot machine it replaces ("terminates the old instance
once the new one is InService"), and an instance refresh or a scale-out counts capacity that serves
nothing. With it, every launch (rebalance, refresh, scale-out, autohealing) waits in ``Pending:Wait``
until the on-instance health agent (components/scripts/health_agent.py, ``--lifecycle-hook``) completes
the action: CONTINUE when vLLM first answers ``/health`` 200, ABANDON when the agent judges the start
failed. If the agent never answers, the hook times out to ABANDON and the group launches another machine.

Limits (EC2 Auto Scaling API, PutLifecycleHook / LifecycleHook): ``HeartbeatTimeout`` 30-7200 s, and a
machine waits at most ``GlobalTimeout`` = the smaller of 48 h and 100 x the heartbeat timeout. The
timeout is the load budget, capped at 7200 s; the agent records a heartbeat
(``RecordLifecycleActionHeartbeat``, which restarts the timeout) every half timeout while the model
loads, so a budget beyond 7200 s is honoured too. A separate ``autoscaling.LifecycleHook`` rather than the
group's ``initial_lifecycle_hooks``, which the provider applies only when it creates a group: existing
stacks get the hook too. The machines a new group launches before the hook exists find no pending action
and the agent leaves them be.
"""

from __future__ import annotations

HOOK_NAME = "vllm-serving"
LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
DEFAULT_RESULT = "ABANDON"
HEARTBEAT_MIN_SECONDS = 30
HEARTBEAT_MAX_SECONDS = 7200


def heartbeat_seconds(budget_seconds: int) -> int:
    """The hook's timeout: the load budget within what PutLifecycleHook accepts."""
    return max(HEARTBEAT_MIN_SECONDS, min(budget_seconds, HEARTBEAT_MAX_SECONDS))


def agent_args(budget_seconds: int) -> list[str]:
    """The health agent's arguments that complete this hook, and beat it every half timeout."""
    return [
        "--lifecycle-hook",
        HOOK_NAME,
        "--lifecycle-heartbeat",
        str(heartbeat_seconds(budget_seconds) // 2),
    ]
