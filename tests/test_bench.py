"""tools.bench: the real tool, with the real aiperf, against a fake OpenAI-compatible server on loopback whose
delays are known (tests/fake_openai.py), so the figures can be checked against them. The tests that run
aiperf are marked slow (seconds of start-up per level): `.ci/run` runs them after the default selection."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from components.observe import ReplicaSource
from tests.fake_openai import FakeOpenAI, serving
from tests.test_status_https import self_signed
from tools import bench

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-test-key"
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
FIRST_TOKEN_S = 0.1
TOKEN_S = 0.02
OUTPUT_TOKENS = 8
# A loaded 2-core machine adds scheduling delay, never removes the server's: the lower bounds are the
# injected delays (less a timer's granularity), the upper ones leave room for a busy machine.
SLACK_MS = 400.0


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    """A one-word tokenizer made here: aiperf counts prompt tokens with one, and the Hub is out of reach."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    directory = tmp_path_factory.mktemp("tokenizer")
    words = Tokenizer(models.WordLevel({"[UNK]": 0, "tok": 1}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    words.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 100000}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = bench.main(list(argv), env={**os.environ, **(env or {})}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def sweep(tokenizer, tmp_path_factory):
    """One sweep of two levels, with --json and --plot: what most tests below read."""
    work = tmp_path_factory.mktemp("sweep")
    fake = FakeOpenAI(api_key=KEY, model=MODEL, first_token_s=FIRST_TOKEN_S, token_s=TOKEN_S, max_requests=40)
    with serving(fake):
        code, out, err = run(
            *("--endpoint", fake.url, "--concurrency", "1,2", "--requests", "6"),
            *("--input-tokens", "16", "--output-tokens", str(OUTPUT_TOKENS), "--tokenizer", str(tokenizer)),
            *("--json", str(work / "run.json"), "--plot", str(work / "run.png")),
            env={"VLLM_API_KEY": KEY},
        )
    document = json.loads((work / "run.json").read_text()) if (work / "run.json").exists() else {}
    return {"code": code, "out": out, "err": err, "json": document, "work": work}


@pytest.mark.slow
def test_a_sweep_measures_every_level(sweep):
    assert sweep["code"] == bench.EXIT_OK, sweep["err"]
    assert [level["concurrency"] for level in sweep["json"]["levels"]] == [1, 2]
    assert all(level["requests"] == 6 and level["errors"] == {} for level in sweep["json"]["levels"])


@pytest.mark.slow
def test_json_levels_have_exactly_the_documented_keys(sweep):
    for level in sweep["json"]["levels"]:
        assert set(level) == {
            "concurrency", "requests", "errors", "ttft_ms", "itl_ms", "e2e_ms", "output_tokens_per_s",
            "requests_per_s",
        }  # fmt: skip
        assert set(level["ttft_ms"]) == {"p50", "p95", "p99"}
        assert set(level["itl_ms"]) == {"p50", "p95"}
        assert set(level["e2e_ms"]) == {"p50", "p95"}


@pytest.mark.slow
def test_ttft_shows_the_servers_first_token_delay(sweep):
    for level in sweep["json"]["levels"]:
        ttft = level["ttft_ms"]
        assert FIRST_TOKEN_S * 1000 - 5 <= ttft["p50"] <= ttft["p95"] <= ttft["p99"]
        assert ttft["p50"] < FIRST_TOKEN_S * 1000 + SLACK_MS


@pytest.mark.slow
def test_inter_token_latency_shows_the_servers_token_delay(sweep):
    for level in sweep["json"]["levels"]:
        assert TOKEN_S * 1000 - 2 <= level["itl_ms"]["p50"] < TOKEN_S * 1000 + SLACK_MS / 4


@pytest.mark.slow
def test_end_to_end_latency_is_first_token_plus_the_rest(sweep):
    least = (FIRST_TOKEN_S + TOKEN_S * (OUTPUT_TOKENS - 1)) * 1000
    for level in sweep["json"]["levels"]:
        assert least - 5 <= level["e2e_ms"]["p50"] < least + SLACK_MS


@pytest.mark.slow
def test_throughputs_agree_with_the_answer_length(sweep):
    for level in sweep["json"]["levels"]:
        assert level["output_tokens_per_s"] == pytest.approx(level["requests_per_s"] * OUTPUT_TOKENS, rel=0.1)
        # One user waits a whole answer per request: at most 1 / e2e requests per second.
        assert level["requests_per_s"] <= level["concurrency"] * 1000 / (FIRST_TOKEN_S * 1000) + 0.5


@pytest.mark.slow
def test_the_table_has_a_row_per_level_and_the_suggestion(sweep):
    lines = sweep["out"].splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("CONC"))
    assert "TTFT p50" in lines[header] and "ERRORS" in lines[header]
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["1", "2"]
    assert "vllm:targetQpsPerReplica" in sweep["out"] and "vllm:targetQueuePerReplica" in sweep["out"]


@pytest.mark.slow
def test_progress_goes_to_stderr(sweep):
    assert "12/12 requests" in sweep["err"]
    assert "[" not in sweep["out"].splitlines()[0]


@pytest.mark.slow
def test_the_plot_is_a_png(sweep):
    assert (sweep["work"] / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_compare_draws_an_earlier_run_beside_this_one(sweep, tmp_path):
    earlier = bench.load_levels(str(sweep["work"] / "run.json"))
    bench.plot(earlier, str(tmp_path / "both.png"), "t", earlier, "old")
    assert (tmp_path / "both.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_refuses_a_file_that_is_not_a_bench_result(tmp_path):
    other = tmp_path / "other.json"
    other.write_text("{}")
    code, _, err = run("--endpoint", "http://127.0.0.1:9", "--plot", "x.png", "--compare", str(other))
    assert code == bench.EXIT_CONFIG
    assert err.count("\n") == 1 and "not a tools.bench --json file" in err


# --- Errors during the load, and Ctrl-C -------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tokenizer, tmp_path_factory):
    """A sweep whose first level outruns the fake server's budget (503s), stopped by SIGINT in the second."""
    work = tmp_path_factory.mktemp("interrupted")
    # The preflight takes one completion of the budget, the level's first two requests the rest.
    fake = FakeOpenAI(api_key=KEY, model=MODEL, first_token_s=0.01, token_s=0.01, max_requests=3)
    with serving(fake):
        command = [
            sys.executable, "-m", "tools.bench", "--endpoint", fake.url, "--concurrency", "1,2",
            "--requests", "4", "--input-tokens", "8", "--output-tokens", "2", "--tokenizer", str(tokenizer),
            "--json", str(work / "run.json"), "--keep", str(work / "aiperf"),
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, "VLLM_API_KEY": KEY}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            # As a terminal's shell starts it: a pytest started in the background of a non-interactive
            # shell (.ci/run's slow tests) ignores SIGINT, and its children inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            # The second level's config is written just before its aiperf starts (seconds of start-up).
            while not (work / "aiperf" / "concurrency-2.yaml").exists() and process.poll() is None:
                assert time.monotonic() < deadline, "the first level did not finish"
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        "code": process.returncode,
        "out": out,
        "err": err,
        "json": json.loads((work / "run.json").read_text()),
    }


@pytest.mark.slow
def test_errors_are_counted_by_http_status(interrupted):
    first = interrupted["json"]["levels"][0]
    assert first["requests"] == 4
    assert first["errors"] == {"503": 2}


@pytest.mark.slow
def test_ctrl_c_keeps_the_levels_measured_so_far(interrupted):
    assert interrupted["code"] == bench.EXIT_INTERRUPTED
    assert [level["concurrency"] for level in interrupted["json"]["levels"]] == [1]
    assert interrupted["json"]["interrupted"] is True
    assert "interrupted: 1 of 2 levels measured" in interrupted["err"]
    assert "Traceback" not in interrupted["err"]


@pytest.mark.slow
def test_an_https_endpoint_verified_with_its_ca_is_measured(tokenizer, tmp_path):
    cert, key = self_signed(tmp_path)
    fake = FakeOpenAI(api_key=KEY, model=MODEL, first_token_s=0.01, token_s=0.01)
    with serving(fake, tls=(cert, key)):
        code, out, err = run(
            *("--endpoint", fake.url, "--cacert", str(cert), "--concurrency", "1", "--requests", "2"),
            *("--input-tokens", "8", "--output-tokens", "2", "--tokenizer", str(tokenizer)),
            env={"VLLM_API_KEY": KEY},
        )
    assert code == bench.EXIT_OK, err
    assert out.splitlines()[2].split()[:2] == ["1", "2"]  # the level row: concurrency 1, 2 requests
    assert fake.completions == 3  # the streaming check, then both requests of the level


@pytest.mark.slow
def test_a_level_aiperf_cannot_run_is_one_line_naming_its_kept_log(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the kept work directory, cleaned by pytest
    with serving(FakeOpenAI(api_key=KEY, model=MODEL)) as fake:
        code, _, err = run(
            *("--endpoint", fake.url, "--concurrency", "1", "--requests", "1"),
            *("--tokenizer", str(tmp_path / "no-such-tokenizer")),
            env={"VLLM_API_KEY": KEY},
        )
    assert code == bench.EXIT_FAILED
    failure = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(failure) == 1 and "aiperf failed at concurrency 1" in failure[0] and "Traceback" not in err
    assert Path(failure[0].rsplit("(log: ", 1)[1].rstrip(")")).is_file()


# --- Bad input: one line each, before any load ------------------------------------------------------------


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_unreachable_endpoint_is_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run("--endpoint", f"http://127.0.0.1:{port}", env={"VLLM_API_KEY": KEY})
    assert code == bench.EXIT_CONFIG
    assert "cannot reach" in _one_line(err) and "connection failed" in err


def test_a_refused_key_is_one_line():
    with serving(FakeOpenAI(api_key=KEY, model=MODEL)) as fake:
        code, _, err = run("--endpoint", fake.url, "--api-key", "wrong-key")
    assert code == bench.EXIT_CONFIG
    assert "HTTP 401: unauthorized: the API key was refused" in _one_line(err)
    assert "wrong-key" not in err


def test_a_model_the_server_does_not_serve_is_one_line_naming_the_served_ones():
    with serving(FakeOpenAI(api_key=KEY, model=MODEL)) as fake:
        code, _, err = run("--endpoint", fake.url, "--model", "meta-llama/Nope", env={"VLLM_API_KEY": KEY})
    assert code == bench.EXIT_CONFIG
    assert f"model 'meta-llama/Nope' is not served by {fake.url}; it serves: {MODEL}" in _one_line(err)


def test_a_server_that_does_not_stream_is_one_line():
    with serving(FakeOpenAI(api_key=KEY, model=MODEL, streams=False, first_token_s=0, token_s=0)) as fake:
        code, _, err = run("--endpoint", fake.url, "--api", "completions", env={"VLLM_API_KEY": KEY})
    assert code == bench.EXIT_CONFIG
    assert "answered a streaming request without streaming" in _one_line(err)


def test_the_stacks_outputs_give_endpoint_key_and_model(tmp_path):
    with serving(FakeOpenAI(api_key=KEY, model=MODEL)) as fake:
        outputs = {"endpoint": fake.url, "apiKey": KEY, "model": "the-stacks-model"}
        script = tmp_path / "pulumi"
        script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{json.dumps(outputs)}'\n")
        script.chmod(0o755)
        code, _, err = run("--stack", "dev", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    # The key was taken (no 401) and the stack's model name asked for: this fake serves another.
    assert code == bench.EXIT_CONFIG
    assert "model 'the-stacks-model' is not served" in _one_line(err)


@pytest.mark.parametrize("levels", ["0,4", "1,x", "4,4", ""])
def test_concurrency_must_be_distinct_positive_integers(levels, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--endpoint", "http://h", "--concurrency", levels])
    assert exit_info.value.code == 2
    assert "distinct positive integers" in capsys.readouterr().err


def test_the_key_reaches_aiperf_by_environment_never_in_its_config(tmp_path):
    target = bench.Target("http://h", "secret-key", MODEL)
    args = bench.parse_args(["--endpoint", "http://h"])
    config = bench.aiperf_config(target, MODEL, args, 4, tmp_path)
    assert "secret-key" not in config
    assert json.loads(config)["benchmark"]["endpoint"]["api_key"] == "${" + bench.KEY_VARIABLE + "}"


# --- The knee ---------------------------------------------------------------------------------------------


def _level(
    concurrency: int, ttft_p95: float, rps: float, errors: dict[str, int] | None = None
) -> bench.Level:
    return bench.Level(concurrency, 64, errors or {}, {"p95": ttft_p95}, {}, {}, rps * 100, rps)


def test_the_knee_is_the_last_level_within_twice_the_lowest_ttft():
    levels = [_level(1, 50, 1), _level(4, 80, 3.8), _level(16, 95, 12), _level(64, 900, 14)]
    assert bench.knee(levels).concurrency == 16


def test_a_level_with_errors_is_never_the_knee():
    levels = [_level(1, 50, 1), _level(4, 60, 3.8, {"503": 1})]
    assert bench.knee(levels).concurrency == 1


def test_a_ttft_slo_moves_the_knee():
    levels = [_level(1, 50, 1), _level(4, 80, 3.8), _level(16, 300, 12)]
    assert bench.knee(levels, ttft_slo_ms=400).concurrency == 16


def test_a_knee_at_the_highest_level_says_it_may_lie_above():
    advice = bench.suggestion([_level(1, 50, 1), _level(4, 60, 3.9)], replicas=1, ttft_slo_ms=None)
    assert "may lie above it" in advice
    assert "may lie above" not in bench.suggestion(
        [_level(1, 50, 1), _level(4, 60, 3.9), _level(16, 500, 4)], replicas=1, ttft_slo_ms=None
    )


def test_the_suggestion_is_per_replica():
    advice = bench.suggestion([_level(1, 50, 1), _level(16, 90, 12)], replicas=4, ttft_slo_ms=None)
    assert "vllm:targetQpsPerReplica 3," in advice and "vllm:targetQueuePerReplica 4 (requests" in advice


def _source(replicas: int, bounds: tuple[int, int] | None) -> ReplicaSource:
    return ReplicaSource(
        platform="kubernetes", location="kind", scope="vllm", replicas=replicas, startup_seconds=600,
        groups=[], balancer="vllm-api", bounds=bounds,
    )  # fmt: skip


def test_a_stacks_fixed_replica_count_divides_the_suggestion():
    assert bench.stack_replicas(bench.Target("http://h", None, MODEL, replica_source=_source(3, None))) == 3


def test_an_autoscaled_stacks_count_is_not_assumed():
    source = _source(1, (1, 4))
    assert bench.stack_replicas(bench.Target("http://h", None, MODEL, replica_source=source)) is None


# --- A multi-turn workload with a shared prefix ------------------------------------------------------------


def test_a_conversation_config_is_one_aiperf_accepts(tmp_path, monkeypatch):
    from aiperf.config.loader.core import load_config_from_string

    monkeypatch.setenv(bench.KEY_VARIABLE, "k")
    args = bench.parse_args(
        ["--endpoint", "http://h", "--turns", "4", "--shared-prefix-tokens", "256", "--session-header", "x-s"]
    )
    text = bench.aiperf_config(bench.Target("http://h", "k", MODEL), MODEL, args, 4, tmp_path)
    dataset = json.loads(text)["benchmark"]["dataset"]
    assert (dataset["turns"], dataset["prefix_prompts"]) == (4, {"shared_system_length": 256})
    load_config_from_string(text)


@pytest.fixture(scope="module")
def conversations(tokenizer, tmp_path_factory):
    """Three-turn conversations with a shared system prompt and their id in x-session-id, as sent."""
    fake = FakeOpenAI(api_key=KEY, model=MODEL, first_token_s=0.01, token_s=0.01, max_requests=40)
    with serving(fake):
        code, _, err = run(
            *("--endpoint", fake.url, "--concurrency", "2", "--requests", "6", "--turns", "3"),
            *("--shared-prefix-tokens", "8", "--session-header", "x-session-id"),
            *("--input-tokens", "4", "--output-tokens", "2", "--tokenizer", str(tokenizer)),
            *("--keep", str(tmp_path_factory.mktemp("kept"))),
            env={"VLLM_API_KEY": KEY},
        )
    # The benchmark's requests, not the preflight's (which asks for no length).
    sent = [(headers, body) for headers, body in fake.received if body.get("max_completion_tokens") == 2]
    return {"code": code, "err": err, "sent": sent}


def test_each_conversation_carries_its_id_in_the_session_header(conversations):
    assert conversations["code"] == 0, conversations["err"]
    sessions: dict[str, list[dict]] = {}
    for headers, body in conversations["sent"]:
        sessions.setdefault(headers["x-session-id"], []).append(body)
    assert len(conversations["sent"]) == 6
    assert len(sessions) >= 2 and all(1 <= len(turns) <= 3 for turns in sessions.values())


def test_each_turn_resends_the_conversation_so_far(conversations):
    sessions: dict[str, list[list[dict]]] = {}
    for headers, body in conversations["sent"]:
        sessions.setdefault(headers["x-session-id"], []).append(body["messages"])
    for turns in sessions.values():
        for earlier, later in itertools.pairwise(turns):
            assert later[: len(earlier)] == earlier and len(later) == len(earlier) + 2


def test_every_conversation_opens_with_the_same_system_prompt(conversations):
    first = {json.dumps(body["messages"][0]) for _, body in conversations["sent"]}
    (system,) = first
    assert json.loads(system)["role"] == "system"
