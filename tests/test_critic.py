"""The trained sufficiency critic (SIM-RAG): training, saving, loading, judging, datasets, CLI.

One real fine-tune of all-MiniLM-L6-v2 on a small learnable task (label 1 iff the answer string
appears in the evidence) is shared by the module; the whole file runs in well under 90 s on 2 cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.critics.classifier import (
    CriticError,
    TrainedCritic,
    answer_in_evidence,
    critic_pair,
    encode_pairs,
    read_meta,
    resolve,
    save_critic,
)
from agentrt.critics.cli import critic_app
from agentrt.critics.types import CriticExample, CriticInput, Judgement
from agentrt.sim_rag.dataset import DatasetError, read_examples, write_examples
from agentrt.sim_rag.stopping import choose_stopping_threshold, practice_paths
from agentrt.sim_rag.train import (
    TrainReport,
    choose_threshold,
    compare_labelings,
    dev_metrics,
    split_by_question,
    train_critic,
)

COUNTRIES = ["Arland", "Borvia", "Castel", "Dunmere", "Eskaria", "Fenwick", "Galdor", "Harrow", "Istra", "Jorvik",
             "Kaleth", "Lumen", "Mordal", "Norland", "Orvane", "Pellar", "Quintar", "Rodan", "Sarnia", "Tolbar",
             "Ulmar", "Veska", "Wendal", "Xantia", "Yorvale", "Zemora", "Aldera", "Brisk", "Corvath", "Delmar",
             "Elvor", "Farrow", "Gavia", "Hollin", "Irwen", "Jastra", "Korvel", "Lysa", "Marrow", "Nesta"]
CITIES = ["Tamsin", "Ravel", "Okara", "Bellhaven", "Corrin", "Dravik", "Emberly", "Falcrest", "Glimmer", "Hestia",
          "Ivory", "Jadeport", "Kestrel", "Larkspur", "Mistral", "Northgate", "Oakheart", "Pinecliff", "Quarry",
          "Redmoor", "Silverton", "Thornbury", "Umber", "Valewood", "Westmarch", "Yarrow", "Zephyr", "Ashford",
          "Brightwater", "Coldspring", "Duskwood", "Eastwick", "Fairhold", "Greystone", "Highmoor", "Ironwell",
          "Juniper", "Kingsbridge", "Lowfield", "Moonfall"]
CAPITAL = dict(zip(COUNTRIES, CITIES))


def synth(n_questions: int = 40, seed: int = 0) -> list[CriticExample]:
    """3 rounds per question, each appending passages to the evidence; label 1 iff the answer
    appears in the evidence (round 2 always, round 1 half the time). ``coverage`` = the question's
    own passage was retrieved (here equal to label)."""
    rng = random.Random(seed)
    out = []
    for q in range(n_questions):
        country = COUNTRIES[q % len(COUNTRIES)]
        city = CAPITAL[country]
        others = rng.sample([c for c in COUNTRIES if c != country], 6)
        evidence: list[str] = []
        for r in range(3):
            found = any(city in p for p in evidence)
            positive = found or r == 2 or (r == 1 and rng.random() < 0.5)
            new = [f"{c}: capital {CAPITAL[c]}." for c in others[2 * r: 2 * r + 2]]
            if positive and not found:
                new.insert(rng.randrange(3), f"{country}: capital {city}.")
            evidence = evidence + new
            if positive:
                answer = city
            else:
                answer = rng.choice([x for x in CITIES if x != city and all(x not in p for p in evidence)])
            out.append(CriticExample(
                question=f"What is the capital of {country}?", evidence=evidence, answer=answer,
                rationale=f"says {answer}", question_id=f"q{q}", round=r,
                label=int(answer in " ".join(evidence)), coverage=int(positive), gold_answers=[city]))
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agentrt-home")


@pytest.fixture(autouse=True)
def _home_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_HOME", str(home))


@pytest.fixture(scope="module")
def trained(home: Path) -> TrainReport:
    steps: list[tuple[int, int]] = []
    report = train_critic(synth(), name="synth", epochs=3, batch_size=8, lr=1e-4, max_length=128,
                          root=home / "critics", progress=lambda done, total, loss: steps.append((done, total)))
    assert steps[-1] == (36, 36) and len(steps) == 36  # 96 train rounds / 8 * 3 epochs
    return report


# ---------------------------------------------------------------- training


def test_learns_the_task_and_reports(trained: TrainReport, home: Path) -> None:
    m, meta = trained.metrics, trained.critic
    assert m.n == 24 and meta.dev_balance.questions == 8 and meta.train_balance.questions == 32
    assert m.accuracy is not None and m.accuracy >= 0.85, m
    assert m.accuracy_at_half is not None and m.accuracy_at_half >= 0.75, m
    assert m.auc is not None and m.auc > 0.8, m
    assert 0 <= (m.ece or 0) <= 1 and 0 <= (m.brier or 0) < 0.25
    assert m.positive_rate == meta.dev_balance.positives / 24
    assert meta.train_balance.positives + meta.train_balance.negatives == 96
    assert meta.train_balance.positives > 0 and meta.train_balance.negatives > 0
    assert "weighted cross-entropy" in meta.training.balancing
    assert meta.training.examples_per_second > 0 and len(meta.training.train_loss) == 3
    assert meta.training.train_loss[-1] < meta.training.train_loss[0]
    # split by question: disjoint, and every question on one side
    assert not set(trained.train_questions) & set(trained.dev_questions)
    assert set(trained.train_questions) | set(trained.dev_questions) == {f"q{i}" for i in range(40)}
    # saved, versioned, complete
    assert trained.path == home / "critics" / "synth" / "v1" and trained.name == "synth@1"
    assert {"critic.json", "config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in trained.path.iterdir()}
    assert read_meta(trained.path) == meta
    assert meta.label == "correct" and meta.max_length == 128 and len(meta.data_hash) == 64
    assert "all-MiniLM-L6-v2" in meta.base_model
    assert json.loads((trained.path / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0  # CPU speed


def test_split_by_question() -> None:
    examples = synth(40)
    for seed in range(5):
        train, dev = split_by_question(examples, 0.2, seed)
        train_q, dev_q = {e.question_id for e in train}, {e.question_id for e in dev}
        assert not train_q & dev_q and len(dev_q) == 8 and len(train) + len(dev) == len(examples)
        assert all(len([e for e in dev if e.question_id == q]) == 3 for q in dev_q)
    assert split_by_question(examples, 0.2, 1) != split_by_question(examples, 0.2, 2)
    train, dev = split_by_question(examples, 0.0, 0)
    assert dev == [] and len(train) == len(examples)


def test_judge_uses_the_saved_threshold_and_round_trips(trained: TrainReport, tmp_path: Path) -> None:
    critic = TrainedCritic.load("synth@1")
    assert critic.name == "synth@1" and critic.threshold == trained.threshold
    dev = [e for e in synth() if e.question_id in trained.dev_questions]
    verdicts = critic.judge(dev)
    assert all(isinstance(v, Judgement) and v.critic == "synth@1" for v in verdicts)
    assert [v.accept for v in verdicts] == [v.score >= trained.threshold for v in verdicts]
    # the loaded model reproduces the dev accuracy measured on the in-memory model during training
    accuracy = sum(v.accept == bool(e.label) for v, e in zip(verdicts, dev)) / len(dev)
    assert accuracy == pytest.approx(trained.metrics.accuracy)
    assert critic.judge([]) == []
    # batching and order do not change scores
    plain = [CriticInput(**e.model_dump(include={"question", "evidence", "answer", "rationale"})) for e in dev]
    assert [v.score for v in critic.judge(plain[::-1])][::-1] == pytest.approx([v.score for v in verdicts], abs=1e-5)

    # save / load round trip: identical scores
    folder, meta = save_critic(critic.model, critic.tokenizer, critic.meta, root=tmp_path / "critics")
    assert meta.version == 1 and folder == tmp_path / "critics" / "synth" / "v1"
    again = TrainedCritic.load(folder)
    assert [v.score for v in again.judge(dev)] == [v.score for v in verdicts]

    # the threshold in critic.json is what judge uses
    raw = json.loads((folder / "critic.json").read_text())
    for threshold in (0.0, sorted(v.score for v in verdicts)[len(verdicts) // 2]):
        (folder / "critic.json").write_text(json.dumps({**raw, "threshold": threshold}))
        edited = TrainedCritic.load(str(folder))
        assert [v.accept for v in edited.judge(dev)] == [v.score >= threshold for v in verdicts]
    assert not all(v.accept for v in TrainedCritic.load(folder).judge(dev))  # the median threshold rejects some


def test_retrain_increments_the_version(trained: TrainReport, home: Path) -> None:
    report = train_critic(synth(12, seed=3), name="synth", epochs=1, batch_size=8, max_length=64, dev_fraction=0.25)
    assert report.critic.version == 2 and report.path == home / "critics" / "synth" / "v2"
    assert TrainedCritic.load("synth").name == "synth@2"
    assert resolve("synth@1") == trained.path
    assert not [p for p in (home / "critics" / "synth").iterdir() if p.name.startswith(".staging")]


def test_save_failure_leaves_nothing(trained: TrainReport, tmp_path: Path) -> None:
    critic = TrainedCritic.load(trained.path)

    class BrokenTokenizer:
        def save_pretrained(self, folder: Path) -> None:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_critic(critic.model, BrokenTokenizer(), critic.meta, root=tmp_path)
    assert [p.name for p in (tmp_path / "synth").iterdir()] == []


def test_coverage_label_and_bad_arguments(tmp_path: Path) -> None:
    unlabelled = [e.model_copy(update={"coverage": None}) for e in synth(4)]
    with pytest.raises(CriticError, match="no example has a 'coverage' label"):
        train_critic(unlabelled, name="c", label="coverage", root=tmp_path)
    with pytest.raises(CriticError, match="bad critic name"):
        train_critic(synth(4), name="a/b", root=tmp_path)
    one_class = [e.model_copy(update={"label": 1}) for e in synth(6)]
    with pytest.raises(CriticError, match="only label 1"):
        train_critic(one_class, name="c", root=tmp_path)
    with pytest.raises(CriticError, match="max_length"):
        train_critic(synth(4), name="c", max_length=1024, root=tmp_path)


# ---------------------------------------------------------------- loading errors


def _fake_critic(folder: Path, meta: dict | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{not json")
    if meta is not None:
        (folder / "critic.json").write_text(json.dumps(meta))
    return folder


def test_incompatible_or_broken_critics(trained: TrainReport, tmp_path: Path) -> None:
    good = json.loads((trained.path / "critic.json").read_text())
    newer = _fake_critic(tmp_path / "newer", {**good, "format_version": 99})
    with pytest.raises(CriticError, match=r"incompatible agentrt version \(format 99, this one reads 1\).*agentrt critic train"):
        TrainedCritic.load(newer)
    unknown = _fake_critic(tmp_path / "unknown", {k: v for k, v in good.items() if k != "format_version"})
    with pytest.raises(CriticError, match=r"incompatible agentrt version \(format unknown"):
        TrainedCritic.load(str(unknown))
    missing = _fake_critic(tmp_path / "missing", None)
    with pytest.raises(CriticError, match=r"format missing: no critic.json.*agentrt critic train"):
        TrainedCritic.load(missing)
    broken_model = _fake_critic(tmp_path / "broken", good)
    with pytest.raises(CriticError, match=r"could not be loaded.*retrain it with `agentrt critic train`"):
        TrainedCritic.load(broken_model)
    bad_field = _fake_critic(tmp_path / "badfield", {**good, "threshold": "high"})
    with pytest.raises(CriticError, match="does not match format 1"):
        TrainedCritic.load(bad_field)


def test_missing_critic(trained: TrainReport, tmp_path: Path) -> None:
    with pytest.raises(CriticError, match=r"no critic named 'nope' under .*\(known: synth\).*agentrt critic train"):
        TrainedCritic.load("nope")
    with pytest.raises(CriticError, match="has no version '9'"):
        TrainedCritic.load("synth@9")
    with pytest.raises(CriticError, match="no critic folder at"):
        TrainedCritic.load(tmp_path / "absent")


# ---------------------------------------------------------------- encoding and metrics


def test_encode_pairs_cuts_the_evidence_first(trained: TrainReport) -> None:
    tokenizer = TrainedCritic.load(trained.path).tokenizer
    item = CriticInput(question="What is the capital of Arland?", answer="Tamsin", rationale="passage one says so",
                       evidence=[f"Doc {i}: " + "filler words " * 30 + f"marker{i}" for i in range(5)])
    first, second = critic_pair(item)
    assert second.index("Answer: Tamsin") < second.index("Rationale:") < second.index("Evidence: [1] Doc 0")
    enc = encode_pairs(tokenizer, [first, "short"], [second, "tiny"], 64)
    assert enc["input_ids"].shape == (2, 64) and int(enc["attention_mask"][1].sum()) < 10
    text = tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert "capital of arland" in text and "tamsin" in text and "passage one says so" in text
    assert "marker0" not in text and "marker4" not in text
    # a huge question cannot push the answer out: the second text keeps at least half the room
    enc = encode_pairs(tokenizer, ["why " * 500], [second], 64)
    text = tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert enc["input_ids"].shape == (1, 64) and "tamsin" in text and "passage one says so" in text


def test_answer_check_says_whether_the_answer_is_in_the_evidence(trained: TrainReport) -> None:
    evidence = ["Paris: Paris is the capital of France.", "Eiffel Tower: built in 1889."]
    assert answer_in_evidence("the Paris", evidence) == "yes"  # normalised: articles, case
    assert answer_in_evidence("Lyon", evidence) == "no" and answer_in_evidence("", evidence) == "no"
    assert answer_in_evidence("Yes.", evidence) == "yes/no answer"
    item = CriticInput(question="Where?", answer="1889", evidence=evidence)
    assert critic_pair(item, answer_check=True)[1].startswith("Answer in evidence: yes. Answer: 1889")
    assert critic_pair(item)[1].startswith("Answer: 1889")
    # the saved critic reads rounds the way it was trained (the default for new critics)
    assert trained.critic.answer_check is True and TrainedCritic.load(trained.path).meta.answer_check is True


def test_threshold_choice_and_metrics() -> None:
    scores = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95]
    labels = [0, 0, 0, 0, 1, 0, 1, 1, 1, 1]
    threshold, rule = choose_threshold(scores, labels)
    assert threshold == pytest.approx(0.375) and "0.900" in rule  # 9/10 at 0.375 and at 0.65: nearer 0.5 wins
    assert choose_threshold(scores[:5], labels[:5])[0] == 0.5  # too few to tune
    m = dev_metrics(scores, labels, 0.5)
    assert m.accuracy == 0.8 and m.accept_rate == 0.5 and m.accept_precision == 0.8 and m.auc == pytest.approx(0.96)
    assert m.brier == pytest.approx(sum((s - y) ** 2 for s, y in zip(scores, labels)) / 10)
    perfect = dev_metrics([0.05, 0.95], [0, 1], 0.5)
    assert perfect.ece == pytest.approx(0.05)


def test_compare_labelings() -> None:
    base = synth(4)[0]

    def ex(label: int, coverage: int | None) -> CriticExample:
        return base.model_copy(update={"label": label, "coverage": coverage})

    rows = [ex(1, 1)] * 4 + [ex(1, 0)] + [ex(0, 1)] + [ex(0, 0)] * 2 + [ex(1, None), ex(0, None)]
    out = compare_labelings(rows)
    assert out["n"] == 8 and out["without_coverage"] == 2
    assert (out["both_positive"], out["correct_only"], out["coverage_only"], out["both_negative"]) == (4, 1, 1, 2)
    assert out["agreement"] == 0.75
    from sklearn.metrics import cohen_kappa_score

    expected = cohen_kappa_score([1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 1, 0, 0])
    assert out["kappa"] == pytest.approx(expected) == pytest.approx(0.21875 / 0.46875)
    assert compare_labelings([ex(1, 1)] * 3)["kappa"] is None  # both constant: undefined
    assert compare_labelings([ex(1, None)])["agreement"] is None


# ---------------------------------------------------------------- datasets


def test_dataset_round_trip_and_errors(tmp_path: Path) -> None:
    path = write_examples(tmp_path / "d" / "set.jsonl", synth(3))
    assert read_examples(path) == synth(3)

    def failing():
        yield synth(1)[0]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_examples(path, failing())
    assert read_examples(path) == synth(3) and [p.name for p in path.parent.iterdir()] == ["set.jsonl"]

    def check(text: str, pattern: str) -> None:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text)
        with pytest.raises(DatasetError, match=pattern):
            read_examples(bad)

    good = synth(1)[0].model_dump_json()
    check("", r"bad.jsonl is empty")
    check("\n  \n", r"is empty")
    check(good + "\n{oops\n", r"line 2: not valid JSON")
    check(good + "\n\n" + good.replace('"label":0', '"label":3').replace('"label":1', '"label":3') + "\n",
          r"line 3: not a valid dataset row \(label: Input should be less than or equal to 1")
    check(json.dumps({"question": "q"}), r"line 1: not a valid dataset row .*Field required")
    check("[1, 2]\n", r"line 1: expected a JSON object")
    with pytest.raises(DatasetError, match="no dataset file"):
        read_examples(tmp_path / "absent.jsonl")


# ---------------------------------------------------------------- CLI


def test_cli(trained: TrainReport, home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"AGENTRT_HOME": str(home), "COLUMNS": "200"}

    result = runner.invoke(critic_app, ["list"], env=env)
    assert result.exit_code == 0, result.output
    assert "synth@1" in result.output and "correct" in result.output

    result = runner.invoke(critic_app, ["show", "synth@1"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 1

    result = runner.invoke(critic_app, ["show", "nope"], env=env)
    assert result.exit_code == 2 and "no critic named 'nope'" in result.output

    dataset = write_examples(tmp_path / "small.jsonl", synth(10, seed=5))
    result = runner.invoke(critic_app, ["train", str(dataset), "--name", "cli", "--epochs", "1", "--batch-size", "8",
                                        "--max-length", "64", "--label", "coverage"], env=env)
    assert result.exit_code == 0, result.output
    assert "AUC" in result.output and "saved critic cli@1 to" in result.output and "threshold" in result.output
    assert read_meta(home / "critics" / "cli" / "v1").label == "coverage"

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    result = runner.invoke(critic_app, ["train", str(bad), "--name", "x"], env=env)
    assert result.exit_code == 2 and "line 1: not valid JSON" in result.output
    result = runner.invoke(critic_app, ["train", str(dataset), "--name", "x", "--label", "bogus"], env=env)
    assert result.exit_code == 2 and "--label must be correct or coverage" in result.output

    result = runner.invoke(critic_app, ["list"], env={"AGENTRT_HOME": str(tmp_path / "empty"), "COLUMNS": "200"})
    assert result.exit_code == 0 and "no critics under" in result.output


# ---------------------------------------------------------------- the threshold, by replaying the loop


def _round(qid: str, r: int, evidence: list[str], answer: str, gold: str) -> CriticExample:
    return CriticExample(question_id=qid, round=r, question="?", evidence=evidence, answer=answer, label=int(answer == gold),
                         gold_answers=[gold])


def test_the_threshold_is_the_best_replayed_stopping_rule() -> None:
    dev = [
        _round("q1", 1, ["a"], "x", "g1"), _round("q1", 2, ["a", "b"], "g1", "g1"), _round("q1", 3, ["a", "b", "c"], "g1", "g1"),
        _round("q2", 1, ["d"], "g2", "g2"), _round("q2", 2, ["d", "e"], "g2", "g2"), _round("q2", 3, ["d", "e", "k"], "g2", "g2"),
        # two practice paths merged: same first retrieval, two answers; two second retrievals
        _round("q3", 1, ["f"], "y", "g3"), _round("q3", 1, ["f"], "g3", "g3"),
        _round("q3", 2, ["f", "g"], "g3", "g3"), _round("q3", 2, ["f", "h"], "z", "g3"),
        _round("q3", 3, ["f", "g", "i"], "g3", "g3"), _round("q3", 3, ["f", "h", "j"], "z", "g3"),
    ]
    scores = [0.2, 0.9, 0.95, 0.8, 0.85, 0.9, 0.1, 0.7, 0.6, 0.3, 0.6, 0.2]
    assert sorted(map(tuple, practice_paths(range(6, 12), dev))) == [(6, 8, 10), (6, 9, 11), (7, 8, 10), (7, 9, 11)]
    stop = choose_stopping_threshold(dev, scores, retrieval_cost=0.01)
    assert stop is not None and stop.questions == 3 and stop.paths == 6
    # q1 must not stop at its wrong first round (0.2); q3's wrong second round (0.3) may stop early
    assert stop.chosen.threshold == pytest.approx(0.25)
    assert stop.chosen.f1 == pytest.approx((1 + 1 + 0.75) / 3) and stop.chosen.rounds == pytest.approx((2 + 1 + 1.5) / 3)
    assert stop.first_round.f1 == pytest.approx(0.5) and stop.first_round.rounds == 1
    assert stop.at_cap.f1 == pytest.approx((1 + 1 + 0.5) / 3) and stop.at_cap.rounds == 3
    # rounds that cost too much make the first answer good enough
    assert choose_stopping_threshold(dev, scores, retrieval_cost=1.0).chosen.rounds == 1
    no_gold = [e.model_copy(update={"gold_answers": []}) for e in dev]
    assert choose_stopping_threshold(no_gold, scores) is None  # the per-round accuracy rule then applies


def test_training_picks_its_threshold_by_replay(trained: TrainReport) -> None:
    stop, meta = trained.critic.stopping, trained.critic
    assert stop is not None and stop.questions == meta.dev_balance.questions
    assert meta.threshold == stop.chosen.threshold and "replayed SIM-RAG loop" in meta.threshold_rule
    # the synthetic answer is right once its passage is in: the critic stops there, before the cap
    assert stop.chosen.f1 >= stop.at_cap.f1 - 1e-9 and stop.chosen.rounds < stop.at_cap.rounds
    assert stop.chosen.f1 > stop.first_round.f1
