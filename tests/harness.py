"""The test-facing entry to ``tools.mockrun``: run the real program under Pulumi's mock runtime.

Within a pytest session, a run that succeeded is reused by every later test asking for the same run: same
stack, config, secrets, preview and fake-outputs flags, the same process environment (HF_HUB_OFFLINE,
HF_ENDPOINT...) and the same model-facts cache contents. Each caller gets its own deep copy. A run that
raises is never reused (each caller gets the program's own error, ``declared_resources`` included). Reuse
is off for a test that patches anything the program may read or that watches what it logs
(``conftest.py`` decides per test, from the fixtures it uses), and outside pytest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from components import model_facts
from tools import mockrun
from tools.mockrun import ROOT, Invoke, Resource, Run

__all__ = ["ROOT", "Invoke", "Resource", "Run", "run_program"]

#: Fixtures whose presence means a test changes what the program reads (module attributes, environment,
#: a fake Hub) or watches what it logs, which a reused run would not log again.
NOT_REUSABLE_WITH = frozenset({"monkeypatch", "caplog", "capsys", "capfd", "capsysbinary", "capfdbinary"})

#: Set per test by conftest.py: whether the test in progress may reuse runs.
reuse = False

_runs: dict[str, Run] = {}


def run_program(
    stack: str,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    preview: bool = False,
    fake_outputs: bool = True,
) -> Run:
    """``tools.mockrun.run_program``, reusing an earlier identical run of this session where allowed."""
    if not reuse:
        return mockrun.run_program(stack, config, secrets, preview, fake_outputs)
    key = _key(stack, config or {}, secrets or {}, preview, fake_outputs)
    if key not in _runs:
        _runs[key] = mockrun.run_program(stack, config, secrets, preview, fake_outputs)
    return copy.deepcopy(_runs[key])


def _key(
    stack: str, config: Mapping[str, Any], secrets: Mapping[str, str], preview: bool, fake_outputs: bool
) -> str:
    """Everything the program's behaviour depends on besides its own code: the config as the program sees
    it, the whole environment, the working directory, and the model-facts cache by content (its path is a
    fresh temporary directory in each test)."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}
    cache = model_facts.cache_dir()
    if cache is not None and model_facts.CACHE_ENV in environment:
        environment[model_facts.CACHE_ENV] = "<a directory>"
    facts = {}
    if cache is not None and cache.is_dir():
        facts = {
            str(path.relative_to(cache)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(cache.rglob("*"))
            if path.is_file()
        }
    return json.dumps(
        {
            "stack": stack,
            "config": {key: mockrun._config_text(value) for key, value in config.items()},
            "secrets": {key: mockrun._config_text(value) for key, value in secrets.items()},
            "preview": preview,
            "fake_outputs": fake_outputs,
            "environment": environment,
            "cwd": os.getcwd(),
            "model_facts": facts,
        },
        sort_keys=True,
    )
