"""Tests for agentrt.models.toolcall_parser: the text -> tool-call parser for small local models."""

from __future__ import annotations

import json
import random
import re

import pytest

from agentrt.models.toolcall_parser import (
    ParsedOutput,
    has_tool_call_start,
    parse_tool_calls,
)

TOOLS = ["calculator", "get_weather", "search"]
CALC = '{"name": "calculator", "arguments": {"expression": "2+2"}}'
ID_RE = re.compile(r"^call_[0-9a-f]{24}$")


def one_call(out: ParsedOutput) -> dict:
    assert out.invalid_tool_calls == [], out.invalid_tool_calls
    assert len(out.tool_calls) == 1, out
    call = out.tool_calls[0]
    assert call["type"] == "tool_call" and ID_RE.match(call["id"])
    return call


def one_invalid(out: ParsedOutput) -> dict:
    assert out.tool_calls == [], out.tool_calls
    assert len(out.invalid_tool_calls) == 1, out
    bad = out.invalid_tool_calls[0]
    assert bad["type"] == "invalid_tool_call" and ID_RE.match(bad["id"])
    assert isinstance(bad["args"], str) and bad["error"]
    return bad


# --- the Qwen tag format ---------------------------------------------------------------------


def test_tool_call_tags():
    out = parse_tool_calls(f"<tool_call>\n{CALC}\n</tool_call>", TOOLS)
    assert one_call(out) | {"id": None} == {
        "name": "calculator", "args": {"expression": "2+2"}, "id": None, "type": "tool_call"
    }
    assert out.content == ""


def test_unterminated_final_tag():
    call = one_call(parse_tool_calls(f"Computing.\n<tool_call>\n{CALC}\n", TOOLS))
    assert call["args"] == {"expression": "2+2"}


def test_tags_wrapped_in_fence_leave_no_shell():
    out = parse_tool_calls(f"```xml\n<tool_call>\n{CALC}\n</tool_call>\n```", TOOLS)
    assert one_call(out)["name"] == "calculator" and out.content == ""


def test_fence_inside_tags():
    assert one_call(parse_tool_calls(f"<tool_call>\n```json\n{CALC}\n```\n</tool_call>", TOOLS))


def test_two_parallel_calls_in_two_tags():
    text = f'<tool_call>\n{CALC}\n</tool_call>\n<tool_call>\n{{"name": "search", "arguments": {{"q": "x"}}}}\n</tool_call>'
    out = parse_tool_calls(text, TOOLS)
    assert [c["name"] for c in out.tool_calls] == ["calculator", "search"]
    assert len({c["id"] for c in out.tool_calls}) == 2 and out.content == ""


# --- fences and bare JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["json", "tool_call", ""])
def test_fenced_call(lang):
    out = parse_tool_calls(f"```{lang}\n{CALC}\n```", TOOLS)
    assert one_call(out)["args"] == {"expression": "2+2"} and out.content == ""


def test_prose_plus_fenced_call():
    out = parse_tool_calls(f"Let me compute that.\n```json\n{CALC}\n```\nOne moment.", TOOLS)
    assert one_call(out)["name"] == "calculator"
    assert out.content == "Let me compute that.\n\nOne moment."


def test_bare_json():
    out = parse_tool_calls(f"  {CALC}\n", TOOLS)
    assert one_call(out)["args"] == {"expression": "2+2"} and out.content == ""


def test_parallel_calls_in_one_list():
    text = '[{"name": "calculator", "arguments": {"expression": "1"}}, {"name": "search", "arguments": {"q": "x"}}]'
    out = parse_tool_calls(text, TOOLS)
    assert [(c["name"], c["args"]) for c in out.tool_calls] == [("calculator", {"expression": "1"}), ("search", {"q": "x"})]


def test_call_embedded_in_prose_with_known_tool():
    out = parse_tool_calls(f"I will call {CALC} now.", TOOLS)
    assert one_call(out)["name"] == "calculator" and out.content == "I will call  now."


def test_bare_call_followed_by_prose_keeps_the_prose():
    out = parse_tool_calls(f"{CALC}\nThis adds the numbers.", TOOLS)
    assert one_call(out)["name"] == "calculator" and out.content == "This adds the numbers."


def test_two_concatenated_bare_calls():
    out = parse_tool_calls(f'{CALC}\n{{"name": "search", "arguments": {{"q": "x"}}}}', TOOLS)
    assert [c["name"] for c in out.tool_calls] == ["calculator", "search"] and out.content == ""


def test_embedded_json_naming_unknown_tool_stays_prose():
    text = 'The config is {"name": "build", "arguments": {"x": 1}} as shown.'
    assert parse_tool_calls(text, TOOLS) == ParsedOutput(content=text)


# --- call shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj, name, args",
    [
        ({"name": "search", "arguments": {"q": "a"}}, "search", {"q": "a"}),
        ({"name": "search", "parameters": {"q": "a"}}, "search", {"q": "a"}),
        ({"name": "search", "args": {"q": "a"}}, "search", {"q": "a"}),
        ({"type": "function", "function": {"name": "search", "arguments": '{"q": "a"}'}}, "search", {"q": "a"}),
        ({"type": "function", "function": {"name": "search", "arguments": {"q": "a"}}}, "search", {"q": "a"}),
        ({"function": "search", "arguments": {"q": "a"}}, "search", {"q": "a"}),
        ({"tool": "search", "arguments": {"q": "a"}}, "search", {"q": "a"}),
        ({"name": "search", "arguments": '{"q": "a"}'}, "search", {"q": "a"}),
        ({"name": "search"}, "search", {}),
        ({"name": "search", "arguments": None}, "search", {}),
        ({"name": "search", "arguments": ""}, "search", {}),
    ],
)
def test_shapes(obj, name, args):
    call = one_call(parse_tool_calls(f"<tool_call>{json.dumps(obj)}</tool_call>", TOOLS))
    assert (call["name"], call["args"]) == (name, args)


def test_shapes_without_tool_names():
    call = one_call(parse_tool_calls('{"name": "anything", "parameters": {"a": 1}}'))
    assert (call["name"], call["args"]) == ("anything", {"a": 1})


# --- repair -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, args",
    [
        ("{'name': 'calculator', 'arguments': {'expression': '2+2'}}", {"expression": "2+2"}),  # single quotes
        ('{"name": "calculator", "arguments": {"expression": "2+2",},}', {"expression": "2+2"}),  # trailing commas
        ('{"name": "calculator", "arguments": {"expression": "2+2"}', {"expression": "2+2"}),  # missing brace
        ('{"name": "calculator", "arguments": {"exact": True, "round": None}}', {"exact": True, "round": None}),
        ('{"name": "calculator", "arguments": "{\\"expression\\": \\"2+2\\"}"}', {"expression": "2+2"}),
    ],
    ids=["single-quotes", "trailing-commas", "missing-brace", "python-literals", "string-arguments"],
)
@pytest.mark.parametrize("wrap", ["<tool_call>\n{}\n</tool_call>", "```json\n{}\n```", "{}"], ids=["tag", "fence", "bare"])
def test_repair(body, args, wrap):
    call = one_call(parse_tool_calls(wrap.replace("{}", body, 1), TOOLS))
    assert (call["name"], call["args"]) == ("calculator", args)


def test_unrepairable_json_is_invalid_with_format_hint():
    bad = one_invalid(parse_tool_calls("<tool_call>call the calculator please</tool_call>", TOOLS))
    assert '{"name": "<tool name>", "arguments": {...}}' in bad["error"]
    assert bad["error"].startswith("Could not parse your tool call")
    assert bad["args"] == "call the calculator please"


def test_empty_tag_is_invalid():
    assert "empty" in one_invalid(parse_tool_calls("<tool_call>\n</tool_call>", TOOLS))["error"]


@pytest.mark.parametrize("arguments, kind", [("[1, 2]", "a list"), ("5", "a number"), ('"hi"', "a string")])
def test_non_dict_arguments_are_invalid(arguments, kind):
    bad = one_invalid(parse_tool_calls(f'<tool_call>{{"name": "calculator", "arguments": {arguments}}}</tool_call>', TOOLS))
    assert bad["name"] == "calculator" and "must be a JSON object" in bad["error"] and kind in bad["error"]


def test_echoed_tool_schema_is_invalid():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    text = json.dumps({"type": "function", "function": {"name": "search", "description": "Web search", "parameters": schema}})
    bad = one_invalid(parse_tool_calls(text, TOOLS))
    assert bad["name"] == "search" and "schema" in bad["error"]


def test_missing_name_is_invalid():
    bad = one_invalid(parse_tool_calls('<tool_call>{"arguments": {"q": 1}}</tool_call>', TOOLS))
    assert bad["name"] is None and '"name"' in bad["error"]


# --- tool names -------------------------------------------------------------------------------


def test_unknown_tool_lists_available_tools():
    out = parse_tool_calls('<tool_call>{"name": "web_browse", "arguments": {"url": "x"}}</tool_call>', TOOLS)
    bad = one_invalid(out)
    assert bad["name"] == "web_browse" and json.loads(bad["args"]) == {"url": "x"}
    assert "calculator, get_weather, search" in bad["error"] and "web_browse" in bad["error"]


def test_unknown_tool_as_bare_json_is_invalid():
    assert one_invalid(parse_tool_calls('{"name": "web_browse", "arguments": {}}', TOOLS))["name"] == "web_browse"


@pytest.mark.parametrize("given, canonical", [("Calculator", "calculator"), ("get-weather", "get_weather"), ("GetWeather", "get_weather")])
def test_unambiguous_name_correction(given, canonical):
    call = one_call(parse_tool_calls(f'<tool_call>{{"name": "{given}", "arguments": {{}}}}</tool_call>', TOOLS))
    assert call["name"] == canonical


def test_ambiguous_name_is_not_corrected():
    out = parse_tool_calls('<tool_call>{"name": "getweather", "arguments": {}}</tool_call>', ["get_weather", "GetWeather"])
    assert one_invalid(out)["name"] == "getweather"


# --- plain answers stay content ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "  The answer is 4.\n",
        '{"name": "Alice", "age": 30}',
        '```json\n{"name": "Alice", "age": 30}\n```',
        '{"result": 4}',
        "[1, 2, 3]",
        '{"name": "Alice"}',  # name-only object that does not name a known tool
        "```python\nprint(name)\n```",
        "Use `x = {1: 2}` here.",
    ],
)
def test_non_calls_stay_content(text):
    assert parse_tool_calls(text, TOOLS) == ParsedOutput(content=text.strip())


def test_content_kept_around_invalid_call():
    out = parse_tool_calls("Sure.\n<tool_call>{not json</tool_call>", TOOLS)
    assert out.content == "Sure." and len(out.invalid_tool_calls) == 1


# --- streaming helper -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<tool_call>", True),
        ("Let me check.\n<tool_call>\n{", True),
        ("Here:\n```", True),
        ("```json\n{", True),
        ("  {", True),
        ("\n[", True),
        ("", False),
        ("Hello", False),
        ("The set {1, 2}", False),
        ("Use `x`", False),
    ],
)
def test_has_tool_call_start(text, expected):
    assert has_tool_call_start(text) is expected


# --- robustness -------------------------------------------------------------------------------

_PIECES = [
    "<tool_call>", "</tool_call>", "```", "```json\n", "{", "}", "[", "]", '"', "'", ":", ",", "\n", " ",
    "name", "arguments", "parameters", "function", "tool", "calculator", "search", "True", "None",
    "null", "1", "-", "\\", "\\u", "x", "é", "\x00", '{"name": "search", "arguments": {"q": 1}}',
]


def test_never_raises_fuzz():
    rng = random.Random(1234)
    for i in range(1500):
        if i % 2:
            text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        else:
            text = "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 60)))
        names = rng.choice([None, TOOLS, [], ["search"]])
        out = parse_tool_calls(text, names)
        assert isinstance(out, ParsedOutput) and isinstance(out.content, str)
        for call in out.tool_calls:
            assert isinstance(call["args"], dict) and isinstance(call["name"], str)
        for bad in out.invalid_tool_calls:
            assert isinstance(bad["args"], str) and isinstance(bad["error"], str)
        has_tool_call_start(text)


# json_repair needs ~80 us per nested "{", so that case is kept small; real outputs are max_tokens-bound.
@pytest.mark.parametrize("text", ["[" * 50_000, "{" * 5_000, '{"a":' * 20_000, "<tool_call>" + "[" * 50_000])
def test_never_raises_on_pathological_input(text):
    assert isinstance(parse_tool_calls(text, TOOLS), ParsedOutput)
