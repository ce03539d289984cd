"""Data-parallel learners over a torch.distributed group (gloo on CPU, NCCL on GPUs).

Each learner runs its own rows of the batch with every row weighted by its share of the whole batch's loss,
so the sum of the learners' gradients is the one-process gradient. Two ways to share the work:

- `DataParallel` (`distributed.sharding: ddp`): every learner holds the whole model; `reduce_gradients`
  sums the gradients (one all-reduce per dtype over a flat buffer, after gradient accumulation: what DDP
  does, once per optimiser step), and every learner takes the same optimiser step.
- `FullyShardedDataParallel` (`distributed.sharding: fsdp`, torch's FSDP2 `fully_shard`): each learner holds
  1/N of every weight, gradient and optimiser state, for models whose training state does not fit one
  device. Weights are gathered per block in the forward and backward, gradients reduce-scattered.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# Learner diagnostics that are already weighted by their share of the whole batch: summed over learners.
SUMMED = ("loss", "kl", "entropy", "clip_frac", "ratio_mean", "approx_kl", "logprob_gap")
# Maxima, and wall times (the learners run side by side, so the step waits for the slowest).
MAXED = ("ratio_max", "time/forward", "time/backward", "time/grad_reduce", "time/optimizer")


class DataParallel:
    loss_scale = 1.0  # the gradients are summed as they are
    full_forward = False  # the learner may run the decoder and the output layer itself

    def __init__(self, device: torch.device, group=None):
        self.device = device
        self.group = group

    def padding(self, passes: int) -> int:
        """Extra forward/backward passes this learner must run (none: nothing is shared inside a pass)."""
        return 0

    def full_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            by_dtype.setdefault(p.dtype, []).append(p)
        for group in by_dtype.values():
            # A learner with no rows (or a parameter no row reached) adds zeros.
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = flat[offset : offset + n].view_as(p).clone()
                offset += n

    def reduce_stats(self, sums: dict[str, float]) -> dict[str, float]:
        """Sum (or max) the diagnostics over the group; a key any learner reported is kept."""
        out = dict(sums)
        for keys, op in ((SUMMED, dist.ReduceOp.SUM), (MAXED, dist.ReduceOp.MAX)):
            values = torch.tensor([[sums.get(k, 0.0), float(k in sums)] for k in keys], dtype=torch.float64,
                                  device=self.device)
            dist.all_reduce(values, op=op, group=self.group)
            for k, (value, present) in zip(keys, values.tolist()):
                if present > 0:
                    out[k] = value
        return out


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


class FullyShardedDataParallel(DataParallel):
    """FSDP2: the model's blocks (its `_no_split_modules`, e.g. decoder layers) and then the rest are sharded
    over the group. FSDP averages gradients, so the loss is scaled by the world size to sum them. Every
    forward and backward is a collective, so learners with fewer micro-batches run padding passes."""

    full_forward = True  # the root module's forward gathers the embedding, final norm and output layer

    def __init__(self, device: torch.device, group=None):
        super().__init__(device, group)
        self.world = dist.get_world_size(group)
        self.loss_scale = float(self.world)

    def wrap(self, model: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """Shard `model` (fp32 master weights); with a low-precision compute `dtype` the gathered weights
        are cast to it for forward and backward and gradients are reduced in fp32 (FSDP2 mixed precision)."""
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy()
        if dtype is not None and dtype != torch.float32 and model_dtype(model) == torch.float32:
            policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        blocks = set(getattr(model, "_no_split_modules", None) or [])
        for module in model.modules():
            if type(module).__name__ in blocks:
                fully_shard(module, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model

    def padding(self, passes: int) -> int:
        n = torch.tensor([passes], device=self.device)
        dist.all_reduce(n, op=dist.ReduceOp.MAX, group=self.group)
        return int(n) - passes

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        """Nothing left to do: FSDP reduce-scattered the gradients during the backward."""

    def full_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole state on every learner (a collective: all learners call it)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimiser's state in the plain one-process format, every shard gathered (a collective), so a
        checkpoint resumes with any number of learners, sharded or not."""
        from torch.distributed.tensor import DTensor

        state = optimizer.state_dict()  # its per-parameter dicts are the live ones: build new ones
        full = {i: {k: v.full_tensor().cpu() if isinstance(v, DTensor) else v for k, v in per_param.items()}
                for i, per_param in state["state"].items()}
        return {"state": full, "param_groups": state["param_groups"]}

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Load a plain (full) optimiser state: each learner keeps its own shard of every tensor."""
        from torch.distributed.tensor import DTensor, distribute_tensor

        params = [p for g in optimizer.param_groups for p in g["params"]]
        local = {"param_groups": state["param_groups"], "state": {}}
        for i, per_param in state["state"].items():
            p = params[int(i)]
            local["state"][i] = {
                k: distribute_tensor(v.to(self.device), p.device_mesh, p.placements)
                if isinstance(p, DTensor) and torch.is_tensor(v) and v.shape == p.shape else v
                for k, v in per_param.items()}
        optimizer.load_state_dict(local)
