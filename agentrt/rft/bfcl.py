"""Task sets from the Berkeley Function Calling Leaderboard (BFCL v4) and from HotpotQA.

BFCL ships each category as JSON Lines (despite ``.json``): questions in ``BFCL_v4_<category>.json``
and the allowed answers in ``possible_answer/BFCL_v4_<category>.json``. We train on the
hand-written categories and hold out the user-contributed ``live_*`` ones for evaluation, so a
gain on live tasks is a gain on prompts and tools the training never saw.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentrt.jsonl import read_objects
from agentrt.qa import data as qa_data
from agentrt.rft.tasks import Task, TaskError, TaskType
from agentrt.rft.verifiers import tool_name_key

BFCL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bfcl"
BFCL_DIR_ENV = "AGENTRT_BFCL_DIR"

TRAIN_CATEGORIES = ["simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance"]
# live_relevance is left out: it has no possible_answer file and passes on *any* call, a
# different ground truth from the rest, which the AST verifier does not score.
EVAL_CATEGORIES = ["live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance"]
CATEGORIES = TRAIN_CATEGORIES + EVAL_CATEGORIES

_TASK_TYPES: dict[str, TaskType] = {
    "simple_python": "parameter_filling",
    "simple": "parameter_filling",
    "multiple": "name_detection",
    "parallel": "parallel",
    "parallel_multiple": "parallel",
    "irrelevance": "no_tool",
}

# BFCL's Python type names -> JSON Schema; None drops the type ("any" admits every value).
_TYPES: dict[str, str | None] = {
    "dict": "object", "object": "object", "float": "number", "number": "number", "double": "number",
    "integer": "integer", "int": "integer", "long": "integer", "string": "string", "str": "string",
    "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array", "tuple": "array",
    "any": None,
}


def bfcl_dir(root: Path | str | None = None) -> Path:
    """The BFCL data folder: ``root``, else ``$AGENTRT_BFCL_DIR``, else ``BFCL_DIR``."""
    folder = Path(root or os.environ.get(BFCL_DIR_ENV) or BFCL_DIR)
    if not folder.is_dir():
        raise TaskError(f"the BFCL data folder {folder} does not exist: set {BFCL_DIR_ENV} to the folder "
                        "holding BFCL_v4_<category>.json and possible_answer/")
    return folder


def task_type_for(category: str) -> TaskType:
    """simple* -> parameter_filling, multiple -> name_detection, parallel* -> parallel,
    irrelevance -> no_tool; live_* categories map by their suffix."""
    return _TASK_TYPES[category.removeprefix("live_")]


def load_bfcl(categories: list[str] | None = None, root: Path | None = None,
              limit_per_category: int | None = None) -> list[Task]:
    """BFCL records as tasks verified by ``bfcl_ast``; ``categories`` None means all of
    :data:`CATEGORIES` (train and eval: pick :data:`TRAIN_CATEGORIES` to keep eval unseen)."""
    chosen = list(CATEGORIES if categories is None else categories)
    unknown = [c for c in chosen if c not in CATEGORIES]
    if unknown:
        raise TaskError(f"unknown BFCL categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}: "
                        f"valid ones are {', '.join(CATEGORIES)}")
    folder = bfcl_dir(root)
    tasks: list[Task] = []
    for category in chosen:
        tasks.extend(_load_category(folder, category, limit_per_category))
    return tasks


def _load_category(folder: Path, category: str, limit: int | None) -> list[Task]:
    questions = _read_jsonl(folder / f"BFCL_v4_{category}.json")
    if limit is not None:
        questions = questions[:limit]
    answers_path = folder / "possible_answer" / f"BFCL_v4_{category}.json"
    no_tool = task_type_for(category) == "no_tool"
    answers = {} if no_tool else {r["id"]: r for r in _read_jsonl(answers_path)}
    tasks = []
    for record in questions:
        expected = None
        if not no_tool:
            answer = answers.get(record["id"])
            if answer is None or not answer.get("ground_truth"):
                raise TaskError(f"BFCL record {record['id']} has no ground truth in {answers_path}; "
                                "the data folder is incomplete, copy possible_answer/ from the same BFCL release")
            expected = answer["ground_truth"]
        tasks.append(_task(record, category, expected))
    return tasks


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TaskError(f"BFCL file {path} is missing: set {BFCL_DIR_ENV} to a complete BFCL v4 data folder")
    records = []
    for number, record in read_objects(path, error=TaskError, what="BFCL record"):
        if "id" not in record:
            raise TaskError(f"{path} line {number}: not a BFCL record (no id)")
        records.append(record)
    return records


def _task(record: dict[str, Any], category: str, expected: list[dict[str, Any]] | None) -> Task:
    try:
        messages = record["question"][0]
        functions = record["function"]
    except (KeyError, IndexError, TypeError) as exc:
        raise TaskError(f"BFCL record {record.get('id')} lacks question[0] or function ({exc!r})") from exc
    tools = [bfcl_tool(f, record["id"]) for f in functions]
    return Task(
        id=record["id"],
        messages=messages,
        tools=tools,
        verifier="bfcl_ast",
        expected=expected,
        task_type=task_type_for(category),
        source=f"bfcl:{category}",
        metadata={"category": category,
                  "original_names": {tool_name_key(f["name"]): f["name"] for f in functions}},
    )


def bfcl_tool(function: dict[str, Any], record_id: str = "?") -> dict[str, Any]:
    """A BFCL function as an OpenAI tool: dots in the name become underscores (OpenAI allows
    ``[a-zA-Z0-9_-]``), BFCL's Python type names become JSON Schema ones."""
    parameters = function.get("parameters") or {"type": "dict", "properties": {}}
    return {
        "type": "function",
        "function": {
            "name": tool_name_key(function["name"]),
            "description": function.get("description", ""),
            "parameters": convert_schema(parameters, f"{record_id}:{function['name']}"),
        },
    }


def convert_schema(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """A BFCL parameter schema in JSON Schema terms, recursively through properties and items;
    descriptions, enums, defaults and ``required`` are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in schema.items():  # in the original order, so dumped tasks read like BFCL's
        if key == "type":
            if not isinstance(value, str) or value not in _TYPES:
                raise TaskError(f"{where}: unknown BFCL type {value!r}; known: {', '.join(sorted(_TYPES))}")
            if _TYPES[value] is not None:
                out["type"] = _TYPES[value]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: convert_schema(v, f"{where}.{k}") for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out["items"] = convert_schema(value, f"{where}[]")
        else:
            out[key] = value
    return out


def load_hotpotqa_tasks(split: str = "last:300") -> list[Task]:
    """HotpotQA questions as ``qa`` tasks; ``split`` is first:N, last:N, N:M or all (the project
    trains on the first 300 records and reports on the last 300)."""
    try:
        records = qa_data.split(qa_data.load_qa(qa_data.hotpotqa_path()), split)
    except qa_data.DataError as exc:
        raise TaskError(str(exc)) from exc
    except ValueError as exc:
        raise TaskError(f"bad HotpotQA split {split!r} ({exc}); use first:N, last:N, N:M or all") from exc
    return [
        Task(
            id=r.id,
            messages=[{"role": "user", "content": r.question}],
            verifier="qa",
            expected=r.answers,
            task_type="qa",
            source="hotpotqa",
            metadata={"kind": r.kind, "supporting_titles": r.supporting_titles},
        )
        for r in records
    ]
