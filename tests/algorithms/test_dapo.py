"""DAPO soft overlong punishment and the dynamic-sampling group filter."""

import pytest
import torch

from rlvr.algorithms.dapo import nonconstant_groups, overlong_penalty


def test_overlong_penalty_by_hand():
    # max 20, buffer 4: free up to 16, then -1/4 per token, -1 at the limit and beyond
    lengths = torch.tensor([0, 10, 16, 17, 18, 19, 20, 25])
    out = overlong_penalty(lengths, max_new_tokens=20, buffer=4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.0, 0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0]))


def test_overlong_penalty_scales_with_penalty():
    out = overlong_penalty(torch.tensor([16, 18, 20, 21]), max_new_tokens=20, buffer=4, penalty=0.5)
    torch.testing.assert_close(out, torch.tensor([0.0, -0.25, -0.5, -0.5]))


def test_overlong_penalty_buffer_zero_is_off():
    out = overlong_penalty(torch.tensor([5, 20, 30]), max_new_tokens=20, buffer=0)
    assert torch.equal(out, torch.zeros(3))


def test_nonconstant_groups_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.2])
    assert nonconstant_groups(rewards, 4).tolist() == [True, False, False, True]


def test_nonconstant_groups_group_of_one_is_constant():
    assert nonconstant_groups(torch.tensor([1.0, 0.0, 0.5]), 1).tolist() == [False, False, False]


def test_nonconstant_groups_refuses_partial_group():
    with pytest.raises(ValueError, match="group_size=4"):
        nonconstant_groups(torch.zeros(6), 4)
