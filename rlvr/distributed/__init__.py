"""Scale-out on Ray: rollout workers as actors, a data-parallel learner group over torch.distributed, weight
sync with versions, asynchronous rollouts with a staleness bound, and recovery from lost rollout workers.

The single-process `Trainer` stays the default and the reference: `RayTrainer` is the same loop with its
engine and learner replaced by `RolloutPool` and `LearnerGroup`, which keep the engine and learner
protocols, so the step in `rlvr/trainer.py` does not know which one it drives. See docs/scale.md.
"""

from __future__ import annotations

from rlvr.extras import import_extra


def require_ray():
    """The `ray` module, or an error that says how to get it."""
    return import_extra("ray", "distributed.backend: ray", "ray")


class LearnerLost(RuntimeError):
    """A learner actor died: the run stops (nothing is checkpointed from the broken step)."""

    def __init__(self, rank: int, step: int, cause: BaseException):
        super().__init__(f"learner {rank} died during step {step + 1} ({type(cause).__name__}); the run stopped. "
                         "The last checkpoint is intact: continue with `rlvr train --resume RUN_DIR`.")
        self.rank, self.step = rank, step
