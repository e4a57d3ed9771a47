"""Recorded trajectories as fine-tuning data: OpenAI's chat format and TRL's conversational format.

The store keeps every run; training wants a chosen few (completed, passed, above a reward) in the
exact shape a trainer reads. Two targets:

* ``openai``: one ``{"messages": [...], "tools": [...]}`` per line, the format OpenAI's
  fine-tuning API takes. Tool-call ``arguments`` are JSON *strings*, tool messages answer a
  ``tool_call_id``, and nothing else may sit at the top level (OpenAI rejects the file).
* ``trl``: the Hugging Face conversational format with tools, as ``tokenizer.apply_chat_template``
  and TRL's ``SFTTrainer`` read it: ``arguments`` are *objects*, tool messages carry the tool's
  ``name``, and the extra columns ``task_type`` and ``difficulty`` ride along (TRL ignores unknown
  columns; they let a user balance or filter the data set).

Each example is what the model saw and did: the system prompt and tools it was offered (recorded
per model call), the user's messages, its tool calls and their results. A run is a success only
if it completed and its tool calls went right: by default, runs with an invalid, failed,
timed-out or rejected tool call, or whose answer did not follow a successful tool result, are
left out and counted. Turns a human reviewer edited are emitted as they ran (``edits="as-run"``),
as the model wrote them (``"model"``: the conversation stops after that turn, since what followed
depended on the edit), or not at all (``"skip"``); the report says which.

A trajectory that cannot become a valid example (a malformed tool call, a tool answer to a call
nobody made, no assistant turn) is skipped and named in the :class:`ExportReport`, never written:
one bad run must neither crash an export of thousands nor poison the file a trainer rejects later.

Files are written through a temporary file renamed at the end, so an interrupted export leaves the
previous file (or none), never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, TextIO

from agentrt.rft.examples import (
    MalformedTrajectory,
    _meta,
    to_openai,
    to_trl,
    training_example,
)
from agentrt.rft.openai_format import check_openai_line
from agentrt.rft.selection import (
    Edits,
    ExportFilter,
    SkippedRun,
    Tally,
    candidates,
    matches,
    select,
)
from agentrt.trajectory_store import TrajectoryStore

__all__ = [
    "Edits", "ExportFilter", "ExportReport", "MalformedTrajectory", "SkippedRun", "Tally", "candidates",
    "check_openai_line", "export", "matches", "meta_path", "select", "to_openai", "to_trl", "training_example",
    "write_examples",
]

Format = Literal["jsonl", "openai", "trl"]
FORMATS: tuple[str, ...] = ("jsonl", "openai", "trl")


class ExportReport(Tally):
    """What an export wrote, and which runs it left out and why."""

    format: Format
    written: int
    path: Path | None = None  # None: written to a stream
    sidecar: Path | None = None

    def summary(self) -> str:
        """One line for a person: how many, where, how many skipped; an empty result says so."""
        where = f" to {self.path}" if self.path else ""
        unit = "trajectories" if self.format == "jsonl" else f"{self.format} examples"
        if self.written == 0:
            text = "no trajectories matched the filters; no file was written" if self.path else \
                "no trajectories matched the filters"
        else:
            text = f"exported {self.written} {unit}{where}"
        text = "; ".join([text, *self.left_out()])
        if self.sidecar:
            text += f" (task_type and difficulty in {self.sidecar})"
        return text


def meta_path(out_path: str | Path) -> Path:
    """Where the sidecar of an OpenAI file goes: ``train.jsonl`` -> ``train.meta.jsonl``."""
    out = Path(out_path)
    return out.with_name(out.name[: -len(".jsonl")] + ".meta.jsonl") if out.name.endswith(".jsonl") else \
        out.with_name(out.name + ".meta.jsonl")


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_examples(store: TrajectoryStore, out: TextIO, fmt: Format = "openai", flt: ExportFilter | None = None,
                   meta: TextIO | None = None, edits: Edits = "as-run") -> ExportReport:
    """Write matching runs to ``out`` one per line (and, for ``openai``, their task type and
    difficulty to ``meta``, same order); malformed runs are skipped and reported, and runs whose
    tool calls went wrong are left out and counted unless the filter keeps them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if meta is not None and fmt != "openai":
        raise ValueError("a sidecar is for the openai format only: the trl format carries task_type and "
                         "difficulty as columns, and jsonl keeps the whole trajectory")
    flt = flt or ExportFilter()
    report = ExportReport(format=fmt, written=0, edits=edits)
    if fmt == "jsonl":  # whole records: every matching run, as it is
        for traj in select(store, flt):
            out.write(traj.model_dump_json() + "\n")
            report.matched += 1
            report.written += 1
        return report
    for traj in candidates(store, flt, report):
        try:
            example = to_openai(traj, edits) if fmt == "openai" else to_trl(traj, edits)
        except MalformedTrajectory as exc:
            report.skipped.append(SkippedRun(run_id=traj.run_id, reason=str(exc)))
            continue
        out.write(_line(example))
        if meta is not None:
            meta.write(_line({"run_id": traj.run_id, **_meta(traj)}))
        report.written += 1
    return report


def _temp_beside(path: Path) -> tuple[TextIO, Path]:
    """A new file in the target's folder (so the final rename stays on one file system)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.chmod(name, 0o644)  # mkstemp makes it private; a data set is read by other tools and users
    return os.fdopen(fd, "w", encoding="utf-8"), Path(name)


def export(store: TrajectoryStore, out_path: str | Path, fmt: Format = "openai", flt: ExportFilter | None = None,
           sidecar: bool = False, edits: Edits = "as-run") -> ExportReport:
    """Export matching runs to ``out_path`` in ``fmt`` (``openai``, ``trl``, or ``jsonl``: whole
    trajectories).

    ``sidecar=True`` (openai only) also writes ``task_type`` and ``difficulty`` per example to
    :func:`meta_path` (``train.jsonl`` -> ``train.meta.jsonl``), one line per example in the same
    order, because an OpenAI line may hold nothing but ``messages`` and ``tools``. Both files are
    written to temporary files and renamed only when complete; when nothing matched, neither is
    written (an existing file is left as it was).
    """
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise ValueError(f"{out} is a directory; give a file path such as {out / 'train.jsonl'}")
    if sidecar and fmt != "openai":
        raise ValueError("--sidecar is for --format openai: trl rows already carry task_type and difficulty")
    out.parent.mkdir(parents=True, exist_ok=True)
    side = meta_path(out) if sidecar else None
    temps: list[Path] = []
    try:
        with ExitStack() as stack:
            f, tmp = _temp_beside(out)
            stack.enter_context(f)
            temps.append(tmp)
            meta = None
            if side is not None:
                meta, meta_tmp = _temp_beside(side)
                stack.enter_context(meta)
                temps.append(meta_tmp)
            report = write_examples(store, f, fmt, flt, meta, edits)
        if report.written == 0:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
            return report.model_copy(update={"path": out})
        if side is not None:
            os.replace(temps[1], side)  # the sidecar first: the main file appears last, complete with its pair
        os.replace(temps[0], out)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return report.model_copy(update={"path": out, "sidecar": side})
