"""Stack files read as the Pulumi CLI reads them (components/config_yaml.py).

Each rule is pinned to the Go source the CLI runs: gopkg.in/yaml.v3 ``decode.go`` (``scalar``: a string
field takes the node's text as written; ``prepare``: no unmarshaler runs for a null node; ``mapping``:
"mapping key ... already defined"), yaml.v3 ``resolve.go`` (the resolver of values inside lists and maps),
and pulumi ``sdk/go/common/resource/config/value.go`` (``unmarshalValue``: a config value is a string
first, else an object kept as JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config_yaml import StackFileError, go_json, go_resolve, read_stack_config


def stack_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    return path


def config_of(tmp_path: Path, body: str) -> dict:
    return read_stack_config(stack_file(tmp_path, "config:\n" + body))


@pytest.mark.parametrize(
    "text", ["yes", "no", "on", "off", "y", "N", "True", "010", "0x10", "1_000", "5:00", ".inf", "nan", "1e3"]
)
def test_a_scalar_value_reaches_the_program_as_written(tmp_path, text):
    # yaml.v3 decode.go scalar(): `case reflect.String: out.SetString(n.Value)`, whatever it resolves to.
    assert config_of(tmp_path, f"  vllm:servedModelName: {text}\n") == {"vllm:servedModelName": text}


@pytest.mark.parametrize("text", ["~", "null", "Null", "NULL", ""])
def test_a_null_value_is_the_empty_string(tmp_path, text):
    # prepare() returns before any unmarshaler for a null node; mapping() then stores the zero Value.
    assert config_of(tmp_path, f"  vllm:model: {text}\n") == {"vllm:model": ""}


def test_a_quoted_value_is_its_text(tmp_path):
    assert config_of(tmp_path, "  vllm:model: '~'\n  vllm:spot: \"no\"\n") == {
        "vllm:model": "~",
        "vllm:spot": "no",
    }


def test_a_key_defined_twice_is_an_error_naming_both_lines(tmp_path):
    path = stack_file(tmp_path, "config:\n  vllm:replicas: '2'\n  vllm:replicas: '3'\n")
    with pytest.raises(StackFileError) as caught:
        read_stack_config(path)
    assert str(caught.value) == (
        f"{path}: line 3: mapping key 'vllm:replicas' already defined at line 2 (the pulumi CLI refuses a "
        "key set twice)"
    )


def test_a_key_defined_twice_inside_an_object_value_is_an_error_too(tmp_path):
    with pytest.raises(StackFileError, match="mapping key 'team' already defined"):
        config_of(tmp_path, "  aws:defaultTags:\n    team: a\n    team: b\n")


@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("yes", "yes"),  # YAML 1.1's booleans are strings to yaml.v3
        ("on", "on"),
        ("True", True),
        ("FALSE", False),
        ("~", None),
        ("010", 8),  # strconv.ParseInt(text, 0, 64): a leading 0 is octal
        ("0x10", 16),
        ("0o10", 8),
        ("0b101", 5),
        ("1_000", 1000),  # resolve() drops every "_" before parsing
        ("-42", -42),
        ("08", 8.0),  # not octal, so ParseInt fails and yamlStyleFloat parses it as a float
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5:00", "5:00"),  # no sexagesimal numbers in yaml.v3
        ("2024-01-02", "2024-01-02T00:00:00Z"),  # a time.Time, which encoding/json writes in RFC 3339
        ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B"),
    ],
)
def test_inside_a_list_scalars_resolve_as_yaml_v3_resolves_them(text, resolved):
    value = go_resolve(text)
    assert value == resolved and type(value) is type(resolved)


def test_a_list_value_reaches_the_program_as_the_clis_json(tmp_path):
    values = config_of(tmp_path, "  vllm:extraArgs: [yes, 010, '010', ~, 2.0]\n")
    assert values == {"vllm:extraArgs": ["yes", 8, "010", None, 2.0]}
    assert json.loads(go_json(values["vllm:extraArgs"])) == ["yes", 8, "010", None, 2]


@pytest.mark.parametrize("text", [".inf", "-.Inf", ".nan"])
def test_an_infinity_or_nan_inside_a_list_is_refused_as_gos_json_refuses_it(tmp_path, text):
    with pytest.raises(StackFileError, match="json: unsupported value"):
        config_of(tmp_path, f"  vllm:extraArgs: [{text}]\n")


def test_a_secure_value_is_kept_as_an_object(tmp_path):
    assert config_of(tmp_path, "  vllm:apiKey:\n    secure: v1:AAAA\n") == {
        "vllm:apiKey": {"secure": "v1:AAAA"}
    }


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("config:\n\tvllm:replicas: '2'\n", "never tabs"),
        ("config: [a, b\n", "is not valid YAML"),
        ("config:\n  - vllm:replicas\n", "config is a YAML list, not a mapping"),
        ("config: replicas\n", "config is a YAML scalar ('replicas'), not a mapping"),
        ("- a\n- b\n", "is a YAML list, not a mapping with a config: key"),
        ("just words\n", "is a YAML scalar"),
        ("vllm:replicas: '2'\n", "config keys go under a top-level config: mapping"),
        (
            "confg:\n  vllm:replicas: '2'\n",
            "config keys go under config: (the pulumi CLI ignores a confg: mapping)",
        ),
        ("config:\n  replicas: '2'\n", "not of the form <namespace>:<name>"),
    ],
)
def test_a_file_the_cli_would_refuse_or_misread_is_one_line_naming_it(tmp_path, text, what):
    path = stack_file(tmp_path, text)
    with pytest.raises(StackFileError) as caught:
        read_stack_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and what in message and "\n" not in message


def test_a_directory_is_not_a_stack_file(tmp_path):
    with pytest.raises(StackFileError, match="is a directory"):
        read_stack_config(tmp_path)


def test_a_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes(b"\xff\xfe\x00config")
    with pytest.raises(StackFileError, match="not UTF-8"):
        read_stack_config(path)


@pytest.mark.parametrize(
    "text",
    ["", "config:\n", "# only a comment\n", "secretsprovider: passphrase\n", "description: a preset\n"],
)
def test_a_file_without_config_values_is_an_empty_config(tmp_path, text):
    assert read_stack_config(stack_file(tmp_path, text)) == {}


def test_a_byte_order_mark_is_ignored_as_the_cli_strips_it(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes(b"\xef\xbb\xbfconfig:\n  vllm:replicas: '2'\n")
    assert read_stack_config(path) == {"vllm:replicas": "2"}
