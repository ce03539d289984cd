"""Entropy and chunked token log-probs against hand values and the plain log_softmax + gather."""

import math

import pytest
import torch

from rlvr.algorithms.entropy import entropy_from_logits, token_logprobs, token_logprobs_and_entropy


def test_entropy_by_hand():
    uniform = torch.zeros(4)
    assert entropy_from_logits(uniform).item() == pytest.approx(math.log(4))
    # p = [1/2, 1/4, 1/4]: H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2
    logits = torch.tensor([[math.log(0.5), math.log(0.25), math.log(0.25)]])
    assert entropy_from_logits(logits).item() == pytest.approx(1.5 * math.log(2))
    # z = [1, 0, 0]: p = [e, 1, 1] / (e + 2), H = log(e + 2) - e / (e + 2); +1024 is exact in float32, so any
    # error below comes from cancellation inside the function
    expected = math.log(math.e + 2) - math.e / (math.e + 2)
    assert entropy_from_logits(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(expected)
    assert entropy_from_logits(torch.tensor([1025.0, 1024.0, 1024.0])).item() == pytest.approx(expected)


def test_entropy_edge_logits():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, -math.inf]])
    h = entropy_from_logits(logits)
    assert torch.isfinite(h).all()
    assert h[0].item() == pytest.approx(0.0, abs=1e-6)  # one-hot
    assert h[1].item() == pytest.approx(math.log(2))  # the -inf token is simply absent



def test_entropy_gradient_with_masked_vocabulary_is_the_unmasked_one():
    """An entropy bonus over a masked vocabulary (-inf logits) gets finite gradients: those of the entropy of
    the kept entries alone, and 0 for the masked ones (it used to be NaN in every entry of the row)."""
    gen = torch.Generator().manual_seed(0)
    kept = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    logits = torch.cat([kept, torch.full((3, 2), -math.inf, dtype=torch.float64)], dim=-1).requires_grad_(True)
    ref = kept.clone().requires_grad_(True)
    weights = torch.randn(3, generator=gen, dtype=torch.float64)
    (entropy_from_logits(logits) * weights).sum().backward()
    (entropy_from_logits(ref) * weights).sum().backward()
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(logits.grad[:, :6], ref.grad)
    assert (logits.grad[:, 6:] == 0).all()
    # and against the textbook -sum p log p on the kept entries
    p = torch.softmax(kept, dim=-1)
    torch.testing.assert_close(entropy_from_logits(logits.detach()), -(p * p.log()).sum(-1))

def test_entropy_bf16_is_upcast():
    logits = torch.randn(2, 3, 50, generator=torch.Generator().manual_seed(0))
    h = entropy_from_logits(logits.bfloat16())
    assert h.shape == (2, 3) and h.dtype == torch.float32
    torch.testing.assert_close(h, entropy_from_logits(logits.bfloat16().float()))


def test_token_logprobs_by_hand():
    logits = torch.tensor([[[math.log(0.5), math.log(0.25), math.log(0.25)], [0.0, 0.0, 0.0]]])
    out = token_logprobs(logits, torch.tensor([[1, 2]]))
    torch.testing.assert_close(out, torch.tensor([[math.log(0.25), -math.log(3)]]))


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 10, 1024])
def test_token_logprobs_matches_log_softmax_gather(chunk_size):
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(2, 5, 11, generator=gen, dtype=torch.float64)).requires_grad_(True)
    targets = torch.randint(0, 11, (2, 5), generator=gen)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = torch.log_softmax(ref_logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    out = token_logprobs(logits, targets, chunk_size=chunk_size)
    assert out.shape == (2, 5) and out.dtype == torch.float64
    torch.testing.assert_close(out, ref)
    weights = torch.randn(2, 5, generator=gen, dtype=torch.float64)  # a non-uniform upstream gradient
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)


def test_token_logprobs_bf16_in_float32_out():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 17, generator=gen).bfloat16().requires_grad_(True)
    targets = torch.randint(0, 17, (3, 4), generator=gen)
    out = token_logprobs(logits, targets, chunk_size=5)
    assert out.dtype == torch.float32
    ref = torch.log_softmax(logits.detach().float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_one_pass_gives_the_log_probs_and_the_entropy_of_the_separate_functions(dtype, chunk_size):
    """The learner's single pass: the same log-probs and gradient as token_logprobs, and each row's entropy as
    entropy_from_logits, with masked (-inf) entries, an all-masked-but-one row and logits far from 0."""
    gen = torch.Generator().manual_seed(2)
    base = 4 * torch.randn(2, 5, 40, generator=gen)
    base[0, 1, 3:] = -math.inf  # three tokens left
    base[1, 2, :] = -math.inf
    base[1, 2, 7] = 1.0  # one token left: entropy 0, its log-prob 0
    base[1, 4] += 3000.0  # a shift that float32 holds exactly enough to show any cancellation
    logits = base.to(dtype).requires_grad_(True)
    targets = torch.randint(0, 3, (2, 5), generator=gen)
    targets[1, 2] = 7
    logp, ent = token_logprobs_and_entropy(logits, targets, chunk_size=chunk_size)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = token_logprobs(ref_logits, targets, chunk_size=chunk_size)
    torch.testing.assert_close(logp, ref)
    torch.testing.assert_close(ent, entropy_from_logits(logits.detach()))
    assert ent[1, 2].item() == 0.0 and logp[1, 2].item() == 0.0
    assert not ent.requires_grad and logp.requires_grad and ent.dtype == torch.float32
    weights = torch.randn(2, 5, generator=gen)
    (logp * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    # and both against the textbook formulas in float64
    z = logits.detach().double()
    expected = torch.log_softmax(z, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logp.double(), expected, atol=1e-4, rtol=1e-4)
    p = torch.softmax(z, -1)
    expected_h = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
    torch.testing.assert_close(ent.double(), expected_h, atol=1e-4, rtol=1e-4)


def test_token_logprobs_refuses_bad_arguments():
    with pytest.raises(ValueError, match="chunk_size"):
        token_logprobs(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), chunk_size=0)
    with pytest.raises(ValueError, match="disagree"):
        token_logprobs(torch.zeros(1, 2, 3), torch.zeros(2, 2, dtype=torch.long))
