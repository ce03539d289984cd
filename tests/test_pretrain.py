"""The imitation phase: a corpus of worked solutions from the training stream only, and a falling loss."""

from __future__ import annotations

from rlvr.config import PretrainConfig
from rlvr.models.loading import encode_prompt
from rlvr.pretrain import build_corpus, pretrain
from rlvr.tasks.arithmetic import ArithmeticTask


def _corpus(tok, n=300, seed=0):
    task = ArithmeticTask(difficulty=3, flaw_rate=0.3, eval_size=200)
    return task, build_corpus(task, tok, lambda p: encode_prompt(p, tok), n, seed)


def test_corpus_excludes_held_out_problems_and_reports_data_accuracy(char_tokenizer):
    tok = char_tokenizer
    task, (seqs, starts, accuracy, problems) = _corpus(tok)
    assert len(seqs) == len(starts) == len(problems) == 300
    held_out = task.held_out_keys()
    assert not {p.meta["key"] for p in problems} & held_out
    verdicts = []
    for seq, start, p in zip(seqs, starts, problems):
        assert seq[:start] == encode_prompt(p, tok)
        assert seq[-1] == tok.eos_token_id  # the model learns to stop
        verdicts.append(task.verify(p, tok.decode(seq[start:-1])).correct)
    assert accuracy == sum(verdicts) / len(verdicts)  # the share of correct solutions it imitates
    assert 0.6 < accuracy < 0.8  # flaw_rate 0.3 of 3-digit additions drop their carries


def test_corpus_is_seeded(char_tokenizer):
    _, (a, _, acc_a, _) = _corpus(char_tokenizer, n=100, seed=0)
    _, (b, _, acc_b, _) = _corpus(char_tokenizer, n=100, seed=0)
    _, (c, _, _, _) = _corpus(char_tokenizer, n=100, seed=1)
    assert a == b and acc_a == acc_b
    assert a != c  # same problems, the teacher's coin flips differ


def test_a_few_steps_lower_the_loss(make_tiny_model, char_tokenizer):
    _, (seqs, starts, _, _) = _corpus(char_tokenizer, n=200)
    model = make_tiny_model()
    losses = []
    cfg = PretrainConfig(steps=30, batch_size=16, lr=3e-3, warmup_steps=0)
    stats = pretrain(
        model,
        char_tokenizer,
        (seqs, starts),
        cfg,
        seed=0,
        on_step=lambda step, m: losses.append((step, m["pretrain/loss"])),
    )
    assert [s for s, _ in losses] == list(range(1, 31))
    first, last = losses[0][1], sum(v for _, v in losses[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert stats["loss"] > 0 and stats["seconds"] > 0
    assert not model.training
