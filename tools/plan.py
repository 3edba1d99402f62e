"""Render a stack's plan with no cloud credentials and no Pulumi CLI.

    python -m tools.plan --stack gcp-h100 [--config vllm:replicas=3 ...] [--secret vllm:apiKey=...]
                         [--stack-file [Pulumi.gcp-h100.yaml]] [--json]
    python -m tools.plan --update-snapshots

It runs the real program under Pulumi's mock runtime (``tools.mockrun``) and prints the effective spec, the
cost table the program exports (its ``costBreakdown`` output, like SkyPilot's optimizer output), and the
resource tree with the key properties of each resource (machine, GPUs, replicas, health check, exposure).
Values the cloud computes at deploy time show as ``<computed>``, secrets as ``<secret>``.

The plan refuses exactly what ``pulumi up`` refuses: the CLI's check of Pulumi.yaml's declared types
first, then config reaches the program as the engine hands it over (with Pulumi.yaml's defaults), plain
values as plain config and only secrets (``--secret``, ``secure:`` values of a stack file) as secret
config, so the program's own checks decide, the same code path as a real run. ``--config`` is
``pulumi config set``, ``--secret`` is ``pulumi config set --secret``. A stack file is read only when
asked (``--stack-file``): a local ``Pulumi.<stack>.yaml`` never changes a plan, a test or a snapshot by
being there. Its ``secure:`` values are ciphertext the plan cannot decrypt (that needs the state's
passphrase or key), so they stand in as secrets of unknown content: the plan checks that they are secrets,
``pulumi up`` also checks the API key's length.

The program looks the model up on the Hugging Face Hub as ``pulumi up`` does (components/model_facts.py):
offline, it warns and falls back to the config. A stack's HF token stays encrypted here, so the lookup
goes anonymous and checks what is public of a gated model.

The plans of every preset are committed under ``tests/snapshots/``: a pull request that changes the
infrastructure changes them, so reviewers without cloud access read the change as a diff. They are
planned offline (``HF_HUB_OFFLINE``, no cached facts), so they never depend on the network or on what a
machine has cached: the health budgets there come from the config.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from components import model_facts, platforms, sdk_internals
from components.config_yaml import StackFileError, flow_value, go_json, read_stack_config
from components.presets import available_presets
from components.spec import SpecError, build_spec
from tools.mockrun import ROOT, Resource, Run, run_program
from tools.stack import platform_module
from tools.table import columns

SNAPSHOT_DIR = ROOT / "tests" / "snapshots"
REFRESH_COMMAND = ".venv/bin/python -m tools.plan --update-snapshots"
COMPUTED = "<computed>"
SECRET = "<secret>"
#: What a stack file's ``secure:`` value stands in as (the plan has no key to decrypt it).
ENCRYPTED = model_facts.UNKNOWN_TOKEN
PROJECT_FILE = ROOT / "Pulumi.yaml"
#: Outputs the plan shows as sections of their own, not in its list of outputs: the effective spec and the
#: cost breakdown (components/cost.py), printed as the program exports it.
SECTIONS = ("spec", "costBreakdown")


#: The Pulumi CLI's stack names (its local backend's ``validateStackName``, the Pulumi Service's rule):
#: 1-100 letters, digits, ``-``, ``_`` and ``.``.
STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
STACK_NAME_RULE = "a stack name is 1-100 letters, digits, '-', '_' or '.' (as pulumi stack init takes it)"


class StackConfigError(ValueError):
    """A stack value the Pulumi CLI refuses before it runs the program (its declared type in Pulumi.yaml)."""


#: The properties worth reading in a review, by resource type: dotted paths into the inputs ("*" maps
#: over a list), optionally named ("label = path"); each platform lists its own (its platform.py's
#: ``plan_properties``). A type not listed here still appears in the tree.
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    resource_type: paths
    for platform in platforms.registered()
    for resource_type, paths in platform.plan_properties.items()
}


def default_stack_file(stack: str) -> Path:
    """Where Pulumi keeps a stack's config: ``Pulumi.<stack>.yaml`` next to ``Pulumi.yaml``."""
    return ROOT / f"Pulumi.{stack}.yaml"


def stack_file_config(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``config:`` of a Pulumi stack file as the engine hands it over: (plain values, secrets). A value
    holding a ``secure:`` anywhere is secret as a whole, as Pulumi treats it. The file is decoded as the
    CLI decodes it (components/config_yaml.py); StackFileError names what is wrong with it."""
    values = read_stack_config(path)
    plain = {key: value for key, value in values.items() if not _holds_secure(value)}
    secrets = {key: ENCRYPTED for key, value in values.items() if _holds_secure(value)}
    return plain, secrets


def _holds_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return "secure" in value or any(_holds_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secure(v) for v in value)
    return False


def project_config() -> dict[str, Any]:
    """The ``config:`` declarations of Pulumi.yaml."""
    return dict((yaml.safe_load(PROJECT_FILE.read_text()) or {}).get("config") or {})


def project_defaults(declared: dict[str, Any]) -> dict[str, Any]:
    """What the engine adds to every stack's config from Pulumi.yaml: each declared key's ``default`` and
    each ``value`` (such as ``pulumi:disable-default-providers``)."""
    return {
        key: declaration.get("default", declaration.get("value"))
        for key, declaration in declared.items()
        if isinstance(declaration, dict) and ("default" in declaration or "value" in declaration)
    }


def check_declared_types(stack: str, config: dict[str, Any], declared: dict[str, Any]) -> None:
    """What the Pulumi CLI checks before it runs the program (pkg/workspace ``validateStackConfigValue``):
    a plain value must be a string where Pulumi.yaml declares ``string``, and a list of strings where it
    declares ``array`` of strings; ``pulumi config set KEY '["a"]'`` stores a string, not a list."""
    for key, value in config.items():
        declaration = declared.get(key)
        if not isinstance(declaration, dict) or "type" not in declaration:
            continue
        expected = declaration["type"]
        items = (declaration.get("items") or {}).get("type")
        if expected == "array":
            ok = isinstance(value, list) and all(items is None or _of_type(item, items) for item in value)
            shown = f"array<{items}>" if items else "array"
        else:
            ok, shown = _of_type(value, expected), expected
        if not ok:
            raise StackConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be of type '{shown}'"
            )


def _of_type(value: Any, expected: str) -> bool:
    """A plain stack value reaches the CLI as its text, so any scalar is a string; lists and maps are not."""
    if expected == "string":
        return not isinstance(value, list | dict)
    if expected == "integer":
        return not isinstance(value, bool) and re.fullmatch(r"-?[0-9]+", str(value)) is not None
    if expected == "boolean":
        return str(value).lower() in ("true", "false")
    return True


def parse_pairs(option: str, pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE in brackets is a list, as a stack file holds one (what ``pulumi config
    set --path 'KEY[0]'`` builds), any other VALUE the string ``pulumi config set KEY VALUE`` stores."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or ":" not in key:
            raise SystemExit(f"{option} takes NAMESPACE:KEY=VALUE (e.g. vllm:replicas=3), not {pair!r}")
        values[key] = _list_or_text(value) if option == "--config" else value
    return values


def _list_or_text(value: str) -> Any:
    """A list in brackets, its items read as a stack file's are (``[yes]`` holds the text yes), else text."""
    if value.strip().startswith("["):
        try:
            return flow_value(value)
        except ValueError:
            return value
    return value


def plan(
    stack: str,
    overrides: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    stack_file: Path | None = None,
) -> dict[str, Any]:
    """The plan of ``stack`` as plain data: spec, cost, resources with their key properties.

    ``overrides`` are plain config and ``secrets`` secret config, over ``stack_file``'s when one is given;
    nothing is promoted to a secret here, so the program refuses what it would refuse in ``pulumi up``.
    """
    file_plain, file_secrets = stack_file_config(stack_file) if stack_file is not None else ({}, {})
    overrides, secrets = overrides or {}, secrets or {}
    config = {k: v for k, v in {**file_plain, **overrides}.items() if k not in secrets}
    secret_config = {k: v for k, v in {**file_secrets, **secrets}.items() if k not in overrides}
    declared = project_config()
    check_declared_types(stack, config, declared)
    defaults = {k: v for k, v in project_defaults(declared).items() if k not in {**config, **secret_config}}
    # An object value reaches the program as the CLI's JSON of it, a scalar as its text.
    as_sent = {k: go_json(v) if isinstance(v, list | dict) else v for k, v in config.items()}
    run = run_program(stack, {**defaults, **as_sent}, secret_config, preview=True, fake_outputs=False)
    return {
        "stack": stack,
        "spec": _shown(run.outputs["spec"]),
        "cost": _shown(run.outputs["costBreakdown"]),
        "outputs": {k: _shown(v) for k, v in sorted(run.outputs.items()) if k not in SECTIONS},
        "resources": _resource_rows(run),
        "quotas": _quota_checks(stack, {**defaults, **config}, secret_config),
    }


def _quota_checks(stack: str, config: dict[str, Any], secret_config: dict[str, str]) -> list[str]:
    """The quotas ``up`` reads before any machine (a platform's ``deployment.quota_checks``), as lines:
    offline, the plan says which it would check, not their values."""
    spec = build_spec(stack, {**config, **secret_config}, frozenset(secret_config))
    checks = getattr(platform_module(spec.cloud, "deployment"), "quota_checks", None)
    return checks(spec) if checks is not None else []


def _resource_rows(run: Run) -> list[dict[str, Any]]:
    """Resources depth-first from the top, children sorted by type and name so the order is stable."""
    rows: list[dict[str, Any]] = []

    def visit(resource: Resource, depth: int) -> None:
        rows.append(
            {
                "type": resource.type,
                "name": resource.name,
                "depth": depth,
                "properties": _key_properties(resource),
            }
        )
        for child in sorted(run.children(resource), key=lambda r: (r.type, r.name)):
            visit(child, depth + 1)

    known = {r.urn for r in run.resources}
    for top in sorted((r for r in run.resources if r.parent not in known), key=lambda r: (r.type, r.name)):
        visit(top, 0)
    return rows


def _key_properties(resource: Resource) -> dict[str, Any]:
    shown = {}
    for entry in KEY_PROPERTIES.get(resource.type, ()):
        label, _, path = entry.rpartition(" = ")
        value = _dig(resource.inputs, path.split("."))
        if value not in (None, [], {}):
            shown[label or path.replace(".*", "[]")] = _shown(value)
    return shown


def _dig(value: Any, parts: list[str]) -> Any:
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head == "*":
        if not isinstance(value, list):
            return None
        found: list[Any] = []
        for item in value:
            dug = _dig(item, rest)
            if isinstance(dug, list):
                found.extend(dug)  # one flat list per path, however many "*" it crosses
            elif dug is not None:
                found.append(dug)
        return found or None
    if isinstance(value, dict):
        return _dig(value.get(head), rest)
    return None


def _shown(value: Any) -> Any:
    if value == "<unknown>":
        return COMPUTED
    if sdk_internals.is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's wire format makes every number a float
    return value


# --- text rendering -------------------------------------------------------------------------------------


def render_text(data: dict[str, Any]) -> str:
    spec = data["spec"]
    preset = spec.get("preset")  # the engine drops null outputs
    lines = [f"Plan of stack {data['stack']}" + (f" (preset {preset})" if preset else ""), ""]
    lines.append("Spec")
    shown = {**spec, "autoscaling": _without_reaction(spec.get("autoscaling"))}
    lines += [f"  {key:<24}{_inline(value)}" for key, value in shown.items() if value not in (None, [])]
    lines += ["", *_cost_lines(data["cost"])]
    if data.get("quotas"):
        lines += ["", "Quotas up checks before any machine (their values are read then, not here)"]
        lines += [f"  {line}" for line in data["quotas"]]
    if "timeToReady" in data["outputs"]:
        lines += ["", *_time_to_ready_lines(data["outputs"]["timeToReady"])]
    if reaction := _reaction_lines(spec.get("autoscaling"), data["outputs"].get("timeToReady")):
        lines += ["", *reaction]
    lines += ["", "Outputs"]
    lines += [
        f"  {key:<24}{_inline(value)}" for key, value in data["outputs"].items() if key != "timeToReady"
    ]
    lines += ["", f"Resources ({len(data['resources'])})"]
    for row in data["resources"]:
        indent = "  " + "  " * row["depth"]
        lines.append(f"{indent}{row['type']}  {row['name']}")
        lines += [f"{indent}    {key}: {_inline(value)}" for key, value in row["properties"].items()]
    return "\n".join(lines) + "\n"


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    """The exported ``costBreakdown`` as a table and lines; a value the catalog lacks is absent from the
    output (the engine drops null values) and shows as "-"."""
    if not cost["candidates"]:
        return [f"Cost: {cost['note']}"]
    header = ("INFRA", "INSTANCE", "vCPUs", "Mem(GB)", "GPUS", "$/h ON-DEMAND", "$/h SPOT", "CHOSEN")
    table = [header] + [
        (
            f"{c['cloud']} ({c['region']})",
            c["machineType"],
            _num(c.get("vcpus")),
            _num(c.get("memoryGb")),
            c["gpus"],
            _num(c.get("onDemandHourly")) + (f" ({c['onDemandFrom']}'s)" if c.get("onDemandFrom") else ""),
            _num(c.get("spotHourly")),
            "*" if c["chosen"] else "",
        )
        for c in cost["candidates"]
    ]
    lines = [f"Considered resources ({cost['nodesPerReplica']} node(s) per replica, {cost['pricing']})"]
    lines += columns(table, indent="  ")
    for share in cost["shares"]:
        revision = f"revision {share['revision']}, " if "revision" in share else ""  # with vllm:canary
        lines.append(
            f"  {revision}{share['region']} {share['market']}: {share['replicas']} replica(s) x "
            f"${_num(share.get('perReplicaHourly'))}/h = ${_num(share.get('hourly'))}/h"
        )
    replicas, total = cost["replicas"], cost.get("totalHourly")
    if isinstance(replicas, dict):  # autoscaling: the cost follows the load between the bounds
        low, high = (total["min"], total["max"]) if total else (None, None)
        surge = (
            f" + {cost['scaleOutSurge']} rollout surge the autoscaler may use"
            if cost["scaleOutSurge"]
            else ""
        )
        lines.append(
            f"  total ${_num(low)}/h to ${_num(high)}/h ({replicas['min']} to {replicas['max']} replicas"
            f"{surge}, autoscaled; spot prices are estimates)"
        )
    else:
        lines.append(f"  total ${_num(total)}/h (spot prices are estimates)")
    for source in dict.fromkeys(share["source"] for share in cost["shares"]):
        lines.append(f"  prices: {source}")
    return lines


def _time_to_ready_lines(ready: dict[str, Any]) -> list[str]:
    """The estimated time from boot to serving, per replica and per cache path, with the budget (the hard
    caps, from the slowest sourced rates) and the figures assumed (components/rates.py)."""
    assumed, budget = ready["assumed"], ready["budget"]
    lines = [
        f"Time to ready (estimated, {assumed['weightsGb']} GB of weights; budget = slowest sourced rates)"
    ]
    for label, key in (("first replica", "firstReplica"), ("later replicas", "laterReplicas")):
        steps = ready[key]
        restored = steps.get("compileCacheSeconds")
        pulled = steps.get("pullDuringFetchSeconds")
        line = (
            f"  {label:<15}{_minutes(steps['seconds']):>8}  via {steps['path']}: boot and compile "
            f"{steps['bootAndCompileSeconds']} s"
            + (f" (compiled code restored in {restored} s)" if restored else "")
            + f" + fetch {steps['fetchSeconds']} s + read {steps['readSeconds']} s"
            + (f" - {pulled} s of the image pull during the fetch" if pulled else "")
            + f"; budget {_minutes(budget[key]['seconds'])}"
        )
        if steps.get("fillSecondsWhileLoading"):
            line += f" (fills the bucket in {steps['fillSecondsWhileLoading']} s while it loads)"
        lines.append(line)
    # N replicas starting at once on a fresh stack, when the stack may run more than one
    replicas = ready["replicasAtOnce"] if ready["replicasAtOnce"] > 1 else 0
    keys = ("firstSeconds", "laterSeconds", *(("atOnceSeconds",) if replicas else ()))
    heads = ("FIRST", "LATER", *((f"{replicas} AT ONCE",) if replicas else ()))
    table = [("PATH", *heads, *(f"BUDGET {head}" for head in heads))]
    for i, path in enumerate(ready["paths"]):
        budgets = [key.replace("Seconds", "BudgetSeconds") for key in keys]
        table.append(
            (
                path["path"] + (" *" if i == 0 else ""),
                *(_minutes(path[key]) for key in keys),
                *(_minutes(path[key]) for key in budgets),
            )
        )
    lines += columns(table, indent="  ")
    fixed = ", ".join(
        f"{step['step']} {step['seconds']} s (slowest {step['slowestSeconds']})"
        for step in assumed["fixedSteps"]
    )
    bucket = any(path["path"] == "bucket" for path in ready["paths"])
    lines.append(
        f"  assumed: Hub {assumed['hubMBps']} MB/s (slowest {assumed['hubSlowestMBps']}), "
        + (
            f"bucket {assumed['bucketMBps']} MB/s per VM (slowest {assumed['bucketSlowestMBps']}), "
            if bucket
            else ""
        )
        + f"{assumed['storage']} writes {assumed['storageWriteMBps']} MB/s and reads "
        f"{assumed['storageReadMBps']} MB/s (slowest {assumed['storageSlowestWriteMBps']}/"
        f"{assumed['storageSlowestReadMBps']}), safetensors load {assumed['loadMBps']} MB/s; {fixed} "
        "(components/rates.py, sources there)"
    )
    if "phaseCapSeconds" in budget:  # stacks exported before the health agent judged progress
        seconds = budget["phaseCapSeconds"]
        caps = ", ".join(f"{name} {_minutes(seconds[name])}" for name in ("start", "weights", "load"))
        lines.append(
            f"  health budget (not the estimate): replaced when a download adds no byte for "
            f"{_minutes(budget['stallSeconds'])}, or a phase outlasts its cap ({caps}; the hub path's "
            "budget by phase)"
        )
    return lines


def _without_reaction(autoscaling: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Spec section's autoscaling keys: the reaction has its own section."""
    if autoscaling is None:
        return None
    return {key: value for key, value in autoscaling.items() if key != "scaleOut"}


def _reaction_lines(autoscaling: dict[str, Any] | None, ready: dict[str, Any] | None) -> list[str]:
    """From a load step to another replica requested (the platform's waits, at most) and serving (plus the
    estimated start of a later replica)."""
    if autoscaling is None:
        return []
    steps = autoscaling.get("scaleOut") or []
    requested = sum(step["seconds"] for step in steps)
    waits = " + ".join(f"{step['step']} {step['seconds']} s" for step in steps)
    lines = [
        "Reaction to a load step (estimated, at most)",
        f"  replica requested {_minutes(requested):>8}  {waits}",
    ]
    if ready is not None:
        start = ready["laterReplicas"]["seconds"]
        lines.append(
            f"  replica serving   {_minutes(requested + start):>8}  + its start {_minutes(start)} "
            "(time to ready, later replicas)"
        )
    return lines


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _inline(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# --- snapshots ------------------------------------------------------------------------------------------


#: Snapshots are planned without the Hub and without cached facts (the test suite runs the same way).
SNAPSHOT_ENV = {"HF_HUB_OFFLINE": "1", model_facts.CACHE_ENV: ""}


def snapshot_path(preset: str) -> Path:
    return SNAPSHOT_DIR / f"{preset}.txt"


def update_snapshots() -> list[Path]:
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    saved = {key: os.environ.get(key) for key in SNAPSHOT_ENV}
    os.environ.update(SNAPSHOT_ENV)
    try:
        for preset in available_presets():
            path = snapshot_path(preset)
            path.write_text(render_text(plan(preset)))
            written.append(path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name; a preset of the same name applies")
    target.add_argument("--update-snapshots", action="store_true", help="rewrite tests/snapshots/*.txt")
    parser.add_argument(
        "--config", action="append", default=[], metavar="KEY=VALUE", help="as pulumi config set KEY VALUE"
    )
    parser.add_argument(
        "--secret", action="append", default=[], metavar="KEY=VALUE", help="as pulumi config set --secret"
    )
    parser.add_argument(
        "--stack-file",
        nargs="?",
        const="",
        metavar="PATH",
        help="read a stack file's config (default Pulumi.<stack>.yaml); without this option none is read",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.update_snapshots:
        for path in update_snapshots():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if not STACK_NAME.match(args.stack):
        print(f"error: --stack {args.stack!r}: {STACK_NAME_RULE}", file=sys.stderr)
        return 2
    stack_file = None
    if args.stack_file is not None:
        # A bare --stack-file is "", which Path() would make the current directory.
        stack_file = Path(args.stack_file) if args.stack_file else default_stack_file(args.stack)
    try:
        data = plan(
            args.stack,
            parse_pairs("--config", args.config),
            parse_pairs("--secret", args.secret),
            stack_file,
        )
    except StackConfigError as error:
        print(f"error: validating stack config: {error}", file=sys.stderr)
        return 2
    except StackFileError as error:
        print(f"error: --stack-file {error}", file=sys.stderr)
        return 2
    except SpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug, not the config: still one line, and an exit code of its own
        print(
            f"error: the plan failed ({type(error).__name__}: {error}): a bug in the program or the plan, "
            "not in the stack's config; please report it with the command",
            file=sys.stderr,
        )
        return 3
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else render_text(data), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
