"""Shared fixtures: scripted models registered under a spec, isolated agentrt home and stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt.models import registry
from agentrt.models.scripted import ScriptedChatModel
from agentrt.trajectory_store import TrajectoryStore


@pytest.fixture
def scripted() -> Iterator[Callable[..., str]]:
    """Register a scripted model; returns its spec for ``configurable.model``."""
    specs: list[str] = []

    def make(script: Any, **kwargs: Any) -> str:
        spec = f"scripted-{uuid.uuid4().hex[:8]}"
        registry.register(spec, ScriptedChatModel(spec=spec, script=script, **kwargs))
        specs.append(spec)
        return spec

    yield make
    for spec in specs:
        registry.unregister(spec)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TrajectoryStore]:
    s = TrajectoryStore(tmp_path / "trajectories.sqlite")
    yield s
    s.close()


@pytest.fixture(scope="session")
def small_real_index(tmp_path_factory):
    """A real MiniLM + FAISS index over the paragraphs of 20 HotpotQA records (~200 documents)."""
    from agentrt.qa.data import hotpotqa_path
    from agentrt.retrieval.corpus import hotpotqa_corpus
    from agentrt.retrieval.index import VectorIndex

    lines = hotpotqa_path().read_text().splitlines()[:20]
    source = tmp_path_factory.mktemp("hp") / "hp20.jsonl"
    source.write_text("\n".join(lines) + "\n")
    folder = tmp_path_factory.mktemp("idx") / "index"
    with VectorIndex.create(folder, "minilm", kind="flat", hybrid=True) as index:
        index.add(hotpotqa_corpus(source))
        index.save()
    return folder, source
