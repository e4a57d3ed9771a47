"""``agentrt index ...``: build, search, repair and benchmark vector indexes; the HotpotQA demo.

A typer sub-app, mounted by the main CLI with ``app.add_typer(index_app, name="index")``. Errors
are one red line and exit code 2, never a traceback; an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from agentrt.console import err, fail
from agentrt.console import out as console

index_app = typer.Typer(help="Vector indexes: build from a corpus, search, benchmark; the HotpotQA demo index.",
                        no_args_is_help=True)

KINDS = ("auto", "flat", "hnsw")
KNOWN_CORPORA = ("hotpotqa",)




@contextmanager
def _clean_errors() -> Iterator[None]:
    """Expected failures (bad input, missing or damaged files) as one line and exit code 2."""
    from agentrt.retrieval.errors import RetrievalError

    try:
        yield
    except (RetrievalError, ValueError, OSError, sqlite3.Error) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted: nothing was written", code=130)


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed / elapsed if elapsed > 0 else 0:.1f} docs/s", style="cyan")


@contextmanager
def _progress(description: str) -> Iterator[Any]:
    """A rich progress bar; yields the ``progress(done, total)`` callback an index ``add`` takes."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@index_app.command()
def build(
    corpus: Annotated[Path | None, typer.Argument(help="corpus JSONL: one {\"id\", \"title\", \"text\"} per line")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="index folder to create")] = None,
    known: Annotated[str | None, typer.Option("--corpus", help="a known corpus instead of a file: hotpotqa (the pooled paragraphs)")] = None,
    embedder: Annotated[str, typer.Option(help="minilm, a transformers model folder, or http://host:port/v1#MODEL")] = "minilm",
    kind: Annotated[str, typer.Option(help="auto (exact below 50,000 vectors, HNSW above), flat or hnsw")] = "auto",
    hybrid: Annotated[bool, typer.Option(help="also BM25, fused with the dense ranking")] = False,
    chunk_words: Annotated[int | None, typer.Option(min=1, help="split documents longer than N words into chunks")] = None,
    chunk_overlap: Annotated[int, typer.Option(min=0, help="words shared by consecutive chunks")] = 40,
    force: Annotated[bool, typer.Option(help="replace an existing index at --out")] = False,
) -> None:
    """Embed a corpus into a new index folder (built aside, moved into place when complete)."""
    from agentrt.retrieval.chunking import chunk_documents
    from agentrt.retrieval.corpus import hotpotqa_corpus, hotpotqa_path, read_corpus
    from agentrt.retrieval.embedders import load_embedder
    from agentrt.retrieval.index import VectorIndex
    from agentrt.retrieval.index_files import MANIFEST

    if out is None:
        fail("give the index folder with --out DIR")
    if (corpus is None) == (known is None):
        fail("give either a corpus file (agentrt index build CORPUS.jsonl --out DIR) or --corpus hotpotqa")
    if known is not None and known not in KNOWN_CORPORA:
        fail(f"unknown corpus {known!r}: known corpora are {', '.join(KNOWN_CORPORA)} (or give a JSONL file)")
    if kind not in KINDS:
        fail(f"unknown index kind {kind!r}: use {', '.join(KINDS)}")
    if out.exists() and not force:
        if (out / MANIFEST).exists():
            fail(f"an index already exists at {out}: add --force to replace it")
        if not out.is_dir() or any(out.iterdir()):
            fail(f"{out} exists and is not an empty folder: choose another --out")
    with _clean_errors():
        docs = hotpotqa_corpus(hotpotqa_path()) if known else read_corpus(corpus)  # type: ignore[arg-type]
        if chunk_words:
            before = len(docs)
            docs = chunk_documents(docs, chunk_words, chunk_overlap)
            err.print(f"chunked {before:,} documents into {len(docs):,} passages of up to {chunk_words} words")
        with console.status(f"loading the embedder {embedder} ..."):
            model = load_embedder(embedder)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
        try:
            os.chmod(staging, 0o755)  # mkdtemp makes it private; the index is an ordinary folder
            start = time.perf_counter()
            with VectorIndex.create(staging, model, kind=kind, hybrid=hybrid) as index:  # type: ignore[arg-type]
                with _progress("embedding") as progress:
                    index.add(docs, progress=progress)
                with console.status("saving ..."):
                    index.save()
                summary = f"{len(index):,} documents, {index.kind}{' + BM25' if hybrid else ''}, {model.name}"
            _move_into_place(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
    console.print(f"indexed {summary} into {out} in {seconds:.1f} s ({len(docs) / max(seconds, 1e-9):.1f} docs/s)",
                  highlight=False, soft_wrap=True)


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished index to ``out``; a replaced index is moved aside first, then deleted."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@index_app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="index folder")],
    query: Annotated[str, typer.Argument(help="what to search for")],
    k: Annotated[int, typer.Option("-k", "--k", help="how many results")] = 5,
    hybrid: Annotated[bool | None, typer.Option("--hybrid/--dense", help="fuse BM25 with dense ranking (default: as built)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON only")] = False,
) -> None:
    """The documents most similar to a query."""
    from agentrt.retrieval.index import VectorIndex

    with _clean_errors():
        with VectorIndex.open(index_dir) as index:
            with console.status("loading the embedder ...") if not as_json else _nothing():
                index.embedder  # noqa: B018 - loaded here so the search time below is the search alone
            start = time.perf_counter()
            results = index.search(query, k, hybrid=hybrid)
            ms = 1000 * (time.perf_counter() - start)
            mode = "hybrid" if (index.manifest.hybrid if hybrid is None else hybrid) else "dense"
            size = len(index)
    if as_json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
        return
    table = Table(expand=True)
    table.add_column("rank", justify="right")
    table.add_column("score")
    table.add_column("id", max_width=28)
    table.add_column("title", max_width=28)
    table.add_column("text", ratio=1)
    for rank, r in enumerate(results, start=1):
        snippet = r.text if len(r.text) <= 160 else r.text[:157] + "..."
        table.add_row(str(rank), f"{r.score:.4f}", r.id, r.title, snippet)
    console.print(table)
    console.print(f"[dim]{len(results)} of {size:,} documents · {mode} · {ms:.0f} ms[/]")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@index_app.command()
def demo(
    folder: Annotated[Path | None, typer.Option(help="where the demo index lives (default ~/.cache/agentrt/indexes/hotpotqa-600)")] = None,
) -> None:
    """Build (first use, ~2.5 min) or open the hybrid index of the pooled HotpotQA paragraphs."""
    from agentrt.paths import home
    from agentrt.retrieval.corpus import DEMO_NAME, demo_index

    target = folder or home() / "indexes" / DEMO_NAME
    first = not (target / "manifest.json").is_file()
    start = time.perf_counter()
    with _clean_errors():
        if first:
            err.print(f"building the demo index at {target} (first use: embeds ~5,900 paragraphs)", soft_wrap=True)
            with _progress("embedding") as progress:
                index = demo_index(target, progress=progress)
        else:
            index = demo_index(target)
        with index:
            counts, kind = index.counts(), index.kind
    seconds = time.perf_counter() - start
    size_mb = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
    console.print(
        f"demo index {target}: {counts['documents']:,} documents, {kind} + BM25, {size_mb:.1f} MB on disk; "
        f"{'built' if first else 'opened'} in {seconds:.1f} s", highlight=False, soft_wrap=True,
    )


@index_app.command()
def repair(index_dir: Annotated[Path, typer.Argument(help="index folder")]) -> None:
    """Rebuild an index's FAISS and BM25 files from the documents and vectors cached in it."""
    from agentrt.retrieval.index import VectorIndex

    with _clean_errors():
        start = time.perf_counter()
        with VectorIndex.open(index_dir, repair=True) as index:
            counts, kind = index.counts(), index.kind
    console.print(f"repaired {index_dir}: {counts['documents']:,} documents, {kind}, in {time.perf_counter() - start:.1f} s",
                  highlight=False, soft_wrap=True)


def _sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        try:
            n = int(float(part[:-1] if scale > 1 else part) * scale)
        except ValueError:
            raise typer.BadParameter(f"{part!r} is not a size (e.g. 10000,1000000 or 10k,1m)", param_hint="--sizes") from None
        if n < 10:
            raise typer.BadParameter(f"size {n} is too small (at least 10)", param_hint="--sizes")
        out.append(n)
    return out


@index_app.command("bench")
def bench_retrieval(
    docs: Annotated[int | None, typer.Option(min=0, help="build throughput on the first N HotpotQA paragraphs (default all; 0 skips)")] = None,
    sizes: Annotated[str, typer.Option(help="vector counts for the latency/recall figures (e.g. 10k,1m)")] = "10000,1000000",
    queries: Annotated[int, typer.Option(min=1, help="queries per configuration")] = 200,
    ef: Annotated[str, typer.Option(help="HNSW efSearch values")] = "64,128",
    m: Annotated[int, typer.Option(min=4, help="HNSW M (links per node)")] = 32,
    ef_construction: Annotated[int, typer.Option(min=8, help="HNSW efConstruction")] = 40,
    data: Annotated[str, typer.Option(help="synthetic vectors: fitted (Gaussian with the covariance of the demo index's real vectors; needs it) or random (isotropic, the worst case)")] = "fitted",
    dim: Annotated[int, typer.Option(min=8, help="dimension of random synthetic vectors")] = 384,
    real: Annotated[bool, typer.Option("--real/--no-real", help="also the demo index's real vectors with HotpotQA questions (if it was built)")] = True,
    chart: Annotated[Path | None, typer.Option(help="PNG of latency vs recall (default ~/.cache/agentrt/bench/retrieval.png)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON only")] = False,
) -> None:
    """Index build throughput, and query latency vs recall@10 of exact and HNSW search."""
    from agentrt.paths import home
    from agentrt.retrieval import bench
    from agentrt.retrieval.corpus import DEMO_NAME, hotpotqa_corpus, hotpotqa_path
    from agentrt.retrieval.embedders import load_embedder
    from agentrt.retrieval.index import VectorIndex

    size_list = _sizes(sizes)
    try:
        ef_list = tuple(int(x) for x in ef.split(","))
    except ValueError:
        raise typer.BadParameter(f"{ef!r}: give integers like 64,128", param_hint="--ef") from None
    if data not in ("fitted", "random"):
        raise typer.BadParameter(f"{data!r}: use fitted or random", param_hint="--data")
    log = err if not as_json else Console(stderr=True, quiet=True)
    result: dict[str, Any] = {"build": None, "latency": []}
    rows: list[bench.LatencyRow] = []

    def on_row(row: bench.LatencyRow) -> None:
        log.print(f"  {row.data} {row.size:,} {row.kind}{'' if row.ef_search is None else f' ef{row.ef_search}'}: "
                  f"build {row.build_s:.1f} s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, "
                  f"recall@10 {row.recall_at_10:.3f}", highlight=False)

    with _clean_errors():
        if docs != 0:
            paragraphs = hotpotqa_corpus(hotpotqa_path())[:docs]
            log.print(f"build throughput: {len(paragraphs):,} HotpotQA paragraphs")
            model = load_embedder("minilm")
            if as_json:
                build_result = bench.measure_build(paragraphs, model)
            else:
                with _progress("embedding") as progress:
                    build_result = bench.measure_build(paragraphs, model, progress=progress)
            result["build"] = build_result.model_dump()
        demo_folder = home() / "indexes" / DEMO_NAME
        reference = None
        if data == "fitted":
            if not (demo_folder / "manifest.json").is_file():
                fail("--data fitted needs the demo index's real vectors: run `agentrt index demo` first, or use --data random")
            with VectorIndex.open(demo_folder) as index:
                reference = index.vectors()[1]
        for n in size_list:
            log.print(f"latency and recall on {n:,} {data} unit vectors ...")
            vectors = bench.fitted_vectors(n, reference, seed=n) if reference is not None else bench.unit_vectors(n, dim, seed=n)
            qs = bench.noisy_queries(vectors, min(queries, n))
            rows += bench.measure_latency(vectors, qs, label=data, ef_searches=ef_list, m=m,
                                          ef_construction=ef_construction, on_row=on_row)
            del vectors
        if real and (demo_folder / "manifest.json").is_file():
            log.print("latency and recall on the demo index's MiniLM vectors with HotpotQA questions ...")
            questions = [json.loads(line)["question"] for line in hotpotqa_path().read_text().splitlines()[-queries:]]
            with VectorIndex.open(demo_folder) as index:
                vectors, qs = bench.hotpotqa_vectors(index, questions)
            rows += bench.measure_latency(vectors, qs, label="hotpotqa", ef_searches=ef_list, m=m,
                                          ef_construction=ef_construction, on_row=on_row)
        elif real:
            log.print("[dim](no demo index yet: `agentrt index demo` builds it, then the bench adds real-data rows)[/]")
    result["latency"] = [r.model_dump() for r in rows]
    chart_path = chart or home() / "bench" / "retrieval.png"
    png = bench.chart(rows, chart_path) if rows else None
    result["chart"] = str(png) if png else None
    chart_path.parent.mkdir(parents=True, exist_ok=True)
    chart_path.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")  # the figures, kept
    if as_json:
        print(json.dumps(result, indent=2))
        return
    if result["build"]:
        b = bench.BuildResult.model_validate(result["build"])
        table = Table("documents", "embedder", "embedding s", "indexing s", "total s", "docs/s", title="index build")
        table.add_row(f"{b.docs:,}", b.embedder, f"{b.embed_s:.1f}", f"{b.index_s:.2f}", f"{b.total_s:.1f}", f"{b.docs_per_s:.1f}")
        console.print(table)
    if rows:
        table = Table("data", "vectors", "search", "build s", "p50 ms", "p99 ms", "batched ms/q", "recall@10",
                      title=f"query latency, k=10, {queries} queries, one at a time")
        for r in rows:
            table.add_row(r.data, f"{r.size:,}", "exact (flat)" if r.kind == "flat" else f"HNSW M={m} ef={r.ef_search}",
                          f"{r.build_s:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.batch_ms:.3f}", f"{r.recall_at_10:.3f}")
        console.print(table)
    console.print(f"figures: {chart_path.with_suffix('.json')}" + (f", chart: {png}" if png else ""), highlight=False, soft_wrap=True)
