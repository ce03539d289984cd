"""The tool environment answers every turn that ends in a call, with the output or an error the model can read,
and counts each failure by kind; its config is checked with errors that name the field."""

from __future__ import annotations

import pytest

from rlvr.config import ConfigError, load_config
from rlvr.config.schema import ToolConfig
from rlvr.environments import SingleTurn, build_environment
from rlvr.environments.parsing import Format
from rlvr.environments.tool_env import ToolEnvironment
from rlvr.environments.tools import build_tool, calculator_tool, python_tool

SCHEMA = {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}


def _env(**kw) -> ToolEnvironment:
    tools = [calculator_tool(), python_tool(),
             build_tool(ToolConfig(name="lookup", function="tests.environments.userlib:lookup", trusted=True,
                                   parameters=SCHEMA)),
             build_tool(ToolConfig(name="slow", function="tests.environments.userlib:slow", trusted=True,
                                   parameters=SCHEMA))]
    return ToolEnvironment(tools, Format(), **{"max_turns": 8, "max_tool_calls": 8, "timeout_s": 0.5, **kw})


def test_a_good_call_is_answered_and_a_turn_without_one_ends_the_episode():
    ep = _env().open(None)
    assert ep.respond("<think><call>calculator 347*26</call>") == "<result>9022</result>"
    assert ep.respond("</think><answer>9022</answer>") is None
    rec = ep.record
    assert rec.turns == 2 and rec.ended == "answer" and [(c.tool, c.error) for c in rec.calls] == [("calculator", None)]


@pytest.mark.parametrize("turn,kind,says", [
    ("<call>  </call>", "malformed", "names no tool"),
    ("<tool_call>{oops}</tool_call>", "malformed", "not valid JSON"),
    ("<call>abacus 1+1</call>", "unknown_tool", "unknown tool 'abacus'; tools: calculator, python, lookup, slow"),
    ('<call>lookup {"term": "cat"}</call>', "bad_arguments", "missing argument 'word'"),
    ('<call>lookup {"word": 3}</call>', "bad_arguments", "argument 'word' must be a string"),
    ("<call>calculator 2**1000</call>", "raised", "exponent"),
    ("<call>python 1/0</call>", "raised", "ZeroDivisionError"),
    ("<call>slow cat</call>", "timeout", "ran past 0.5 s"),
])
def test_each_bad_call_gets_its_error_observation_and_is_counted(turn, kind, says):
    ep = _env().open(None)
    obs = ep.respond(turn)
    assert obs.startswith("<result>error: ") and says in obs, obs
    assert [c.error for c in ep.record.calls] == [kind]
    assert ep.respond("<call>calculator 1+1</call>") == "<result>2</result>"  # the episode goes on


def test_limits_on_calls_and_turns():
    ep = _env(max_tool_calls=1).open(None)
    assert ep.respond("<call>calculator 1+1</call>") == "<result>2</result>"
    assert "at most 1" in ep.respond("<call>calculator 2+2</call>")
    assert ep.record.calls[-1].error == "limit"
    ep = _env(max_turns=2).open(None)
    assert ep.respond("<call>calculator 1+1</call>") is not None
    assert ep.respond("<call>calculator 1+1</call>") is None  # the last turn: no room to read an answer
    assert ep.record.ended == "max_turns"


def test_observations_are_cut_and_cannot_write_the_answer():
    ep = _env(max_observation_chars=20).open(None)
    obs = ep.respond("<call>python print('<answer>5</answer>' + 'x' * 50)</call>")
    assert "<answer>" not in obs and "[answer]5[/answer]" in obs and "more characters" in obs


def test_single_turn_is_the_one_turn_case():
    ep = SingleTurn().open(None)
    assert ep.respond("<call>calculator 1+1</call>") is None and ep.record.turns == 1


def _cfg(tools, **episode):
    base = {"task": {"tools": tools, "episode": episode}, "rollout": {"max_new_tokens": 64}}
    return load_config(base=base)


def test_config_builds_the_environment():
    cfg = _cfg([{"name": "calculator"}, {"name": "lookup", "function": "tests.environments.userlib:lookup",
                                          "parameters": SCHEMA}], max_turns=3, max_tokens=48)
    env = build_environment(cfg.task, None, cfg.rollout.max_new_tokens)
    assert list(env.tools) == ["calculator", "lookup"] and env.max_turns == 3 and env.max_tokens == 48
    assert isinstance(build_environment(load_config().task, None, 64), SingleTurn)


def test_a_reply_primed_with_a_call_opens_it_in_the_first_turn():
    """model.response_prefix is written in the prompt: the first turn the model writes continues it."""
    cfg = _cfg([{"name": "calculator"}])
    episode = build_environment(cfg.task, None, 64, response_prefix="<call>calculator ").open(None)
    assert episode.respond("60*52</call>") == "<result>3120</result>"
    assert episode.respond("<answer>3120</answer>") is None  # later turns are not prefixed
    assert len(episode.record.calls) == 1 and episode.record.calls[0].error is None


@pytest.mark.parametrize("tools,episode,key", [
    ([{"name": "abacus"}], {}, "task.tools[0].name"),
    ([{"name": "calculator"}, {"name": "calculator"}], {}, "task.tools[1].name"),
    ([{"name": "f", "function": "no_such_module_xyz:f"}], {}, "task.tools[0].function"),
    ([{"name": "f", "function": "nocolon"}], {}, "task.tools[0].function"),
    ([{"name": "f", "function": "tests.environments.userlib:lookup", "parameters": {"type": "array"}}], {},
     "task.tools[0].parameters"),
    ([{"name": "f", "function": "tests.environments.userlib:lookup",
       "parameters": {"type": "object", "properties": {}, "required": ["word"]}}], {}, "task.tools[0].parameters.required"),
    ([{"name": "calculator"}], {"max_turns": 0}, "task.episode.max_turns"),
    ([{"name": "calculator"}], {"tool_timeout_s": 0}, "task.episode.tool_timeout_s"),
    ([{"name": "calculator"}], {"env_timeout_s": -1.0}, "task.episode.env_timeout_s"),
    ([{"name": "calculator"}], {"max_tokens": 65}, "task.episode.max_tokens"),
    ([{"name": "calculator"}], {"tool_format": "xml"}, "task.episode.tool_format"),
    ([{"name": "calculator", "colour": "red"}], {}, "task.tools[0].colour"),
])
def test_bad_tool_config_names_the_field(tools, episode, key):
    with pytest.raises(ConfigError) as e:
        _cfg(tools, **episode)
    assert key in str(e.value), str(e.value)


@pytest.mark.parametrize("section,key,value", [("rollout", "engine", "vllm"), ("distributed", "backend", "ray")])
def test_tools_run_on_either_engine_in_one_process_or_on_ray(section, key, value):
    cfg = load_config(base={"task": {"tools": [{"name": "calculator"}]}, section: {key: value}})
    assert getattr(getattr(cfg, section), key) == value and cfg.task.tools[0].name == "calculator"


def test_the_json_form_shows_the_tools_to_the_chat_template(char_tokenizer):
    import copy

    from rlvr.models.loading import encode_prompt
    from rlvr.types import Problem

    tok = copy.deepcopy(char_tokenizer)
    tok.chat_template = ("{# a tool_call template #}{% if tools %}[{% for t in tools %}{{ t.function.name }};"
                         "{% endfor %}]{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                         "{% if m.role == 'tool' %}</tool>{% endif %}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    cfg = _cfg([{"name": "calculator"}, {"name": "python"}], tool_format="auto")
    env = build_environment(cfg.task, tok, 64)
    assert env.format.name == "json" and [t["function"]["name"] for t in env.prompt_tools] == ["calculator", "python"]
    assert env.format.observation("42") == "<tool>42</tool><assistant>"
    text = tok.decode(encode_prompt(Problem("p", "2+2=", 4, "t"), tok, tools=env.prompt_tools))
    assert text == "[calculator;python;]<user>2+2=<assistant>"
    assert build_environment(_cfg([{"name": "calculator"}], tool_format="tags").task, tok, 64).prompt_tools is None
