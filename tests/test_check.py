"""`rlvr check`: the informative-share formula, the verifier sanity check, the advice, and that the check at the
start of `rlvr train` changes nothing about the run."""

from __future__ import annotations

import json
import shlex
from math import comb

import pytest

from rlvr.check import (
    CHECK_OFFSET,
    check_problems,
    informative_share,
    informative_share_from_counts,
    measure,
    verifier_sanity,
    wilson_interval,
)
from rlvr.check_advice import advise, set_argument, table_rows
from rlvr.cli import main
from rlvr.config import TaskConfig, load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.filtering import SolvedFilter
from rlvr.tasks.registry import build_task
from rlvr.trainer import Trainer
from rlvr.types import Score


def test_informative_share_matches_hand_computed_values():
    assert informative_share([0.5], 2) == pytest.approx(0.5)  # 1 - 1/4 - 1/4
    assert informative_share([0.1], 8) == pytest.approx(1 - 0.1**8 - 0.9**8)  # 1 - 0.43046721 - 1e-8
    assert informative_share([0.1], 8) == pytest.approx(0.56953278, abs=1e-8)
    assert informative_share([0.0, 1.0, 0.5], 2) == pytest.approx(0.5 / 3)  # solved or never: no spread
    assert informative_share([0.06], 8) == pytest.approx(1 - 0.06**8 - 0.94**8)  # the 6%: ~0.39
    assert informative_share([0.3], 1) == 0.0  # a group of one never has a spread
    assert informative_share([], 8) == 0.0
    with pytest.raises(ValueError, match="group_size"):
        informative_share([0.5], 0)


def test_the_count_estimate_is_unbiased_and_hand_computed():
    # n=4 samples, 2 right, G=2: pairs all right C(2,2)=1, all wrong C(2,2)=1, of C(4,2)=6 -> 1 - 2/6.
    assert informative_share_from_counts(4, [2], 2) == pytest.approx(2 / 3)
    assert informative_share_from_counts(8, [0, 8, 3], 8) == pytest.approx(1 / 3)  # n = G: the observed share
    # Averaged over the binomial draw of the counts it equals the formula at the true p (the plug-in c/n does not).
    p, n, G = 0.2, 6, 4
    pmf = [comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    unbiased = sum(w * informative_share_from_counts(n, [c], G) for c, w in enumerate(pmf))
    plugin = sum(w * informative_share([c / n], G) for c, w in enumerate(pmf))
    assert unbiased == pytest.approx(informative_share([p], G))
    assert plugin < informative_share([p], G) - 0.01
    with pytest.raises(ValueError, match="group_size"):
        informative_share_from_counts(4, [1], 5)


class _Rigged(ArithmeticTask):
    """Arithmetic whose verifier says `verdict` whatever the text (or decides by `rule(problem, text)`)."""

    def __init__(self, verdict=None, rule=None, **kw):
        super().__init__(difficulty=2, eval_size=8, **kw)
        self.verdict, self.rule = verdict, rule

    def verify(self, problem, text):
        if self.rule is not None:
            ok = self.rule(problem, text)
        elif self.verdict is None:
            return super().verify(problem, text)
        else:
            ok = self.verdict
        return Score(float(ok), ok, True)


def test_verifier_sanity_passes_the_real_verifier_and_catches_broken_ones():
    real = _Rigged()
    problems = check_problems(real, 6, seed=0)
    good = verifier_sanity(real, problems)
    assert good["ok"] and good["problems"] == 6 and good["reference_correct_rate"] == 1.0
    assert good["empty_correct_rate"] == good["wrong_correct_rate"] == good["echo_correct_rate"] == 0.0

    yes = verifier_sanity(_Rigged(verdict=True), problems)  # marks everything correct
    assert yes["ok"] is False and yes["empty_correct_rate"] == yes["wrong_correct_rate"] == 1.0
    assert {f["case"] for f in yes["failures"]} >= {"empty", "wrong"}
    no = verifier_sanity(_Rigged(verdict=False), problems)  # marks everything wrong
    assert no["ok"] is False and no["reference_correct_rate"] == 0.0
    assert [f["case"] for f in no["failures"]][0] == "reference"

    report = _report(share=0.5, p1=0.5, verifier=yes)
    warnings = advise(report, _config_like())[1]
    assert any("must be wrong score correct" in w for w in warnings)
    warnings = advise(_report(share=0.5, p1=0.5, verifier=no), _config_like())[1]
    assert any("marks right answers wrong" in w for w in warnings)


def test_verifier_sanity_reports_a_verifier_that_raises_as_a_failure_with_its_message():
    def broken(problem, text):
        raise KeyError("answer")

    problems = check_problems(_Rigged(), 3, seed=0)
    raised = verifier_sanity(_Rigged(rule=broken), problems)
    assert raised["ok"] is False and raised["verifier_errors"] == 3 * 6  # six completions per problem, no verdict
    assert "raised KeyError: 'answer'" in raised["verifier_error"] and "_Rigged.verify" in raised["verifier_error"]
    assert raised["failures"][0]["case"] == "verifier raised" and "KeyError" in raised["failures"][0]["error"]
    warnings = advise(_report(share=0.5, p1=0.5, verifier=raised), _config_like())[1]
    assert any(w.startswith("verifier raised on 18 sanity completions") and "KeyError" in w for w in warnings)


def test_check_problems_are_training_problems_apart_from_the_stream_and_held_out():
    task = SolvedFilter(_Rigged(), "both")
    before = task.state_dict()
    problems = check_problems(task, 16, seed=3)
    assert task.state_dict() == before  # the wrapper's stream state was not touched
    held = task.task.held_out_keys()
    assert not {p.meta["key"] for p in problems} & held
    assert all(int(p.id.rsplit("-", 1)[1]) >= CHECK_OFFSET for p in problems)
    assert check_problems(task, 16, seed=3) == problems  # its own seeded RNG
    assert check_problems(task, 16, seed=4) != problems
    mixture = build_task(TaskConfig(name="mixture", mixture=[TaskConfig(name="arithmetic", difficulty=2),
                                                             TaskConfig(name="countdown", difficulty=3)]), 8)
    drawn = check_problems(mixture, 12, seed=0)
    assert {p.task for p in drawn} == {"arithmetic", "countdown"}  # labelled by member, as in training
    assert all(mixture.verify(p, "") is not None for p in drawn)


def test_rlvr_check_prints_the_table_and_writes_json(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check", "--config", str(tiny_recipe()), "--problems", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["problems"] == 4 and report["verifier"]["ok"] is True
    assert "informative groups per step" in capsys.readouterr().out


def _config_like(**sets):
    from rlvr.config import Config

    cfg = Config()
    for k, v in sets.items():
        section, key = k.split(".")
        setattr(getattr(cfg, section), key, v)
    return cfg


def _report(share, p1, verifier=None, pass_g=None, by_g=None, lower=(), trunc=0.0, fmt=1.0):
    at_t = {"temperature": 1.0, "pass@1": p1, "pass@8": pass_g if pass_g is not None else p1,
            "informative_share": share, "format_rate": fmt, "truncation_rate": trunc, "mean_length": 5.0,
            "tokens_per_s": 10.0}
    return {"verifier": verifier or {"ok": None}, "at_temperature": at_t, "informative_share": share,
            "num_generations": 8, "prompts_per_step": 4, "greedy_accuracy": p1,
            "informative_share_by_group_size": by_g or {"8": share}, "lower_temperatures": list(lower)}


def test_the_share_s_interval_is_wilson_s_and_the_advice_reads_it():
    z2 = 1.645**2
    assert wilson_interval(0.0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))  # nothing mixed: upper z^2/(n+z^2)
    lo, hi = wilson_interval(0.5, 10)
    assert (lo + hi) / 2 == pytest.approx(0.5) and 0.26 < lo < 0.28
    lo1, hi1 = wilson_interval(0.25, 48)
    lo2, hi2 = wilson_interval(0.75, 48)
    assert (lo1, hi1) == (pytest.approx(1 - hi2), pytest.approx(1 - lo2))  # symmetric in right and wrong
    lo, hi = wilson_interval(1 / 48, 48)  # one mixed group in 48 problems
    assert lo == pytest.approx(0.00466, abs=1e-5) and hi == pytest.approx(0.08815, abs=1e-5)
    assert wilson_interval(0.1, 0) == (0.0, 1.0)
    cfg = _config_like()
    wide = {**_report(1 / 48, 0.003), "informative_share_interval": [0.005, 0.3], "problems": 48}
    advice, warnings, _ = advise(wide, cfg)
    assert "(90% interval 0.5% to 30.0%)" in warnings[0]
    assert any("reaches across the 25.0% threshold: measure more problems" in a for a in advice)
    narrow = {**wide, "informative_share_interval": [0.005, 0.09]}
    assert not any("measure more problems" in a for a in advise(narrow, cfg)[0])


def test_a_task_almost_never_solved_is_given_its_own_curriculum_where_it_has_one():
    pytest.importorskip("reasoning_gym")
    level1 = "task.params={min_terms: 2, max_terms: 3, min_digits: 1, max_digits: 2, allow_negation: true}"
    cases = [  # (the task's overrides, the curriculum's held-out level or None for no curriculum advice)
        (["task.name=reasoning_gym/chain_sum", level1], 1),
        (["task.name=reasoning_gym/chain_sum", "task.params={min_terms: 2, max_terms: 9, min_digits: 1, max_digits: 2}"],
         11),  # no level has these values: one above chain_sum's highest, 10
        (["task.name=reasoning_gym/chain_sum", "task.params={min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 1}"],
         None),  # level 0: nothing easier
        (["task.name=reasoning_gym/chain_sum"], None),  # the generator's defaults are no level
        (["task.name=reasoning_gym/gsm_symbolic"], None),  # no curriculum
        ([], None),  # a built-in task
    ]
    for overrides, level in cases:
        cfg = load_config(overrides=overrides)
        advice, _, sets = advise(_report(0.0, 0.0), cfg)
        assert ("task.difficulty" in sets) == (level is not None), overrides
        if level is None:
            continue
        assert any("own curriculum from level 0" in a for a in advice)
        # the printed --set words give a run whose curriculum starts at 0 and holds out the task as configured
        applied = load_config(overrides=[*overrides, *(shlex.split(set_argument(k, v))[0] for k, v in sets.items())])
        task = build_task(applied.task, eval_size=20)
        assert (task.level, task.target) == (0, level)
        plain = build_task(cfg.task, eval_size=20)
        assert [p.prompt for p in task.eval_problems()] == [p.prompt for p in plain.eval_problems()]
        assert applied.task.params.get("allow_negation", True)  # fields of the user's own kept


def test_advice_follows_from_the_numbers():
    cfg = _config_like(**{"rollout.max_new_tokens": 16, "task.format_reward": 0.1})
    advice, warnings, sets = advise(_report(0.1, 0.03, pass_g=0.2, by_g={"8": 0.1, "16": 0.2, "32": 0.31},
                                      lower=[{"temperature": 0.7, "informative_share": 0.2}], trunc=0.3, fmt=0.2),
                              cfg)
    text = "\n".join(advice)
    assert len(warnings) == 1 and "informative share 10.0% < 25.0%" in warnings[0]
    assert "raise rollout.num_generations to 32" in text
    assert "lower rollout.temperature to 0.7" in text
    assert "raise rollout.max_new_tokens" in text and "use the format" in text
    assert "algorithm.screening: true" in text and "has done no better than plain GRPO" in text
    # screening is named, not applied, where constant groups already cost only their sampling
    assert sets == {"rollout.num_generations": 32, "rollout.temperature": 0.7, "rollout.max_new_tokens": 32}
    cfg.train.skip_zero_advantage = False  # every group goes through the learner: screening saves that
    _, _, sets = advise(_report(0.1, 0.03, pass_g=0.2), cfg)
    assert sets["algorithm.screening"] is True
    cfg.train.skip_zero_advantage = True
    advice, warnings, sets = advise(_report(0.6, 0.5), cfg)
    assert not warnings and not sets and advice == ["the signal looks sufficient for this configuration"]
    advice, _, _ = advise(_report(0.0, 0.0, pass_g=0.0), cfg)
    assert any("almost never solves" in a for a in advice)
    assert not any("screening" in a for a in advice)  # nothing is ever solved: screening finds nothing


def test_a_format_reward_the_response_prefix_makes_unreachable_is_a_warning():
    primed = {"task.format_reward": 0.1, "model.response_prefix": "<answer>"}
    _, warnings, sets = advise(_report(0.6, 0.5), _config_like(**primed))
    assert len(warnings) == 1 and "can never be earned" in warnings[0] and "'<answer>'" in warnings[0]
    assert sets == {"task.format_style": "answer"}
    for fine in ({**primed, "task.format_style": "answer"}, {**primed, "task.format_reward": 0.0},
                 {"task.format_reward": 0.1, "model.response_prefix": "<think>"}, {"task.format_reward": 0.1}):
        assert advise(_report(0.6, 0.5), _config_like(**fine))[1] == [], fine
    _, warnings, sets = advise(_report(0.6, 0.5), _config_like(**{**primed, "model.response_prefix": "Answer:"}))
    assert "can never be earned" in warnings[0] and not sets  # no style fits that prefix


def test_answers_that_run_on_after_their_closing_tag_are_advised_a_stop_string():
    report = _report(0.6, 0.5)
    report["at_temperature"]["run_on_rate"] = 0.4
    advice, _, sets = advise(report, _config_like())
    assert any("40.0% of answers go on writing after their </answer>" in a for a in advice)
    assert sets == {"rollout.stop": ["</answer>"]}
    assert advise(report, _config_like(**{"rollout.stop": ["</answer>"]}))[2] == {}
    word = set_argument("rollout.stop", sets["rollout.stop"])  # what `rlvr check` prints, read back by a shell
    assert word == """'rollout.stop=["</answer>"]'"""
    assert set_argument("algorithm.screening", True) == "algorithm.screening=true"
    from rlvr.config import load_config

    assert load_config(overrides=[shlex.split(word)[0]]).rollout.stop == ["</answer>"]
    report["at_temperature"]["run_on_rate"] = 0.1
    assert advise(report, _config_like())[2] == {}


def test_measure_on_a_tiny_policy_reports_consistent_numbers(tiny_recipe):
    cfg = load_config(tiny_recipe(**{"rollout.num_generations": 4}), ["check.temperatures=[0.5]"])
    trainer = Trainer(cfg, tiny_recipe().parent / "run",
                      task=_Rigged(rule=lambda p, text: sum(map(ord, text)) % 2 == 0))
    report = measure(cfg, trainer.engine, trainer.tokenizer, trainer.task, 8, None, seed=0)
    trainer.logger.close()
    at_t = report["at_temperature"]
    assert report["problems"] == 8 and not report["stopped_early"]
    assert at_t["samples_per_problem"] == 4 and len(report["pass_rates"]) == 8
    assert 0 < at_t["pass@1"] < 1 and at_t["pass@1"] <= at_t["pass@4"]
    assert report["informative_share"] == pytest.approx(
        sum(0 < round(p * 4) < 4 for p in report["pass_rates"]) / 8)  # n = G: the observed share
    assert report["informative_groups_per_step"] == pytest.approx(report["informative_share"] * 2)
    assert [s["temperature"] for s in report["lower_temperatures"]] == [0.5]
    assert report["greedy"]["samples_per_problem"] == 1
    assert report["screen_pass_share"] is None  # screening is off
    json.dumps(report)
    lo, hi = report["informative_share_interval"]
    assert (lo, hi) == wilson_interval(report["informative_share"], 8) and lo <= report["informative_share"] <= hi
    rows = dict(table_rows(report))
    assert "greedy accuracy" in rows and "verifier sanity" in rows
    assert rows["informative share at G=4 (predicted)"].endswith(f"(90% interval {100 * lo:.1f}% to {100 * hi:.1f}%)")


def test_a_zero_budget_measures_one_chunk_and_says_it_stopped(tiny_recipe):
    cfg = load_config(tiny_recipe())
    trainer = Trainer(cfg, tiny_recipe().parent / "run")
    report = measure(cfg, trainer.engine, trainer.tokenizer, trainer.task, 16, 0.0, seed=0)
    trainer.logger.close()
    assert report["problems"] == 4 and report["stopped_early"]  # one chunk, then the cap
    assert report["greedy"] is None and 0.0 in report["skipped_temperatures"]


def test_the_check_at_the_start_of_train_changes_nothing_in_the_run(tiny_recipe, tmp_path):
    recipe = tiny_recipe(**{"train.steps": 3})
    with_check, without = tmp_path / "with", tmp_path / "without"
    assert main(["train", "--config", str(recipe), "--out", str(with_check), "--no-progress"]) == 0
    assert main(["train", "--config", str(recipe), "--out", str(without), "--no-progress", "--no-check"]) == 0
    assert (with_check / "check.json").exists() and not (without / "check.json").exists()
    report = json.loads((with_check / "check.json").read_text())
    assert report["problems"] > 0

    def rows(run):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(run / "metrics.jsonl")]

    assert rows(with_check) == rows(without)
    assert read_jsonl(with_check / "samples.jsonl") == read_jsonl(without / "samples.jsonl")
    assert read_jsonl(with_check / "eval.jsonl") == read_jsonl(without / "eval.jsonl")
    page = (with_check / "report.html").read_text()  # the check's table at the top, the share against step
    assert page.index("Signal check") < page.index("RL training")
    assert "greedy accuracy" in page and "Informative groups" in page
    assert "Signal check" not in (without / "report.html").read_text()
    end = json.loads((with_check / "check_end.json").read_text())  # the same problems after training
    assert len(end["pass_rates"]) == len(report["pass_rates"]) and "per-problem pass rates" in page


def test_pass_rates_per_kind_of_problem_and_the_advice_on_kinds_never_solved():
    """Per kind (meta["kind"]): problems, pass@1, unbiased pass@G and greedy accuracy, by hand; a kind that no
    sample solved is named in the advice once such kinds hold a quarter of the problems, and shown in the table."""
    from rlvr.check import Sampled, kind_summary
    from rlvr.types import Problem

    kinds = ["two terms", "three terms", "two terms", "three terms", None]
    problems = [Problem(id=str(i), prompt="q", answer=1, task="t", meta={"kind": k} if k else {})
                for i, k in enumerate(kinds)]
    main = Sampled(1.0, 4, counts=[2, 0, 4, 0, 1])
    greedy = Sampled(0.0, 1, counts=[1, 0, 0, 0, 1])
    by_kind = kind_summary(problems, main, greedy, 4)
    # two terms: 2 of 4 right (every group of 4 mixed) and 4 of 4 (none): informative share 0.5
    assert by_kind == {"three terms": {"problems": 2, "pass@1": 0.0, "pass@4": 0.0, "informative_share": 0.0,
                                       "greedy": 0.0},
                       "two terms": {"problems": 2, "pass@1": 0.75, "pass@4": 1.0, "informative_share": 0.5,
                                     "greedy": 0.5}}
    assert kind_summary(problems, main, Sampled(0.0, 1), 4)["two terms"].keys() == {"problems", "pass@1", "pass@4",
                                                                                   "informative_share"}
    assert kind_summary(problems[4:], Sampled(1.0, 4, counts=[1]), greedy, 4) == {}  # no kinds named

    report = _report(0.6, 0.5)
    report["by_kind"] = {k: {**r, "pass@8": r["pass@4"]} for k, r in by_kind.items()}
    advice, _, sets = advise(report, _config_like())
    assert any(a.startswith("50.0% of the measured problems are of kinds no sample solved in 8 (three terms)")
               for a in advice) and not sets
    report["by_kind"]["three terms"]["problems"] = 1  # 1 of 3 problems: 33%, still said
    assert any("33.3% of the measured problems" in a for a in advise(report, _config_like())[0])
    report["by_kind"]["two terms"]["problems"] = 4  # 1 of 5: below a quarter, not said
    assert not any("kinds no sample solved" in a for a in advise(report, _config_like())[0])


def test_the_share_drawing_by_kind_is_predicted_by_hand_and_shown():
    from rlvr.tasks.kinds import kind_sampled_share

    # 6 problems of a kind at share 0.5 and 12 of kinds at 0: weights 0.5 and the floor 0.05
    assert kind_sampled_share({"a": (6, 0.5), "b": (12, 0.0)}, 0.05) == pytest.approx(6 * 0.5 * 0.5 / (3 + 0.6))
    assert kind_sampled_share({"a": (4, 0.2), "b": (4, 0.2)}, 0.05) == pytest.approx(0.2)  # all alike: no change
    assert kind_sampled_share({}, 0.05) is None
    # a row of the table, not advice: drawing by kind has not lifted held-out accuracy where it was measured
    report = {**_report(1 / 6, 0.05), "task": "t", "model": "m", "problems": 6, "problems_asked": 6,
              "stopped_early": False, "informative_groups_per_step": 4 / 6, "projection": {"generate_s_per_step": None},
              "kind_sampled_share": 0.42}
    rows = dict(table_rows(report))
    assert rows["informative share drawing by kind (task.kind_sampling, predicted)"] == "42.0%"
