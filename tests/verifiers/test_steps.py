"""Reading arithmetic reasoning: step format, valid steps, readability."""

from rlvr.verifiers.steps import is_step, is_valid_step, readability, reasoning_items, shows_steps


def test_steps_and_their_arithmetic():
    assert is_valid_step("4+8+1=13") and is_valid_step("7*6=42") and is_valid_step("3*6+2=20")
    assert is_step("4+8=13") and not is_valid_step("4+8=13")  # the form without true arithmetic
    assert not is_step("48+1=49") and not is_step("=13") and not is_step("4+8")


def test_reasoning_items_come_from_inside_think_only():
    text = "<think>7+5=12 4+8+1=13 hmm</think><answer>632</answer> 1+1=2"
    assert reasoning_items(text) == ["7+5=12", "4+8+1=13", "hmm"]
    assert reasoning_items("<think>1+1=2 unclosed") == ["1+1=2", "unclosed"]
    assert reasoning_items("<answer>3</answer>") == []
    assert shows_steps(text) and not shows_steps("<think></think><answer>632</answer>")


def test_readability_counts_items_and_is_undefined_without_reasoning():
    texts = ["<think>7+5=12 4+8=13 x</think><answer>1</answer>", "<think></think><answer>2</answer>"]
    assert readability(texts) == (1 / 3, 1, 3)
    assert readability(["<think></think><answer>2</answer>", "867"]) == (None, 0, 0)
