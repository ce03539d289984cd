import base64
import json
import math
import random
import re

import pytest

from rlvr.logging.metrics import MetricsLogger
from rlvr.logging.report import write_report

SUMMARY = {
    "task": "countdown",
    "data_accuracy": 0.875,
    "pretrain_accuracy": 0.3125,
    "rl_accuracy": 0.6875,
    "eval_problems": 64,
    "rl_steps": 30,
    "wall_seconds": 754.2,
}


def make_run(run):
    """A synthetic finished run in `run`: pretraining, 30 RL steps, evals, samples, summary and config."""
    rng = random.Random(0)
    with MetricsLogger(run) as logger:
        for step in range(40):
            logger.log(
                step, {"pretrain/loss": 4.0 * math.exp(-step / 10), "pretrain/lr": 1e-3, "phase": "pretrain"}
            )
        logger.log_eval(0, {"accuracy": 0.3125, "phase": "pretrain"})
        for step in range(30):
            logger.log(
                step,
                {
                    "phase": "rl",
                    "reward/mean": step / 30 + rng.random() * 0.1,
                    "accuracy": step / 40,
                    "response_length/mean": 40 + step,
                    "response_length/max": 64,
                    "entropy": 1.0 - step / 60,
                    "kl": 0.01 * step,
                    "clip_frac": 0.1,
                    "time/generate": 1.5,
                    "time/verify": 0.1,
                    "time/update": 0.7,
                    "grad_norm": rng.random(),
                    "lr": 1e-5,
                    "only_once": 1.0 if step == 3 else None,
                    "weird": math.nan,
                },
            )
            logger.log_samples(
                step,
                [
                    {
                        "task": "countdown",
                        "prompt": [{"role": "user", "content": f"Use 1 2 3 to make {step}"}],
                        "completion": f"<think>try</think><answer>{step}</answer>",
                        "reward": 1.0,
                        "correct": True,
                        "formatted": True,
                        "details": {"parsed": str(step)},
                    },
                    {
                        "task": "countdown",
                        "prompt": "make 6",
                        "completion": "x" * 5000,
                        "reward": 0.0,
                        "correct": False,
                        "formatted": False,
                    },
                ],
            )
            if step % 10 == 9:
                logger.log_eval(
                    step,
                    {
                        "accuracy": step / 40,
                        "pass@4": step / 30,
                        "by_task": {"countdown": {"accuracy": step / 40}},
                        "by_kind": {
                            "num_terms=2": {"accuracy": step / 40, "n": 3},
                            "num_terms=3": {"accuracy": 0.25, "n": 5},
                        },
                        "phase": "rl",
                    },
                )
        logger.log_samples(
            29,
            [
                {
                    "task": "countdown",
                    "prompt": "p",
                    "reward": 0.1,
                    "correct": False,
                    "completion": "<script>alert('pwned')</script> & done",
                }
            ],
        )
    (run / "summary.json").write_text(json.dumps(SUMMARY))
    (run / "config.yaml").write_text("task:\n  name: countdown\ntrain:\n  lr: 1.0e-5  # <b>not bold</b>\n")


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """The report of the synthetic run, built once: rendering the plots is the slow part."""
    run = tmp_path_factory.mktemp("runs") / "run-1"
    make_run(run)
    path = write_report(run)
    assert path == run / "report.html"
    return path.read_text(encoding="utf-8")


def test_report_for_a_synthetic_run(html):
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # summary numbers
    for text in ("countdown", "0.875", "0.312", "0.688", "64", "30", "754.2 s (12m 34s)"):
        assert text in html, text
    # plots are embedded PNGs, nothing is fetched from elsewhere
    images = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert len(images) >= 10
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    # untrusted text is escaped
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; done" in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    # sections that exist in the data
    for title in (
        "Pretraining loss",
        "Reward (reward/mean)",
        "Response length",
        "Time per step",
        "Eval",
        "Other metrics",
        "Evaluations",
        "Sample completions",
        "Eval accuracy by kind of problem",
    ):
        assert title in html, title
    assert "num_terms=2: 0.725, num_terms=3: 0.250" in html  # the last evaluation (step 29) per kind of problem


def test_samples_table_latest_first_capped_and_collapsed(html):
    table = html[html.index("Sample completions") :]
    steps = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", table)]
    assert steps[0] == 29 and steps == sorted(steps, reverse=True)
    assert len(steps) == 40
    assert "<details><summary>" in table  # the 5000-character completion is collapsed
    assert "user: Use 1 2 3 to make 29" in table  # chat prompts are shown as role: content


def test_empty_run_dir_gives_a_page_saying_so(tmp_path):
    out = write_report(tmp_path / "run", out=tmp_path / "reports" / "r.html")
    assert out == tmp_path / "reports" / "r.html"
    html = out.read_text(encoding="utf-8")
    assert "No metrics logged yet" in html and "No samples logged yet" in html
    assert html.rstrip().endswith("</html>")


def test_missing_keys_and_odd_values_do_not_crash(tmp_path):
    rows = [
        {"reward/mean": 1.0},
        {"step": "x", "accuracy": 0.5},
        {"step": 1, "accuracy": "high"},
        {"step": 2, "accuracy": None, "nested": {"a": 1}},
        {"step": 3, "phase": "warmup", "loss": 1.0},
        {"step": 4, "phase": "warmup", "loss": 0.5},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + 'not json\n{"step"')
    (tmp_path / "samples.jsonl").write_text(
        '{"completion": null}\n{"step": 1, "correct": [1], "details": 5}\n'
    )
    (tmp_path / "eval.jsonl").write_text('{"step": 1, "by_task": [1, 2]}\n{"accuracy": 0.5}\n')
    (tmp_path / "summary.json").write_text("[1, 2]")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "summary.json is not a JSON object" in html
    assert "Phase: warmup" in html
