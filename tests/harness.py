"""The test-facing entry to ``tools.mockrun``: run the real program under Pulumi's mock runtime, or check a
stack's spec exactly as the program does before its first resource, without running it."""

from collections.abc import Mapping
from typing import Any

from components import model_facts
from components.service_spec import ServiceSpec
from components.spec import stack_spec
from tools.mockrun import ROOT, Invoke, Resource, Run, config_text, run_program

__all__ = ["ROOT", "Invoke", "Resource", "Run", "checked_spec", "run_program"]


def checked_spec(
    stack: str, config: Mapping[str, Any] | None = None, secrets: Mapping[str, str] | None = None
) -> ServiceSpec:
    """The spec ``run_program`` with the same arguments checks before it declares anything: the same values
    as Pulumi hands them over, the same checks (``spec.stack_spec``), so a refusal is the same SpecError.
    Refusal tables call this; one test per rule family runs the program to prove nothing is declared."""
    values = {key: config_text(value) for key, value in {**(config or {}), **(secrets or {})}.items()}
    return stack_spec(stack, values, frozenset(secrets or {}), lookup=model_facts.lookup)
