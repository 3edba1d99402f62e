"""Runs the real Pulumi program (``__main__.py``) under Pulumi's mock runtime and records what it declares.

No cloud, no credentials, no Pulumi CLI: the mock monitor answers every resource registration and invoke,
and this module keeps each registration (type, name, parent, provider, inputs) and the stack outputs. The
tests assert on them; ``tools.plan`` renders them. Fresh mocks, config and root stack for every run.

Provider-computed values (addresses, ids) are unknown, as in a preview, except what each platform's fakes
(``components/<platform>/fakes.py``, found through the platform registry) answer: invoke results the
program needs to go on (a default VPC, an AMI id) and a few outputs tests assert on. The fakes are plain
data: they import no cloud SDK.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components import platforms, sdk_internals

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
STACK_TYPE = "pulumi:pulumi:Stack"

#: Outputs the mocked providers compute (addresses, DNS names...), keyed by resource type, and invoke
#: results, keyed by token. Each platform's ``fakes`` module provides its own: ``OUTPUTS`` (type ->
#: fn(inputs, name) -> extra outputs) and ``CALLS`` (invoke token -> fn(args) -> result).
_FAKES = [platform.module("fakes") for platform in platforms.registered()]
OUTPUTS: dict[str, Callable[[dict, str], dict]] = {k: v for fakes in _FAKES for k, v in fakes.OUTPUTS.items()}
CALLS: dict[str, Callable[[dict], dict]] = {k: v for fakes in _FAKES for k, v in fakes.CALLS.items()}


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    ignore_changes: tuple[str, ...] = ()  # the resource option, as the engine receives it
    dependencies: tuple[str, ...] = ()  # URNs it waits for: depends_on and its inputs' resources

    def text(self) -> str:
        """Every input as JSON, with base64 (and gzip) values decoded alongside, for secret scans."""
        raw = json.dumps(self.inputs, sort_keys=True, default=str)
        return raw + "\n" + "\n".join(_decoded_base64(self.inputs))


@dataclass
class Invoke:
    token: str
    args: dict[str, Any]
    provider: str  # the provider reference the program passed, "" for a default provider


@dataclass
class Run:
    resources: list[Resource]
    outputs: dict[str, Any]
    invokes: list[Invoke]

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Resource:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Resource | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def ancestors(self, resource: Resource) -> Iterator[Resource]:
        current = self.by_urn(resource.parent)
        while current is not None:
            yield current
            current = self.by_urn(current.parent)

    def types(self) -> set[str]:
        return {r.type for r in self.resources}


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, fake_outputs: bool) -> None:
        self.fake_outputs = fake_outputs
        self.invokes: list[Invoke] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if not self.fake_outputs:
            return "", outputs  # no id: unknown to dependents, as in a preview
        if args.typ in OUTPUTS:
            outputs.update(OUTPUTS[args.typ](dict(args.inputs), args.name))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append(Invoke(args.token, dict(args.args), args.provider or ""))
        if args.token in CALLS:
            return CALLS[args.token](dict(args.args))
        raise AssertionError(f"the program invoked {args.token}, which no platform's fakes.py fakes")


class _RecordingMonitor(sdk_internals.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent, provider and the stack outputs."""

    def __init__(self, mocks_: _Mocks) -> None:
        super().__init__(mocks_)
        self.recorded: list[Resource] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            self.recorded.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    provider=request.provider,
                    custom=request.custom,
                    inputs=_plain(sdk_internals.deserialize_properties(request.object, keep_unknowns=True)),
                    outputs=_plain(sdk_internals.deserialize_properties(response.object))
                    if request.custom
                    else {},
                    ignore_changes=tuple(request.ignoreChanges),
                    dependencies=tuple(request.dependencies),
                )
            )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == STACK_TYPE:
            self.stack_outputs = _plain(
                sdk_internals.deserialize_properties(request.outputs, keep_unknowns=True)
            )
        return super().RegisterResourceOutputs(request)


def run_program(
    stack: str,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    preview: bool = False,
    fake_outputs: bool = True,
) -> Run:
    """Run ``__main__.py`` for ``stack`` with ``config`` (``{"vllm:gpu": "L4:1"}``) and secret config.

    Values may be given as Python lists/ints/bools; they reach the program as Pulumi hands them over
    (strings, lists as JSON). ``fake_outputs=False`` leaves every provider-computed value unknown, as a
    real preview does (the fakes' invoke results still apply). Raises what the program raises (e.g.
    ``SpecError``), with the resources it declared before failing as the exception's
    ``declared_resources``.
    """
    _forget_previous_run()
    fake = _Mocks(fake_outputs)
    monitor = _RecordingMonitor(fake)
    pulumi.runtime.set_mocks(fake, project="vllm", stack=stack, preview=preview, monitor=monitor)
    sdk_internals.reset_root_stack()
    values = {**(config or {}), **(secrets or {})}
    pulumi.runtime.set_all_config(
        {key: config_text(value) for key, value in values.items()}, secret_keys=list(secrets or {})
    )
    try:
        sdk_internals.run_in_new_stack(lambda: runpy.run_path(str(PROGRAM), run_name="__main__"))
    except Exception as error:
        error.declared_resources = monitor.recorded  # what the program declared before it failed
        raise
    return Run(resources=monitor.recorded, outputs=monitor.stack_outputs, invokes=fake.invokes)


def _forget_previous_run() -> None:
    """Drop what a failed run left behind: ``set_mocks`` keeps the SDK's pending output tasks, which the
    next run would await and fail on. Then collect its failed futures here, at a known moment: a future
    whose exception nobody retrieved logs it when finalized, and formatting that traceback parses source
    (Python 3.11's caret anchors); a finalizer run by the garbage collector in the middle of the
    program's own ``ast.parse`` breaks it ("AST constructor recursion depth mismatch", cpython#106905).

    What survives is frozen (``gc.freeze``): the next run's collection then walks only what was made
    since, not every module and object of the process again. A full collection of a test session's heap
    took 80% of each run's CPU time."""
    loop = asyncio.get_event_loop()
    while pending := [task for task in asyncio.all_tasks(loop) if not task.done()]:
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    sdk_internals.forget_pending_outputs()
    gc.collect()
    gc.freeze()


def config_text(value: Any) -> str:
    """A config value as Pulumi hands it to the program: text, lists and maps as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _plain(value: Any) -> Any:
    """Registrations as plain JSON-like data: unknowns as the string "<unknown>", assets by text. Secrets
    stay wrapped as the SDK sends them (``{<sig>: <secret sig>, "value": ...}``), so scans still see them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == sdk_internals.UNKNOWN or isinstance(value, pulumi.output.Unknown):
        return "<unknown>"
    if isinstance(value, pulumi.StringAsset):
        return value.text
    return value


def _decoded_base64(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _decoded_base64(item)
    elif isinstance(value, list):
        for item in value:
            yield from _decoded_base64(item)
    elif isinstance(value, str) and len(value) >= 16:
        try:
            raw = base64.b64decode(value, validate=True)
            yield (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8", "replace")
        except (ValueError, OSError, EOFError):
            return
