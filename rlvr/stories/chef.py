"""chef (the default demo): imitation of a flawed teacher is capped near the teacher; RL on a binary reward
goes past it.

Arms, all from one imitated checkpoint (`imitation/model`: the flawed teacher's worked solutions):
- `rl`: GRPO on the binary correctness reward (+ the small format reward);
- `more_imitation` (the control): the same imitation recipe continued from the same checkpoint for as many
  trained tokens as the RL arm processed (completion tokens it sampled and trained on), so the question
  "would more of the teacher's data have done as well?" is answered at equal tokens; wall time of both.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import encode_prompt, load_policy
from rlvr.pretrain import build_corpus
from rlvr.stories.harness import StoryRun, arm_evals, arm_event, clearly_above, r4
from rlvr.tasks.registry import build_task

NAME = "chef"
CONFIG = "demo.yaml"
MAIN_ARM = "rl"
CLAIM = "imitation of a flawed teacher is capped near it; RL on a binary reward goes past it"


def run(s: StoryRun) -> None:
    cfg = s.cfg
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    _, tokenizer = load_policy(cfg.model, seed=cfg.train.seed)
    seqs, starts, data_accuracy, _, _ = build_corpus(
        task, tokenizer, lambda p: encode_prompt(p, tokenizer, cfg.model.system_prompt), cfg.pretrain.num_examples,
        cfg.train.seed)
    s.log("data", data_accuracy=data_accuracy)  # the share of imitated solutions the verifier accepts
    s.imitate("imitation", task, corpus=(seqs, starts))
    init = s.out / "imitation" / "model"
    rl = s.rl("rl", task, init)
    # Equal tokens: the control trains on as many solution tokens as the RL arm sampled and trained on.
    per_step = cfg.pretrain.batch_size * sum(len(q) - st for q, st in zip(seqs, starts)) / len(seqs)
    s.imitate("more_imitation", task, corpus=(seqs, starts), init=init, seed_offset=1, evaluate=True,
              steps=max(1, math.ceil(rl["tokens"] / per_step)))


def summarize(out: Path) -> dict:
    out = Path(out)
    rl, more = arm_evals(out, "rl"), arm_evals(out, "more_imitation")
    data = [r for r in read_jsonl(out / "story.jsonl") if r.get("event") == "data"][-1]
    rl_arm, more_arm = arm_event(out, "rl"), arm_event(out, "more_imitation")
    return {
        "task": "arithmetic",
        "data_accuracy": r4(data["data_accuracy"]),
        "pretrain_accuracy": r4(rl[0]["accuracy"]),
        "rl_accuracy": r4(rl[-1]["accuracy"]),
        "more_imitation_accuracy": r4(more[-1]["accuracy"]),
        "rl_steps": rl_arm["steps"],
        "pretrain_steps": arm_event(out, "imitation")["steps"],
        "rl_tokens": rl_arm["tokens"],
        "more_imitation_tokens": more_arm["tokens"],
        "more_imitation_steps": more_arm["steps"],
        "rl_seconds": round(rl_arm["seconds"], 1),
        "more_imitation_seconds": round(more_arm["seconds"], 1),
    }


def holds(s: dict) -> bool:
    """RL ends clearly past the teacher and clearly past the more-imitation control (two standard errors)."""
    n = s["eval_problems"]
    return (clearly_above(s["rl_accuracy"], s["data_accuracy"], n)
            and clearly_above(s["rl_accuracy"], s["more_imitation_accuracy"], n))


def reading(s: dict) -> str:
    teacher, before, rl, more = s["data_accuracy"], s["pretrain_accuracy"], s["rl_accuracy"], s["more_imitation_accuracy"]
    past = rl > teacher
    parts = [
        f"The teacher's worked solutions were right {teacher:.1%} of the time and the imitated model scored "
        f"{before:.1%} on {s['eval_problems']} held-out problems.",
        f"RL on the binary reward ({s['rl_steps']} steps, {s['rl_tokens']:,} sampled tokens, {s['rl_seconds']:.0f} s) "
        f"{'took it to' if rl > before else 'left it at'} {rl:.1%}, "
        f"{'past' if past else 'not past'} its teacher ({rl - teacher:+.1%}).",
        f"More imitation for as many tokens ({s['more_imitation_tokens']:,} tokens, {s['more_imitation_steps']} steps, "
        f"{s['more_imitation_seconds']:.0f} s) ended at {more:.1%} ({more - teacher:+.1%} against the teacher, "
        f"{more - rl:+.1%} against RL).",
        "The claim holds on this run." if holds(s) else "The claim does not hold on this run.",
    ]
    return " ".join(parts)


def figure(out: Path) -> Figure:
    """Held-out accuracy against tokens trained since the imitated checkpoint, both arms, with the teacher."""
    out = Path(out)
    fig = Figure(figsize=(6.4, 3.6))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    tokens = {r["step"]: r.get("sampled_tokens", 0) for r in read_jsonl(out / "rl" / "metrics.jsonl")}
    rl = arm_evals(out, "rl")
    ax.plot([tokens.get(r["step"], 0) for r in rl], [r["accuracy"] for r in rl], "o-", label="RL (binary reward)")
    more = arm_evals(out, "more_imitation")
    ax.plot([0, arm_event(out, "more_imitation")["tokens"]], [rl[0]["accuracy"], more[-1]["accuracy"]], "s--",
            label="more imitation")
    data = [r for r in read_jsonl(out / "story.jsonl") if r.get("event") == "data"][-1]["data_accuracy"]
    ax.axhline(data, color="gray", linestyle=":", label=f"teacher's accuracy ({data:.1%})")
    ax.set_xlabel("tokens trained after imitation")
    ax.set_ylabel("held-out accuracy (greedy)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("chef: RL vs more imitation at equal tokens", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
