"""Regenerate components/vllm_flags.json: every `vllm serve` flag of the pinned vLLM, from its own parser.

``vllm:extraArgs`` is checked against this list (components/extra_args.py), so it must come from the vLLM
release the default image runs, never be written by hand. Run it with that release installed in a venv of
its own (never the project's venv). vLLM's wheel pins CUDA torch (2.14.0) and CUDA kernels; the parser needs
neither a GPU nor CUDA, so vLLM without its dependencies, a CPU torch build (2.13.0 was used) and the
packages the parser's import chain needs are enough:

    python3 -m venv "$VLLM_VENV"
    "$VLLM_VENV"/bin/pip install --no-deps vllm==0.33.0
    "$VLLM_VENV"/bin/pip install torch==2.13.0 packaging regex cachetools psutil numpy requests tqdm \
        blake3 py-cpuinfo 'transformers<5.21,>=5.16.1' 'huggingface_hub>=1.31' tokenizers safetensors \
        'fastapi[standard]<0.137,>=0.133' starlette aiohttp openai pydantic orjson prometheus_client \
        prometheus-fastapi-instrumentator partial-json-parser jsonschema pyzmq msgspec pyyaml einops \
        cloudpickle python-json-logger pybase64 cbor2 ijson setproctitle uvloop pillow sentencepiece \
        tiktoken anthropic oss-harmony xgrammar==0.2.8 'llguidance<1.8,>=1.7' outlines_core==0.2.14 \
        lark==1.2.2 lm-format-enforcer==0.11.3 'mistral_common[image]' compressed-tensors==0.17.0 \
        depyf==0.20.0 model-hosting-container-standards opentelemetry-sdk opentelemetry-exporter-otlp \
        opentelemetry-semantic-conventions-ai 'mcp<3,>=2.2' ninja
    "$VLLM_VENV"/bin/python -m tools.vllm_flags
    "$VLLM_VENV"/bin/python -m tools.vllm_flags --cross-check   # extra_args.py against vLLM's real parser

The parser is built as ``vllm`` itself builds it (vllm/entrypoints/cli/main.py): a FlexibleArgumentParser
with a ``serve`` subparser from ``ServeSubcommand.subparser_init`` (vllm/entrypoints/cli/serve.py), which
calls ``make_arg_parser`` (vllm/entrypoints/common/cli_args.py). Platform detection finds no GPU here, so
the CPU platform is set first, as ``vllm bench`` does in main.py; it changes defaults, not flags.

Ranges come from the same source vLLM validates with: the pydantic ``Field(gt=, ge=, lt=, le=)`` bounds of
the config dataclass field behind each flag (e.g. ``CacheConfig.gpu_memory_utilization``, ``gt=0, le=1``
in vllm/config/cache.py). Which field is behind which flag is recorded while the parser is built, by
watching the ``get_kwargs(ConfigClass)["field"]`` look-ups that each ``add_argument`` call spreads.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

OUTPUT = Path(__file__).resolve().parent.parent / "components" / "vllm_flags.json"
SECRET_WORDS = re.compile(r"token|key|secret|password", re.IGNORECASE)


class _FieldLookups(dict):
    """get_kwargs' result, noting which (config class, field) each add_argument call spreads."""

    last: ClassVar[list[tuple[type, str]]] = []

    def __init__(self, cls: type, kwargs: dict) -> None:
        super().__init__(kwargs)
        self.cls = cls

    def __getitem__(self, name: str) -> Any:
        _FieldLookups.last.append((self.cls, name))
        return super().__getitem__(name)


def _build_serve_parser() -> tuple[argparse.ArgumentParser, dict[int, tuple[type, str]]]:
    from vllm import platforms
    from vllm.platforms.cpu import CpuPlatform

    platforms.current_platform = CpuPlatform()

    import vllm.engine.arg_utils as arg_utils
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    original_get_kwargs = arg_utils.get_kwargs
    arg_utils.get_kwargs = lambda cls: _FieldLookups(cls, original_get_kwargs(cls))
    fields: dict[int, tuple[type, str]] = {}

    def watching(add_argument):
        def add(self, *args, **kwargs):
            looked_up = list(_FieldLookups.last)
            _FieldLookups.last.clear()
            action = add_argument(self, *args, **kwargs)
            if len(looked_up) == 1:
                fields[id(action)] = looked_up[0]
            return action

        return add

    group_class = FlexibleArgumentParser._FlexibleArgumentGroup
    originals = (FlexibleArgumentParser.add_argument, group_class.add_argument)
    FlexibleArgumentParser.add_argument = watching(originals[0])
    group_class.add_argument = watching(originals[1])
    try:
        parser = FlexibleArgumentParser(description="vLLM CLI")
        subparsers = parser.add_subparsers(required=False, dest="subparser")
        serve = ServeSubcommand().subparser_init(subparsers)
    finally:
        FlexibleArgumentParser.add_argument, group_class.add_argument = originals
        arg_utils.get_kwargs = original_get_kwargs
    return serve, fields


def _unwrap(parse: Any) -> Any:
    """The parser inside vLLM's ``optional_type`` / ``parse_type`` wrappers (vllm/engine/arg_utils.py)."""
    while getattr(parse, "__qualname__", "").startswith(("optional_type.", "parse_type.")):
        parse = parse.__closure__[0].cell_contents
    return parse


def _value_kind(parse: Any) -> tuple[str, bool]:
    """(kind of value, whether "None"/"" mean unset) for an argparse ``type`` callable."""
    import vllm.engine.arg_utils as arg_utils
    from vllm.utils import argparse_utils

    optional = getattr(parse, "__qualname__", "").startswith("optional_type.")
    parse = _unwrap(parse)
    known = {
        None: "str",
        str: "str",
        int: "int",
        float: "float",
        json.loads: "json",
        argparse_utils.human_readable_int: "human_int",
        argparse_utils.human_readable_int_or_auto: "human_int_or_auto",
        arg_utils.union_dict_and_str: "json_or_str",
        arg_utils.parse_reasoning_parser: "str",
    }
    if parse in known:
        return known[parse], optional
    name = getattr(parse, "__qualname__", "")
    if name.endswith("parse_dataclass"):
        return "json_config", optional
    if name.endswith("<lambda>"):
        # vLLM's anonymous parsers: backend names folded to lower_snake, or comma-separated lists.
        if parse("Ab-C") == "ab_c":
            return "lower_snake", optional
        return "str", optional
    if getattr(parse, "__module__", "").startswith("vllm.") and "LoRA" in type(parse).__name__:
        return "str", optional
    return "str", optional


def _choice(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _bounds(field: tuple[type, str] | None) -> dict | None:
    """The pydantic Field bounds vLLM validates this flag's config field with, and where they are written."""
    if field is None:
        return None
    cls, name = field
    info = getattr(cls, "__pydantic_fields__", {}).get(name)
    if info is None:
        return None
    bounds = {}
    for constraint in info.metadata:
        for attribute in ("gt", "ge", "lt", "le"):
            if getattr(constraint, attribute, None) is not None:
                bounds[attribute] = getattr(constraint, attribute)
    if not bounds:
        return None
    path = Path(inspect.getsourcefile(cls))
    source = path.read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if re.match(rf"\s+{name}\s*:", text))
    relative = path.as_posix().split("/site-packages/", 1)[1]
    return {**bounds, "source": f"{relative}:{line} {cls.__name__}.{name}"}


def _config_fields(parse: Any) -> list[str] | None:
    """The fields a JSON config flag accepts, when its config class forbids others (vLLM's ``@config``
    default, vllm/config/utils.py), so that a misspelt key is refused before boot as vLLM's parser does."""
    parse = _unwrap(parse)
    if not getattr(parse, "__qualname__", "").endswith("parse_dataclass"):
        return None
    cls = parse.__defaults__[0]
    if getattr(cls, "__pydantic_config__", {}).get("extra") != "forbid":
        return None
    return sorted(f.name for f in dataclasses.fields(cls) if f.init)


def _flag_record(action: argparse.Action, options: list[str], field: tuple[type, str] | None) -> dict:
    boolean = isinstance(action, argparse.BooleanOptionalAction)
    kind, optional = _value_kind(action.type)
    takes_value = action.nargs != 0
    record: dict[str, Any] = {
        # Declared spellings first (canonical one leading), then the hidden ones argparse also accepts.
        "options": [*action.option_strings, *sorted(set(options) - set(action.option_strings))],
        "dest": action.dest,
        "action": type(action).__name__,
        "takes_value": takes_value,
        "nargs": action.nargs if takes_value else 0,
        "type": "bool" if not takes_value else kind,
        "none_allowed": optional,
    }
    if boolean:
        record["negative_options"] = sorted(getattr(action, "negative_option_strings", ()))
    choices = [_choice(c) for c in action.choices or () if c is not None]
    if choices:
        record["choices"] = choices
    fields = _config_fields(action.type) if kind == "json_config" else None
    if fields:
        record["fields"] = fields
    if type(action).__name__ == "LoRAParserAction":
        # Items: name=path or a JSON object of LoRAModulePath's fields (vllm/entrypoints/common/cli_args.py).
        from vllm.entrypoints.openai.models.protocol import LoRAModulePath

        record["type"] = "lora_module"
        record["fields"] = [f.name for f in dataclasses.fields(LoRAModulePath)]
        record["required_fields"] = [
            f.name for f in dataclasses.fields(LoRAModulePath) if f.default is dataclasses.MISSING
        ]
    bounds = _bounds(field)
    if bounds:
        record["range"] = bounds
    return record


def generate() -> dict:
    import vllm

    parser, fields = _build_serve_parser()
    grouped: dict[int, tuple[argparse.Action, list[str]]] = {}
    for option, action in parser._option_string_actions.items():
        grouped.setdefault(id(action), (action, []))[1].append(option)
    flags = [_flag_record(a, options, fields.get(i)) for i, (a, options) in grouped.items()]
    flags.sort(key=lambda f: f["options"][0])
    every_option = sorted(o for f in flags for o in f["options"])
    return {
        "vllm_version": vllm.__version__,
        "command": "vllm serve",
        "generated_by": "tools/vllm_flags.py (see its docstring)",
        "allow_abbrev": parser.allow_abbrev,
        # Candidates for the hand-reviewed secret list in components/extra_args.py.
        "secret_name_candidates": [o for o in every_option if o.startswith("--") and SECRET_WORDS.search(o)],
        "flags": flags,
    }


# vLLM's own spellings (vllm/utils/argparse_utils.py): underscores, -O levels, dotted JSON keys.
SPELLING_CASES = (
    ("--gpu_memory_utilization", "0.5"),
    ("--enable_prefix_caching",),
    ("-O3",),
    ("-O=2",),
    ("-O", "1"),
    ("-O", "x"),
    ("--compilation-config.mode", "3"),
    ("--compilation_config.mdoe", "3"),
    ("-cc.mode=3",),
    ("--compilation-config.compile_sizes+", "1,2"),
    ("--max-num-seqs.x", "1"),
)
SAMPLE_VALUES = ("1", "0", "-1", "x", "0.5", "{}", '{"a": 1}', "8k", "auto", "None", "true", "[1]", "a=b")


def cross_check() -> list[str]:
    """Every flag of the committed list, in each spelling, with sample values, read by vLLM's real parser and
    by components/extra_args.py: the items where they disagree. Expected: none, besides values vLLM's parser
    accepts and its config classes refuse later (the ranges), which extra_args refuses up front."""
    import contextlib
    import io

    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from components.extra_args import ExtraArgError, check_flags, load_flags

    _build_serve_parser()
    parser = FlexibleArgumentParser(description="vLLM CLI")
    ServeSubcommand().subparser_init(parser.add_subparsers(required=False, dest="subparser"))
    cases: list[tuple[list[str], Any]] = [(list(args), None) for args in SPELLING_CASES]
    for flag in load_flags().flags:
        if flag.name in ("--help", "--config", "--model"):  # exit, read a file, or move the model argument
            continue
        for option in flag.options:
            if flag.takes_value:
                values = [
                    [option],
                    *([option, v] for v in SAMPLE_VALUES),
                    *([f"{option}={v}"] for v in "01x"),
                ]
            else:
                values = [[option], [f"{option}=1"]]
            cases += [(args, flag) for args in values]
    disagreements = []
    for args, flag in cases:
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(["serve", "model", *args])
            vllm_accepts = True
        except (SystemExit, ValueError, IndexError):
            vllm_accepts = False
        try:
            check_flags(tuple(args), {}, frozenset())
            ours, why = True, ""
        except ExtraArgError as error:
            ours, why = False, error.valid
        checked_later = vllm_accepts and (flag is None or flag.range) and why.startswith("a number >")
        if vllm_accepts != ours and not checked_later:
            disagreements.append(f"{args}: vLLM {'accepts' if vllm_accepts else 'refuses'}; {why}")
    return disagreements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vllm_flags", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cross-check",
        action="store_true",
        help="feed every flag, in each spelling, to vLLM's parser and to extra_args; list disagreements",
    )
    if parser.parse_args(argv).cross_check:
        disagreements = cross_check()
        print("\n".join(disagreements) or "extra_args agrees with vLLM's parser on every sample")
        return 1 if disagreements else 0
    data = generate()
    OUTPUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"{OUTPUT}: {len(data['flags'])} flags of vLLM {data['vllm_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
