"""The README's "The essay's claims, measured" table, from benchmarks/results/stories/<story>-s<seed>.json.

    python benchmarks/stories_table.py        # prints the markdown rows
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rlvr.stories import STORIES, story_module

RESULTS = Path(__file__).resolve().parent / "results" / "stories"


def _p(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def numbers(name: str, s: dict) -> str:
    """The story's numbers in a few words."""
    if name == "chef":
        return (f"teacher {_p(s['data_accuracy'])}, imitated {_p(s['pretrain_accuracy'])}, RL {_p(s['rl_accuracy'])}, "
                f"more imitation {_p(s['more_imitation_accuracy'])} ({s['more_imitation_tokens']:,} vs "
                f"{s['rl_tokens']:,} tokens; {s['more_imitation_seconds']:.0f} s vs RL {s['rl_seconds']:.0f} s)")
    if name == "elicit":
        return (f"accuracy {_p(s['accuracy_before'])} → {_p(s['accuracy_after'])}, worked steps "
                f"{_p(s['steps_share_before'])} → {_p(s['steps_share_after'])}, length {s['length_before']:.1f} → "
                f"{s['length_after']:.1f} tokens")
    if name == "hacking":
        return (f"true accuracy binary {_p(s['binary_true_accuracy'])} vs graded {_p(s['graded_true_accuracy'])}; "
                f"graded reward {s['graded_reward_start']:.3f} → {s['graded_reward_end']:.3f}; hack rate "
                f"{_p(s['hack_rate_before'])} → {_p(s['hack_rate'])} (full credit while wrong "
                f"{_p(s['full_credit_wrong_rate'])})")
    if name == "tools":
        return (f"accuracy {_p(s['accuracy_before'])} → {_p(s['accuracy_after'])}, tool calls "
                f"{_p(s['tool_rate_before'])} → {_p(s['tool_rate_after'])} of held-out episodes (imitated data "
                f"{_p(s['data_tool_share'])})")
    return (f"format {_p(s['format_rate_before'])} → {_p(s['format_rate_after'])}, accuracy "
            f"{_p(s['accuracy_before'])} → {_p(s['accuracy_after'])}, readability {_p(s['readability'])} vs chef "
            f"{_p(s['chef_readability'])}")


def wall(name: str, seed: int, s: dict) -> str:
    log = RESULTS / f"{name}-s{seed}.log"
    m = re.search(r"whole command: ([0-9.]+) s", log.read_text()) if log.exists() else None
    seconds = float(m.group(1)) if m else s["wall_seconds"]
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def main() -> None:
    print("| story | claim | seed 0 | seed 1 | holds? | wall time (seed 0 / 1) | command |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in STORIES:
        module = story_module(name)
        cells, holds, walls = [], [], []
        for seed in (0, 1):
            path = RESULTS / f"{name}-s{seed}.json"
            if not path.exists():
                cells.append("not run yet")
                holds.append("–")
                walls.append("–")
                continue
            s = json.loads(path.read_text())
            cells.append(numbers(name, s))
            holds.append("yes" if module.holds(s) else "**no**")
            walls.append(wall(name, seed, s))
        print(f"| {name} | {module.CLAIM} | {cells[0]} | {cells[1]} | {' / '.join(holds)} | {' / '.join(walls)} | "
              f"`rlvr demo --story {name} --seed S` |")


if __name__ == "__main__":
    main()
