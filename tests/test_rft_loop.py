"""The RFT loop: DART sampling, selection, EEF restarts from expert failures, LoRA fine-tuning,
and the whole loop on SmolLM2-135M."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agentrt.tools import calculator
from langchain_core.messages import AIMessage, ToolMessage

from agentrt.agent import build_tool_agent
from agentrt.checkpoints import sqlite_checkpointer
from agentrt.models.scripted import call
from agentrt.rft.dart import sample_all, sample_task
from agentrt.rft.eef import explore_expert_failure
from agentrt.rft.loop import RFTConfig, conversation_of, run_rft, select
from agentrt.rft.sampling import Sample, TaskSamples
from agentrt.rft.sft import SFTError, SFTSettings, base_folder
from agentrt.rft.tasks import Task, TaskError, read_tasks, write_tasks
from agentrt.trajectory_store import TrajectoryStore

ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}


def add_task(i: int = 0) -> Task:
    return Task(id=f"add-{i}", messages=[{"role": "user", "content": "add 2 and 3"}], tools=[ADD],
                verifier="bfcl_ast", expected=[{"add": {"a": [2], "b": [3]}}], task_type="parameter_filling")


def test_dart_samples_until_a_success_and_records_verified_trajectories(scripted, store: TrajectoryStore) -> None:
    spec = scripted([call("add", a=2, b=4), call("add", a=1, b=1), call("add", a=2, b=3), call("add", a=2, b=3)])
    from agentrt.models.registry import load_model

    row = sample_task(load_model(spec), add_task(), model_spec=spec, store=store, phase="train", round_no=1, n=2,
                      successes=1, budget=8, temperature=0.8)
    assert [s.passed for s in row.samples] == [False, False, True, True]  # two draws of two, then stop
    assert row.draws == 2 and row.difficulty == 0.5
    traj = store.get(row.samples[2].run_id)
    assert traj.reward == 1.0 and traj.metadata["verdict"]["passed"] is True
    assert traj.metadata["task_id"] == "add-0" and traj.metadata["tools"] == [ADD]
    assert traj.messages[-1]["tool_calls"][0]["function"]["name"] == "add"
    assert "b" in store.get(row.samples[0].run_id).metadata["verdict"]["reason"]


def test_dart_stops_at_the_budget_and_a_malformed_call_fails_cleanly(scripted, store: TrajectoryStore) -> None:
    bad = AIMessage(content="", invalid_tool_calls=[{"name": "add", "args": "{a: 2,", "id": "x", "error": "bad json",
                                                     "type": "invalid_tool_call"}])
    spec = scripted([bad], cycle=True)
    from agentrt.models.registry import load_model

    row = sample_task(load_model(spec), add_task(), model_spec=spec, store=store, phase="train", round_no=1, n=2,
                      successes=1, budget=3, temperature=0.8)
    assert len(row.samples) == 3 and not any(s.passed for s in row.samples) and row.difficulty == 1.0


def test_sampling_resumes_and_ignores_a_cut_line(scripted, tmp_path: Path, store: TrajectoryStore) -> None:
    spec = scripted([call("add", a=2, b=3)], cycle=True)
    from agentrt.models.registry import load_model

    out = tmp_path / "train.jsonl"
    tasks = [add_task(i) for i in range(3)]
    sample_all(tasks[:2], out, model=load_model(spec), model_spec=spec, store=store, phase="train", round_no=1, n=1,
               successes=1, budget=1, temperature=0.0)
    with out.open("a") as f:
        f.write('{"task_id": "add-2", "pha')  # a crash mid-line
    before = len(store.list(limit=100))
    rows = sample_all(tasks, out, model=load_model(spec), model_spec=spec, store=store, phase="train", round_no=1,
                      n=1, successes=1, budget=1, temperature=0.0)
    assert [r.task_id for r in rows] == ["add-0", "add-1", "add-2"]
    assert len(store.list(limit=100)) == before + 1  # only the cut task ran again


def test_select_keeps_distinct_successes_balanced_per_task() -> None:
    def s(task: str, passed: bool, a: int) -> Sample:
        return Sample(task_id=task, run_id=f"{task}-{a}-{passed}", phase="train", passed=passed, score=float(passed),
                      reason="", calls=[{"name": "add", "arguments": {"a": a}}], answer=None)

    rows = [TaskSamples(task_id="t1", phase="train", draws=1, seconds=0,
                        samples=[s("t1", True, 1), s("t1", True, 1), s("t1", True, 2), s("t1", True, 3), s("t1", False, 4)]),
            TaskSamples(task_id="t2", phase="train", draws=1, seconds=0, samples=[s("t2", False, 1)])]
    kept = select(rows, max_per_task=2)
    assert [k.run_id for k in kept] == ["t1-1-True", "t1-2-True"]


def test_eef_restarts_the_student_from_a_failed_experts_intermediate_state(scripted, tmp_path: Path,
                                                                           store: TrajectoryStore) -> None:
    expert = scripted([call("calculator", expression="6*7"), AIMessage(content="The answer is 41.")])

    def student_script(messages):
        last = messages[-1]
        text = str(last.content) if isinstance(last, ToolMessage) else "No idea."
        return AIMessage(content=text, response_metadata={"raw_text": f" {text}\n"})  # as a local model wrote it

    student = scripted(student_script)
    graph = build_tool_agent([calculator]).compile(checkpointer=sqlite_checkpointer(tmp_path / "cp.sqlite"))
    task = Task(id="q1", messages=[{"role": "user", "content": "What is six times seven?"}], verifier="qa",
                expected=["42"], task_type="qa")
    result = explore_expert_failure(graph, "calc", task, expert=expert, student=student, store=store)
    assert not result.expert_verdict.passed
    assert len(result.restarts) == 1 and result.kept == result.restarts  # from after the tool result
    restart = result.kept[0]
    assert restart.expert_turns == 1
    roles = [m["role"] for m in restart.conversation]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert restart.conversation[-1]["content"] == "42"
    assert store.get(restart.run_id).metadata["expert_run_id"] == result.expert_run_id
    # fine-tuning gets the whole conversation, with the student's turn as the student wrote it
    conv = conversation_of(store, restart.run_id)
    assert [m["role"] for m in conv.messages] == roles and conv.sampled == [None, None, None, " 42\n"]


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TaskError, match="no tasks"):
        read_tasks(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\n')
    with pytest.raises(TaskError, match="broken.jsonl line 1"):
        read_tasks(broken)
    for spec in ("openai:gpt-4o-mini", "http://127.0.0.1:9/v1#m"):
        with pytest.raises(SFTError, match="remote"):
            base_folder(spec)
    with pytest.raises(SFTError, match="quantized"):
        base_folder("llamacpp:qwen2.5-coder-0.5b")
    task = add_task()
    with pytest.raises(TaskError, match="both"):
        run_rft([task], [task], RFTConfig(name="x", model="local:smollm2-135m"), tmp_path / "run")


def test_an_unknown_verifier_is_named(tmp_path: Path) -> None:
    from agentrt.rft.verifiers import get_verifier

    with pytest.raises(TaskError, match="bfcl_ast"):
        get_verifier("no_such_verifier")


TRIVIA = [("What color is the sky on a clear day? Answer with one word.", ["blue"]),
          ("What is the capital of France? Answer with one word.", ["paris"]),
          ("What is the opposite of hot? Answer with one word.", ["cold"]),
          ("What do bees make? Answer with one word.", ["honey"]),
          ("What is frozen water called? Answer with one word.", ["ice"]),
          ("What animal says moo? Answer with one word.", ["cow", "a cow"]),
          ("How many days are in a week? Answer with a number.", ["7", "seven"]),
          ("What is the color of grass? Answer with one word.", ["green"])]


def mentions_gold(task: Task, attempt) -> bool:
    """A user verifier: a 135M model answers in sentences, so the gold word anywhere counts."""
    return any(g in (attempt.answer or "").lower() for g in task.expected)


@pytest.mark.model
def test_rft_loop_end_to_end_on_smollm2(tmp_path: Path) -> None:
    """Sample, verify, keep, LoRA fine-tune, evaluate held-out, on the real 135M model; then the
    adapter is a model spec; then a re-run resumes without sampling again."""
    import shutil

    from agentrt.models.adapters import adapters_root
    tasks = [Task(id=f"trivia-{i}", messages=[{"role": "user", "content": q}], expected=a, task_type="qa",
                  verifier="tests.test_rft_loop:mentions_gold") for i, (q, a) in enumerate(TRIVIA)]
    write_tasks(tasks[:5], tmp_path / "train.jsonl")
    write_tasks(tasks[5:], tmp_path / "eval.jsonl")
    name = f"test-rft-{tmp_path.name[-8:]}".replace("_", "-")
    cfg = RFTConfig(name=name, model="local:smollm2-135m", rounds=1, n=4, successes=1, budget=4, max_tokens=16,
                    temperature=0.7, sft=SFTSettings(epochs=1, batch_size=4, max_length=128))
    out = tmp_path / "run"
    try:
        _loop_checks(tmp_path, cfg, out)
    finally:
        shutil.rmtree(adapters_root() / name, ignore_errors=True)


def _loop_checks(tmp_path: Path, cfg: RFTConfig, out: Path) -> None:
    name = cfg.name
    report = run_rft(read_tasks(tmp_path / "train.jsonl"), read_tasks(tmp_path / "eval.jsonl"), cfg, out)
    assert [r.round for r in report.rounds] == [0, 1]
    r1 = report.rounds[1]
    assert r1.train_samples and r1.train_successes and r1.sft and r1.sft.examples >= 1
    assert r1.model.startswith("local:smollm2-135m+" + name + "@v")
    assert (out / "report.png").stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["rounds"][1]["eval"]["all"]["n"] == 3

    from agentrt.models.registry import load_model

    tuned = load_model(r1.model)
    assert tuned.invoke("What is the capital of France? Answer with one word.", max_tokens=8).content

    store = TrajectoryStore(out / "trajectories.sqlite")
    kept = [json.loads(line)["run_id"] for line in (out / "round-1" / "kept.jsonl").read_text().splitlines()]
    conv = conversation_of(store, kept[0])  # trained on what the model wrote, not a re-rendering
    assert conv.sampled[-1] and conv.sampled[-1].strip() == conv.messages[-1]["content"].strip()
    before = len(store.list(limit=10_000))
    again = run_rft(read_tasks(tmp_path / "train.jsonl"), read_tasks(tmp_path / "eval.jsonl"), cfg, out)
    assert len(store.list(limit=10_000)) == before  # nothing sampled or evaluated twice
    assert again.rounds[1].sft == r1.sft
