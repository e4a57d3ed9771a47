"""Verifiers: did one sampled trajectory solve its task?

The RFT loop samples several attempts per task and keeps the ones a verifier passes, so a
verifier must be deterministic, fast, and never crash on a bad attempt: a malformed tool call
is a failed attempt with a reason, not an exception. Three kinds exist:

* ``bfcl_ast``: the Berkeley Function Calling Leaderboard AST check (function name, required and
  unknown parameters, types from the schema, values among the allowed ones, order-free matching
  of parallel calls, no call at all for irrelevance tasks). Written after BFCL's rules, so our
  pass rates read like BFCL's AST accuracy.
* ``qa``: exact match or token F1 >= 0.8 against gold answers (SQuAD/HotpotQA normalisation).
* a user function named ``package.module:function`` or ``path/to/file.py:function`` that returns
  a :class:`Verdict`, a bool or a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrt.loading import load_reference
from agentrt.qa.metrics import exact_match, f1_score, is_correct
from agentrt.rft.attempts import (
    MALFORMED,
    Attempt,
    Verdict,
    attempt_from_messages,
    parse_arguments,
    short,
)
from agentrt.rft.bfcl_ast import tool_name_key, verify_bfcl_ast
from agentrt.rft.tasks import Task, TaskError

__all__ = ["MALFORMED", "Attempt", "Verdict", "Verifier", "attempt_from_messages", "get_verifier", "parse_arguments",
           "tool_name_key", "verify", "verify_bfcl_ast", "verify_qa"]

QA_F1_THRESHOLD = 0.8
Verifier = Callable[[Task, Attempt], Verdict]


# --------------------------------------------------------------------------------------------
# QA
# --------------------------------------------------------------------------------------------

def verify_qa(task: Task, attempt: Attempt) -> Verdict:
    """Exact match or token F1 >= 0.8 against any gold answer; the score is the best F1."""
    gold = task.expected
    if isinstance(gold, str):
        gold = [gold]
    if not isinstance(gold, list) or not gold or not all(isinstance(g, str) for g in gold):
        raise TaskError(f"task {task.id}: the qa verifier needs `expected` to be a list of gold answer strings")
    if attempt.answer is None or not attempt.answer.strip():
        return Verdict.fail("no final answer")
    f1 = f1_score(attempt.answer, gold)
    if is_correct(attempt.answer, gold, QA_F1_THRESHOLD):
        return Verdict.ok(f"answer matches gold (F1 {f1:.2f})", score=max(f1, exact_match(attempt.answer, gold)))
    return Verdict.fail(f"answer {short(attempt.answer)} does not match gold {short(gold)} (F1 {f1:.2f})", score=f1)


# --------------------------------------------------------------------------------------------
# Lookup
# --------------------------------------------------------------------------------------------

BUILTIN_VERIFIERS: dict[str, Verifier] = {"bfcl_ast": verify_bfcl_ast, "qa": verify_qa}


def get_verifier(name: str) -> Verifier:
    """The verifier ``name`` names: a built-in, ``package.module:function`` or ``path/file.py:function``.

    A user function may return a :class:`Verdict`, a bool, or a float (passed above 0.5); the
    returned callable turns that into a Verdict, and an exception inside the function into a
    failed Verdict, so a buggy verifier costs one attempt, not the run.
    """
    if name in BUILTIN_VERIFIERS:
        return BUILTIN_VERIFIERS[name]
    return _user_verifier(name)


def verify(task: Task, attempt: Attempt) -> Verdict:
    """Check ``attempt`` with the task's verifier. A bad attempt gives a failed Verdict; only a
    task the verifier cannot use at all (unknown verifier, malformed ``expected``) raises TaskError."""
    if not isinstance(attempt, Attempt):
        attempt = Attempt.model_validate(attempt)
    return get_verifier(task.verifier)(task, attempt)


@lru_cache(maxsize=None)
def _user_verifier(reference: str) -> Verifier:
    function = _load_function(reference)

    def run(task: Task, attempt: Attempt) -> Verdict:
        try:
            result = function(task, attempt)
        except Exception as exc:  # noqa: BLE001 - a user verifier's bug fails the attempt, not the run
            return Verdict.fail(f"verifier {reference} raised {type(exc).__name__}: {exc}")
        return _to_verdict(result, reference)

    run.__name__ = getattr(function, "__name__", "user_verifier")
    run.__doc__ = getattr(function, "__doc__", None)
    return run


def _builtin_hint() -> str:
    return (f"use one of the built-in verifiers ({', '.join(sorted(BUILTIN_VERIFIERS))}) "
            "or name a function as package.module:function or path/to/file.py:function")


def _load_function(reference: str) -> Callable[..., Any]:
    if ":" not in reference:
        raise TaskError(f"unknown verifier {reference!r}: {_builtin_hint()}")
    function = load_reference(reference, root=Path.cwd(), error=lambda m: TaskError(f"{m}; {_builtin_hint()}"),
                              what="verifier")
    if not callable(function):
        raise TaskError(f"verifier {reference!r} is not callable")
    return function


def _to_verdict(result: Any, reference: str) -> Verdict:
    """Verdict, bool or number (passed above 0.5, score clipped to 0..1) -> Verdict."""
    if isinstance(result, Verdict):
        return result
    if isinstance(result, bool):
        return Verdict(passed=result, score=float(result), reason=f"{reference} returned {result}")
    if isinstance(result, (int, float)):
        score = float(result)
        if math.isnan(score):
            return Verdict.fail(f"{reference} returned NaN")
        score = min(1.0, max(0.0, score))
        return Verdict(passed=score > 0.5, score=score, reason=f"{reference} returned {result:g}")
    if isinstance(result, dict):
        try:
            return Verdict.model_validate(result)
        except ValueError as exc:
            return Verdict.fail(f"{reference} returned a dict that is not a Verdict: {str(exc).splitlines()[0]}")
    return Verdict.fail(f"{reference} returned {type(result).__name__}; a verifier returns a Verdict, bool or float")
