"""The suite never reaches the Hugging Face Hub: by default the model lookup is offline with an empty
cache (the program warns and falls back to the config, as on a machine without network); ``fake_hub``
serves the presets' models from 127.0.0.1 instead."""

from collections.abc import Iterator

import pytest

from components import model_facts
from tests import harness
from tools.fakes_hub import FakeHub


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of the test (module-scoped ones run programs too): may it reuse runs?"""
    harness.reuse = not harness.NOT_REUSABLE_WITH & set(getattr(item, "fixturenames", ()))


@pytest.fixture(autouse=True)
def offline_model_lookup(tmp_path) -> Iterator[None]:
    # Its own MonkeyPatch, not the fixture: a test asking for ``monkeypatch`` is one that patches more.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv(model_facts.CACHE_ENV, str(tmp_path / "model-facts"))
        patch.delenv("HF_ENDPOINT", raising=False)
        yield


@pytest.fixture
def fake_hub(monkeypatch) -> Iterator[FakeHub]:
    """A fake Hub serving the presets' models, with the lookup online and pointed at it."""
    with FakeHub() as hub:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
