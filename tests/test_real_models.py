"""Through the real embedded models: the README's promise, streaming, the second catalog model,
the llama.cpp backend (when its extra is installed), and damaged weight files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from agentrt.tools import calculator
from langchain_core.messages import HumanMessage

from agentrt.models import weights
from agentrt.models.base import ModelError
from agentrt.models.registry import load_model

pytestmark = pytest.mark.model
QWEN = "local:qwen2.5-coder-0.5b"
needs_llamacpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="extra not installed: pip install 'agentrt[llamacpp]'")


def test_readme_run_command_answers_395_through_the_calculator(tmp_path):
    db = tmp_path / "t.sqlite"
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "agentrt", "run", "What is 17 * 23 + 4?", "--store", str(db), "--checkpoints", str(tmp_path / "cp.sqlite")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "→ calculator" in proc.stdout and "395" in proc.stdout
    export = subprocess.run([sys.executable, "-m", "agentrt", "traj", "export", "--store", str(db)], capture_output=True, text=True, check=True)
    (record,) = [json.loads(line) for line in export.stdout.splitlines()]
    assert record["status"] == "completed" and record["model"] == QWEN
    assert [c["name"] for c in record["tool_calls"]] == ["calculator"] and record["tool_calls"][0]["result"] == "395"
    assert "395" in record["final_answer"]
    assert record["usage"]["input_tokens"] > 100 and record["usage"]["output_tokens"] > 0


def test_tokens_stream_and_samples_differ():
    model = load_model(QWEN, max_tokens=24)
    chunks = [c.content for c in model.stream([HumanMessage("Count from 1 to 10, separated by commas.")])]
    assert len([c for c in chunks if c]) > 3 and "1, 2, 3" in "".join(chunks)
    samples = model.sample([HumanMessage("Name one animal.")], n=3, temperature=1.0, seed=7)
    assert len(samples) == 3 and all(s.content for s in samples)
    assert all(s.usage_metadata["output_tokens"] > 0 for s in samples)


def test_tool_call_json_from_the_model_is_parsed():
    reply = load_model(QWEN).bind_tools([calculator]).invoke([HumanMessage("Use the calculator: what is 123 * 456?")])
    assert [c["name"] for c in reply.tool_calls] == ["calculator"]
    assert "123" in reply.tool_calls[0]["args"]["expression"]


def test_smollm2_loads_and_generates():
    reply = load_model("local:smollm2-135m", max_tokens=12).invoke([HumanMessage("Say hello.")])
    assert isinstance(reply.content, str) and reply.content.strip()
    assert reply.usage_metadata["output_tokens"] > 0


@needs_llamacpp
@pytest.mark.model
def test_sampled_token_ids_and_logprobs_are_recorded():
    """The transformers backend keeps what it sampled as token ids, and their log-probabilities
    when asked (``configurable.logprobs``), so training and critics need not guess."""
    m = load_model("local:smollm2-135m", max_tokens=6, logprobs=True)
    reply = m.invoke("Say hi")
    ids, logprobs = reply.response_metadata["token_ids"], reply.response_metadata["logprobs"]
    assert len(ids) == len(logprobs) == reply.usage_metadata["output_tokens"] and all(lp <= 0 for lp in logprobs)
    plain = load_model("local:smollm2-135m", max_tokens=6).invoke("Say hi")
    assert plain.response_metadata["token_ids"] == ids and "logprobs" not in plain.response_metadata


def test_llamacpp_backend_same_answer():
    import graphs.react as react
    from agentrt.agent import final_answer, user_input

    state = react.graph.invoke(user_input("What is 17 * 23 + 4?"), {"configurable": {"model": "llamacpp:qwen2.5-coder-0.5b"}})
    assert "395" in final_answer(state)
    llama = load_model("llamacpp:qwen2.5-coder-0.5b")
    assert llama.prompt_ids([HumanMessage("hi")], []) == load_model(QWEN).prompt_ids([HumanMessage("hi")], [])


def test_damaged_model_folder_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"')  # truncated
    with pytest.raises(ModelError, match="could not load the model"):
        load_model(str(tmp_path))


@needs_llamacpp
def test_garbage_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(ModelError, match="damaged or not a GGUF model"):
        load_model(str(bad))


def test_assembled_gguf_is_verified_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))
    name = "qwen2.5-coder-0.5b"
    path = weights.gguf_path(name)
    assert weights.verify(name) == weights.CATALOG[name].sha256
    with path.open("r+b") as f:  # same size, flipped bytes: only a re-hash can tell
        f.seek(1_000_000)
        f.write(b"\0" * 64)
    with pytest.raises(ModelError, match="is corrupt"):
        weights.verify(name)
    path.write_bytes(b"truncated")  # wrong size: assembled again on next use
    assert weights.verify(weights.gguf_path(name).stem) == weights.CATALOG[name].sha256
    monkeypatch.setitem(weights.CATALOG, name, weights.CATALOG[name].model_copy(update={"sha256": "0" * 64}))
    path.unlink()
    with pytest.raises(ModelError, match="refusing"):
        weights.gguf_path(name)
    assert not path.exists() and not list(path.parent.glob("*.partial"))


def test_sim_rag_with_real_model_and_index(small_real_index, store):
    from agentrt.qa.data import load_qa
    from agentrt.runner import run, run_config
    from agentrt.sim_rag.graph import build_sim_rag, rounds_of

    folder, source = small_real_index
    task = load_qa(source)[0]
    config = run_config(index=str(folder), critic="llm-judge", max_rounds=2, docs_per_round=3)
    result = run(build_sim_rag().compile(), "sim_rag", {"messages": [HumanMessage(task.question)]}, config, store)
    assert result.status == "completed", result.error
    rounds = rounds_of(result.state)
    assert 1 <= len(rounds) <= 2 and all(r.answer for r in rounds)
    assert rounds[0].critic == f"llm-judge:{QWEN}" and rounds[0].score in (0.0, 0.5, 1.0)
    assert set(task.supporting_titles) & set(rounds[0].doc_ids)  # the real index finds gold evidence
    ids = [i for r in rounds for i in r.doc_ids]
    assert len(ids) == len(set(ids))
    assert store.get(result.run_id).final_answer == result.answer
