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

from agentrt.bench.backends_report import BackendRow, render, write_chart

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
