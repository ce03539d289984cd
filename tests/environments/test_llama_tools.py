"""Llama 3's tool calls: the whole assistant turn is a bare JSON call, `{"name": ..., "parameters": {...}}`
(optionally after `<|python_tag|>`), ended by `<|eom_id|>` or `<|eot_id|>`; the result comes back as an
`ipython` message. Tested against a chat template written here that lays tokens out as Llama 3.1's does, on
the character tokenizer with Llama's header and end-of-turn tokens added."""

from __future__ import annotations

import copy
import types

import pytest
import torch

from rlvr.environments.parsing import ChatFormat, Format, LlamaFormat, build_format, parse_call, template_form
from rlvr.environments.tool_env import ToolEnvironment
from rlvr.environments.tools import calculator_tool
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import EpisodeEngine
from rlvr.rollout.torch_engine import TorchEngine

SPECIAL = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"]
HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"
# Llama 3.1's layout: tools in a system turn, a call turn of bare JSON ended by <|eom_id|>, its result in an
# `ipython` turn (a `tool` message gets no such branch here), every turn ended by <|eot_id|>.
TEMPLATE = (
    "{%- if tools %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\nEnvironment: ipython\\nCall a function "
    "by answering {\"name\": function name, \"parameters\": its arguments}.\\n' }}"
    "{%- for t in tools %}{{- t | tojson + '\\n' }}{%- endfor %}{{- '<|eot_id|>' }}{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' and m.tool_calls %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n{\"name\": \"' + m.tool_calls[0].function.name"
    " + '\", \"parameters\": ' + m.tool_calls[0].function.arguments | tojson + '}<|eom_id|>' }}"
    "{%- elif m.role == 'ipython' %}"
    "{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}"
    "{%- else %}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
CALL = '{"name": "calculator", "parameters": {"expression": "6*7"}}'
OBS = HEADER.format("ipython") + "42<|eot_id|>" + HEADER.format("assistant")


@pytest.fixture(scope="module")
def llama_tok():
    from rlvr.models.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": SPECIAL})
    tok.chat_template = TEMPLATE
    return tok


def _env(tok, **kw) -> ToolEnvironment:
    return ToolEnvironment([calculator_tool()], build_format("auto", tok), **{"max_turns": 4, **kw})


# --- the parser and the form -----------------------------------------------------------------------------------

def test_a_bare_json_turn_is_a_call_only_in_llamas_form():
    for turn in (CALL + "<|eom_id|>", f" <|python_tag|>{CALL}\n<|eot_id|>",
                 '{"name": "calculator", "arguments": {"expression": "6*7"}}<|eot_id|>'):
        call = parse_call(turn, bare_json=True)
        assert (call.name, call.arguments, call.error) == ("calculator", {"expression": "6*7"}, None), turn
    assert parse_call(CALL + "<|eot_id|>") is None  # the other forms never read a bare JSON turn as a call
    assert parse_call("<answer>42</answer><|eot_id|>", bare_json=True) is None
    for bad in ('{"name": "calculator", "parameters": {oops}<|eom_id|>', "<|python_tag|>calculator.call(x=1)",
                '{"parameters": {}}<|eom_id|>', '{"name": "calculator", "parameters": [1]}<|eom_id|>'):
        call = parse_call(bad, bare_json=True)
        assert call is not None and call.error, bad


def test_the_form_is_the_templates(llama_tok, char_tokenizer):
    fmt = build_format("auto", llama_tok)
    assert template_form(llama_tok) == "llama" and isinstance(fmt, LlamaFormat) and fmt.role == "ipython"
    assert fmt.ends == ("<|eom_id|>", "<|eot_id|>") and fmt.shows_tools
    # the model's turn ends with its own <|eom_id|> or <|eot_id|>: the observation starts at the next header
    assert fmt.observation("42") == OBS
    tool_role = copy.deepcopy(llama_tok)  # a template without an `ipython` role gets a `tool` message
    tool_role.chat_template = TEMPLATE.replace("ipython", "tool")
    assert LlamaFormat(tool_role).role == "tool"
    assert LlamaFormat(tool_role).observation("42") == OBS.replace("ipython", "tool")
    plain = copy.deepcopy(llama_tok)  # Llama's headers without a tools branch (Llama 3.0): the tag form
    plain.chat_template = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}"
    assert template_form(plain) == "tags" and type(build_format("auto", plain)) is Format
    qwen = copy.deepcopy(char_tokenizer)  # <tool_call> tags: the json form, even with Llama-like headers
    qwen.chat_template = "<|start_header_id|>{# tool_call #}<tool_call>{% for m in messages %}{{ m.content }}{% endfor %}"
    assert template_form(qwen) == "json" and isinstance(build_format("auto", qwen), ChatFormat)


def test_llama_calls_are_answered_and_bad_ones_get_the_same_counted_errors(llama_tok):
    env = _env(llama_tok)
    assert env.pause_strings == ("<|eom_id|>", "<|eot_id|>") and env.prompt_tools[0]["function"]["name"] == "calculator"
    ep = env.open(None)
    assert ep.respond(CALL + "<|eom_id|>") == OBS
    assert ep.respond("<answer>42</answer><|eot_id|>") is None
    assert ep.record.ended == "answer" and [(c.tool, c.error) for c in ep.record.calls] == [("calculator", None)]
    for turn, kind, says in [('{"name": "calculator", "parameters": {oops}<|eom_id|>', "malformed", "not valid JSON"),
                             ('{"name": "abacus", "parameters": {}}<|eot_id|>', "unknown_tool", "unknown tool 'abacus'"),
                             ('{"name": "calculator", "parameters": {"x": 1}}<|eom_id|>', "bad_arguments", "missing argument 'expression'"),
                             ('{"parameters": {}}<|eom_id|>', "malformed", '"parameters"')]:
        ep = env.open(None)
        obs = ep.respond(turn)
        assert obs.startswith(HEADER.format("ipython") + "error: ") and says in obs, obs
        assert obs.endswith("<|eot_id|>" + HEADER.format("assistant")) and [c.error for c in ep.record.calls] == [kind]


def test_a_json_answer_on_another_template_is_not_a_call(char_tokenizer):
    ep = ToolEnvironment([calculator_tool()], build_format("auto", char_tokenizer)).open(None)
    assert ep.respond(CALL + "<eos>") is None and ep.record.calls == [] and ep.record.ended == "answer"


# --- on the engine: a scripted model ---------------------------------------------------------------------------

class Scripted(torch.nn.Module):
    """A stand-in causal LM that writes `replies[k]` as its k-th turn, greedily. It keeps each row's tokens as
    the "keys" of its KV cache, so the engine's own cache bookkeeping (rows shared, dropped, compacted) is
    what tells it each row's history; a turn's count is the number of observations (two headers each)."""

    def __init__(self, tok, prompt_len: int, replies: list[str]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the engine reads the device from the parameters
        self.prompt_len, self.vocab = prompt_len, len(tok)
        self.header_end = tok.convert_tokens_to_ids("<|end_header_id|>")
        self.replies = [tok(r, add_special_tokens=False)["input_ids"] for r in replies]

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache=True, logits_to_keep=1):
        ids = input_ids[:, None, :, None].float()  # (B, 1, W, 1): one "head" whose key is the token id
        keys, _ = past_key_values.update(ids, ids, 0)
        logits = torch.full((len(input_ids), 1, self.vocab), -1e4)
        for b, row in enumerate(keys[:, 0, :, 0].long()):
            completion = row[attention_mask[b].bool()].tolist()[self.prompt_len:]
            observations = completion.count(self.header_end) // 2
            start = max((i + 3 for i, t in enumerate(completion) if t == self.header_end), default=0)
            reply = self.replies[min(observations, len(self.replies) - 1)]
            logits[b, 0, reply[min(len(completion) - start, len(reply) - 1)]] = 0.0
        return types.SimpleNamespace(logits=logits)


def test_episodes_pause_at_the_end_of_a_llama_call_and_read_the_templates_layout(llama_tok):
    from rlvr.models.loading import encode_prompt
    from rlvr.types import Problem

    tok, eot = llama_tok, llama_tok.convert_tokens_to_ids("<|eot_id|>")
    env = _env(tok)
    problem = Problem("p", "6*7=", 42, "t")
    prompt = encode_prompt(problem, tok, tools=env.prompt_tools)
    assert '"name": "calculator"' in tok.decode(prompt)  # the template shows the model its tools
    replies = [CALL + "<|eom_id|>", "<answer>42</answer><|eot_id|>"]
    engine = EpisodeEngine(TorchEngine(Scripted(tok, len(prompt), replies), tok.pad_token_id), env, tok)
    (group,) = engine.generate([prompt], SamplingParams(2, 120, 0.0, 1.0, (eot,)), problems=[problem])
    for c in group:
        text = tok.decode(c.token_ids, skip_special_tokens=False)
        assert text == replies[0] + OBS + replies[1]  # paused at <|eom_id|>: the observation came next
        # exactly what the chat template writes for the same conversation
        history = [{"role": "user", "content": "6*7="},
                   {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                       "name": "calculator", "arguments": {"expression": "6*7"}}}]},
                   {"role": "ipython", "content": "42"}, {"role": "assistant", "content": "<answer>42</answer>"}]
        assert tok.decode(prompt) + text == tok.apply_chat_template(history, tools=env.prompt_tools, tokenize=False)
        n_call, n_obs = (len(tok(s, add_special_tokens=False)["input_ids"]) for s in (replies[0], OBS))
        assert c.mask == [1] * n_call + [0] * n_obs + [1] * (len(c.token_ids) - n_call - n_obs)
        assert c.finish_reason == "stop" and c.episode.turns == 2 and c.episode.ended == "answer"
        assert [(x.tool, x.error) for x in c.episode.calls] == [("calculator", None)]

    # the same JSON turn on a template without Llama's form is an answer: the episode ends there
    tags = ToolEnvironment([calculator_tool()], Format())
    answer = CALL + "<|eot_id|>"
    engine = EpisodeEngine(TorchEngine(Scripted(tok, len(prompt), [answer]), tok.pad_token_id), tags, tok)
    (group,) = engine.generate([prompt], SamplingParams(1, 120, 0.0, 1.0, (eot,)), problems=[problem])
    assert tok.decode(group[0].token_ids, skip_special_tokens=False) == answer
    assert group[0].episode.calls == [] and group[0].episode.ended == "answer" and group[0].finish_reason == "stop"
