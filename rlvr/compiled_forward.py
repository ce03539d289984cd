"""The learner's policy forward through `torch.compile` (`train.compile`), on a bounded set of shapes.

The learner's micro-batches come in every size: rows sorted by length and cut at their longest row, so a
compiled graph specialised to one shape would recompile at nearly every call. Here the decoder's input is
right-padded up to a bucket of a fixed ladder (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, ...: each step 1.33x or
1.5x the one before) in both rows and length, so a run compiles at most once per (rows, length) bucket pair
it meets. The padding changes nothing that is kept: padded columns are masked keys that no real token attends
to (the mask is causal and they come last), padded rows see only their own first position, and the hidden
states are cut back to the real rows and columns before any log-prob is taken, so padded positions get no
gradient. The weights are inputs of the compiled graph (torch.compile lifts a module's parameters), so the
optimiser's updates do not recompile it.

With shared prompts (`train.share_prompts`, rlvr.shared_prefix) the two passes (each distinct prompt once, then
every row's completion on its prompt's keys and values) are one compiled function of explicit tensors, at
bucketed (prompts, prompt length, rows, completion length): `CompiledDecoder.shared`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Compiled graphs per code object before dynamo gives up and runs eagerly: room for every bucket pair a run
# can meet (the default, 8, would silently stop compiling after the 8th shape).
RECOMPILE_LIMIT = 256


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise dynamo's limit of compiled graphs per code object to at least `limit` (past it, dynamo runs the
    function eagerly without a word)."""
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), limit))


def bucket(n: int) -> int:
    """Smallest value of the ladder 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (2^k and 3 * 2^(k-1)) that is >= n."""
    if n <= 2:
        return max(n, 1)
    power = 1 << (n - 1).bit_length()  # smallest power of two >= n
    return power * 3 // 4 if power * 3 // 4 >= n else power


class CompiledDecoder:
    """`decoder(input_ids, attention_mask) -> last hidden states (N, T, H)`, compiled, at bucketed shapes.

    `module` is a transformers decoder (or a whole causal LM, whose logits are then returned in place of the
    hidden states). `max_length` caps the padded length (the model's position limit); `backend` is
    torch.compile's (inductor by default; tests use `aot_eager`, which traces the same way without codegen).
    `shapes` records the padded (rows, length) pairs met, one compiled graph each; `shared_shapes` the padded
    (prompts, prompt length, rows, completion length) of `shared`'s passes."""

    def __init__(self, module: torch.nn.Module, max_length: int | None = None, backend: str | Callable = "inductor"):
        self.module = module
        self.max_length = max_length
        self.shapes: set[tuple[int, int]] = set()
        self.shared_shapes: set[tuple[int, int, int, int]] = set()
        allow_recompiles()
        self.fn = torch.compile(self._run, backend=backend, dynamic=False)
        self.shared_fn = torch.compile(self._run_shared, backend=backend, dynamic=False)

    def _run(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        out = self.module(input_ids=ids, attention_mask=attn)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state

    def _run_shared(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # imported here: rlvr.shared_prefix imports the engine, which imports this module
        from rlvr.shared_prefix import run_shared

        return run_shared(self.module, *tensors)

    def padded_shape(self, rows: int, length: int) -> tuple[int, int]:
        """The (rows, length) bucket the compiled graph runs at for a (rows, length) input."""
        width = bucket(length)
        if self.max_length is not None and length <= self.max_length:
            width = min(width, self.max_length)
        return bucket(rows), width

    def __call__(self, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Hidden states (N, T, H) of right-padded `ids`, `attn` (N, T), computed at the padded bucket shape."""
        N, T = ids.shape
        rows, width = self.padded_shape(N, T)
        self.shapes.add((rows, width))
        if (rows, width) != (N, T):
            padded_ids = ids.new_zeros((rows, width))
            padded_attn = attn.new_zeros((rows, width))
            padded_ids[:N, :T], padded_attn[:N, :T] = ids, attn
            padded_attn[N:, 0] = 1  # a padded row attends to its first position: no all-masked softmax row
            ids, attn = padded_ids, padded_attn
        return self.fn(ids, attn)[:N, :T]

    def shared(self, ids: torch.Tensor, attn: torch.Tensor, sel: torch.Tensor) -> torch.Tensor | None:
        """`rlvr.shared_prefix.shared_prefix_hidden` through the compiled passes: (K, H) hidden states at the
        targets `sel` (N, T-1) with each distinct prompt run once, at bucketed shapes; None when no two rows
        share a prompt. `module` must be the decoder (not a whole causal LM)."""
        from rlvr.shared_prefix import plan_shared, shared_hidden

        plan = plan_shared(ids, attn, sel, pad=bucket, max_position=self.max_length)
        if plan is None:
            return None
        self.shared_shapes.add((*plan.prompt_ids.shape, *plan.suffix_ids.shape))
        last, rest = self.shared_fn(*plan.inputs)
        return shared_hidden(plan, last, rest, sel)
