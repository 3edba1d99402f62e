"""What a serving gate's outcomes do to ``up``, on every cloud: the weights let through, or one line.

With ``vllm:canary`` each cloud's load balancer takes its revisions' weights from a gate that waited for
every replica of a revision whose weight rises (components/scripts/serving_wait.py): GCP's is a dynamic
resource per slot (components/gcp/serving_gate.py), AWS's a Lambda function invoked during ``up``
(components/aws/serving_gate.py). Both hand over ``{slot: {"weight", "refused"}}``, and ``let_through``
reads it in the apply that feeds the load balancer its weights: a refusal raises ``TrafficNotMoved``, a
``pulumi.RunError``, which ``up`` prints as its one line, without a traceback, before the weights reach
the load balancer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.service_spec import ServiceSpec


def fewest_replicas(revision: ServiceSpec) -> int:
    """The fewest replicas a revision runs (autoscaled: its lower bound): a gate lets its weight rise only
    once at least this many serve, however many the load balancer lists yet."""
    return revision.autoscaling.min_replicas if revision.autoscaling is not None else revision.replicas


class TrafficNotMoved(pulumi.RunError):
    """A serving gate refused a slot's new weight: ``up`` fails in its one line, the weights unchanged."""


def let_through(outcomes: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each slot's weight as its gate let it through; TrafficNotMoved with every refusal's line (slot
    order) when any refused."""
    refusals = [str(outcomes[slot].get("refused") or "") for slot in sorted(outcomes)]
    if any(refusals):
        raise TrafficNotMoved("; ".join(refusal for refusal in refusals if refusal))
    return {slot: int(outcomes[slot]["weight"]) for slot in sorted(outcomes)}
