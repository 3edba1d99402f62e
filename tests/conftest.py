"""The suite never reaches the Hugging Face Hub: by default the model lookup is offline with an empty
cache (the program warns and falls back to the config, as on a machine without network); ``fake_hub``
serves the presets' models from 127.0.0.1 instead. ``nspawn`` and ``fleet`` give the boot test files
(tests/test_boot*.py) their machines."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import model_facts
from tests.boot import machine as boot
from tools.fakes_hub import FakeHub


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml): two workers per core. About half of the suite's time is waiting on
    real processes (scripts, fake servers, polls), which a second worker per core fills: on a shared 2-core
    machine the test command took 84 s and 102 s with four workers against 116 s and 113 s with two."""
    return 2 * len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True, scope="session")
def offline_session() -> Iterator[None]:
    """Offline with no cache for the module- and session-scoped fixtures too, which run before any test's
    own fixtures: without it their runs of the program asked the real Hub."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv(model_facts.CACHE_ENV, "")  # no cache (components/model_facts.py cache_dir)
        patch.delenv("HF_ENDPOINT", raising=False)
        yield


@pytest.fixture(autouse=True)
def offline_model_lookup(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(model_facts.CACHE_ENV, str(tmp_path / "model-facts"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


@pytest.fixture
def fake_hub(monkeypatch) -> Iterator[FakeHub]:
    """A fake Hub serving the presets' models, with the lookup online and pointed at it."""
    with FakeHub() as hub:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


@pytest.fixture(scope="session")
def nspawn() -> None:
    """The tools and root a booted machine needs, and the cached rootfs (built on first use)."""
    missing = boot.missing_tools()
    reason = (
        f"the boot tests need root and {', '.join(boot.TOOLS)}; missing: {', '.join(missing)}"
        if missing
        else "the boot tests need root"
        if os.geteuid() != 0
        else ""
    )
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI runs them: .ci/run installs debootstrap and systemd-container)")
        pytest.skip(reason)
    boot.rootfs()


@pytest.fixture
def fleet(nspawn: None, tmp_path: Path) -> Iterator[boot.Fleet]:
    """The test's machines, torn down after it (tests/boot/machine.py Fleet)."""
    with boot.fleet(tmp_path) as machines:
        yield machines
