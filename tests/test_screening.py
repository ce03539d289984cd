"""Prompt screening: only mixed groups train, every sample is counted, held-out problems never appear, the
running tally of repeated rows skips the screen, and a screened run resumes exactly from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from rlvr.config import ConfigError, load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.screening import PassTally, salted_seed, screen_passes
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.base import Task
from rlvr.trainer import Trainer
from rlvr.types import Problem, Score

K, G, B = 2, 4, 2


def _parity(text: str) -> bool:
    return sum(map(ord, text)) % 2 == 0


class _ParityArithmetic(ArithmeticTask):
    """Arithmetic problems (with their held-out set) whose verdict is the parity of the text: a random policy
    passes about half its samples, so screens come out mixed, all right and all wrong."""

    def __init__(self):
        super().__init__(difficulty=2, eval_size=8)

    def verify(self, problem, text):
        ok = _parity(text)
        return Score(float(ok), ok, True)


class _Rows(Task):
    """Three dataset-like rows in a cycle: p0 is never solved, p1 and p2 by parity."""

    name = "rows"

    def __init__(self):
        self.problems = [Problem(f"p{i}", f"{i}+{i}=", 2 * i, "rows", meta={"key": str(i)}) for i in range(3)]

    def train_problem(self, index):
        return self.problems[index % 3]

    def eval_problems(self, n=None):
        return self.problems[: n or 3]

    def verify(self, problem, text):
        ok = problem.id != "p0" and _parity(text)
        return Score(float(ok), ok, True)


def _config(tiny_recipe, **extra):
    overrides = [f"algorithm.screen_samples={K}", "algorithm.screening=true", "algorithm.screen_rounds=3",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return load_config(tiny_recipe(**{"rollout.num_generations": G, "train.prompts_per_step": B}), overrides)


def _recording(trainer):
    collected = []
    collect = trainer.collect
    trainer.collect = lambda: collected.append(collect()) or collected[-1]
    return collected


def test_screen_passes_only_mixed_screens():
    assert screen_passes([0, 1, 2, 3, 4], 4) == [False, True, True, True, False]
    assert salted_seed(7, 3, 0) != salted_seed(7, 3, 1) != salted_seed(7, 4, 1)


def test_screened_groups_are_mixed_counted_and_never_held_out(tmp_path, tiny_recipe):
    cfg = _config(tiny_recipe)
    task = _ParityArithmetic()
    trainer = Trainer(cfg, tmp_path / "run", task=task)
    collected = _recording(trainer)
    rows = [trainer.step() for _ in range(3)]
    trainer.logger.close()
    held = task.held_out_keys()
    for c, m in zip(collected, rows):
        kept = c.kept
        assert len(kept) % G == 0 and 0 < len(kept) <= B * G
        for g in range(0, len(kept), G):
            group = kept[g : g + G]
            assert len({r.problem.id for r in group}) == 1
            assert 0 < sum(r.score.correct for r in group) < G  # screening kept only groups with a spread
        assert m["groups/all_equal_frac"] == 0.0
        # every candidate was screened with K samples; each kept group cost G - K more
        assert len(c.sampled) == m["screen/candidates"] * K + (len(kept) // G) * (G - K)
        assert m["screen/passed"] >= len(kept) // G
        assert not {r.problem.meta["key"] for r in c.sampled} & held  # held-out problems never sampled
    assert rows[-1]["sampled_tokens"] == sum(len(r.completion_ids) for c in collected for r in c.sampled)
    assert rows[-1]["cursor"] == sum(m["screen/candidates"] for m in rows)


def test_screening_samples_join_their_group_from_the_same_policy(tmp_path, tiny_recipe):
    # one round: `sampled` then holds every screening sample first, then the groups' top-ups (with more
    # rounds, each round's screens and top-ups follow each other)
    cfg = _config(tiny_recipe, **{"algorithm.screen_rounds": 1})
    trainer = Trainer(cfg, tmp_path / "run", task=_ParityArithmetic())
    collected = _recording(trainer)
    trainer.step()
    trainer.logger.close()
    kept = collected[0].kept
    assert kept  # some screen came out mixed, so the check below sees groups
    screened = {id(r) for r in collected[0].sampled[: collected[0].info["screen/candidates"] * K]}
    for g in range(0, len(kept), G):
        assert [id(r) in screened for r in kept[g : g + G]] == [True] * K + [False] * (G - K)
        assert len({r.policy_version for r in kept[g : g + G]}) == 1


def test_rows_with_a_mixed_history_skip_the_screen(tmp_path, tiny_recipe):
    cfg = _config(tiny_recipe)
    trainer = Trainer(cfg, tmp_path / "run", task=_Rows())
    rows = [trainer.step() for _ in range(4)]
    trainer.logger.close()
    assert sum(r["screen/direct"] for r in rows) > 0  # p1 or p2 came round again with a mixed tally
    assert trainer.screener.tally.pass_rate("rows\x000") == 0.0  # p0: never solved, screened every time
    tally = PassTally(limit=2)
    for key in "abc":
        tally.add(key, [True, False])
    assert list(tally.counts) == ["b", "c"] and tally.mixed("b") and not tally.mixed("a")


def test_a_screened_run_resumes_exactly_from_a_checkpoint(tmp_path, tiny_recipe):
    cfg = _config(tiny_recipe, **{"train.steps": 4, "train.checkpoint_every": 2})
    straight = Trainer(cfg, tmp_path / "straight", task=_Rows())
    straight.run(progress=False)
    straight.logger.close()

    stopped = Trainer(cfg, tmp_path / "stopped", task=_Rows())
    collect = stopped.collect

    def stop_at_step_3():
        if stopped.step_count == 2:
            raise KeyboardInterrupt
        return collect()

    stopped.collect = stop_at_step_3
    with pytest.raises(KeyboardInterrupt):
        stopped.run(progress=False)
    stopped.logger.close()
    resumed = Trainer(cfg, tmp_path / "stopped", resume=True, task=_Rows())
    assert resumed.step_count == 2 and resumed.screener.tally.counts == _tally_at_step_2(cfg, tmp_path)
    resumed.run(progress=False)
    resumed.logger.close()

    def rows(run):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(run / "metrics.jsonl")]

    assert rows(tmp_path / "stopped") == rows(tmp_path / "straight")
    assert sum(r["screen/direct"] for r in rows(tmp_path / "straight")[2:]) > 0  # the tally mattered after resume
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def _tally_at_step_2(cfg, tmp_path):
    trainer = Trainer(cfg, tmp_path / "two", task=_Rows())
    trainer.step()
    trainer.step()
    trainer.logger.close()
    return trainer.screener.tally.counts


def test_screening_fields_are_validated_by_name(tiny_recipe):
    with pytest.raises(ConfigError, match="algorithm.screen_samples"):
        _config(tiny_recipe, **{"algorithm.screen_samples": G})
    with pytest.raises(ConfigError, match="algorithm.screen_samples"):
        _config(tiny_recipe, **{"algorithm.screen_samples": 1})
    with pytest.raises(ConfigError, match="algorithm.screening"):
        _config(tiny_recipe, **{"algorithm.dynamic_sampling": "true"})
    with pytest.raises(ConfigError, match="algorithm.screen_rounds"):
        _config(tiny_recipe, **{"algorithm.screen_rounds": 0})
    with pytest.raises(ConfigError, match="algorithm.screening.*distributed.async_rollouts"):
        _config(tiny_recipe, **{"distributed.backend": "ray", "distributed.async_rollouts": "true"})
    assert _config(tiny_recipe, **{"distributed.backend": "ray"}).algorithm.screening  # synchronous Ray screens


def test_the_task_observes_each_candidate_s_screen_not_its_top_up():
    """A screened group's top-up samples went to it because its screen was mixed: a curriculum counting them
    would overstate the spread. `observe` gets the screen's verdicts; the tally of repeated rows gets all."""
    from types import SimpleNamespace

    from rlvr.screening import Screener
    from rlvr.types import Rollout

    problems = [Problem(f"q{i}", f"{i}?", i, "t", meta={"key": str(i)}) for i in range(4)]
    # per problem, its verdicts in the order they are drawn: q0 and q2 screen mixed (then topped up), q1 and q3 not
    script = {"q0": [True, False, True, True], "q1": [False, False, True, True], "q2": [False, True, False, False],
              "q3": [True, True, True, True]}
    drawn = {p.id: 0 for p in problems}

    def sample(batch, positions, n, salts, info):
        out = []
        for p in batch:
            for _ in range(n):
                ok = script[p.id][drawn[p.id]]
                drawn[p.id] += 1
                out.append(Rollout(p, [1], [2], [0.0], "x", "stop", score=Score(float(ok), ok, True)))
        return out

    screener = Screener(SimpleNamespace(screen_samples=2, screen_rounds=1, screen_oversample=2), group_size=4,
                        prompts_per_step=2)
    seen = {}
    kept, _, _ = screener.collect(lambda n: (problems[:n], 0), sample, lambda p, v: seen.setdefault(p.id, v))
    assert [r.problem.id for r in kept] == ["q0"] * 4 + ["q2"] * 4
    assert seen == {"q0": [True, False], "q1": [False, False], "q2": [False, True], "q3": [True, True]}
    assert screener.tally.counts["t\x000"] == [3, 4]  # the tally keeps the whole group: 3 right of 4


def _calls(trainer):
    """Record the salts of every sampling call, and which `collect` made it."""
    calls, sample, collect = [], trainer.sample, trainer.collect
    step = [0]

    def wrapped(problems, positions, n, salts, info):
        calls.append((step[0], n, list(salts)))
        return sample(problems, positions, n, salts, info)

    def counted():
        step[0] += 1
        return collect()

    trainer.sample, trainer.collect = wrapped, counted
    return calls


@pytest.mark.parametrize("group_size", [G, 6])
def test_top_ups_ride_with_the_next_round_s_screens_and_sample_the_same(tmp_path, tiny_recipe, group_size):
    """A round's top-ups are decoded in one call with the next round's screens (fuller batches); only the last
    round's go alone. Seeds are per candidate and part, so the samples are those of separate calls. With
    G = 6 and K = 2 a top-up of 4 is asked as two parts of 2 (on seeds of their own)."""
    from rlvr.screening import TOP_UP, stream

    cfg = _config(tiny_recipe, **{"rollout.num_generations": group_size, "algorithm.screen_rounds": 4})
    arms = {}
    for merge in (False, True):
        trainer = Trainer(cfg, tmp_path / f"merge{merge}", task=_ParityArithmetic())
        trainer.screener.merge = merge
        calls = _calls(trainer)
        arms[merge] = ([trainer.collect() for _ in range(4)], calls)
        trainer.logger.close()
    (separate, separate_calls), (merged, merged_calls) = arms[False], arms[True]
    for a, b in zip(separate, merged):
        assert [r.completion_ids for r in a.kept] == [r.completion_ids for r in b.kept]
        assert sorted(r.completion_ids for r in a.sampled) == sorted(r.completion_ids for r in b.sampled)
    assert sum(len(c.kept) for c in merged) >= 2 * group_size  # groups were found, in more than one step
    assert len(merged_calls) < len(separate_calls)
    assert all(n == K for _, n, _ in merged_calls)  # every call asks gcd(K, G) samples a prompt
    top_up = {stream(TOP_UP, p) for p in range((group_size - K) // K)}
    for i, (step, _, salts) in enumerate(merged_calls):
        last = i + 1 == len(merged_calls) or merged_calls[i + 1][0] != step
        assert last or not set(salts) <= top_up  # a call of top-ups alone ends its step
    assert any(set(salts) & top_up and set(salts) - top_up for _, _, salts in merged_calls)  # merged calls
    if group_size == 6:
        assert any(stream(TOP_UP, 1) in salts for _, _, salts in merged_calls)
        assert stream(TOP_UP, 1) != stream(TOP_UP, 0) != stream(0, 1)
