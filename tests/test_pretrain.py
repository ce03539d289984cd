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
    task, (seqs, starts, accuracy, problems, masks) = _corpus(tok)
    assert len(seqs) == len(starts) == len(problems) == 300 and masks is None  # no tools: nothing masked
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
    _, (a, _, acc_a, _, _) = _corpus(char_tokenizer, n=100, seed=0)
    _, (b, _, acc_b, _, _) = _corpus(char_tokenizer, n=100, seed=0)
    _, (c, _, _, _, _) = _corpus(char_tokenizer, n=100, seed=1)
    assert a == b and acc_a == acc_b
    assert a != c  # same problems, the teacher's coin flips differ


def test_a_few_steps_lower_the_loss(make_tiny_model, char_tokenizer):
    _, (seqs, starts, _, _, _) = _corpus(char_tokenizer, n=200)
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


def test_rlvr_pretrain_on_a_task_with_tools_gives_observation_tokens_zero_loss_weight(tmp_path, monkeypatch,
                                                                                        tiny_recipe):
    """`rlvr pretrain` (run_pretrain) imitates what the model writes in a tool transcript, never the tool's
    `<result>` observations: the RL learner masks those too."""
    import re

    from rlvr.batching import pad_sequences
    from rlvr.config import load_config
    from rlvr.demo import run_pretrain
    from rlvr.logging.metrics import MetricsLogger
    from rlvr.models.tokenizer import build_char_tokenizer

    cfg = load_config(tiny_recipe(**{"task.name": "tool_arithmetic", "task.tools": [{"name": "calculator"}],
                                     "task.params": {"tool_share": 0.5}, "model.max_position_embeddings": 256}),
                      ["pretrain.num_examples=24"])
    seen = []
    monkeypatch.setattr("rlvr.demo.pretrain", lambda model, tok, corpus, *a, **kw: seen.append(corpus)
                        or {"loss": 0.0, "seconds": 0.0})
    logger = MetricsLogger(tmp_path)
    run_pretrain(cfg, tmp_path, logger, progress=False)
    logger.close()
    tok = build_char_tokenizer()
    (corpus,) = seen
    seqs, starts = corpus[:2]
    ids, _, weight = pad_sequences(seqs, starts, tok.pad_token_id, corpus[2] if len(corpus) > 2 else None)
    called = 0
    for i, (seq, start) in enumerate(zip(seqs, starts)):
        text = tok.decode(seq[start:-1])
        observations = "".join(re.findall(r"<result>.*?</result>", text))
        targets = ids[i, 1 : len(seq)].tolist()  # weight[i, t] is the loss weight of target ids[i, t + 1]
        w = weight[i, : len(seq) - 1].tolist()
        assert tok.decode([t for t, x in zip(targets, w) if x == 0][start - 1 :]) == observations
        assert tok.decode([t for t, x in zip(targets, w) if x == 1]) == re.sub(r"<result>.*?</result>", "", text) \
            + tok.eos_token
        called += bool(observations)
    assert 0 < called < len(seqs)  # transcripts with and without a call
