"""Pulumi component conventions, the same on every platform: Args are frozen keyword-only dataclasses that
carry no provider (children inherit it from their component), the replica components have the same names
in every platform folder, and a renamed component keeps its former type token as an alias. And the platform
seam: outside its own folder no module names a platform's resource types or compares with its name."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import platforms
from tests.harness import ROOT
from tools import mockrun
from tools.plan import plan

PLATFORMS = ("gcp", "aws", "kubernetes")
STACKS = Path(__file__).resolve().parent.parent / "stacks"

#: Former type tokens: stacks created before the rename keep their URNs through these aliases.
RENAMED = {
    "vllm:gcp:ReplicaGroup": "vllm:gcp:VllmReplica",
    "vllm:gcp:RayReplica": "vllm:gcp:RayGroup",
    "vllm:aws:ReplicaGroup": "vllm:aws:VllmReplica",
    "vllm:aws:RayReplica": "vllm:aws:RayGroup",
    "vllm:kubernetes:ReplicaGroup": "vllm:kubernetes:VllmReplica",
    "vllm:kubernetes:RayReplicaGroup": "vllm:kubernetes:RayGroup",
}


def platform_modules(platform: str) -> list[Any]:
    package = importlib.import_module(f"components.{platform}")
    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def args_classes() -> list[type]:
    return [
        cls
        for platform in PLATFORMS
        for module in platform_modules(platform)
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if name.endswith("Args") and cls.__module__ == module.__name__
    ]


def test_every_platform_has_args_classes():
    assert {cls.__module__.split(".")[1] for cls in args_classes()} == set(PLATFORMS)


@pytest.mark.parametrize("cls", args_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_args_are_frozen_keyword_only_dataclasses(cls):
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    assert all(field.kw_only for field in dataclasses.fields(cls))


@pytest.mark.parametrize("cls", args_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_args_carry_no_provider_the_component_passes_it_to_its_children(cls):
    hints = {field.name: str(field.type) for field in dataclasses.fields(cls)}
    assert "provider" not in hints
    assert not any("ProviderResource" in hint for hint in hints.values())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_names_its_replica_components_alike(platform):
    replica_group = importlib.import_module(f"components.{platform}.replica_group")
    ray_replica = importlib.import_module(f"components.{platform}.ray_replica")
    assert issubclass(replica_group.ReplicaGroup, pulumi.ComponentResource)
    multi_node = getattr(ray_replica, "RayReplicaGroup" if platform == "kubernetes" else "RayReplica")
    assert issubclass(multi_node, pulumi.ComponentResource)


def aliased_types(monkeypatch, stack: str) -> dict[str, list[str]]:
    """Each component type the preset's program registers, with the types its aliases name."""
    recorded: dict[str, list[str]] = {}
    register = mockrun._RecordingMonitor.RegisterResource

    def recording(monitor, request):
        if request.type.startswith("vllm:"):
            recorded[request.type] = [alias.spec.type for alias in request.aliases]
        return register(monitor, request)

    monkeypatch.setattr(mockrun._RecordingMonitor, "RegisterResource", recording)
    plan(stack, stack_file=STACKS / f"{stack}.yaml")
    return recorded


@pytest.mark.parametrize(
    "stack",
    ["gcp-h100", "gcp-h100-multinode", "aws-h100", "aws-h200-multinode", "k8s-h100", "k8s-h100-multinode"],
)
def test_renamed_components_alias_their_former_type_and_nothing_else_does(monkeypatch, stack):
    recorded = aliased_types(monkeypatch, stack)
    renamed = {type_: former for type_, former in RENAMED.items() if type_ in recorded}
    assert len(renamed) == 1  # the preset's replica component
    for type_, aliases in recorded.items():
        assert aliases == ([renamed[type_]] if type_ in renamed else [])


# --- The platform seam --------------------------------------------------------------------------------------

#: Where a platform's name may not be branched on: every module but the platforms' own folders and the tests
#: (which assert on the resources each platform declares). Virtualenvs (policy/venv) are not ours.
SKIPPED_DIRS = {"tests", "venv", "node_modules", "__pycache__"}


def modules_outside_the_platform_folders() -> list[Path]:
    folders = {ROOT / "components" / name for name in platforms.names()}
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not any(part.startswith(".") or part in SKIPPED_DIRS for part in path.relative_to(ROOT).parts)
        and not any(folder in path.parents for folder in folders)
    )


def _docstrings(tree: ast.AST) -> set[int]:
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def seam_breaches(source: str) -> list[str]:
    """``line: what`` for each place ``source`` names a registered platform's resource type or provider key
    (a string starting ``<provider namespace>:``, docstrings aside), imports a platform's package by name
    instead of through the registry, or selects by a platform's name (compares with it, matches it, keys a
    dict or a subscript with it, looks it up with ``get``)."""
    registered = platforms.registered()
    names = {name.lower() for platform in registered for name in (platform.name, platform.title)}
    prefixes = tuple(f"{platform.provider_namespace}:" for platform in registered)
    packages = {platform.package for platform in registered}
    tree = ast.parse(source)
    docstrings = _docstrings(tree)

    def platform_names(node: ast.AST | None) -> list[str]:
        elements = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
        return [
            element.value
            for element in elements
            if isinstance(element, ast.Constant)
            and isinstance(element.value, str)
            and element.value.lower() in names
        ]

    def is_platform_package(module: str) -> bool:
        return any(module == package or module.startswith(f"{package}.") for package in packages)

    found = []
    for node in ast.walk(tree):
        is_text = (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        )
        if is_text and (node.value.startswith(prefixes) or is_platform_package(node.value)):
            found.append(f"{node.lineno}: names {node.value!r}")
        imported = []
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        if any(is_platform_package(module) for module in imported):
            found.append(f"{node.lineno}: imports a platform's package by name")
        selectors: list[ast.AST | None] = []
        if isinstance(node, ast.Compare):
            selectors = [node.left, *node.comparators]
        elif isinstance(node, ast.MatchValue):
            selectors = [node.value]
        elif isinstance(node, ast.Dict):
            selectors = list(node.keys)
        elif isinstance(node, ast.Subscript):
            selectors = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            selectors = list(node.args[:1])
        for name in (name for selector in selectors for name in platform_names(selector)):
            found.append(f"{getattr(node, 'lineno', '?')}: selects by the platform name {name!r}")
    return found


def test_no_module_outside_a_platform_folder_names_its_resource_types_or_branches_on_its_name():
    breaches = [
        f"{path.relative_to(ROOT)}:{breach}"
        for path in modules_outside_the_platform_folders()
        for breach in seam_breaches(path.read_text())
    ]
    assert breaches == [], "move this knowledge into components/<platform>/ (components/platforms.py)"


def test_the_seam_check_covers_the_shared_program_the_policy_pack_and_the_tools():
    checked = {str(path.relative_to(ROOT)) for path in modules_outside_the_platform_folders()}
    assert {"__main__.py", "components/spec.py", "policy/validators.py", "tools/plan.py"} <= checked
    own_folders = tuple(f"components/{name}/" for name in platforms.names())
    assert not any(path.startswith((*own_folders, "tests/")) for path in checked)


@pytest.mark.parametrize(
    "source",
    [
        'if spec.cloud == "aws":\n    pass',
        'if cloud in ("gcp", "aws"):\n    pass',
        'match cloud:\n    case "kubernetes":\n        pass',
        'ZONES = {"GCP": 1}',
        'platforms.get("gcp")',
        'LISTENER = "aws:lb/listener:Listener"',
        'key = f"gcp:{name}"',
        "from components.aws import policy",
        "from components import aws",
        "import components.kubernetes.policy",
        'importlib.import_module("components.gcp.policy")',
    ],
)
def test_the_seam_check_finds_a_platform_named_outside_its_folder(source):
    assert seam_breaches(source) != []


def test_the_seam_check_ignores_docstrings_and_a_cli_named_like_a_platform():
    source = '"""Reads gcp:region; see aws:lb/listener:Listener."""\nCOMMAND = ["aws", "autoscaling"]\n'
    assert seam_breaches(source) == []


# --- The platform seam in the scripts machines run ----------------------------------------------------------

SCRIPTS_DIR = ROOT / "components" / "scripts"


def shell_seam_breaches(script: str) -> list[str]:
    """``line: what`` for each place a shell script reads ``$CLOUD`` or compares with a registered
    platform's name or title (``[ "$x" = gcp ]``, ``[[ $x == AWS ]]``, a ``case`` arm ``gcp)`` or
    ``gcp | aws)``), comment lines aside: what differs per platform belongs in its
    ``components/<platform>/vm_hooks.sh``."""
    names = "|".join(
        re.escape(name) for platform in platforms.registered() for name in {platform.name, platform.title}
    )
    word = rf"[\"']?(?:{names})[\"']?"
    compared = re.compile(rf"(?:!=|==?)\s*{word}(?=[\s;\]]|$)|{word}\s*(?:!=|==?)\s", re.IGNORECASE)
    case_arm = re.compile(rf"^\s*\(?{word}\s*(?:\|\s*[^)]*)?\)", re.IGNORECASE)
    found = []
    for number, line in enumerate(script.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        if re.search(r"\$\{?CLOUD\b", line):
            found.append(f"{number}: reads $CLOUD")
        if compared.search(line) or case_arm.search(line):
            found.append(f"{number}: compares with a platform's name")
    return found


def test_no_script_machines_run_branches_on_a_platforms_name():
    breaches = [
        f"{path.relative_to(ROOT)}:{breach}"
        for path in sorted(SCRIPTS_DIR.glob("*.sh"))
        for breach in shell_seam_breaches(path.read_text())
    ]
    assert breaches == [], "move this into components/<platform>/vm_hooks.sh (Platform.vm_hooks)"


def test_the_script_seam_check_covers_the_boot_script():
    assert SCRIPTS_DIR / "vm_bootstrap.sh" in SCRIPTS_DIR.glob("*.sh")


@pytest.mark.parametrize(
    "line",
    [
        'case "$CLOUD" in',
        'if [ "$CLOUD" != gcp ] || [ "$ROLE" = ray-worker ]; then return 0; fi',
        "    aws)",
        "    gcp | aws)",
        '[[ $platform == "AWS" ]] && exit 0',
        'if [ "kubernetes" = "$target" ]; then',
    ],
)
def test_the_script_seam_check_finds_a_platform_named_in_a_branch(line):
    assert shell_seam_breaches(f"#!/usr/bin/env bash\n{line}\n") != []


@pytest.mark.parametrize(
    "line",
    [
        'aws secretsmanager get-secret-value --region "$REGION" --secret-id "$1"',
        '    gs://*) gcloud storage cat "$PREFIX/$1" 2>/dev/null ;;',
        "# case $CLOUD in gcp) ... : a comment",
        'log "booting a vLLM $ROLE on $PLATFORM with $IMAGE"',
        '  for link in "$BY_ID"/google-local-nvme-ssd-* "$BY_ID"/nvme-Amazon_EC2_NVMe_Instance_Storage_*; do',
    ],
)
def test_the_script_seam_check_ignores_commands_comments_and_titles_in_messages(line):
    assert shell_seam_breaches(f"#!/usr/bin/env bash\n{line}\n") == []


# --- layers: the module import graph has no circle, and imports go downward only -----------------------

#: The program's packages whose modules import one another, and its entry point.
LAYERED_PACKAGES = ("components", "tools", "policy")
ENTRY_POINT = "__main__.py"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The program's modules that ``source`` imports, at module level, inside a function (a lazy import
    still ties the two modules together) or under ``if TYPE_CHECKING:`` (a type named from above is a
    dependency too): ``from a import b`` counts ``a.b`` when b is a module, and ``a``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for imported in names:
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                found.add(imported)
    return found


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = LAYERED_PACKAGES) -> dict[str, set[str]]:
    paths = {module_name(path, root): path for package in packages for path in (root / package).rglob("*.py")}
    if (root / ENTRY_POINT).exists():
        paths["__main__"] = root / ENTRY_POINT
    names = set(paths)
    return {
        name: imported_modules(path.read_text(), name, path.name == "__init__.py", names)
        for name, path in paths.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: every circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def test_the_program_s_modules_import_one_another_without_a_circle():
    cycles = import_cycles(import_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_import_graph_covers_the_core_the_platforms_the_tools_and_the_policy_pack():
    graph = import_graph()
    assert {"components.spec", "components.kubernetes.pods", "tools.plan", "policy.gpu_budget"} <= set(graph)
    assert "components.platforms" in graph["components.catalog"]
    assert "components.spec" in graph["__main__"]


def test_the_leaf_config_module_imports_only_modules_that_import_nothing_of_the_program():
    graph = import_graph()
    assert all(not graph[imported] for imported in graph["components.config"])


def test_the_cycle_check_finds_a_circle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from pkg.high import g\n")
    (package / "high.py").write_text("from pkg import low\n")
    (package / "leaf.py").write_text("from . import low\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert "pkg.low" in graph["pkg.leaf"]
    assert import_cycles(graph) == [["pkg.high", "pkg.low"]]


def test_the_cycle_check_finds_a_circle_through_an_import_only_for_type_checking(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import g\n"
    )
    (package / "high.py").write_text("from pkg.low import f\n")
    assert import_cycles(import_graph(tmp_path, ("pkg",))) == [["pkg.high", "pkg.low"]]


#: The layers of the program, lowest first: a module imports only from its own layer or below. Patterns
#: are module names (fnmatch); ``{platform}`` stands for each registered platform's package.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "leaf: config reading, vLLM's flags, the Hub's facts, the start rates, the machines' scripts",
        (
            "components",
            "components.config",
            "components.sdk_internals",
            "components.config_yaml",
            "components.extra_args",
            "components.model_facts",
            "components.rates",
            "components.domain",
            "components.observe",
            "components.dashboard",
            "components.scripts",
            "components.scripts.*",
        ),
    ),
    ("model: the validated spec and the catalog's rows", ("components.offerings", "components.service_spec")),
    ("registry: the platform seam", ("components.platforms",)),
    (
        "rules over the registry: keys, presets, catalog, scaling, shares, fit, launch, policy library",
        (
            "components.keys",
            "components.canary",
            "components.traffic_gate",
            "components.presets",
            "components.images",
            "components.provider_config",
            "components.catalog",
            "components.autoscaling",
            "components.replica_shares",
            "components.cost",
            "components.cost_warnings",
            "components.model_fit",
            "components.launch",
            "components.vm",
            "policy.validators",
            "policy.gpu_budget",
        ),
    ),
    ("spec: assembles and checks the stack's spec", ("components.spec",)),
    ("service: the platform-neutral component", ("components.service",)),
    ("platforms: each platform's package", ("components.{platform}", "components.{platform}.*")),
    (
        "entry points: the program, the tools, the policy pack",
        ("__main__", "tools", "tools.*", "policy.__main__"),
    ),
)


def expanded(pattern: str) -> list[str]:
    """``pattern`` for each registered platform when it names ``{platform}``, else itself."""
    if "{platform}" not in pattern:
        return [pattern]
    return [pattern.format(platform=name) for name in platforms.names()]


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> int | None:
    """The index of the lowest layer whose patterns match ``module``, None when none does."""
    for index, (_, patterns) in enumerate(layers):
        if any(fnmatch.fnmatchcase(module, each) for pattern in patterns for each in expanded(pattern)):
            return index
    return None


def upward_imports(
    graph: dict[str, set[str]], layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS
) -> list[str]:
    """``importer -> imported`` for each import from a lower layer to a higher one."""
    found = []
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            low, high = layer_of(module, layers), layer_of(other, layers)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({layers[low][0]}) -> {other} ({layers[high][0]})")
    return found


def test_every_module_of_the_program_belongs_to_a_declared_layer():
    assert [module for module in sorted(import_graph()) if layer_of(module) is None] == []


def test_every_name_the_layers_declare_is_a_module_of_the_program():
    modules = import_graph()
    stale = [
        pattern
        for _, patterns in LAYERS
        for pattern in patterns
        if not any(fnmatch.fnmatchcase(module, each) for each in expanded(pattern) for module in modules)
    ]
    assert stale == [], "a module was renamed or removed: update LAYERS"


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_import_from_a_lower_layer_to_a_higher_one(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.spec import build\n"
    )
    (package / "spec.py").write_text("from pkg.model import Spec\n")
    layers = (("model", ("pkg", "pkg.model")), ("spec", ("pkg.spec",)))
    assert upward_imports(import_graph(tmp_path, ("pkg",)), layers) == [
        "pkg.model (model) -> pkg.spec (spec)"
    ]
