"""What LoRA fine-tuning trains on: per assistant turn, the inference prompt, then the model's own
sampled text (or the template's rendering where none was recorded), with labels on the turn only."""

from __future__ import annotations

import json

import pytest

from agentrt.models import weights
from agentrt.models.local_text import ANSWER_HINT
from agentrt.rft.sft import IGNORE, Conversation, encode

ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "add", "arguments": json.dumps({"a": 2, "b": 3})}}]}
SAMPLED = '```json\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n```'


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(weights.hf_dir("qwen2.5-coder-0.5b"))


def _target(tokenizer, labels: list[int]) -> str:
    return tokenizer.decode([t for t in labels if t != IGNORE])


def test_a_sampled_turn_is_trained_as_the_model_wrote_it_after_the_inference_prompt(tokenizer) -> None:
    user = {"role": "user", "content": "add 2 and 3"}
    [(ids, labels)] = encode(tokenizer, Conversation(messages=[user, CALL], tools=[ADD], sampled=[None, SAMPLED]), 1024)
    prompt = tokenizer.apply_chat_template([user], tools=[ADD], add_generation_prompt=True, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "input_ids") or isinstance(prompt, dict) else prompt)
    assert ids[: len(prompt)] == prompt and all(t == IGNORE for t in labels[: len(prompt)])
    assert _target(tokenizer, labels) == SAMPLED + "<|im_end|>"


def test_without_sampled_text_the_template_renders_the_turn(tokenizer) -> None:
    user = {"role": "user", "content": "add 2 and 3"}
    [(_ids, labels)] = encode(tokenizer, Conversation(messages=[user, CALL], tools=[ADD]), 1024)
    target = _target(tokenizer, labels)
    assert target.startswith("<tool_call>") and '"name": "add"' in target and target.rstrip().endswith("<|im_end|>")


def test_each_assistant_turn_is_an_example_with_the_hint_inference_gives_it(tokenizer) -> None:
    msgs = [{"role": "user", "content": "add 2 and 3"}, CALL,
            {"role": "tool", "tool_call_id": "c1", "content": "5"},
            {"role": "assistant", "content": "2 + 3 = 5."}]
    first, second = encode(tokenizer, Conversation(messages=msgs, tools=[ADD], sampled=[None, SAMPLED, None, "2 + 3 = 5."]), 1024)
    assert _target(tokenizer, first[1]) == SAMPLED + "<|im_end|>"
    assert _target(tokenizer, second[1]) == "2 + 3 = 5.<|im_end|>"
    prompt = tokenizer.decode([t for t, y in zip(*second) if y == IGNORE])
    first_prompt = tokenizer.decode([t for t, y in zip(*first) if y == IGNORE])
    assert ANSWER_HINT in prompt and 'add(a=2, b=3) returned: 5' in prompt  # as LocalTextModel renders it
    assert prompt.count("<tool_call>") > first_prompt.count("<tool_call>")  # the earlier call, as the template renders it


def test_a_turn_past_max_length_is_dropped_and_one_cut_short_keeps_its_start(tokenizer) -> None:
    user = {"role": "user", "content": "add 2 and 3 " * 50}
    conv = Conversation(messages=[user, CALL], tools=[ADD], sampled=[None, SAMPLED])
    assert encode(tokenizer, conv, 64) == []
    [(ids, labels)] = encode(tokenizer, conv, 1024)
    [(cut, cut_labels)] = encode(tokenizer, conv, len(ids) - 3)
    assert cut == ids[:-3] and cut_labels == labels[:-3]


def test_recorded_token_ids_are_trained_as_they_are_without_re_tokenizing(tokenizer) -> None:
    """Token ids the backend recorded win over the text: a text re-tokenized can split differently
    from how the model sampled it (here an odd but valid split of the same text)."""
    user = {"role": "user", "content": "add 2 and 3"}
    odd = [t for ch in SAMPLED for t in tokenizer(ch, add_special_tokens=False)["input_ids"]]  # one char at a time
    assert odd != tokenizer(SAMPLED, add_special_tokens=False)["input_ids"]
    conv = Conversation(messages=[user, CALL], tools=[ADD], sampled=[None, SAMPLED], sampled_ids=[None, odd])
    [(ids, labels)] = encode(tokenizer, conv, 1024)
    assert [t for t in labels if t != IGNORE] == odd + [tokenizer.eos_token_id]
    with pytest.raises(ValueError, match="sampled_ids has 1 entries for 2 messages"):
        Conversation(messages=[user, CALL], sampled_ids=[odd])
