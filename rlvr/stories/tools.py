"""tools: a model that can call a calculator learns, from the binary reward alone, to call it.

The task (`tool_arithmetic`): 3-digit by 2-digit multiplication, which the tiny model cannot do reliably in
its head. The imitation corpus answers at once most of the time and calls the calculator in a minority of
solutions (`task.params.tool_share`); the tool's observations are not imitated (masked). RL then runs on
episodes (`task.tools: [calculator]`): the engine pauses at `</call>`, the environment answers, the model
goes on; the reward is binary correctness plus the small format reward, and nothing rewards calling the tool.
Measured at every evaluation (greedy, held out): accuracy and `tool_rate`, the share of episodes that called
a tool.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from rlvr.environments.parsing import parse_call
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import load_policy
from rlvr.pretrain import build_corpus
from rlvr.stories.harness import StoryRun, arm_evals, arm_event, clearly_above, finish_panels, r4, two_panels
from rlvr.tasks.registry import build_task

NAME = "tools"
CONFIG = "story-tools.yaml"
MAIN_ARM = "rl"
CLAIM = ("after imitation that calls a calculator in a minority of solutions, RL on the binary reward raises "
         "both tool use and held-out accuracy")


def tool_corpus(task, tokenizer, encode, n: int, seed: int) -> tuple[tuple, float]:
    """The teacher's transcripts as an imitation corpus (seqs, starts, masks) with the observations masked,
    and the share of them that call the tool."""
    seqs, starts, _, _, masks = build_corpus(task, tokenizer, encode, n, seed, observations=True)
    calls = sum(0 in m for m in masks)  # a transcript that calls the tool holds the call's observation
    return (seqs, starts, masks), calls / max(n, 1)


def tool_rate(problems, texts) -> dict:
    """The story's measure: the share of answers whose episode called a tool (the engine pauses at every
    complete call, so a complete call in the transcript is one the environment answered)."""
    return {"tool_rate": sum(parse_call(t) is not None for t in texts) / max(len(texts), 1)}


def run(s: StoryRun) -> None:
    cfg = s.cfg
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    _, tokenizer = load_policy(cfg.model, seed=cfg.train.seed)
    corpus, share = tool_corpus(task, tokenizer, s.encoder(tokenizer), cfg.pretrain.num_examples, cfg.train.seed)
    s.log("data", tool_share=share)
    s.imitate("imitation", task, corpus=corpus)
    s.rl("rl", task, s.out / "imitation" / "model", measure=tool_rate)


def summarize(out: Path) -> dict:
    evals = arm_evals(out, "rl")
    data = [r for r in read_jsonl(Path(out) / "story.jsonl") if r.get("event") == "data"][-1]
    return {
        "task": "tool_arithmetic",
        "data_tool_share": r4(data["tool_share"]),
        "tool_rate_before": r4(evals[0]["tool_rate"]),
        "tool_rate_after": r4(evals[-1]["tool_rate"]),
        "rl_steps": arm_event(out, "rl")["steps"],
        "rl_seconds": round(arm_event(out, "rl")["seconds"], 1),
        "imitation_seconds": round(arm_event(out, "imitation")["seconds"], 1),
    }


def holds(s: dict) -> bool:
    """Tool use and accuracy both rose clearly (two standard errors each)."""
    n = s["eval_problems"]
    return (clearly_above(s["tool_rate_after"], s["tool_rate_before"], n)
            and clearly_above(s["accuracy_after"], s["accuracy_before"], n))


def reading(s: dict) -> str:
    return " ".join([
        f"The imitated transcripts called the calculator in {s['data_tool_share']:.1%} of solutions.",
        f"After imitation, {s['tool_rate_before']:.1%} of held-out greedy episodes called it and "
        f"{s['accuracy_before']:.1%} were right.",
        f"After {s['rl_steps']} RL steps on the binary reward ({s['rl_seconds']:.0f} s), {s['tool_rate_after']:.1%} "
        f"called it and {s['accuracy_after']:.1%} were right.",
        "Tool use and accuracy both rose: the claim holds on this run." if holds(s)
        else "The claim does not hold on this run.",
    ])


def figure(out: Path) -> Figure:
    """Held-out accuracy and tool rate (left); the training episodes' tool rate and accuracy (right)."""
    evals = arm_evals(out, "rl")
    steps = [r["step"] for r in evals]
    fig, left, right = two_panels()
    left.plot(steps, [r["accuracy"] for r in evals], "o-", label="held-out accuracy")
    left.plot(steps, [r["tool_rate"] for r in evals], "s-", label="held-out episodes calling a tool")
    left.set_ylim(-0.02, 1.02)
    rows = [r for r in read_jsonl(Path(out) / "rl" / "metrics.jsonl") if r.get("phase") == "rl"]
    right.plot([r["step"] for r in rows], [r.get("episode/tool_rate", 0.0) for r in rows], "-",
               label="training episodes calling a tool")
    right.plot([r["step"] for r in rows], [r["accuracy"] for r in rows], "-", label="training accuracy")
    right.set_ylim(-0.02, 1.02)
    finish_panels((left, "tools: held out (greedy)"), (right, "tools: training samples"))
    return fig
