"""Fine-tuning on what was collected: runs chosen from a trajectory store, a LoRA adapter trained
on them, registered under a name that a model spec (``local:BASE+NAME``) and so the server can use.

This is the other half of RFT's loop for a deployed agent: instead of sampling task sets and
verifying them, the agent's own served runs are the samples, and feedback (``correct``, thumbs),
a verifier's verdict or a reward is the verification. The choice of runs is the export's
(:class:`~agentrt.rft.selection.ExportFilter`: completed, tool calls that went right, the feedback
asked for), and so is the shape of each example (the system prompt and tools the model was
offered); what is trained on is the exact text the model sampled for each turn, as in the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from agentrt.rft.examples import MalformedTrajectory, training_example
from agentrt.rft.selection import Edits, ExportFilter, SkippedRun, Tally, candidates
from agentrt.rft.sft import Conversation, SFTError, SFTReport, SFTSettings, train_lora
from agentrt.trajectory_store import TrajectoryStore


class Selection(Tally):
    """The runs kept for training, and (as counts) why the others were not."""

    conversations: list[Conversation] = Field(default_factory=list)
    run_ids: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        return "; ".join([f"{len(self.conversations)} of {self.matched} matching runs kept", *self.left_out()])


def choose(store: TrajectoryStore, flt: ExportFilter, edits: Edits = "as-run") -> Selection:
    out = Selection(edits=edits)
    for traj in candidates(store, flt, out):
        try:
            line, sampled = training_example(traj, edits)
        except MalformedTrajectory as exc:
            out.skipped.append(SkippedRun(run_id=traj.run_id, reason=str(exc)))
            continue
        out.conversations.append(Conversation(messages=line["messages"], tools=line.get("tools") or [],
                                              sampled=[text for text, _ in sampled],
                                              sampled_ids=[ids for _, ids in sampled]))
        out.run_ids.append(traj.run_id)
    return out


def train_from_store(store: TrajectoryStore, flt: ExportFilter, *, base_spec: str, name: str,
                     edits: Edits = "as-run", settings: SFTSettings | None = None,
                     progress: Callable[[int, int, float], None] | None = None) -> tuple[Selection, SFTReport]:
    """Choose runs, train a LoRA adapter on them, register it as ``NAME@vN``."""
    chosen = choose(store, flt, edits)
    if not chosen.conversations:
        raise SFTError(f"no run to fine-tune on: {chosen.summary()}. Loosen the filters, or collect more runs "
                       "(and give them feedback)")
    report = train_lora(chosen.conversations, base_spec=base_spec, name=name, settings=settings, progress=progress,
                        meta={"source": "trajectory store", "store": str(store.path), "runs": chosen.run_ids,
                              "filter": flt.model_dump(mode="json"), "edits": edits})
    return chosen, report
