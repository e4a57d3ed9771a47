"""Monte Carlo tree search over CR-Planner's actions, to collect the critics' training pairs.

A state node holds a plan; its edges are the allowed sub-goals; expanding an edge executes the
sub-goal once (``samples`` model-written candidates, or the ``retrieve_k`` retrieved passages)
and makes one child per candidate. Each new child is valued by a rollout to the end with a
fixed cheap policy (retrieve the pending query if there is one, then answer greedily), and the
reward is the QA verifier's score of the final answer against the gold answers (token F1 under
the standard normalisation). Values are backed up along the path; selection is UCT.

From the finished tree, sibling pairs whose values differ by at least ``margin`` become ranking
pairs: sibling sub-goals of a state train the sub-goal critic, sibling candidates of one
sub-goal train the execution critic.

Budgets: ``simulations`` per question and ``max_model_calls`` per question; the search stops as
soon as the next model call would exceed the latter, so the budget is never overspent.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from agentrt.cr_planner.critics import pair_text
from agentrt.cr_planner.plan import (
    SUBGOALS,
    Candidate,
    Plan,
    PlanSettings,
    Subgoal,
    action_text,
    allowed_subgoals,
    apply,
    propose,
    state_text,
)
from agentrt.critics.ranking import RankingPair
from agentrt.qa.data import QATask
from agentrt.qa.metrics import f1_score
from agentrt.retrieval.types import Retriever


class SearchSettings(BaseModel):
    simulations: int = Field(8, ge=1)  # per question
    max_model_calls: int = Field(40, ge=1)  # per question, rollouts included
    exploration: float = Field(1.0, ge=0.0)  # the UCT constant
    margin: float = Field(0.1, ge=0.0)  # least value difference that makes a pair


class OutOfBudget(Exception):
    """The next model call would exceed the search's budget."""


@dataclass
class Node:
    plan: Plan
    reward: float | None = None  # set for finished plans
    edges: dict[str, Edge] = field(default_factory=dict)
    n: int = 0
    w: float = 0.0

    @property
    def q(self) -> float:
        return self.w / self.n if self.n else 0.0


@dataclass
class Edge:
    subgoal: Subgoal
    candidates: list[Candidate] | None = None  # None: not expanded yet
    children: list[Node] = field(default_factory=list)  # one per candidate
    n: int = 0
    w: float = 0.0

    @property
    def q(self) -> float:
        return self.w / self.n if self.n else 0.0


class TreeStats(BaseModel):
    question_id: str
    simulations: int
    model_calls: int
    nodes: int
    depth: int
    best_reward: float  # the best final answer any rollout or leaf reached
    root_values: dict[str, float]  # Q of each sub-goal at the root
    subgoal_pairs: int
    execution_pairs: int
    stopped: str  # simulations | budget


class TreeSearch:
    """One question's search; ``run()`` returns (pairs, stats)."""

    def __init__(self, task: QATask, settings: PlanSettings, search: SearchSettings, *, model: Any,
                 retriever: Retriever) -> None:
        self.task, self.settings, self.search = task, settings, search
        self.model, self.retriever = model, retriever
        self.calls = 0
        self.best = 0.0
        self.seed = int(hashlib.sha256(task.id.encode()).hexdigest()[:8], 16)
        self.root = Node(Plan.start(task.question))

    # -- model calls, within the budget ----------------------------------------------------
    def _propose(self, plan: Plan, subgoal: Subgoal, greedy: bool = False) -> list[Candidate]:
        if subgoal != "retrieve" and self.calls + 1 > self.search.max_model_calls:
            raise OutOfBudget
        self.seed += 1
        candidates, calls = propose(plan, subgoal, self.settings, model=self.model, retriever=self.retriever,
                                    seed=self.seed, greedy=greedy)
        self.calls += calls
        return candidates

    def _reward(self, plan: Plan) -> float:
        reward = f1_score(plan.answer or "", self.task.answers)
        self.best = max(self.best, reward)
        return reward

    def rollout(self, plan: Plan) -> float:
        """The default policy to the end: retrieve the pending query, then answer greedily."""
        if plan.done:
            return self._reward(plan)
        if plan.pending_query and "retrieve" in allowed_subgoals(plan, self.settings):
            docs = self._propose(plan, "retrieve")
            plan = apply(plan, "retrieve", docs[: self.settings.keep_docs])
        answers = self._propose(plan, "answer", greedy=True)
        return self._reward(apply(plan, "answer", answers[:1]))

    # -- the search ------------------------------------------------------------------------
    def _uct(self, parent_n: int, n: int, q: float) -> float:
        return q + self.search.exploration * math.sqrt(math.log(max(parent_n, 1)) / n)

    def _select_edge(self, node: Node) -> Edge:
        allowed = allowed_subgoals(node.plan, self.settings)
        for subgoal in SUBGOALS:  # untried sub-goals first, in the default order
            if subgoal in allowed and (subgoal not in node.edges or node.edges[subgoal].n == 0):
                return node.edges.setdefault(subgoal, Edge(subgoal))
        return max((node.edges[s] for s in allowed), key=lambda e: self._uct(node.n, e.n, e.q))

    def _expand(self, node: Node, edge: Edge) -> float:
        """Execute the sub-goal, value each candidate by a rollout; the mean value is backed up."""
        plan = node.plan
        candidates = self._propose(plan, edge.subgoal)
        edge.candidates = []
        if not candidates:  # nothing usable came out: a dead end, worth nothing
            return 0.0
        values = []
        for i, cand in enumerate(candidates):
            if edge.subgoal == "retrieve":  # this passage first, then the retriever's next best
                others = [c for j, c in enumerate(candidates) if j != i][: self.settings.keep_docs - 1]
                child_plan = apply(plan, "retrieve", [cand, *others])
            else:
                child_plan = apply(plan, edge.subgoal, [cand])
            try:
                value = self.rollout(child_plan)
            except OutOfBudget:
                break
            child = Node(child_plan, reward=value if child_plan.done else None, n=1, w=value)
            edge.candidates.append(cand)
            edge.children.append(child)
            values.append(value)
        if not values:
            raise OutOfBudget
        return sum(values) / len(values)

    def simulate(self) -> None:
        node, path_nodes, path_edges = self.root, [self.root], []
        while True:
            if node.plan.done:
                value = node.reward or 0.0
                break
            edge = self._select_edge(node)
            path_edges.append(edge)
            if edge.candidates is None:
                try:
                    value = self._expand(node, edge)
                except OutOfBudget:
                    if not edge.children:
                        edge.candidates = None  # nothing learned: leave it unexpanded
                    raise
                break
            if not edge.children:  # expanded but gave no usable candidate: a dead end
                value = 0.0
                break
            node = max(edge.children, key=lambda c: self._uct(edge.n, c.n, c.q))
            path_nodes.append(node)
        for n in path_nodes:
            n.n += 1
            n.w += value
        for e in path_edges:
            e.n += 1
            e.w += value

    def run(self) -> tuple[list[RankingPair], TreeStats]:
        stopped = "simulations"
        done = 0
        for _ in range(self.search.simulations):
            if self.root.plan.done or not allowed_subgoals(self.root.plan, self.settings):
                break
            try:
                self.simulate()
            except OutOfBudget:
                stopped = "budget"
                break
            done += 1
        pairs = self.pairs()
        nodes, depth = _size(self.root)
        stats = TreeStats(
            question_id=self.task.id, simulations=done, model_calls=self.calls, nodes=nodes, depth=depth,
            best_reward=self.best, root_values={s: round(e.q, 4) for s, e in self.root.edges.items() if e.n},
            subgoal_pairs=sum(p.kind == "subgoal" for p in pairs),
            execution_pairs=sum(p.kind == "execution" for p in pairs), stopped=stopped,
        )
        return pairs, stats

    # -- training pairs ----------------------------------------------------------------------
    def pairs(self) -> list[RankingPair]:
        out: list[RankingPair] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            state = state_text(node.plan, self.settings)
            edges = [e for e in node.edges.values() if e.n]
            out += self._pairs("subgoal", state, [(action_text(e.subgoal), e.q, e.n) for e in edges])
            for e in edges:
                valued = [(action_text(e.subgoal, c), child.q, child.n) for c, child in zip(e.candidates or [], e.children)]
                out += self._pairs("execution", state, valued)
                stack.extend(e.children)
        return out

    def _pairs(self, kind: str, state: str, actions: list[tuple[str, float, int]]) -> list[RankingPair]:
        out = []
        for i, (a, qa, na) in enumerate(actions):
            for b, qb, nb in actions[i + 1:]:
                if a == b or abs(qa - qb) < self.search.margin:
                    continue
                (better, bv, bn), (worse, wv, wn) = ((a, qa, na), (b, qb, nb)) if qa > qb else ((b, qb, nb), (a, qa, na))
                out.append(RankingPair(group=self.task.id, kind=kind, context=self.task.question,
                                       better=pair_text(better, state), worse=pair_text(worse, state),
                                       better_value=bv, worse_value=wv, better_visits=bn, worse_visits=wn))
        return out


def _size(node: Node, depth: int = 0) -> tuple[int, int]:
    count, deepest = 1, depth
    for e in node.edges.values():
        for child in e.children:
            c, d = _size(child, depth + 1)
            count, deepest = count + c, max(deepest, d)
    return count, deepest
