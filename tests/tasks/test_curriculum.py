"""Curriculum by measured pass rate: the level moves with the informative share, held-out problems stay at the
target difficulty and never reach training, and the state round-trips for an exact resume."""

from __future__ import annotations

import logging

import pytest

from rlvr.config import TaskConfig
from rlvr.tasks.curriculum import PassRateCurriculum, next_level
from rlvr.tasks.registry import build_task


def test_next_level_moves_away_from_failure_and_then_toward_the_target():
    assert next_level(3, 3, share=0.1, pass_rate=0.02, low=0.3, lowest=1, highest=4) == 2  # mostly wrong: easier
    assert next_level(3, 3, share=0.1, pass_rate=0.95, low=0.3, lowest=1, highest=4) == 4  # mostly right: harder
    assert next_level(1, 3, share=0.5, pass_rate=0.5, low=0.3, lowest=1, highest=4) == 2  # signal: toward target
    assert next_level(3, 3, share=0.5, pass_rate=0.5, low=0.3, lowest=1, highest=4) == 3
    assert next_level(1, 3, share=0.0, pass_rate=0.0, low=0.3, lowest=1, highest=4) == 1  # clamped
    # mostly wrong, but the easier level was last found too easy: stay rather than go back to all-right groups
    assert next_level(3, 3, share=0.1, pass_rate=0.02, low=0.3, lowest=1, highest=4, outgrown={2}) == 3
    assert next_level(3, 3, share=0.1, pass_rate=0.02, low=0.3, lowest=1, highest=4, outgrown={1}) == 2


def test_a_mastered_level_is_not_gone_back_to():
    """Level 1 all right (too easy: up to 2), level 2 all wrong: without the memory of level 1 the level would
    go back and forth between the two, half the steps on groups that teach nothing."""
    task = _task()
    levels = []
    for verdicts in ([True, True],) * 4 + ([False, False],) * 12:
        task.observe(task.train_problem(0), verdicts)
        levels.append(task.level)
    assert levels[3] == 2 and set(levels[4:]) == {2} and task.outgrown == {1}
    for _ in range(4):  # a mixed window at level 2: it is not outgrown, and the level moves toward the target
        task.observe(task.train_problem(0), [True, False])
    assert task.level == 3 and task.outgrown == {1}
    again = _task()
    again.load_state_dict(task.state_dict())
    assert again.outgrown == {1}


def _task(**kw) -> PassRateCurriculum:
    cfg = TaskConfig(name="arithmetic", difficulty=3, adaptive_difficulty=True, curriculum_start=1,
                     curriculum_window=4, **kw)
    return build_task(cfg, eval_size=50)


def test_the_level_follows_the_observed_groups_and_held_out_stays_at_the_target():
    task = _task()
    assert isinstance(task, PassRateCurriculum) and task.level == 1
    held = task.eval_problems()
    assert all(len(str(p.meta["a"])) == 3 for p in held)  # target difficulty: 3-digit operands
    for _ in range(4):  # mixed groups at level 1: the signal is there, move toward the target
        task.observe(task.train_problem(0), [True, False])
    assert task.level == 2 and task.stats()["curriculum/moves"] == 1
    for _ in range(4):  # all wrong at level 2: back to easier
        task.observe(task.train_problem(0), [False, False])
    assert task.level == 1
    stale = task.tasks[3].train_problem(0)
    stale.meta["difficulty"] = 3
    task.observe(stale, [True, False])  # a group from another level does not count for this one
    assert task.seen == []
    keys = {p.meta["key"] for p in held}
    for level in (1, 2, 3):
        task.level = level
        assert not keys & {task.train_problem(i).meta["key"] for i in range(300)}


def test_with_the_group_size_screens_count_as_the_groups_they_predict():
    """Four screens of 4 samples with one success in 16: one of four is mixed (0.25, below the band's 0.3), but
    groups of 8 of such problems would be mixed about 40% of the time (rlvr.algorithms.informative). Counted
    as they are, the level stays at the easiest; told G = 8, it moves toward the target."""
    screens = [[True, False, False, False]] + [[False] * 4] * 3
    for group_size, level in ((None, 1), (8, 2)):
        cfg = TaskConfig(name="arithmetic", difficulty=3, adaptive_difficulty=True, curriculum_start=1,
                         curriculum_window=4)
        task = build_task(cfg, eval_size=50, group_size=group_size)
        for verdicts in screens:
            task.observe(task.train_problem(0), verdicts)
        assert task.level == level, group_size
    # the decision's estimate is logged with the window's pass rate; the band's share it was held to is 0.3
    stats = task.stats()
    assert stats["curriculum/window_share"] > 0.3 and stats["curriculum/window_pass_rate"] == 1 / 16
    # groups of G themselves: the share is the share of mixed groups, as without a group size
    task = build_task(cfg, eval_size=50, group_size=2)
    assert task.group_size == 2
    for verdicts in ([True, False], [False, False], [False, False], [False, False]):
        task.observe(task.train_problem(0), verdicts)
    assert task.level == 1  # 1 of 4 mixed: below the band, mostly wrong, already the easiest
    assert task.stats()["curriculum/window_share"] == 0.25 and task.stats()["curriculum/window_pass_rate"] == 1 / 8


def test_an_older_checkpoint_s_window_starts_afresh():
    task = _task()
    task.load_state_dict({"level": 2, "moves": 1, "seen": [[True, 0.5], [False, 0.0]]})
    assert task.level == 2 and task.seen == [] and task.last is None


def test_state_round_trips_and_fields_are_checked():
    task = _task()
    for _ in range(6):
        task.observe(task.train_problem(0), [True, False])
    again = _task()
    again.load_state_dict(task.state_dict())
    assert again.level == task.level and again.seen == task.seen
    assert again.stats() == task.stats() and "curriculum/window_share" in again.stats()  # a resumed run logs the same
    fresh = _task()
    assert "curriculum/window_share" not in fresh.stats()  # nothing decided yet: nothing to log
    assert [again.train_problem(i) for i in range(5)] == [task.train_problem(i) for i in range(5)]
    with pytest.raises(ValueError, match="task.adaptive_difficulty"):
        build_task(TaskConfig(name="countdown", path="x.jsonl", adaptive_difficulty=True))
    with pytest.raises(ValueError, match="task.curriculum_window"):
        build_task(TaskConfig(name="arithmetic", difficulty=3, adaptive_difficulty=True, curriculum_window=0), 50)


def _terms_digits(problem) -> tuple[int, int]:
    meta = problem.meta["entry"]["metadata"]
    return meta["num_terms"], max(len(t.lstrip("-")) for t in meta["expression"].replace("(", " ").replace(
        ")", " ").split() if t.lstrip("-").isdigit())


def test_a_reasoning_gym_generator_follows_its_own_curriculum():
    pytest.importorskip("reasoning_gym")
    cfg = TaskConfig(name="reasoning_gym/basic_arithmetic", difficulty=2, adaptive_difficulty=True,
                     curriculum_start=0, curriculum_window=2, params={"operators": ["+", "-"]})
    task = build_task(cfg, eval_size=40)
    assert isinstance(task, PassRateCurriculum) and (task.level, task.highest) == (0, 3)
    # level 0 of reasoning-gym's curriculum: 2 terms of 1 digit; the user's operators kept at every level
    easy = [task.train_problem(i) for i in range(30)]
    assert {_terms_digits(p) for p in easy} == {(2, 1)}
    assert not any(c in p.meta["key"] for p in easy for c in "*/")
    held = task.eval_problems()  # held out at level 2: up to 4 terms, up to 3 digits
    assert max(_terms_digits(p)[0] for p in held) > 2 and max(_terms_digits(p)[1] for p in held) > 1
    for _ in range(2):
        task.observe(task.train_problem(0), [True, False])
    assert task.level == 1
    keys = {p.meta["key"] for p in held}
    assert not keys & {task.train_problem(i).meta["key"] for i in range(200)}
    p = task.train_problem(5)
    answer = p.answer
    assert task.verify(p, f"<answer>{answer}</answer>").correct
    with pytest.raises(ValueError, match="task.params.min_terms"):
        build_task(TaskConfig(name="reasoning_gym/basic_arithmetic", adaptive_difficulty=True, difficulty=1,
                              curriculum_start=0, params={"min_terms": 3}))
    with pytest.raises(ValueError, match="task.difficulty: reasoning_gym/basic_arithmetic has curriculum levels 0-4"):
        build_task(TaskConfig(name="reasoning_gym/basic_arithmetic", adaptive_difficulty=True, difficulty=7,
                              curriculum_start=0))
    with pytest.raises(ValueError, match="no curriculum for 'gsm_symbolic'"):
        build_task(TaskConfig(name="reasoning_gym/gsm_symbolic", adaptive_difficulty=True))


def test_a_reasoning_gym_task_set_beyond_its_curriculum_is_held_out_above_the_highest_level():
    pytest.importorskip("reasoning_gym")
    # aiw's curriculum tops out at 16 people (level 8); the task asked for has up to 50
    params = {"task_type_weights": [0.4, 0.3, 0.3], "max_entities": 50}
    cfg = TaskConfig(name="reasoning_gym/aiw", difficulty=9, adaptive_difficulty=True, curriculum_start=0,
                     curriculum_window=2, params=params)
    task = build_task(cfg, eval_size=60)
    assert isinstance(task, PassRateCurriculum) and (task.level, task.target, task.highest) == (0, 9, 9)
    counts = lambda p: [int(w) for w in p.prompt.replace(".", " ").split() if w.isdigit()]  # noqa: E731
    easy = [task.train_problem(i) for i in range(40)]
    assert max(n for p in easy for n in counts(p)) <= 4  # level 0: up to 4 people of each kind, siblings only
    assert all("sister" in p.prompt or "brother" in p.prompt for p in easy)
    held = task.eval_problems()
    assert max(n for p in held for n in counts(p)) > 16  # beyond every curriculum level
    assert {p.meta["entry"]["metadata"]["task_type"] for p in held} >= {"siblings", "friends", "colleagues"}
    assert not {p.meta["key"] for p in held} & {task.train_problem(i).meta["key"] for i in range(200)}
    for level in (8, 3):  # a level of the curriculum itself still refuses the configured fields
        with pytest.raises(ValueError, match="task.params.max_entities: .*set task.difficulty=9"):
            build_task(TaskConfig(name="reasoning_gym/aiw", difficulty=level, adaptive_difficulty=True,
                                  curriculum_start=0, params=params))


def test_levels_are_held_to_the_target_in_the_fields_it_sets():
    """chain_sum's level L has 2 to L + 2 terms of 1 to L + 1 digits. Toward 2-term sums of 2-3 digits each
    level's terms are held to 2 and its digits to at most 3: the ladder is 1 digit, 1-2 digits, 1-3 digits, then
    the target; levels 3-10 come out the same as level 2 and are left out, and a move in either direction steps
    over them."""
    pytest.importorskip("reasoning_gym")
    from rlvr.tasks.reasoning_gym import curriculum_levels
    from rlvr.tasks.registry import toward

    top, levels = curriculum_levels("chain_sum")
    two_terms = {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 3}
    held = toward(levels, two_terms)
    assert list(held) == [0, 1, 2]
    assert [(f["max_terms"], f["min_digits"], f["max_digits"]) for f in held.values()] == [(2, 1, 1), (2, 1, 2),
                                                                                           (2, 1, 3)]
    assert toward(levels, {"max_terms": 4, "max_digits": 3})[2] == levels[2]  # level 2 itself is not harder
    assert list(toward(levels, {"max_terms": 4, "max_digits": 3})) == [0, 1, 2]  # 3-10: the same as level 2
    assert [f["max_digits"] for f in toward(levels, {"max_digits": 2, "max_terms": 12}).values()] == [1] + [2] * 10
    assert list(toward(levels, levels[0])) == []  # every level held to level 0's fields is level 0: the target
    cfg = TaskConfig(name="reasoning_gym/chain_sum", difficulty=top + 1, adaptive_difficulty=True,
                     curriculum_start=0, curriculum_window=2, params=two_terms)
    task = build_task(cfg, eval_size=40)
    assert task.ladder == [0, 1, 2, top + 1] and task.level == 0
    terms = lambda p: p.meta["entry"]["metadata"]["num_terms"]  # noqa: E731
    digits = lambda p: p.meta["entry"]["metadata"]["num_digits"]  # noqa: E731
    assert {(terms(p), digits(p)) for p in map(task.train_problem, range(20))} == {(2, 1)}
    for level, kinds in ((1, {(2, 1), (2, 2)}), (2, {(2, 1), (2, 2), (2, 3)}), (top + 1, {(2, 2), (2, 3)})):
        for _ in range(2):  # the level mastered: one step up the ladder
            task.observe(task.train_problem(0), [True, True])
        assert task.level == level
        assert {(terms(p), digits(p)) for p in map(task.train_problem, range(60))} == kinds
    drawn = [task.train_problem(i) for i in range(30)]
    assert {terms(p) for p in drawn} == {2} and {digits(p) for p in drawn} == {2, 3}
    assert {terms(p) for p in task.eval_problems()} == {2}
    for _ in range(2):  # all wrong at the target: the easier level was outgrown, so it stays
        task.observe(task.train_problem(0), [False, False])
    assert task.level == top + 1
    task.outgrown.clear()
    for _ in range(2):  # and without that memory it steps back to level 2, not to level `top`
        task.observe(task.train_problem(0), [False, False])
    assert task.level == 2
    state = task.state_dict()
    again = build_task(cfg, eval_size=40)
    again.load_state_dict({**state, "outgrown": [0, 3]})  # an old checkpoint's outgrown level 3 is off the ladder
    assert again.level == 2 and again.outgrown == {0}
    with pytest.raises(ValueError, match="the checkpoint's level 5 is not one of this run's levels"):
        again.load_state_dict({**state, "level": 5})
    with pytest.raises(ValueError, match="task.curriculum_start: level 3 of reasoning_gym/chain_sum, held to"):
        build_task(TaskConfig(name="reasoning_gym/chain_sum", difficulty=top + 1, adaptive_difficulty=True,
                              curriculum_start=3, params=two_terms))


def test_a_run_stuck_at_the_lowest_level_is_counted_and_warned_once(caplog):
    task = _task()  # lowest level 1 (curriculum_start), windows of 4 problems
    with caplog.at_level(logging.WARNING, logger="rlvr.tasks.curriculum"):
        for _ in range(5 * 4):  # five windows, every group all wrong: no easier level to go to
            task.observe(task.train_problem(0), [False, False])
    assert task.level == 1 and task.stats()["curriculum/stuck_windows"] == 5
    warned = [r.getMessage() for r in caplog.records if "lowest level" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("curriculum: 4 windows in a row at the lowest level (1)")
    again = _task()
    again.load_state_dict(task.state_dict())
    assert again.stats() == task.stats()  # a resumed run counts on
    for _ in range(4):  # a mixed window: the signal is back, the count starts over
        task.observe(task.train_problem(0), [True, False])
    assert task.stats()["curriculum/stuck_windows"] == 0 and task.level == 2
    for _ in range(4 * 4):  # all wrong above the lowest level: it moves down instead, nothing is counted
        task.observe(task.train_problem(0), [False, False])
    assert task.level == 1 and task.stats()["curriculum/stuck_windows"] == 3
