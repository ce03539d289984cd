"""`rlvr demo --story NAME`: the essay's claims about RL on verifiable rewards, each measured end to end.

Each story is a module with `NAME`, `CONFIG` (its recipe in configs/), `MAIN_ARM`, `CLAIM`, `run(StoryRun)`,
`summarize(out) -> dict` (computed from the run's files only), `reading(summary) -> str` (a paragraph written
from the numbers) and `figure(out) -> Figure`. `run_story` runs one and writes `summary.json`, `figure.png`
and `report.html` in `out`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from rlvr.config import Config
from rlvr.stories.harness import StoryRun, common_summary

STORIES = ("chef", "elicit", "hacking", "zero", "tools")


def story_module(name: str):
    if name not in STORIES:
        raise ValueError(f"--story: unknown story {name!r}; stories: {', '.join(STORIES)}")
    return importlib.import_module(f"rlvr.stories.{name}")


def summarize(name: str, out: str | Path) -> dict:
    """The story's summary, from the files of the finished run in `out` only."""
    module = story_module(name)
    return {**common_summary(Path(out), name, module.MAIN_ARM), **module.summarize(Path(out))}


def run_story(name: str, cfg: Config, out: str | Path, progress: bool = True) -> dict:
    """Run story `name` on `cfg` (its recipe with the seed set) in `out`; returns the summary."""
    from rlvr.stories.report import write_story_report

    module = story_module(name)
    run = StoryRun(name, cfg, out, progress)
    module.run(run)
    run.finish()
    summary = summarize(name, out)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    write_story_report(out)
    return summary
