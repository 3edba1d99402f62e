"""The VM boot script shared by GCP and AWS: linted, and run with fake cloud CLIs and a fake docker."""

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import platforms, scripts
from components import vm as bootstrap_vm
from components.launch import LaunchSpec, launch_spec
from components.service_spec import ServiceSpec
from components.spec import build_spec
from components.vm import bootstrap_script
from policy import validators as policy_validators

SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"
API_KEY, HF_TOKEN = "sk-test-key-456", "hf_testtoken123"
MIRRORED = "us-central1-docker.pkg.dev/test-project/vllm-gcp-h100-dockerhub/vllm/vllm-openai:v0.33.0"
#: A script run here takes well under a second; the deadline only ends a hung one, so it holds on a loaded CI
#: machine.
SCRIPT_DEADLINE_SECONDS = 120


def shellcheck(text: str) -> subprocess.CompletedProcess:
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else "shellcheck"
    return subprocess.run(
        [binary, "-s", "bash", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=SCRIPT_DEADLINE_SECONDS,
    )


def health_report(spec: ServiceSpec, launch: LaunchSpec) -> list[str]:
    """How the stack's own platform learns the health agent's verdict."""
    if spec.cloud == "gcp":
        from components.gcp.machine import health_report as gcp_report

        return gcp_report(launch)
    from components.aws.machines import health_report as aws_report

    return aws_report(spec)


def metrics_agent(spec: ServiceSpec, launch: LaunchSpec) -> list[str]:
    """The metrics agent's flags where the stack's platform runs one (AWS)."""
    if spec.cloud != "aws":
        return []
    from components.aws import metrics

    return metrics.agent_args(spec, launch)


def rendered(stack: str, role: str = "serve", hf: bool = True, weight_cache_url: str = "", **config) -> str:
    spec = build_spec(stack, config)
    launch = launch_spec(spec, has_hf_token=hf)
    return bootstrap_script(
        spec,
        launch,
        api_key_secret=f"{spec.name}-api-key",
        hf_token_secret=f"{spec.name}-hf-token" if hf else None,
        role=role,
        ray_env={"RAY_HEAD_ADDRESS": "10.0.0.2", "RAY_EXPECTED_NODES": "2"} if role != "serve" else None,
        health_report=health_report(spec, launch),
        metrics_agent=metrics_agent(spec, launch),
        weight_cache_url=weight_cache_url,
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    """Fake gcloud, aws and docker on PATH; docker records its argv; paths redirected into tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "gcloud": (
            f'case "$*" in *api-key*) echo {API_KEY};; *hf-token*) echo {HF_TOKEN};; '
            f'auth\\ configure-docker*) echo "$*" >> {tmp_path}/gcloud-calls;; *) exit 1;; esac'
        ),
        "curl": f'echo "$*" >> {tmp_path}/curl-calls; echo {MIRRORED}',
        "aws": f'case "$*" in *api-key*) echo {API_KEY};; *hf-token*) echo {HF_TOKEN};; *) exit 1;; esac',
        "docker": f'printf "%s\\n" "$@" > {tmp_path}/docker-argv',
        "nvidia-smi": 'echo "NVIDIA H100 80GB HBM3"',
        "nvidia-ctk": "true",
        "systemctl": f'echo "$*" >> {tmp_path}/systemctl-calls',
        "dpkg": "true",  # every package asked about is installed (the Ops Agent on GCP)
    }
    for name, body in fakes.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VLLM_SECRETS_FILE": str(tmp_path / "run" / "secrets.env"),
        "VLLM_INSTALL_DIR": str(tmp_path / "opt"),
        "VLLM_HF_CACHE": str(tmp_path / "cache"),
        "VLLM_UNIT_FILE": str(tmp_path / "vllm.service"),
        "VLLM_AGENT_UNIT_FILE": str(tmp_path / "vllm-health.service"),
        "VLLM_OPS_AGENT_CONFIG": str(tmp_path / "ops-agent" / "config.yaml"),
        "VLLM_METRICS_UNIT_FILE": str(tmp_path / "vllm-metrics.service"),
        # local_nvme.sh finds no local disk here, whatever the machine running the tests has
        "LOCAL_NVME_BY_ID": str(tmp_path / "no-disks"),
        "LOCAL_NVME_DLAMI": str(tmp_path / "dlami-nvme"),
        "LOCAL_NVME_ROOT": str(tmp_path / "nvme"),
        "TMP": str(tmp_path),
    }


def run_script(text: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    script = Path(env["TMP"]) / "boot.sh"
    script.write_text(text)
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=SCRIPT_DEADLINE_SECONDS
    )


@pytest.mark.parametrize("role", ["serve", "ray-head", "ray-worker"])
@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_the_rendered_script_passes_shellcheck(stack, role):
    result = shellcheck(rendered(stack, role))
    assert result.returncode == 0, result.stdout


def test_the_script_names_secrets_but_never_holds_them():
    text = rendered("gcp-h100")
    assert "vllm-gcp-h100-api-key" in text
    assert API_KEY not in text and HF_TOKEN not in text


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_secrets_are_read_from_the_store_into_a_root_only_env_file(sandbox, stack):
    result = run_script(rendered(stack), sandbox, "secrets")
    assert result.returncode == 0, result.stderr
    secrets_file = Path(sandbox["VLLM_SECRETS_FILE"])
    assert secrets_file.read_text() == f"VLLM_API_KEY={API_KEY}\nHF_TOKEN={HF_TOKEN}\n"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert API_KEY not in result.stdout + result.stderr and HF_TOKEN not in result.stdout + result.stderr


def test_open_models_read_only_the_api_key(sandbox):
    assert run_script(rendered("gcp-h100", hf=False), sandbox, "secrets").returncode == 0
    assert Path(sandbox["VLLM_SECRETS_FILE"]).read_text() == f"VLLM_API_KEY={API_KEY}\n"


def test_the_container_runs_pinned_with_gpus_shared_memory_and_the_secret_env_file(sandbox):
    result = run_script(rendered("gcp-h100"), sandbox, "run")
    assert result.returncode == 0, result.stderr
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    assert argv[:2] == ["run", "--name"]
    assert {"--gpus", "--ipc=host", "--network"} <= set(argv)
    assert argv[argv.index("--env-file") + 1] == sandbox["VLLM_SECRETS_FILE"]
    image_at = argv.index("vllm/vllm-openai:v0.33.0")
    assert argv[image_at - 1] == "vllm"  # --entrypoint vllm
    assert argv[image_at + 1 : image_at + 3] == ["serve", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"]
    assert API_KEY not in argv and HF_TOKEN not in argv


# --- the image's pull beside the weights' fetch ------------------------------------------------------------

#: A shell wait for a file, with a deadline (60 s), for the fakes below: it fails, and says so in the file
#: gave-up, when the file never comes.
WAIT_FOR = (
    'for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "$1" >> "$TMP/gave-up"; return 1'
)


def fake(sandbox: dict[str, str], path: Path, body: str) -> None:
    """An executable fake at ``path``, with ``wait_for FILE`` (WAIT_FOR) defined."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/usr/bin/env bash\nwait_for() {{ {WAIT_FOR}; }}\n{body}\n")
    path.chmod(0o755)


def bucket_boot(sandbox: dict[str, str], fetch: str, docker: str) -> subprocess.CompletedProcess:
    """Runs a single-node replica's ``run`` with the stack's bucket: ``fetch`` is weight_cache.sh's body,
    ``docker`` the docker CLI's (``$1`` its command); docker records each ``run`` in docker-runs."""
    tmp = Path(sandbox["TMP"])
    install = Path(sandbox["VLLM_INSTALL_DIR"])
    fake(sandbox, install / "weight_cache.sh", fetch)
    fake(sandbox, install / "compile_cache.sh", "true")
    fake(sandbox, tmp / "bin" / "docker", f'{docker}\n[ "$1" != run ] || echo run >> {tmp}/docker-runs')
    return run_script(rendered("gcp-h100", weight_cache_url="gs://bucket"), sandbox, "run")


def test_the_image_is_pulled_while_the_weights_are_fetched_and_vllm_runs_after_both(sandbox):
    """The fake pull and the fake fetch each wait for the other to have started: one after the other, the
    first would give up after its deadline."""
    tmp = sandbox["TMP"]
    result = bucket_boot(
        sandbox,
        fetch=f"touch {tmp}/fetching; wait_for {tmp}/pulling",
        docker=f'case "$1" in image) exit 1;; pull) touch {tmp}/pulling; wait_for {tmp}/fetching;; esac',
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (Path(tmp) / "gave-up").exists()
    assert (Path(tmp) / "docker-runs").read_text() == "run\n"


def test_a_failed_image_pull_fails_the_start_before_vllm_runs(sandbox):
    result = bucket_boot(sandbox, fetch="true", docker='case "$1" in image|pull) exit 1;; esac')
    assert result.returncode != 0
    assert "pulling vllm/vllm-openai:v0.33.0 failed" in result.stdout
    assert not (Path(sandbox["TMP"]) / "docker-runs").exists()


def test_a_failed_weights_fetch_fails_the_start_before_vllm_runs(sandbox):
    result = bucket_boot(sandbox, fetch="exit 1", docker='case "$1" in image) exit 1;; esac')
    assert result.returncode != 0
    assert "the model's files could not be fetched" in result.stdout
    assert not (Path(sandbox["TMP"]) / "docker-runs").exists()


def test_an_image_already_on_the_machine_is_not_pulled_again(sandbox):
    """A restart of the unit (or a reboot): `docker run` alone would not pull it either, so a registry that
    is down then does not stop a replica whose image is here."""
    tmp = sandbox["TMP"]
    result = bucket_boot(sandbox, fetch="true", docker=f'[ "$1" != pull ] || echo pull >> {tmp}/pulls')
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (Path(tmp) / "pulls").exists()


def test_a_ray_head_runs_the_ray_bootstrap_with_vllm_as_its_command(sandbox):
    assert run_script(rendered("gcp-h100-multinode", "ray-head"), sandbox, "run").returncode == 0
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    at = argv.index("/opt/vllm/ray_bootstrap.sh")
    assert argv[at + 1 : at + 5] == ["head", "--", "vllm", "serve"]
    assert "RAY_HEAD_ADDRESS=10.0.0.2" in argv


def test_a_ray_worker_runs_the_ray_bootstrap_and_carries_no_vllm_command(sandbox):
    script = rendered("gcp-h100-multinode", "ray-worker")
    assert "VLLM_ARGV=()" in script.splitlines()  # vLLM runs on the head only
    assert run_script(script, sandbox, "run").returncode == 0
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    assert argv[argv.index("/opt/vllm/ray_bootstrap.sh") + 1 :] == ["worker"]


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_each_role_carries_its_own_hooks_only(stack):
    serve, head = (scripts.without_comments(rendered(stack, role)) for role in ("serve", "ray-head"))
    assert "RAY_ENV=" not in serve and "ray_bootstrap.sh" not in serve
    assert "vllm_argv()" in serve and "compile_cache()" in serve
    assert "RAY_ENV=" in head and "vllm_argv()" not in head and "compile_cache()" not in head


def test_an_unreadable_secret_store_fails_with_a_clear_message(sandbox):
    fakes = Path(sandbox["PATH"].split(":")[0])
    (fakes / "gcloud").write_text("#!/usr/bin/env bash\nexit 1\n")
    (fakes / "sleep").write_text("#!/usr/bin/env bash\n")  # the retries' pauses are real waits otherwise
    (fakes / "sleep").chmod(0o755)
    result = run_script(rendered("gcp-h100"), sandbox, "secrets")
    assert result.returncode != 0
    assert "cannot read secrets" in result.stdout


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_the_policy_packs_secret_scan_finds_nothing_in_the_script(stack):
    assert policy_validators.secrets_in_text(rendered(stack)) == []


def test_boot_installs_a_self_restarting_unit_that_reads_secrets_at_every_start(sandbox):
    result = run_script(rendered("gcp-h100"), sandbox, "boot")
    assert result.returncode == 0, result.stdout + result.stderr
    unit = Path(sandbox["VLLM_UNIT_FILE"]).read_text()
    install_dir = sandbox["VLLM_INSTALL_DIR"]
    assert "Restart=always" in unit
    assert f"ExecStartPre={install_dir}/vm_bootstrap.sh secrets" in unit
    assert f"ExecStart={install_dir}/vm_bootstrap.sh run" in unit
    calls = (Path(sandbox["TMP"]) / "systemctl-calls").read_text().splitlines()
    assert calls[-3:] == ["daemon-reload", "enable vllm.service", "restart vllm.service"]


@pytest.mark.parametrize("stack", ["gcp-h100", "aws-h100"])
def test_stopping_the_unit_lets_vllm_finish_its_requests_before_anything_kills_it(sandbox, stack):
    # vLLM aborts every request in flight on SIGTERM unless --shutdown-timeout (vllm-project/vllm#36666);
    # docker stop SIGKILLs after --time, systemd after TimeoutStopSec (default 90 s): each must outlast
    # the one before, and the drain is the longest request the VM load balancers let run (3,600 s).
    assert run_script(rendered(stack), sandbox, "boot").returncode == 0
    unit = dict(
        line.split("=", 1) for line in Path(sandbox["VLLM_UNIT_FILE"]).read_text().splitlines() if "=" in line
    )
    assert run_script(rendered(stack), sandbox, "run").returncode == 0
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    drain = int(argv[len(argv) - 1 - argv[::-1].index("--shutdown-timeout") + 1])  # the last one wins
    docker_stop = unit["ExecStop"].split()
    assert docker_stop[:3] == ["/usr/bin/docker", "stop", "--time"]
    assert drain == bootstrap_vm.DRAIN_SECONDS == 3600
    assert drain < int(docker_stop[3]) < int(unit["TimeoutStopSec"])


def test_the_drain_wins_over_a_shutdown_timeout_in_extra_args():
    # argparse keeps the last value; the stop timeouts above are sized for this one.
    text = rendered("aws-h100", **{"vllm:extraArgs": ["--shutdown-timeout", "5"]})
    (line,) = [line for line in text.splitlines() if line.startswith("VLLM_ARGV=(")]
    assert line.endswith("--shutdown-timeout 5 --shutdown-timeout 3600)")


@pytest.mark.parametrize("role", ["ray-head", "ray-worker"])
def test_boot_unpacks_the_ray_bootstrap_for_ray_roles_without_the_other_roles_half(sandbox, role):
    assert run_script(rendered("gcp-h100-multinode", role), sandbox, "boot").returncode == 0
    unpacked = (Path(sandbox["VLLM_INSTALL_DIR"]) / "ray_bootstrap.sh").read_text()
    other = bootstrap_vm.RAY_OTHER_ROLE_FUNCTIONS[role]
    assert unpacked == bootstrap_vm.shipped("ray_bootstrap.sh", other)  # the source less comments, half
    assert not any(f"{function}() {{" in unpacked for function in other)


def bash_parse(text: str) -> str:
    """The program bash reads from ``text``, as bash prints it back (no command runs)."""
    return subprocess.run(
        ["bash", "--pretty-print", "/dev/stdin"], input=text, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("name", ["ray_bootstrap.sh", "weight_cache.sh", "local_nvme.sh", "compile_cache.sh"])
def test_a_shipped_shell_script_is_the_program_of_its_source(name):
    """Unindented, but the same program: quoted strings and heredocs' bodies (embedded Python) untouched."""
    source = scripts.without_comments(scripts.source(name))
    shipped = bootstrap_vm.shipped(name)
    assert bash_parse(shipped) == bash_parse(source)
    assert len(shipped) < len(source)


def test_a_gcp_vm_pulls_the_image_through_the_mirror_its_metadata_names(sandbox):
    spec = build_spec("gcp-h100", {})
    launch = launch_spec(spec, has_hf_token=True)
    text = bootstrap_script(
        spec,
        launch,
        api_key_secret="k",
        hf_token_secret=None,
        image_metadata_key="vllm-image",
        health_report=health_report(spec, launch),
    )
    result = run_script(text, sandbox, "run")
    assert result.returncode == 0, result.stderr
    argv = (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    assert MIRRORED in argv and "vllm/vllm-openai:v0.33.0" not in argv
    (curl,) = (Path(sandbox["TMP"]) / "curl-calls").read_text().splitlines()
    assert "Metadata-Flavor: Google" in curl and curl.endswith("/instance/attributes/vllm-image")
    gcloud = (Path(sandbox["TMP"]) / "gcloud-calls").read_text().splitlines()
    assert gcloud == ["auth configure-docker us-central1-docker.pkg.dev --quiet"]


def test_without_a_mirror_the_rendered_image_is_pulled_and_no_metadata_is_read(sandbox):
    assert run_script(rendered("aws-h100"), sandbox, "run").returncode == 0
    assert "vllm/vllm-openai:v0.33.0" in (Path(sandbox["TMP"]) / "docker-argv").read_text().splitlines()
    assert not (Path(sandbox["TMP"]) / "curl-calls").exists()


def docker_argv(env: dict[str, str]) -> list[str]:
    return (Path(env["TMP"]) / "docker-argv").read_text().splitlines()


def log_options(argv: list[str]) -> dict[str, str]:
    return dict(argv[at + 1].split("=", 1) for at, word in enumerate(argv) if word == "--log-opt")


def test_a_gcp_container_logs_to_cloud_logging_without_its_command_or_environment(sandbox):
    assert run_script(rendered("gcp-h100"), sandbox, "run").returncode == 0
    argv = docker_argv(sandbox)
    assert argv[argv.index("--log-driver") + 1] == "gcplogs"
    assert log_options(argv) == {"gcp-log-cmd": "false"}  # no env option: the secrets stay out of the log


def test_an_aws_container_logs_to_the_stacks_group_in_a_stream_named_for_its_instance(sandbox):
    calls = Path(sandbox["TMP"]) / "imds-calls"
    fake_curl = Path(sandbox["PATH"].split(":")[0]) / "curl"
    fake_curl.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *api/token*) echo imds-token;;'
        ' *"token: imds-token"*instance-id) echo i-0123456789abcdef0;; *) exit 22;; esac\n'
    )
    spec = build_spec("aws-h100", {})
    launch = launch_spec(spec, has_hf_token=False)
    text = bootstrap_script(
        spec,
        launch,
        api_key_secret=f"{spec.name}/api-key",
        hf_token_secret=None,
        log_group="/vllm/vllm-aws-h100",
        health_report=health_report(spec, launch),
    )
    assert shellcheck(text).returncode == 0
    result = run_script(text, sandbox, "run")
    assert result.returncode == 0, result.stderr
    argv = docker_argv(sandbox)
    assert argv[argv.index("--log-driver") + 1] == "awslogs"
    assert log_options(argv) == {
        "awslogs-region": "us-east-1",
        "awslogs-group": "/vllm/vllm-aws-h100",
        "awslogs-stream": "i-0123456789abcdef0",
    }
    assert "-X PUT http://169.254.169.254/latest/api/token" in calls.read_text()  # IMDSv2


def test_an_aws_container_without_a_log_group_keeps_dockers_default_log(sandbox):
    assert run_script(rendered("aws-h100"), sandbox, "run").returncode == 0
    assert "--log-driver" not in docker_argv(sandbox)


def test_a_gcp_vm_has_the_ops_agent_scrape_vllms_metrics_locally_as_the_stacks_job(sandbox):
    result = run_script(rendered("gcp-h100"), sandbox, "boot")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(Path(sandbox["VLLM_OPS_AGENT_CONFIG"]).read_text())
    receiver = config["metrics"]["receivers"]["vllm"]
    assert receiver["type"] == "prometheus"
    (scrape,) = receiver["config"]["scrape_configs"]
    assert scrape["job_name"] == "vllm-gcp-h100"
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"] == [{"targets": ["localhost:8000"]}]
    assert config["metrics"]["service"]["pipelines"]["vllm"]["receivers"] == ["vllm"]
    assert "restart google-cloud-ops-agent" in (Path(sandbox["TMP"]) / "systemctl-calls").read_text()


def test_a_gcp_vm_without_the_ops_agent_installs_it_from_googles_repository_script(sandbox):
    bin_dir = Path(sandbox["PATH"].split(":")[0])
    (bin_dir / "dpkg").write_text("#!/usr/bin/env bash\nexit 1\n")
    installer_ran = Path(sandbox["TMP"]) / "installer-ran"
    # A curl that saves, for -o FILE, an installer that records it ran with --also-install.
    (bin_dir / "curl").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {sandbox["TMP"]}/curl-calls\n'
        'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then\n'
        f'  echo \'echo "$@" > {installer_ran}\' > "$2"; fi; shift; done\n'
    )
    result = run_script(rendered("gcp-h100"), sandbox, "boot")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh"
        in (Path(sandbox["TMP"]) / "curl-calls").read_text()
    )
    assert installer_ran.read_text().split() == ["--also-install"]
    assert Path(sandbox["VLLM_OPS_AGENT_CONFIG"]).exists()


@pytest.mark.parametrize(("stack", "role"), [("aws-h100", "serve"), ("gcp-h100-multinode", "ray-worker")])
def test_no_metrics_agent_where_nothing_serves_metrics_to_cloud_monitoring(sandbox, stack, role):
    assert run_script(rendered(stack, role), sandbox, "boot").returncode == 0
    assert not Path(sandbox["VLLM_OPS_AGENT_CONFIG"]).exists()


@pytest.mark.parametrize(("stack", "role"), [("aws-h100", "serve"), ("aws-h200-multinode", "ray-head")])
def test_an_aws_vm_that_serves_runs_the_metrics_agent_as_a_restarting_unit(sandbox, stack, role):
    result = run_script(rendered(stack, role), sandbox, "boot")
    assert result.returncode == 0, result.stdout + result.stderr
    unpacked = Path(sandbox["VLLM_INSTALL_DIR"]) / "metrics_agent.py"
    shipped = bootstrap_vm.shipped_python("metrics_agent.py")  # the same program, one space a level
    assert ast.dump(ast.parse(unpacked.read_text())) == ast.dump(ast.parse(shipped))
    unit = Path(sandbox["VLLM_METRICS_UNIT_FILE"]).read_text()
    assert "Restart=always" in unit
    assert f"ExecStart=/usr/bin/python3 {unpacked} --namespace vLLM/" in unit
    calls = (Path(sandbox["TMP"]) / "systemctl-calls").read_text().splitlines()
    assert "enable vllm-metrics.service" in calls and "restart vllm-metrics.service" in calls
    assert calls.index("restart vllm-metrics.service") < calls.index("restart vllm.service")


@pytest.mark.parametrize(("stack", "role"), [("aws-h200-multinode", "ray-worker"), ("gcp-h100", "serve")])
def test_no_metrics_agent_where_no_api_server_runs_or_the_ops_agent_collects(sandbox, stack, role):
    assert run_script(rendered(stack, role), sandbox, "boot").returncode == 0
    assert not Path(sandbox["VLLM_METRICS_UNIT_FILE"]).exists()
    assert not (Path(sandbox["VLLM_INSTALL_DIR"]) / "metrics_agent.py").exists()


@pytest.mark.parametrize("name", ["health_agent.py", "metrics_agent.py"])
def test_a_shipped_python_agent_is_smaller_without_its_docstrings_and_still_runs(tmp_path, name):
    from components import scripts

    shipped = tmp_path / name
    shipped.write_text(bootstrap_vm.shipped_python(name))
    assert len(shipped.read_text()) < 0.9 * len(scripts.source(name)) and '"""' not in shipped.read_text()
    result = subprocess.run(
        [sys.executable, str(shipped), "--help"],
        capture_output=True,
        text=True,
        timeout=SCRIPT_DEADLINE_SECONDS,
    )
    assert result.returncode == 0 and "usage:" in result.stdout


# --- the platforms' hooks ----------------------------------------------------------------------------------

HOOK = re.compile(r"\bplatform_[a-z_]+\b")


def vm_platforms() -> list[platforms.Platform]:
    return [platform for platform in platforms.registered() if platform.vm_hooks is not None]


def defined_functions(script: str) -> set[str]:
    return set(re.findall(r"^([a-z_]+)\(\) \{", script, re.MULTILINE))


def test_the_gcp_and_aws_backends_ship_vm_hooks():
    assert {platform.name for platform in vm_platforms()} == {"gcp", "aws"}


@pytest.mark.parametrize("platform", vm_platforms(), ids=lambda platform: platform.name)
def test_each_vm_platforms_hooks_define_every_hook_the_boot_script_calls(platform):
    code = scripts.MARKER.sub("", scripts.without_comments(scripts.source("vm_bootstrap.sh")))
    called = set(HOOK.findall(code))
    assert called == {
        "platform_read_secret",
        "platform_resolve_image",
        "platform_log_args",
        "platform_install_metrics",
    }
    assert platform.vm_hooks is not None
    assert {
        name for name in defined_functions(scripts.source(platform.vm_hooks)) if HOOK.match(name)
    } == called


@pytest.mark.parametrize(
    ("stack", "own", "other"),
    [
        ("gcp-h100", "gcloud secrets", "aws secretsmanager"),
        ("aws-h100", "aws secretsmanager", "gcloud secrets"),
    ],
)
def test_a_rendered_script_carries_its_platforms_hooks_and_no_others(stack, own, other):
    text = rendered(stack)
    assert text.count("\nplatform_read_secret() {\n") == 1
    assert own in text and other not in text


def test_a_platform_without_vms_has_no_hooks_to_render():
    spec = build_spec("k8s-h100", {})
    with pytest.raises(ValueError, match="no VM hooks"):
        bootstrap_vm.platform_hooks(spec, region="")


def test_an_included_script_goes_in_as_is_on_its_markers_line(tmp_path):
    (template := tmp_path / "t.sh").write_text("#!/usr/bin/env bash\n{{hooks}}\nf\n")
    rendered_text = scripts.render(template, hooks=scripts.Included("f() { echo 'a b'; }\n"))
    assert rendered_text == "#!/usr/bin/env bash\nf() { echo 'a b'; }\nf\n"


def test_an_included_script_is_refused_inside_a_line(tmp_path):
    (template := tmp_path / "t.sh").write_text("#!/usr/bin/env bash\nX={{hooks}}\n")
    with pytest.raises(ValueError, match="on a line of its own"):
        scripts.render(template, hooks=scripts.Included("f() { :; }"))
