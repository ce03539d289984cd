"""Whether a Ray learner corrects for the rollout workers' behaviour policy (`algorithm.offpolicy_correction:
auto`), decided without Ray: off where the workers hold exactly the learner's values, on where their policy
can differ (asynchronous staleness, a top-p nucleus, another form of the weights), and the form check
agrees with what the single-process engine builds."""

from __future__ import annotations

import pytest
import torch

from rlvr.config import load_config
from rlvr.distributed.actors import workers_behaviour_differs
from rlvr.learner import Learner
from rlvr.models.loading import compute_dtype
from rlvr.models.policy import build_policy
from rlvr.rollout import behaviour_differs, build_engine, rollout_form_differs
from tests.conftest import TINY_RUN


def _cfg(*sets: str):
    return load_config(base=TINY_RUN, overrides=["distributed.backend=ray", *sets])


@pytest.mark.parametrize("sets, differs", [
    ((), False),  # synchronous, same form: every worker samples the learner's own values
    (("distributed.async_rollouts=true",), True),  # a group may come from an older version
    (("rollout.top_p=0.9",), True),  # the engine samples the renormalised nucleus
    (("rollout.weights=bf16",), True),  # a bf16 copy beside fp32 masters
    (("model.dtype=bfloat16",), True),  # bf16 compute: the workers hold bf16, the learner fp32 masters
    (("model.dtype=bfloat16", "train.master_weights=false"), False),  # pure bf16: the same values
])
def test_ray_learners_correct_exactly_where_the_workers_policy_can_differ(sets, differs):
    cfg = _cfg(*sets)
    model, _, _ = build_policy(cfg, None, with_reference=False)
    dtype = compute_dtype(cfg.model, model)
    assert workers_behaviour_differs(cfg, model, dtype) is differs
    learner = Learner(model, cfg.train, cfg.algorithm, compute_dtype=dtype,
                      behaviour_differs=workers_behaviour_differs(cfg, model, dtype))
    assert learner.correct_offpolicy is differs  # auto follows the decision
    cfg.algorithm.offpolicy_correction = "off"
    assert not Learner(model, cfg.train, cfg.algorithm, behaviour_differs=True).correct_offpolicy


@pytest.mark.parametrize("sets", [(), ("rollout.weights=bf16",), ("model.dtype=bfloat16",),
                                  ("model.dtype=bfloat16", "train.master_weights=false")])
def test_the_form_check_agrees_with_the_engine_one_process_builds(sets):
    cfg = _cfg(*sets)
    model, tokenizer, _ = build_policy(cfg, None, with_reference=False)
    dtype = compute_dtype(cfg.model, model)
    engine = build_engine(cfg, model, tokenizer, dtype=dtype)
    assert rollout_form_differs(cfg, model, dtype) is behaviour_differs(engine, model)
    if not rollout_form_differs(cfg, model, dtype):
        assert engine.model is model and all(p.dtype == dtype for p in model.parameters())
    else:
        assert any(p.dtype != q.dtype for p, q in zip(engine.model.parameters(), model.parameters()))
    assert torch.device("cpu") == next(model.parameters()).device
