"""rlvr: reinforcement learning on verifiable rewards."""

from rlvr.types import Batch, Problem, Rollout, Score

__all__ = ["Batch", "Problem", "Rollout", "Score"]
__version__ = "0.1.0"
