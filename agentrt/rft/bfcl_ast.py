"""The Berkeley Function Calling Leaderboard's AST check, after BFCL's own rules: the function name,
required and unknown parameters, types from the schema, values among the allowed ones, order-free
matching of parallel calls, and no call at all for irrelevance tasks; so pass rates read like
BFCL's AST accuracy. Each failure says which rule broke."""

from __future__ import annotations

import re
from typing import Any

from agentrt.rft.attempts import MALFORMED, Attempt, Verdict, short
from agentrt.rft.tasks import Task, TaskError

# JSON Schema type -> the JSON kinds of value it admits; BFCL's own names are understood too,
# so tasks written by hand in BFCL's dialect check the same way.
_SCHEMA_KINDS: dict[str, set[str]] = {
    "string": {"string"}, "integer": {"integer"}, "number": {"integer", "number"},
    "boolean": {"boolean"}, "array": {"array"}, "object": {"object"}, "null": {"null"},
    "float": {"integer", "number"}, "dict": {"object"}, "tuple": {"array"}, "list": {"array"},
    "bool": {"boolean"}, "int": {"integer"}, "str": {"string"},
}


def tool_name_key(name: str) -> str:
    """Names compare after "." -> "_": OpenAI tool names cannot hold dots, BFCL's can."""
    return name.replace(".", "_")


def verify_bfcl_ast(task: Task, attempt: Attempt) -> Verdict:
    """BFCL's AST check. ``task.expected`` is BFCL's ground truth, ``[{name: {param: [allowed...]}}]``;
    empty or None means the right behaviour is to call nothing.

    Several expected calls match order-free: each expected call needs its own model call and
    the counts must agree. The score is the share of calls matched, so a parallel attempt with
    one of two calls right scores 0.5 but does not pass.
    """
    expected = _expected_calls(task)
    calls = attempt.tool_calls
    if not expected:
        if not calls:
            return Verdict.ok("no call, as expected")
        return Verdict.fail(f"expected no call, got {len(calls)}")
    if not calls:
        return Verdict.fail(f"expected {_count(len(expected), 'call')}, got none")
    schemas = _tool_parameters(task)
    for name, _ in expected:
        if tool_name_key(name) not in schemas:
            raise TaskError(f"task {task.id}: expected function {name} is not among its tools; add its schema to `tools`")
    errors = [[_check_call(call, name, allowed, schemas) for name, allowed in expected] for call in calls]
    matching = _match(errors)
    score = len(matching) / max(len(expected), len(calls))
    if len(matching) == len(expected) == len(calls):
        return Verdict.ok(f"all {len(calls)} calls match" if len(calls) > 1 else "call matches")
    reason = _unmatched_reason(expected, errors, matching)
    if len(calls) != len(expected):
        reason = f"expected {_count(len(expected), 'call')}, got {len(calls)}" + (f"; {reason}" if reason else "")
    return Verdict.fail(reason, score)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _expected_calls(task: Task) -> list[tuple[str, dict[str, list[Any]]]]:
    """The ground truth as (function name, {param: allowed values}) pairs; a malformed one is a task bug."""
    if not task.expected:
        return []
    if not isinstance(task.expected, list):
        raise TaskError(f"task {task.id}: bfcl_ast expects `expected` to be a list like "
                        f"[{{\"func\": {{\"param\": [values]}}}}], got {type(task.expected).__name__}")
    calls = []
    for entry in task.expected:
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise TaskError(f"task {task.id}: each expected call is a one-key dict {{name: {{param: [values]}}}}, got {entry!r}")
        (name, params), = entry.items()
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise TaskError(f"task {task.id}: the parameters of expected call {name} must map each name to a list of allowed values")
        calls.append((name, params))
    return calls


def _tool_parameters(task: Task) -> dict[str, dict[str, Any]]:
    """Parameter schemas of the offered tools by normalised name (OpenAI or bare function schemas)."""
    schemas: dict[str, dict[str, Any]] = {}
    for tool in task.tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            schemas[tool_name_key(function["name"])] = parameters if isinstance(parameters, dict) else {}
    return schemas


def _check_call(call: dict[str, Any], expected_name: str, allowed: dict[str, list[Any]],
                schemas: dict[str, dict[str, Any]]) -> str | None:
    """Why ``call`` does not match the expected call, or None when it does."""
    name = call.get("name")
    if not isinstance(name, str) or not name:
        return "a call has no function name"
    if tool_name_key(name) != tool_name_key(expected_name):
        return f"wrong function: expected {expected_name}, got {name}"
    arguments = call.get("arguments")
    if isinstance(arguments, dict) and MALFORMED in arguments:
        return f"arguments of {name} are not a JSON object: {short(arguments[MALFORMED])}"
    if not isinstance(arguments, dict):
        return f"arguments of {name} are not a JSON object: {short(arguments)}"
    schema = schemas[tool_name_key(expected_name)]
    properties = schema.get("properties")
    for param in schema.get("required") or []:
        if param not in arguments:
            return f"missing required parameter '{param}' in {expected_name}"
    for param, value in arguments.items():
        if properties is not None and param not in properties:
            return f"unknown parameter '{param}' in {expected_name}"
        if param not in allowed:
            return f"unexpected parameter '{param}' in {expected_name} (the answer does not set it)"
        error = _check_value(value, allowed[param], (properties or {}).get(param), f"'{param}'")
        if error:
            return f"{error} in {expected_name}"
    for param, values in allowed.items():
        if param not in arguments and not _may_omit(values):
            return f"missing parameter '{param}' in {expected_name} (expected {_alternatives(values)})"
    return None


def _check_value(value: Any, allowed: list[Any], schema: Any, label: str) -> str | None:
    """Type and value of one parameter (or dict key) against its allowed alternatives."""
    alternatives = [a for a in allowed if not _is_omitted(a)]
    type_error = _type_error(value, schema, alternatives)
    if type_error:
        return f"{type_error} for {label}"
    if len(alternatives) < len(allowed) and _equal(value, ""):
        return None  # an empty string where the parameter may be left out: BFCL accepts it too
    errors = [_matches(value, a, schema, label) for a in alternatives]
    if any(e is None for e in errors):
        return None
    if not alternatives:
        return f"{label} should be left out, got {short(value)}"
    if len(alternatives) == 1 and isinstance(alternatives[0], (dict, list)):
        return errors[0]
    return f"invalid value for {label}: {short(value)}, expected {_alternatives(alternatives)}"


def _may_omit(allowed: list[Any]) -> bool:
    """"" among the allowed values marks an optional parameter. An empty list (two live_simple
    records) admits no value at all; BFCL then fails every answer, we take it as "leave it out"."""
    return not allowed or any(_is_omitted(a) for a in allowed)


def _is_omitted(value: Any) -> bool:
    return isinstance(value, str) and value == ""


def _alternatives(values: list[Any]) -> str:
    shown = [v for v in values if not _is_omitted(v)]
    if not shown:
        return "it left out"
    if len(shown) == 1:
        return short(shown[0])
    return "one of " + short(shown, 120)


def _kind(value: Any) -> str:
    """The JSON kind of a value; bool is its own kind (True is no integer here)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_error(value: Any, schema: Any, alternatives: list[Any]) -> str | None:
    """Wrong-type message, or None. A value of the schema's type passes (an integer where a
    number is expected too). Where an allowed answer is itself off-schema (a variable name for
    a number, null), a value of that answer's type passes the type check as in BFCL; otherwise
    5.0 for an integer or "5" for a number is a type error."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    if declared is None or declared == "any":
        return None
    names = declared if isinstance(declared, list) else [declared]
    kinds: set[str] = set()
    for name in names:
        kinds |= _SCHEMA_KINDS.get(name, {"*"}) if isinstance(name, str) else {"*"}
    kind = _kind(value)
    if "*" in kinds or kind in kinds:
        return None
    numeric = {"integer", "number"}
    for alternative in alternatives:
        other = _kind(alternative)
        if other not in kinds and (other == kind or (other in numeric and kind in numeric)):
            return None  # the answer itself is off-schema; the value is judged against it
    return f"wrong type: expected {'/'.join(map(str, names))}, got {kind} {short(value)}"


def _matches(value: Any, allowed: Any, schema: Any, label: str) -> str | None:
    """Why ``value`` is not the single allowed value ``allowed``, or None when it is.

    A dict whose values are all lists is an answer spec ({key: [allowed...]}, BFCL's form for
    dict parameters and list-of-dict elements); any other dict, list or scalar is a literal
    compared element-wise with the same rules.
    """
    if _is_spec(allowed):
        spec_error = _matches_spec(value, allowed, schema, label)
        if spec_error is None or _equal(value, allowed):
            return None
        return spec_error
    if isinstance(allowed, list):
        if not isinstance(value, (list, tuple)):
            return f"wrong type: expected array, got {_kind(value)} {short(value)} for {label}"
        if len(value) != len(allowed):
            return f"{label} has {len(value)} items, expected {len(allowed)}: {short(allowed)}"
        items = schema.get("items") if isinstance(schema, dict) else None
        for index, (item, want) in enumerate(zip(value, allowed, strict=True)):
            type_error = _type_error(item, items, [want])
            if type_error:
                return f"{type_error} for {label}[{index}]"
            error = _matches(item, want, items, f"{label}[{index}]")
            if error:
                return error
        return None
    return None if _equal(value, allowed) else f"invalid value for {label}: {short(value)}, expected {short(allowed)}"


def _is_spec(allowed: Any) -> bool:
    return isinstance(allowed, dict) and bool(allowed) and all(isinstance(v, list) for v in allowed.values())


def _matches_spec(value: Any, spec: dict[str, list[Any]], schema: Any, label: str) -> str | None:
    if not isinstance(value, dict):
        return f"wrong type: expected object, got {_kind(value)} {short(value)} for {label}"
    properties = (schema.get("properties") if isinstance(schema, dict) else None) or {}
    for key, item in value.items():
        if key not in spec:
            return f"unexpected key '{key}' in {label}"
        error = _check_value(item, spec[key], properties.get(key), f"{label}['{key}']")
        if error:
            return error
    for key, values in spec.items():
        if key not in value and not _may_omit(values):
            return f"missing key '{key}' in {label} (expected {_alternatives(values)})"
    return None


def standardize_string(text: str) -> str:
    """BFCL's string comparison: case-insensitive, blind to spaces and ``,./-_*^``, and to the
    quote style, so "April 1, 2024" matches "april 1 2024"."""
    return re.sub(r"[\s,./\-_*^]", "", text).lower().replace("'", '"')


def _equal(value: Any, allowed: Any) -> bool:
    """Literal equality with BFCL's string normalisation, recursing into lists and dicts."""
    if isinstance(allowed, str):
        return isinstance(value, str) and standardize_string(value) == standardize_string(allowed)
    if isinstance(allowed, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(allowed, bool) and value == allowed
    if isinstance(allowed, (int, float)):
        return isinstance(value, (int, float)) and value == allowed
    if isinstance(allowed, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(allowed)
                and all(_equal(v, a) for v, a in zip(value, allowed, strict=True)))
    if isinstance(allowed, dict):
        return (isinstance(value, dict) and value.keys() == allowed.keys()
                and all(_equal(value[k], allowed[k]) for k in allowed))
    return value == allowed


def _match(errors: list[list[str | None]]) -> dict[int, int]:
    """A maximum matching of expected calls to model calls (``errors[call][expected] is None``
    means they match). Augmenting paths, not BFCL's greedy pass, so an answer that fits two
    expected calls cannot steal the only call another one accepts."""
    owner: dict[int, int] = {}  # expected index -> call index

    def assign(call: int, seen: set[int]) -> bool:
        for exp, error in enumerate(errors[call]):
            if error is None and exp not in seen:
                seen.add(exp)
                if exp not in owner or assign(owner[exp], seen):
                    owner[exp] = call
                    return True
        return False

    for call in range(len(errors)):
        assign(call, set())
    return owner


def _unmatched_reason(expected: list[tuple[str, dict[str, list[Any]]]],
                      errors: list[list[str | None]], matching: dict[int, int]) -> str:
    """Why the first expected call left without a match failed, told from the closest model
    call: an unused one with the right name if any."""
    used = set(matching.values())
    for exp, (name, _) in enumerate(expected):
        if exp in matching:
            continue
        free = [c for c in range(len(errors)) if c not in used] or list(range(len(errors)))
        reasons = [r for r in (errors[c][exp] for c in free) if r]
        same_name = [r for r in reasons if not r.startswith("wrong function")]
        if same_name:
            reason = same_name[0]
        elif len(expected) == 1 and reasons:
            reason = reasons[0]
        else:
            reason = f"no call to {name}" if reasons else f"no call left for {name}"
        if len(expected) == 1:
            return reason
        return f"expected call {exp + 1} of {len(expected)} ({name}) not matched: {reason}"
    return ""
