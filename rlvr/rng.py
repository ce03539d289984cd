"""The run's random generators: seeded once at the start, captured in every checkpoint, restored on resume,
so a resumed run draws what the uninterrupted one would have."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model init, data order, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator) -> dict:
    """Every generator's state: the three global ones and the run's own `generator` (evaluation draws)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "sampling": generator.get_state()}


def restore_rng(state: dict, generator: torch.Generator) -> None:
    """Put back what `rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampling"])
