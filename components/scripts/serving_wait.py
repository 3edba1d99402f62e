"""The serving wait both clouds' gates share: when a revision's new weight must wait, and the wait itself.

Python standard library only: GCP's gate (components/gcp/serving_gate.py) runs it in the ``pulumi up``
process, AWS's (components/aws/serving_gate.py) ships this file beside its handler
(components/scripts/alb_serving_gate.py) in a Lambda function, whose runtime has no Pulumi.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


class NotServing(Exception):
    """A revision about to get more traffic is not fully serving: the gate's refusal, one line."""


class LookFailed(Exception):
    """One look at the revision's health got no answer. ``transient``: a 5xx or no connection, tried again
    at the next poll; otherwise (credentials refused, a 4xx) no later look can do better."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True, kw_only=True)
class Health:
    serving: int  # replicas healthy in the load balancer's check on vLLM's /health (READY)
    listed: int  # replicas the load balancer knows for the revision


def must_wait(asked: float, before: float, *, stable: bool) -> bool:
    """A slot's weight must wait for its revision to serve when it rises above the one it had, unless the
    slot holds the stable revision and already took requests: a rollback (the canary's weight back down)
    never waits on it, while a promote onto a revision that took none, or a blue/green switch back, does."""
    return asked > before and not (stable and before > 0)


def wait_until_serving(
    health: Callable[[], Health],
    *,
    what: str,
    minimum: int,
    deadline: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Health:
    """Poll ``health`` until every listed replica, and at least ``minimum``, serve; NotServing at
    ``deadline`` seconds, or at once when a look fails for good. A surge or a replacement replica still
    loading counts against: every replica serves."""
    start = clock()
    while True:
        elapsed = clock() - start
        try:
            found: Health | str = health()
        except LookFailed as failed:
            if not failed.transient:
                raise NotServing(
                    f"{what}: {failed}, {elapsed:.0f} s into the wait; traffic not moved"
                ) from None
            found = str(failed)
        if isinstance(found, Health) and found.serving >= max(found.listed, minimum):
            return found
        if elapsed >= deadline:
            if isinstance(found, Health):
                raise NotServing(
                    f"{what}: {found.serving} of {max(found.listed, minimum)} replicas serving (healthy in "
                    f"the load balancer's check on /health) after {elapsed:.0f} s; traffic not moved"
                )
            raise NotServing(f"{what}: {found}, still after {elapsed:.0f} s; traffic not moved")
        sleep(max(0.0, min(poll_seconds, deadline - elapsed)))
