"""The docs (README.md and docs/*.md) as a specification: their key tables are generated from the key
registry, every shell command in them is one the project's tools, config and files accept, every example of
output or error is what the program prints now, and every link lands on a page and a heading that exist.
Nothing here reaches a cloud or the Hugging Face Hub (the Hub is the fake one on loopback)."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from components import model_facts, platforms
from components.config import SpecError
from components.kubernetes.load_balancer import service_name
from components.kubernetes.platform import default_namespace
from components.provider_config import provider_config_keys
from components.spec import build_spec
from tests.harness import ROOT
from tools import docs
from tools import plan as plan_tool
from tools.fakes_hub import GB, PRESET_MODELS, FakeModel

PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
PRESETS = {path.stem: yaml.safe_load(path.read_text()) for path in (ROOT / "stacks").glob("*.yaml")}
#: Stacks a command may name: the presets and the committed dev stack (Pulumi.dev.yaml); besides them, the
#: stacks a page creates itself with `pulumi stack init` (CREATED_STACKS).
COMMITTED_STACKS = {*PRESETS, *(path.stem.removeprefix("Pulumi.") for path in ROOT.glob("Pulumi.*.yaml"))}
#: Programs the docs run that need a cloud, a cluster or a network to say anything: not run here.
EXTERNAL = {"kubectl", "helm", "gcloud", "aws", "kind", "minikube", "export", "for", "do", "done", "curl"}
#: Paths the load balancer serves (docs/security.md): a curl anywhere else would be refused.
SERVED_PATHS = re.compile(r"^/(v1/[\w/.-]+|health)$")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.argv)}"


def fenced_blocks(page: Path) -> Iterator[tuple[str, int, list[str]]]:
    """Each fenced block of ``page``: its info string, the line it starts on, its lines."""
    for info, start, lines, _ in blocks_and_what_precedes_them(page):
        yield info, start, lines


def blocks_and_what_precedes_them(page: Path) -> Iterator[tuple[str, int, list[str], str]]:
    """Each fenced block of ``page`` as ``fenced_blocks`` gives it, with the text since the block before."""
    lines = page.read_text().split("\n")
    start, since = None, 0
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```") and start is None:
            start, info, indent = number, line.lstrip()[3:].strip(), len(line) - len(line.lstrip())
        elif line.lstrip().startswith("```"):
            assert start is not None
            between = "\n".join(lines[since : start - 1])
            yield info, start, [text[indent:] for text in lines[start : number - 1]], between
            start, since = None, number


def split_commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell line: split at ``&&``, ``;``, ``|``, ``&`` and parentheses, with the
    commands of every ``$(...)`` inside a word too; leading ``NAME=value`` assignments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split, lexer.commenters = True, "#"
    command: list[str] = []
    for token in [*lexer, ";"]:
        if set(token) <= set(";&|()"):
            while command and re.match(r"^\w+=", command[0]):
                command.pop(0)
            if command:
                yield command
            command = []
            continue
        for inner in re.findall(r"\$\(([^()]*)\)", token):
            yield from split_commands(inner)
        command.append(token)


def shell_commands() -> list[Command]:
    found = []
    for page in PAGES:
        for info, start, lines in fenced_blocks(page):
            if info != "sh":
                continue
            joined, first = "", None
            for offset, line in enumerate(lines, 1):
                first = first or start + offset
                if line.endswith("\\"):
                    joined += line[:-1] + " "
                    continue
                for argv in split_commands(joined + line):
                    found.append(Command(page.relative_to(ROOT).as_posix(), first, tuple(argv)))
                joined, first = "", None
    return found


def inline_commands() -> list[Command]:
    """Commands quoted inline with their arguments (`` `pulumi config set vllm:gpu H100:8` ``); a bare
    `` `pulumi config set --secret` `` or tool name only names the command."""
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().split("\n"), 1):
            for span in re.findall(r"`((?:pulumi config set|\.venv/bin/python -m) [^`]+)`", line):
                argv = tuple(shlex.split(span))
                if "..." not in span and [arg for arg in argv[3:] if not arg.startswith("-")]:
                    found.append(Command(page.relative_to(ROOT).as_posix(), number, argv))
    return found


def printed_examples() -> list[tuple[Command, str]]:
    """Each ``sh`` block of one command directly followed by a ``text`` block: the command and an excerpt
    of what it prints."""
    found = []
    for page in PAGES:
        previous = None
        for info, start, lines, between in blocks_and_what_precedes_them(page):
            if info == "text" and previous is not None and not between.strip():
                (argv,) = list(split_commands(" ".join(line.removesuffix("\\") for line in previous[1])))
                command = Command(page.relative_to(ROOT).as_posix(), previous[0], tuple(argv))
                found.append((command, "\n".join(lines)))
            previous = (start, lines) if info == "sh" else None
    return found


SHELL = shell_commands()
INLINE = inline_commands()
CREATED_STACKS = {c.argv[3] for c in SHELL if c.argv[:3] == ("pulumi", "stack", "init")}
OUTPUTS = {
    node.args[0].value
    for node in ast.walk(ast.parse((ROOT / "__main__.py").read_text()))
    if isinstance(node, ast.Call)
    and ast.unparse(node.func) == "pulumi.export"
    and isinstance(node.args[0], ast.Constant)
}


def by_program(*programs: str) -> list[Command]:
    return [c for c in SHELL + INLINE if c.argv[0] in programs or c.argv[0].endswith(programs)]


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        self.namespace = namespace


def parse_tool_command(command: Command, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """``command``'s arguments, as the tool's own argparse parses them: its ``main`` runs up to the parse,
    and no further (no stack, network or file is read)."""
    module = command.argv[2]
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    try:
        importlib.import_module(module).main(list(command.argv[3:]))
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit:
        pytest.fail(f"{command}: {module}'s parser refuses it (its message is above)")
    pytest.fail(f"{command}: {module}.main returned without parsing its arguments")


def registered_key(key: str) -> bool:
    """Whether ``namespace:name`` (a --path suffix like ``[0]`` dropped) is a key the program reads."""
    namespace, _, name = key.partition(":")
    name = re.split(r"[.\[]", name, maxsplit=1)[0]
    registry = docs.key_registry()
    if namespace == "vllm":
        own = (key for group in registry.platforms for key in group.keys)
        return name in {*registry.common, *registry.secret, *own}
    sdks = {p.provider_namespace: p.provider_sdk for p in platforms.registered()}
    return namespace in sdks and name in (provider_config_keys(sdks[namespace]) or ())


# --- the configuration tables ----------------------------------------------------------------------------


def test_the_configuration_tables_are_the_ones_the_key_registry_generates():
    text = docs.CONFIGURATION.read_text()
    assert docs.render(text, docs.key_registry()) == text, (
        "docs/configuration.md is out of date: run .venv/bin/python -m tools.docs"
    )


def test_a_key_the_program_reads_without_a_description_stops_the_generator_naming_it():
    registry = docs.key_registry()
    with pytest.raises(docs.DocsError, match=re.escape("tools/docs.py: no description of someNewKey")):
        docs.render_tables(replace(registry, common=(*registry.common, "someNewKey")))


def test_a_platform_s_key_without_a_description_stops_the_generator_naming_where_it_goes():
    registry = docs.key_registry()
    first, *others = registry.platforms
    grown = replace(first, keys=(*first.keys, "someNewKey"))
    with pytest.raises(
        docs.DocsError, match=re.escape(f"{first.title}'s key_docs.py: no description of someNewKey")
    ):
        docs.render_tables(replace(registry, platforms=(grown, *others)))


def test_a_description_of_a_key_the_program_no_longer_reads_stops_the_generator_naming_it():
    registry = docs.key_registry()
    with pytest.raises(docs.DocsError, match="maxModelLen"):
        docs.render_tables(replace(registry, common=tuple(k for k in registry.common if k != "maxModelLen")))


def test_every_platform_s_own_keys_have_a_table_of_their_own():
    tables = docs.render_tables(docs.key_registry())
    for platform in platforms.registered():
        table = tables.split(f"### {platform.title} only\n")[1].split("###")[0]
        assert [row.split("`")[1] for row in table.split("\n") if row.startswith("| `")] == list(
            platform.keys
        )


def test_the_check_reports_stale_tables_and_leaves_the_page_as_it_is(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text(f"# Configuration\n\n{docs.BEGIN}\n| an old table |\n{docs.END}\n")
    monkeypatch.setattr(docs, "CONFIGURATION", stale)
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    assert docs.main(["--check"]) == 1
    assert "run .venv/bin/python -m tools.docs" in capsys.readouterr().err
    assert "| an old table |" in stale.read_text()


def test_every_output_the_program_exports_is_in_the_outputs_table():
    outputs = (ROOT / "docs" / "configuration.md").read_text().split("## Outputs")[1]
    assert OUTPUTS and all(f"| `{name}` |" in outputs for name in OUTPUTS)


# --- the commands ------------------------------------------------------------------------------------------


def test_every_fenced_block_says_what_it_holds():
    # ``sh`` blocks are checked below; an untagged block would escape the checks.
    untagged = [
        f"{page.name}:{start}" for page in PAGES for info, start, _ in fenced_blocks(page) if not info
    ]
    assert untagged == []


def test_every_command_is_one_these_tests_check_or_needs_a_cloud():
    known = (
        "pulumi",
        "/bin/python",
        "python3",
        "/bin/pip",
        "tools/acceptance.sh",
        *EXTERNAL,
    )
    unknown = [str(c) for c in SHELL if not c.argv[0].endswith(known) and c.argv[0] not in EXTERNAL]
    assert unknown == [], "add a check for these commands: " + "; ".join(unknown)


@pytest.mark.parametrize(
    "command",
    [c for c in by_program("/bin/python") if c.argv[1:3] != ("-m", "pytest")],
    ids=str,
)
def test_every_tool_command_parses_with_the_tool_s_own_parser(command, monkeypatch):
    assert command.argv[1] == "-m" and command.argv[2].startswith("tools."), command
    parse_tool_command(command, monkeypatch)


@pytest.mark.parametrize("command", by_program("pulumi"), ids=str)
def test_every_stack_a_command_names_is_a_preset_the_dev_stack_or_one_the_docs_create(command):
    argv = list(command.argv)
    named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--stack"]
    assert set(named) <= COMMITTED_STACKS | CREATED_STACKS, command


@pytest.mark.parametrize("command", [c for c in by_program("/bin/python") if "--stack" in c.argv], ids=str)
def test_every_stack_a_tool_command_names_is_a_preset_the_dev_stack_or_one_the_docs_create(command):
    stack = command.argv[command.argv.index("--stack") + 1]
    assert stack in COMMITTED_STACKS | CREATED_STACKS, command


@pytest.mark.parametrize(
    "command", [c for c in by_program("pulumi") if c.argv[1:3] == ("config", "set")], ids=str
)
def test_every_config_command_sets_a_key_the_program_reads_and_secrets_with_secret(command):
    argv = list(command.argv[3:])
    flags = {"--secret", "--path", "--plaintext"}
    secret = "--secret" in argv
    if "--stack" in argv:
        del argv[argv.index("--stack") : argv.index("--stack") + 2]
    positional = [arg for arg in argv if arg not in flags | {"--"}]
    key = positional[0]
    assert registered_key(key), f"{command}: {key} is not a key the program reads"
    name = key.removeprefix("vllm:")
    assert secret == (name in docs.key_registry().secret), f"{command}: --secret goes with secrets only"
    if name == "preset":
        assert positional[1] in PRESETS, command


@pytest.mark.parametrize(
    "command", [c for c in by_program("/bin/python") if c.argv[2] == "tools.plan"], ids=str
)
def test_every_plan_command_overrides_keys_the_program_reads(command, monkeypatch):
    parsed = parse_tool_command(command, monkeypatch)
    for pair in (*parsed.config, *parsed.secret):
        assert registered_key(pair.split("=", 1)[0]), f"{command}: {pair}"


@pytest.mark.parametrize(
    "command", [c for c in by_program("pulumi") if c.argv[1:3] == ("stack", "output")], ids=str
)
def test_every_stack_output_command_reads_an_output_the_program_exports(command):
    name = next(arg for arg in command.argv[3:] if not arg.startswith("-") and arg not in CREATED_STACKS)
    assert name in OUTPUTS, command


@pytest.mark.parametrize("command", by_program("/bin/pip"), ids=str)
def test_every_pip_install_names_requirement_files_that_exist(command):
    argv = command.argv
    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-r"]
    assert argv[1] == "check" or files, command
    assert all((ROOT / name).is_file() for name in files), command


@pytest.mark.parametrize("command", by_program("tools/acceptance.sh"), ids=str)
def test_every_acceptance_run_names_the_script_and_a_preset(command):
    assert (ROOT / "tools" / "acceptance.sh").is_file()
    if "--stack" in command.argv:
        assert command.argv[command.argv.index("--stack") + 1] in PRESETS, command


@pytest.mark.parametrize("command", [c for c in SHELL if c.argv[0] == "curl"], ids=str)
def test_every_curl_asks_a_path_the_load_balancer_serves_for_a_model_a_stack_serves(command):
    url = next(arg for arg in command.argv[1:] if "/v1/" in arg or arg.endswith("/health"))
    path = "/" + url.split("://")[-1].split("/", 1)[1]
    assert SERVED_PATHS.match(path), command
    served = {(preset.get("config") or {}).get("vllm:model") for preset in PRESETS.values()}
    served.add(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["vllm:model"])
    if "-d" in command.argv:
        body = json.loads(command.argv[command.argv.index("-d") + 1])
        assert body["model"] in served, command


@pytest.mark.parametrize("command", [c for c in by_program("pulumi") if "--policy-pack" in c.argv], ids=str)
def test_every_policy_pack_a_command_names_is_a_pack_of_this_repository(command):
    pack = command.argv[command.argv.index("--policy-pack") + 1]
    assert (ROOT / pack / "PulumiPolicy.yaml").is_file(), command


@pytest.mark.parametrize(("command", "excerpt"), printed_examples(), ids=lambda value: str(value)[:80])
def test_what_an_example_prints_is_what_the_command_prints_now(command, excerpt, capsys):
    # Only the plan runs offline; an example of another tool's output has no block of its command before it.
    assert command.argv[1:3] == ("-m", "tools.plan"), f"{command}: no way to run it here"
    assert plan_tool.main(list(command.argv[3:])) == 0
    assert excerpt in capsys.readouterr().out, f"{command} prints something else now"


@pytest.mark.parametrize(
    "command",
    [c for c in SHELL if c.argv[0] == "kubectl" and "-n" in c.argv and "<" not in shlex.join(c.argv)],
    ids=str,
)
def test_every_namespace_and_service_kubectl_names_is_one_a_stack_of_the_docs_declares(command):
    # Placeholders (``vllm-<stack>``) aside, the names come from the stack the command is run for.
    stacks = {default_namespace(stack): stack for stack in COMMITTED_STACKS}
    namespace = command.argv[command.argv.index("-n") + 1]
    assert namespace in stacks, command
    stack = stacks[namespace]
    committed = ROOT / f"Pulumi.{stack}.yaml"
    config = yaml.safe_load(committed.read_text())["config"] if committed.exists() else {}
    spec = build_spec(stack, {key: str(value) for key, value in config.items()})
    services = [arg.removeprefix("svc/") for arg in command.argv if arg.startswith("svc/")]
    assert all(service == service_name(spec) for service in services), command


def test_the_readme_s_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().split("\n")
    # The command itself, before what .ci/run adds to keep going after a failure (``|| failed=1``).
    ci_command = ci[ci.index("# The README's test command:") + 1].split(" || ")[0]
    readme = [c for c in SHELL if c.page == "README.md"]
    assert tuple(shlex.split(ci_command)) in {c.argv for c in readme}


def test_the_commands_are_found():
    # The checks above are only as good as the extraction: the quickstart's own commands are among them.
    argvs = {c.argv for c in SHELL}
    assert ("pulumi", "up", "--stack", "gcp-h100") in argvs
    assert ("pulumi", "stack", "output", "endpoint") in argvs
    assert any(c.argv[0] == "curl" and "-d" in c.argv for c in SHELL)


#: The stack config that stops with each error the docs show, by the error's key and value.
QWEN = {"vllm:model": "Qwen/Qwen3-8B"}
ERROR_EXAMPLES = {
    ("vllm:gpu", "'T4:3'"): {"vllm:cloud": "aws", "vllm:gpu": "T4:3", **QWEN},
    ("vllm:gpu", "'H100:4'"): {"vllm:cloud": "gcp", "vllm:gpu": "H100:4", **QWEN},
    ("vllm:hfToken", "'(plaintext)'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:hfToken": "hf_x",
        **QWEN,
    },
    ("gcp:regoin", "'us-east4'"): {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "gcp:regoin": "us-east4", **QWEN},
    ("aws:region", "'eu-west-1'"): {
        "vllm:cloud": "aws",
        "vllm:gpu": "A100-80GB:8",
        "aws:region": "eu-west-1",
        **QWEN,
    },
    ("vllm:image", "'vllm/vllm-openai-cpu:v0.33.0'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:image": "vllm/vllm-openai-cpu:v0.33.0",
        **QWEN,
    },
    ("vllm:model", "'Qwen/Qwen3-8B-typo'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:model": "Qwen/Qwen3-8B-typo",
    },
    ("vllm:hfToken", "'(not set)'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "H100:8",
        "vllm:model": "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
    },
    ("vllm:gpu", "'L4:1'"): {"vllm:cloud": "gcp", "vllm:gpu": "L4:1", "vllm:modelSizeGb": "30", **QWEN},
    ("vllm:gpu", "'L4:8'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:8",
        "vllm:model": "Qwen/Qwen2.5-0.5B-Instruct",
    },
    ("vllm:maxModelLen", "65536"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:maxModelLen": "65536",
        **QWEN,
    },
    # A 250 GB model on a machine without local NVMe (a2-highgpu-8g), where the weights go on the boot disk.
    ("vllm:diskSizeGb", "200"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "A100:8",
        "vllm:model": "big/Model",
        "vllm:diskSizeGb": "200",
    },
    ("vllm:extraArgs", "'--revision nope'"): {
        "vllm:cloud": "gcp",
        "vllm:gpu": "L4:1",
        "vllm:extraArgs": ["--revision", "nope"],
        **QWEN,
    },
}


def error_examples() -> list[tuple[str, str]]:
    """Every ``error:`` line of the docs' ``text`` blocks, with where it is."""
    return [
        (f"{page.relative_to(ROOT)}:{start + offset}", line)
        for page in PAGES
        for info, start, lines in fenced_blocks(page)
        if info == "text"
        for offset, line in enumerate(lines, 1)
        if line.startswith("error: ")
    ]


@pytest.mark.parametrize(("where", "line"), error_examples(), ids=lambda value: value[:60])
def test_every_error_the_docs_show_is_the_one_the_program_stops_with(where, line, fake_hub):
    key, value = re.match(r"^error: (\S+): invalid value ('[^']*'|\S+):", line).groups()
    assert (key, value) in ERROR_EXAMPLES, f"{where}: add the config that gives {line!r} to ERROR_EXAMPLES"
    fake_hub.models["big/Model"] = FakeModel(
        config=PRESET_MODELS["Qwen/Qwen3-8B"].config, weights_bytes=250 * GB
    )
    with pytest.raises(SpecError) as caught:
        build_spec("docs", ERROR_EXAMPLES[key, value], lookup=model_facts.lookup)
    # "..." stands for the rest of the line, <model>@<commit> for what the Hub answers.
    shown = re.escape(line).replace(re.escape("..."), ".*")
    shown = re.sub(r"<\w+>", r"\\S+", shown)
    assert re.fullmatch(shown, f"error: {caught.value}"), (
        f"{where}: the program now says\nerror: {caught.value}"
    )


# --- the links ---------------------------------------------------------------------------------------------


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text()
    outside_code = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
    return {anchor(line.lstrip("#")) for line in outside_code.split("\n") if line.startswith("#")}


def test_every_link_lands_on_a_page_and_a_heading_that_exist():
    broken = []
    for page in PAGES:
        text = re.sub(r"(?ms)^\s*```.*?^\s*```", "", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (fragment and fragment not in anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in readme] == []
