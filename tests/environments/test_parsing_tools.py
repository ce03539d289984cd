"""The tool-call parser (both forms) and the tools themselves: calculator, python in the sandbox, user tools."""

from __future__ import annotations

import pytest

from rlvr.config.schema import ToolConfig
from rlvr.environments.parsing import ChatFormat, Format, build_format, json_calls, parse_call
from rlvr.environments.tools import ToolError, build_tool, calculate, calculator_tool, python_tool


def test_tag_form_with_plain_text_and_json_arguments():
    call = parse_call("<think>let me see <call>calculator 347*26</call>")
    assert (call.name, call.arguments, call.error) == ("calculator", "347*26", None)
    call = parse_call('<call>area {"width": 2, "height": 3}</call>')
    assert call.arguments == {"width": 2, "height": 3}


def test_json_form_reads_the_last_call():
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call> then '
            '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n</tool_call>')
    call = parse_call(text)
    assert (call.name, call.arguments) == ("calculator", {"expression": "2+2"})
    # arguments serialised as a JSON string are accepted too
    assert parse_call('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>').arguments == {"x": 1}


@pytest.mark.parametrize("text", ["<tool_call>{not json}</tool_call>", '<tool_call>["calculator"]</tool_call>',
                                  '<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "<call>  </call>"])
def test_malformed_calls_are_reported_not_raised(text):
    call = parse_call(text)
    assert call is not None and call.error


def test_no_call_and_unclosed_call_are_none():
    assert parse_call("<think>1+1=2</think><answer>2</answer>") is None
    assert parse_call("<call>calculator 2*") is None


def test_json_calls_takes_every_readable_call_out_of_the_text():
    text = ('I will add. <tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call> then '
            '<tool_call>{"name": "mul", "arguments": "{\\"b\\": 2}"}</tool_call><tool_call>{oops}</tool_call>')
    content, calls = json_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [("add", {"a": 1}), ("mul", {"b": 2})]
    assert content == "I will add.  then <tool_call>{oops}</tool_call>"  # a call that cannot be read stays text
    assert json_calls("<call>calculator 1+1</call> plain") == ("<call>calculator 1+1</call> plain", [])
    # Llama 3's form (`rlvr serve` on a Llama template): the whole reply is the call, or there is none
    content, calls = json_calls('{"name": "add", "parameters": {"a": 1}}', bare_json=True)
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("add", {"a": 1})]
    assert json_calls('{"name": "add", "parameters": {"a": 1}}') == ('{"name": "add", "parameters": {"a": 1}}', [])
    assert json_calls("The answer is 4.", bare_json=True) == ("The answer is 4.", [])


def test_observation_forms():
    assert Format().observation("42") == "<result>42</result>"

    class ChatTok:  # a Qwen2.5-like template: a tool message is wrapped in <tool_response> in a user turn
        chat_template = "... tool_call ..."

        def apply_chat_template(self, msgs, tokenize=False, add_generation_prompt=False):
            out = ""
            for m in msgs:
                if m["role"] == "tool":
                    out += f"<|im_start|>user\n<tool_response>\n{m['content']}\n</tool_response><|im_end|>\n"
                else:
                    out += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
            return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")

    fmt = build_format("auto", ChatTok())
    assert isinstance(fmt, ChatFormat)
    assert fmt.observation("42") == ("<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response>"
                                     "<|im_end|>\n<|im_start|>assistant\n")
    assert type(build_format("auto", object())) is Format  # no chat template: the tag form


@pytest.mark.parametrize("expr,value", [("347*26", 9022), ("(1+2)**3 - 4/2", 25.0), ("-7//2", -4), ("10 % 4", 2)])
def test_calculator_evaluates_arithmetic(expr, value):
    assert calculate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os').system('true')", "x+1", "2**1000", "1/0", "[1,2]", "'a'*3",
                                  "9" * 300])
def test_calculator_refuses_anything_else(expr):
    with pytest.raises(ValueError):
        calculate(expr)


def test_calculator_tool_formats_integral_results():
    tool = calculator_tool()
    assert tool.call({"expression": "6/3"}, {}, 1.0) == "2"
    with pytest.raises(ToolError) as e:
        tool.call({"expression": "open('x')"}, {}, 1.0)
    assert e.value.kind == "raised"


def test_python_keeps_state_by_replaying_earlier_cells():
    tool, state = python_tool(), {}
    assert tool.call({"code": "x = 6\nprint('set')"}, state, 10.0) == "set\n"
    assert state["replayed"] == 0
    with pytest.raises(ToolError) as e:
        tool.call({"code": "y = undefined_name"}, state, 10.0)
    assert e.value.kind == "raised" and "NameError" in str(e.value)
    # the failed cell is not replayed; the first one is (its output discarded), the last expression is shown
    assert tool.call({"code": "x * 7"}, state, 10.0) == "42\n"
    assert state["replayed"] == 1 and len(state["cells"]) == 2


def test_python_timeout_and_syntax_error_are_tool_errors():
    tool = python_tool()
    with pytest.raises(ToolError) as e:
        tool.call({"code": "while True: pass"}, {}, 1.0)
    assert e.value.kind == "timeout"
    with pytest.raises(ToolError) as e:
        tool.call({"code": "def f(:"}, {}, 1.0)
    assert e.value.kind == "raised" and "SyntaxError" in str(e.value)


@pytest.mark.parametrize("trusted", [True, False])
def test_user_tools_in_process_and_in_the_sandbox(trusted):
    tool = build_tool(ToolConfig(name="lookup", function="tests.environments.userlib:lookup", trusted=trusted,
                                 parameters={"type": "object", "properties": {"word": {"type": "string"}},
                                             "required": ["word"]}))
    assert tool.main == "word" and tool.description == "Look a word up in a tiny dictionary."
    assert tool.call({"word": "cat"}, {}, 10.0) == "a small feline"
    area = build_tool(ToolConfig(name="area", function="tests.environments.userlib:area", trusted=trusted))
    assert area.call({"width": 2, "height": 3.5}, {}, 10.0) == '{"area": 7.0}'
    boom = build_tool(ToolConfig(name="boom", function="tests.environments.userlib:explode", trusted=trusted))
    with pytest.raises(ToolError) as e:
        boom.call({"word": "x"}, {}, 10.0)
    assert e.value.kind == "raised" and "cannot handle x" in str(e.value)


def test_trusted_user_tool_timeout():
    tool = build_tool(ToolConfig(name="slow", function="tests.environments.userlib:slow", trusted=True))
    with pytest.raises(ToolError) as e:
        tool.call({"word": "x"}, {}, 0.2)
    assert e.value.kind == "timeout"
