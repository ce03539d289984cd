"""Answer extraction: one final answer, never from <think>, three configurable ways to find it."""

from __future__ import annotations

import pytest

from rlvr.verifiers.extract import (
    boxed_contents,
    extract,
    extract_answer_tag,
    extract_code,
    has_lookalike_digits,
    is_well_formatted,
    strip_think,
)


def test_answer_tag_is_the_last_tag_outside_think():
    assert extract_answer_tag("<think><answer>1</answer></think><answer> 2 </answer>").answer == "2"
    assert extract_answer_tag("<answer>2</answer> text <answer>2</answer>").answer == "2"
    assert extract_answer_tag("<answer>1</answer><answer>2</answer>").answer is None
    assert "no <answer>" in extract_answer_tag("just text").reason


def test_strip_think_handles_unclosed_blocks():
    assert strip_think("a<think>b</think>c<think>d") == "a c "


def test_boxed_keeps_nested_braces():
    assert boxed_contents(r"so \boxed{\frac{1}{2}} and \fbox{x^{2}}") == [r"\frac{1}{2}", "x^{2}"]
    assert boxed_contents(r"\boxed{unbalanced") == []
    assert extract(r"\boxed{\frac{a}{b}}", "boxed").answer == r"\frac{a}{b}"
    assert extract(r"\boxed{3} then \boxed{3}", "boxed").answer == "3"


def test_final_answer_line():
    text = "<think>Final answer: 1</think>work\n**Final Answer:** $\\frac{1}{2}$.\n"
    assert extract(text, "final_answer_line").answer == r"\frac{1}{2}"
    assert extract("The final answer is 7", "final_answer_line").answer == "7"
    assert extract("no such line", "final_answer_line").answer is None


def test_a_box_inside_the_tag_is_unwrapped():
    assert extract(r"<answer>The answer is \boxed{5}</answer>").answer == "5"
    assert extract(r"<answer>\boxed{5}\boxed{6}</answer>").answer is None


def test_length_and_lookalike_limits():
    assert "longer than" in extract("<answer>" + "9" * 2000 + "</answer>").reason
    assert extract("<answer>" + "9" * 20 + "</answer>", max_chars=10).answer is None
    assert has_lookalike_digits("４２") and has_lookalike_digits("٤٢") and not has_lookalike_digits("x²+42")
    assert "look-alike" in extract("<answer>٤٢</answer>").reason


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="answer_tag, boxed, final_answer_line"):
        extract("x", "regex")


def test_code_extraction():
    block = "```python\nprint(1)\n```"
    assert extract_code(f"<think>t</think><answer>{block}</answer>").answer == "print(1)\n"
    assert extract_code(f"<think>{block}</think>intro ```py\nprint(2)\n```", "fenced").answer == "print(2)\n"
    assert "no ```python block" in extract_code("<answer>print(1)</answer>").reason
    assert extract_code("<answer>```js\nx\n```</answer>").answer is None


def test_format():
    assert is_well_formatted("<think>a</think>\n<answer>b</answer>\n")
    assert not is_well_formatted("<think>a</think><answer>b</answer>c")
    assert not is_well_formatted("<answer>b</answer>")


def test_the_answer_format_is_a_closed_answer_tag_alone():
    assert is_well_formatted(" <answer>b</answer>\n", "answer")
    for text in ("<answer>b", "<answer></answer>", "<answer>b</answer> and more", "<think>a</think><answer>b</answer>",
                 "<answer>a<answer>b</answer>"):
        assert not is_well_formatted(text, "answer"), text
    with pytest.raises(ValueError, match="task.format_style: 'xml'"):
        is_well_formatted("<answer>b</answer>", "xml")
