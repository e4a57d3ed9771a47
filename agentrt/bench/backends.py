"""Prompt and decoding speed of each local backend on the same model and the same prompts.

For one catalog model (default ``qwen2.5-coder-0.5b``) this loads ``local:NAME`` (transformers,
bf16) and ``llamacpp:NAME`` (llama.cpp on the GGUF) and measures, on identical token ids (both
backends render prompts with the same Hugging Face tokenizer and chat template):

- load time: ``load_model(spec)`` in a fresh process (torch and transformers already imported);
- prompt processing: a RAG-like prompt of about ``--prompt-tokens`` tokens (paragraphs of HotpotQA
  from ``../shared/data`` when present, else generated text), ``max_tokens=1``; prompt tok/s =
  prompt tokens / time to first token. llama.cpp's KV cache is reset first so that reusing the
  previous prompt's prefix does not hide the cost;
- decoding: greedy, ``--new-tokens`` new tokens on a short prompt that asks for a long story;
  decode tok/s = (completion tokens - 1) / (total time - time to first token of the same prompt),
  i.e. the steady per-token rate after the prompt is processed;
- prefix reuse (multi-round RAG): the same documents with another question right after the cold
  prompt: the second time to first token against the first. llama.cpp evaluates only the tokens
  after the shared prefix; transformers keeps no cache between calls and pays for all of them.

Every backend runs in its own subprocess (``--isolate``, the default): load times start from the
same state, the two runtimes' thread pools do not compete, and a crash of a native backend (a
segfault in llama.cpp) becomes a row with a note instead of ending the benchmark.

    python -m agentrt.bench.backends --model qwen2.5-coder-0.5b --prompt-tokens 1500 --new-tokens 128
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

DEFAULT_NAME = "qwen2.5-coder-0.5b"
BACKENDS = {"transformers": "local", "llama.cpp": "llamacpp"}
HOTPOT = Path("shared/data/hotpotqa/hotpot_dev_distractor_600.jsonl")
RESULT_MARK = "AGENTRT_BENCH_RESULT "
STORY_PROMPT = (
    "Write a long, detailed story (at least 800 words) about a lighthouse keeper on a remote island "
    "who finds a message in a bottle. Describe the island, the weather, the keeper's daily routine "
    "and the people in the message. Do not stop early."
)
SYSTEM = "Answer the question using only the documents. Cite the document numbers you used."


class BackendRow(BaseModel):
    """One backend's figures (``None`` where it could not be measured; ``note`` says why)."""

    backend: str
    spec: str
    ok: bool = True
    note: str = ""
    threads: int | None = None
    load_s: float | None = None
    prompt_tokens: int | None = None
    ttft_s: float | None = None  # long prompt, fresh cache, max_tokens=1
    prompt_tok_s: float | None = None
    decode_prompt_tokens: int | None = None
    completion_tokens: int | None = None  # actually generated (may be < new_tokens if it stopped)
    finish_reason: str | None = None
    decode_s: float | None = None  # total - time to first token
    decode_tok_s: float | None = None
    reuse_cold_s: float | None = None  # documents + question 1, fresh cache
    reuse_warm_s: float | None = None  # documents + question 2 right after
    reuse_shared_tokens: int | None = None  # common prefix of the two prompts
    reuse_prompt_tokens: int | None = None

    @property
    def reuse_speedup(self) -> float | None:
        if self.reuse_cold_s and self.reuse_warm_s:
            return self.reuse_cold_s / self.reuse_warm_s
        return None


# --------------------------------------------------------------------------------- prompts


def _hotpot_file() -> Path | None:
    here = Path(__file__).resolve().parents[2]  # the project root
    for base in (Path.cwd().parent, here.parent, Path.cwd(), here):
        path = base / HOTPOT
        if path.is_file():
            return path
    return None


def _paragraphs() -> tuple[list[str], list[str], str]:
    """Document paragraphs, and two questions on them; and where they came from."""
    path = _hotpot_file()
    if path is not None:
        paragraphs: list[str] = []
        questions: list[str] = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                questions.append(record["question"])
                paragraphs += [f"{title}: {''.join(sentences).strip()}" for title, sentences in record["context"]]
                if len(paragraphs) >= 200:
                    break
        return paragraphs, questions[:2], f"HotpotQA paragraphs from {path}"
    return _generated_paragraphs(200), [
        "Which document describes the harbour at night?", "Who repaired the old mill, according to the documents?"
    ], "generated text (no HotpotQA file found)"


_WORDS = (
    "the river town market harbour mill bridge winter summer keeper farmer old new north south stone road "
    "lamp ship bell tower field garden family letter mayor council school church window door morning evening "
    "rain wind snow light dark long short quiet busy built repaired sold carried walked watched remembered "
    "before after during because although while every many few some their his her its with from into over "
    "under near across along through around village valley hill forest lake coast island mountain path"
).split()


def _generated_paragraphs(n: int) -> list[str]:
    rng = random.Random(1729)
    out = []
    for i in range(n):
        sentences = []
        for _ in range(rng.randint(4, 7)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(f"Record {i + 1}: " + " ".join(sentences))
    return out


def rag_messages(paragraphs: list[str], question: str) -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    docs = "\n\n".join(f"[{i + 1}] {p}" for i, p in enumerate(paragraphs))
    return [SystemMessage(SYSTEM), HumanMessage(f"Documents:\n\n{docs}\n\nQuestion: {question}")]


def long_prompt(model: Any, target_tokens: int) -> tuple[list[int], list[int], int, str]:
    """Two RAG prompts of about ``target_tokens`` tokens sharing their documents (they differ only
    in the question at the end); also how many paragraphs, and the text's source.

    Whole paragraphs are added until the prompt reaches the target; the last one is then cut to
    the number of sentences that comes closest to it."""
    paragraphs, questions, source = _paragraphs()

    def ids_of(docs: list[str]) -> list[int]:
        return model.prompt_ids(rag_messages(docs, questions[0]), [])

    count, ids = 0, []
    while count < len(paragraphs):
        count += 1
        ids = ids_of(paragraphs[:count])
        if len(ids) >= target_tokens:
            break
    docs = paragraphs[:count]
    sentences = re.split(r"(?<=[.!?])\s+", docs[-1])
    for k in range(1, len(sentences)):
        cut = docs[:-1] + [" ".join(sentences[:k])]
        cut_ids = ids_of(cut)
        if abs(len(cut_ids) - target_tokens) < abs(len(ids) - target_tokens):
            docs, ids = cut, cut_ids
        if len(cut_ids) >= target_tokens:
            break
    second = model.prompt_ids(rag_messages(docs, questions[1]), [])
    return ids, second, len(docs), source


def story_prompt(model: Any) -> list[int]:
    from langchain_core.messages import HumanMessage

    return model.prompt_ids([HumanMessage(STORY_PROMPT)], [])


# --------------------------------------------------------------------------------- timing


def _fresh(model: Any) -> None:
    """Forget any cached prompt: llama.cpp would otherwise reuse the previous prompt's prefix."""
    llama = getattr(model, "_llama", None)
    if llama is not None:
        llama.reset()


def _decode(model: Any, ids: list[int], max_tokens: int, *, fresh: bool = True) -> tuple[float, Any]:
    from agentrt.models.base import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    with model._lock:
        if fresh:
            _fresh(model)
        started = time.perf_counter()
        (decoded,) = model._decode(ids, params)
        return time.perf_counter() - started, decoded


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _threads(model: Any) -> int | None:
    llama = getattr(model, "_llama", None)
    if llama is not None:
        return getattr(llama, "n_threads", None) or getattr(getattr(llama, "context_params", None), "n_threads", None)
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return None


def measure_backend(
    backend: str, name: str = DEFAULT_NAME, prompt_tokens: int = 1500, new_tokens: int = 128, repeats: int = 3
) -> BackendRow:
    """Measure one backend in this process."""
    spec = f"{BACKENDS[backend]}:{name}"
    row = BackendRow(backend=backend, spec=spec)
    if backend == "llama.cpp" and importlib.util.find_spec("llama_cpp") is None:
        row.ok, row.note = False, "skipped: llama_cpp is not importable (pip install 'agentrt[llamacpp]')"
        return row
    import torch  # noqa: F401  (imported before timing the load: both backends need transformers)
    import transformers  # noqa: F401

    from agentrt.models import registry

    fresh_load = not registry.is_loaded(spec)
    started = time.perf_counter()
    model = registry.load_model(spec)
    row.load_s = time.perf_counter() - started if fresh_load else None
    row.threads = _threads(model)
    notes = [] if fresh_load else ["already loaded: no load time"]

    long_ids, second_ids, _, source = long_prompt(model, prompt_tokens)
    short_ids = story_prompt(model)
    row.prompt_tokens, row.decode_prompt_tokens = len(long_ids), len(short_ids)
    row.reuse_prompt_tokens, row.reuse_shared_tokens = len(second_ids), _shared_prefix(long_ids, second_ids)

    _decode(model, short_ids, 8)  # warm-up: first-call initialisation, kernel selection
    _decode(model, long_ids, 1)

    ttft = [_decode(model, long_ids, 1)[0] for _ in range(repeats)]
    row.ttft_s = statistics.median(ttft)
    row.prompt_tok_s = len(long_ids) / row.ttft_s

    short_first, totals, decoded = [], [], None
    for _ in range(repeats):
        short_first.append(_decode(model, short_ids, 1)[0])
        total, decoded = _decode(model, short_ids, new_tokens)
        totals.append(total)
    assert decoded is not None
    row.completion_tokens, row.finish_reason = decoded.completion_tokens, decoded.finish_reason
    row.decode_s = statistics.median(totals) - statistics.median(short_first)
    if decoded.completion_tokens > 1 and row.decode_s > 0:
        row.decode_tok_s = (decoded.completion_tokens - 1) / row.decode_s
    if decoded.completion_tokens < new_tokens:
        notes.append(f"stopped after {decoded.completion_tokens} of {new_tokens} new tokens")

    cold, warm = [], []
    for _ in range(repeats):
        cold.append(_decode(model, long_ids, 1, fresh=True)[0])
        warm.append(_decode(model, second_ids, 1, fresh=False)[0])
    row.reuse_cold_s, row.reuse_warm_s = statistics.median(cold), statistics.median(warm)
    notes.append(source.split(" from ")[0])
    row.note = "; ".join(notes)
    return row


# --------------------------------------------------------------------------------- isolation


def _measure_isolated(backend: str, name: str, prompt_tokens: int, new_tokens: int, repeats: int,
                      timeout_s: float) -> BackendRow:
    spec = f"{BACKENDS[backend]}:{name}"
    cmd = [sys.executable, "-m", "agentrt.bench.backends", "--worker", backend, "--model", name,
           "--prompt-tokens", str(prompt_tokens), "--new-tokens", str(new_tokens), "--repeats", str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        return BackendRow(backend=backend, spec=spec, ok=False, note=f"did not finish within {timeout_s:g} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return BackendRow.model_validate_json(line[len(RESULT_MARK):])
    if proc.returncode < 0:
        try:
            why = f"crashed with {signal.Signals(-proc.returncode).name}"
        except ValueError:
            why = f"killed by signal {-proc.returncode}"
    else:
        why = f"failed (exit {proc.returncode})"
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return BackendRow(backend=backend, spec=spec, ok=False, note=f"{why}{': ' + tail if tail else ''}")


def measure(
    name: str = DEFAULT_NAME,
    prompt_tokens: int = 1500,
    new_tokens: int = 128,
    repeats: int = 3,
    *,
    backends: list[str] | None = None,
    isolate: bool = True,
    timeout_s: float = 1800.0,
) -> list[BackendRow]:
    """One row per backend, measured one after the other (each in its own process if ``isolate``)."""
    rows = []
    for backend in backends or list(BACKENDS):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
        if backend == "llama.cpp" and importlib.util.find_spec("llama_cpp") is None:
            rows.append(BackendRow(backend=backend, spec=f"llamacpp:{name}", ok=False,
                                   note="skipped: llama_cpp is not importable (pip install 'agentrt[llamacpp]')"))
        elif isolate:
            rows.append(_measure_isolated(backend, name, prompt_tokens, new_tokens, repeats, timeout_s))
        else:
            try:
                rows.append(measure_backend(backend, name, prompt_tokens, new_tokens, repeats))
            except Exception as exc:
                rows.append(BackendRow(backend=backend, spec=f"{BACKENDS[backend]}:{name}", ok=False,
                                       note=f"failed: {type(exc).__name__}: {exc}"))
    return rows


# --------------------------------------------------------------------------------- output


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def render(rows: list[BackendRow], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Local backends, same model and same token ids")
    for col, justify in [("backend", "left"), ("load s", "right"), ("prompt tok", "right"), ("TTFT s", "right"),
                         ("prompt tok/s", "right"), ("new tok", "right"), ("decode tok/s", "right"),
                         ("RAG 2nd question TTFT s", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        if not r.ok:
            table.add_row(r.backend, "[yellow]-[/]", "", "", "", "", "", "")
            continue
        reuse = (f"{r.reuse_warm_s:.3f} ({r.reuse_speedup:.1f}x faster)" if r.reuse_speedup and r.reuse_speedup >= 1.5
                 else _f(r.reuse_warm_s, ".3f") + (f" (cold {r.reuse_cold_s:.3f})" if r.reuse_cold_s else ""))
        table.add_row(r.backend, _f(r.load_s, ".1f"), _f(r.prompt_tokens, "d"), _f(r.ttft_s, ".3f"),
                      _f(r.prompt_tok_s, ",.0f"), _f(r.completion_tokens, "d"), _f(r.decode_tok_s, ",.1f"), reuse)
    by = {r.backend: r for r in rows if r.ok}
    if "transformers" in by and "llama.cpp" in by:
        t, ll = by["transformers"], by["llama.cpp"]
        table.add_row(
            "[bold]llama.cpp / transformers[/]", _ratio(ll.load_s, t.load_s), "", _ratio(ll.ttft_s, t.ttft_s),
            f"[bold]{_ratio(ll.prompt_tok_s, t.prompt_tok_s)}[/]", "",
            f"[bold]{_ratio(ll.decode_tok_s, t.decode_tok_s)}[/]", _ratio(ll.reuse_warm_s, t.reuse_warm_s),
            end_section=False,
        )
    console.print(table)
    for r in rows:
        extra = []
        if r.threads:
            extra.append(f"{r.threads} threads")
        if r.ok and r.reuse_shared_tokens is not None:
            extra.append(f"RAG prompts share {r.reuse_shared_tokens} of {r.reuse_prompt_tokens} tokens")
        if r.finish_reason:
            extra.append(f"decode finish: {r.finish_reason}")
        text = "; ".join(x for x in [r.note, *extra] if x)
        console.print(f"  {r.backend} ({r.spec}): {text}")
    console.print("  decode tok/s = (new tokens - 1) / (generation time - time to first token), greedy; "
                  "TTFT = prompt processing + 1 token, fresh cache; RAG 2nd question = same documents, another "
                  "question, right after the first.")
    if "transformers" in by and "llama.cpp" in by:
        console.print("  ratio row = llama.cpp value / transformers value: above 1 is better for tok/s, "
                      "worse for seconds.")


def write_chart(rows: list[BackendRow], path: Path) -> Path | None:
    """A bar chart of prompt and decode tok/s, if matplotlib is installed (it is not a dependency)."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.ok]
    if not ok:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, attr, title in [(axes[0], "prompt_tok_s", "prompt tok/s"), (axes[1], "decode_tok_s", "decode tok/s")]:
        values = [getattr(r, attr) or 0 for r in ok]
        bars = ax.bar([r.backend for r in ok], values, color=["#4c72b0", "#dd8452", "#55a868"][: len(ok)])
        ax.bar_label(bars, fmt="%.0f")
        ax.set_title(title)
    fig.suptitle(ok[0].spec.split(":", 1)[1])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(name: str = DEFAULT_NAME, prompt_tokens: int = 1500, new_tokens: int = 128, repeats: int = 3,
         backends: list[str] | None = None, isolate: bool = True, chart: Path | None = None,
         console: Any = None) -> list[BackendRow]:
    from rich.console import Console

    console = console or Console()
    with console.status(f"measuring {', '.join(backends or BACKENDS)} on {name} ..."):
        rows = measure(name, prompt_tokens, new_tokens, repeats, backends=backends, isolate=isolate)
    render(rows, console)
    if chart is not None:
        written = write_chart(rows, chart)
        console.print(f"  chart: {written}" if written else "  chart: skipped (matplotlib is not installed)")
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_NAME, help="catalog model name (see `agentrt models`)")
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", action="append", choices=list(BACKENDS), help="only these (repeatable)")
    parser.add_argument("--no-isolate", action="store_true", help="measure in this process")
    parser.add_argument("--chart", type=Path, help="write a PNG bar chart here (needs matplotlib)")
    parser.add_argument("--worker", choices=list(BACKENDS), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.worker:
        try:
            result = measure_backend(a.worker, a.model, a.prompt_tokens, a.new_tokens, a.repeats)
        except Exception as exc:
            result = BackendRow(backend=a.worker, spec=f"{BACKENDS[a.worker]}:{a.model}", ok=False,
                                note=f"failed: {type(exc).__name__}: {exc}")
        print(RESULT_MARK + result.model_dump_json(), flush=True)
    else:
        main(a.model, a.prompt_tokens, a.new_tokens, a.repeats, a.backend, not a.no_isolate, a.chart)
