"""The one place that reaches into the Pulumi SDK's internals (``pulumi.runtime`` config, settings, rpc,
sync-await): the program needs the whole stack config at once, and the offline tools drive the mock
runtime. When an SDK release moves one of these, this module is the only one to change; the SDK's version
range is pinned in requirements.txt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

#: The mock monitor the offline tools extend to record registrations.
MockMonitor = mocks.MockMonitor
#: What the engine sends for a value unknown during a preview.
UNKNOWN = rpc.UNKNOWN


def stack_config() -> dict[str, str]:
    """The stack's whole config as Pulumi hands it to the program (every value a string).

    ``pulumi.Config`` reads one key at a time; the whole map is needed to overlay presets and to reject
    unknown keys, and the runtime keeps it in ``CONFIG`` (falling back to ``PULUMI_CONFIG``).
    """
    return {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}


def is_config_secret(key: str) -> bool:
    return pulumi.runtime.is_config_secret(key)


def deserialize_properties(struct: Any, keep_unknowns: bool = False) -> Any:
    """A registration's properties (a protobuf Struct) as Python values."""
    return rpc.deserialize_properties(struct, keep_unknowns=keep_unknowns)


def is_secret(value: Any) -> bool:
    """Whether a deserialized value is a secret wrapper (``{<sig>: <secret sig>, "value": ...}``)."""
    return rpc.is_rpc_secret(value)


def reset_root_stack() -> None:
    """Forget the previous run's root stack, so the next run registers its own."""
    settings.ROOT.set(None)


def forget_pending_outputs() -> None:
    """Drop the outputs and RPCs a failed run left pending, which the next run would otherwise await."""
    # Attributes the SDK sets on its Settings at run time, not declared on the class.
    settings.SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]
    settings.SETTINGS.rpc_manager.clear()  # pyright: ignore[reportAttributeAccessIssue]


def run_in_new_stack(program: Callable[[], Any]) -> None:
    """Run ``program`` as a Pulumi program under a root stack, to completion (the mocks answer it)."""
    _sync_await(run_in_stack(program))
