"""The learner's forward with each distinct prompt run once: a GRPO group's G completions share one prompt, so
the decoder runs the prompt for one row, its keys and values are copied to the group's rows, and only the
completions run per row. Gradients from every completion flow back through the copies into the one prompt
pass (summed, as over G separate prompt passes), so the update is the one over whole rows.

Where prompts are long and completions short (a question with a chat template and a one-line answer), most of
a full forward and backward is the prompt's G copies: this removes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from transformers import DynamicCache

from rlvr.rollout.torch_engine import cache_kwarg


def _copy_rows(cache: DynamicCache, rows: torch.Tensor) -> None:
    """Each row of `cache` becomes prompt `rows[i]`'s keys and values (differentiable copies). The engine's
    `select_rows` also pins the tensors' addresses for compiled decode steps, which training tensors must not get."""
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, rows)
        layer.values = layer.values.index_select(0, rows)


def prompt_owners(ids: torch.Tensor, sel: torch.Tensor) -> tuple[list[int], list[list[int]], torch.Tensor]:
    """(owner, prompts, P): each row's prompt is its tokens before its first completion target; `owner[i]`
    indexes row i's prompt in `prompts` (distinct, in order of first use); `P` (N,) the prompt lengths."""
    P = sel.float().argmax(-1).cpu() + 1  # target t predicts token t + 1: the first completion token is at P
    index: dict[tuple[int, ...], int] = {}
    owner = []
    rows = ids.cpu().tolist()
    for i, n in enumerate(P.tolist()):
        owner.append(index.setdefault(tuple(rows[i][:n]), len(index)))
    return owner, [list(p) for p in index], P


class SharedRows(NamedTuple):
    """The two passes' inputs for right-padded rows grouped by prompt: the distinct prompts, left-padded (U, Pw),
    run once; then every row's suffix (completion and observation tokens, right-padded, (N, Sw)) on its prompt's
    keys and values (`rows` (N,): each suffix row's prompt). `n` real rows, their prompt lengths `P` and suffix
    lengths `S` (N,) put the outputs back in place. With a `pad` (rlvr.compiled_forward: a compiled pass runs at
    a bounded set of shapes) U, Pw, N and Sw are padded up: extra prompt rows see their last column only, extra
    suffix rows and columns are masked keys no real token sees, and their outputs are dropped."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    prompt_pos: torch.Tensor
    rows: torch.Tensor
    suffix_ids: torch.Tensor | None  # None: no row has a suffix token (one pass)
    suffix_mask: torch.Tensor | None
    suffix_pos: torch.Tensor | None
    n: int
    P: torch.Tensor
    S: torch.Tensor

    @property
    def inputs(self) -> tuple[torch.Tensor | None, ...]:
        """`run_shared`'s tensors, in its order."""
        return (self.prompt_ids, self.prompt_mask, self.prompt_pos, self.rows, self.suffix_ids, self.suffix_mask,
                self.suffix_pos)


def plan_shared(ids: torch.Tensor, attn: torch.Tensor, sel: torch.Tensor, pad: Callable[[int], int] | None = None,
                max_position: int | None = None) -> SharedRows | None:
    """The shared passes' inputs (`SharedRows`) for right-padded `ids` / `attn` (N, T) whose targets are `sel`
    (N, T-1); None when no two rows share a prompt. `pad` rounds each of U, Pw, N and Sw up (identity by
    default); `max_position` caps padded columns' positions (they are masked, but a position table must hold them)."""
    owner, prompts, P = prompt_owners(ids, sel)
    N, U = ids.shape[0], len(prompts)
    if U == N:
        return None
    pad = pad or (lambda n: n)
    dev = ids.device
    Ub, width = pad(U), pad(max(len(p) for p in prompts))
    pids = torch.zeros((Ub, width), dtype=torch.long)
    pmask = torch.zeros((Ub, width), dtype=torch.long)
    pmask[U:, -1] = 1  # a padded prompt row sees its last column: no all-masked softmax row
    for u, p in enumerate(prompts):  # left padding: every prompt's last token is in the last column
        pids[u, width - len(p):] = torch.tensor(p, dtype=torch.long)
        pmask[u, width - len(p):] = 1
    pids, pmask = pids.to(dev), pmask.to(dev)
    P = P.to(dev)
    S = attn.sum(-1) - P  # completion (and observation) tokens per row
    Nb = pad(N)
    rows = torch.zeros(Nb, dtype=torch.long, device=dev)  # padded suffix rows sit on prompt 0
    rows[:N] = torch.tensor(owner, device=dev)
    width_s = pad(int(S.max()))  # 0 only unpadded, where no row has a suffix token: one pass
    sids = smask = spos = None
    if width_s > 0:
        cols = torch.arange(width_s, device=dev)
        take = (P[:, None] + cols[None]).clamp(max=ids.shape[1] - 1)
        smask = torch.zeros((Nb, width_s), dtype=torch.long, device=dev)
        smask[:N] = (cols[None] < S[:, None]).long()
        sids = torch.zeros((Nb, width_s), dtype=torch.long, device=dev)
        sids[:N] = ids.gather(1, take) * smask[:N]
        start = torch.zeros(Nb, dtype=torch.long, device=dev)
        start[:N] = P
        spos = start[:, None] + cols[None]
        if max_position is not None:
            spos = spos.clamp(max=max_position - 1)
    return SharedRows(pids, pmask, (pmask.cumsum(-1) - 1).clamp(min=0), rows, sids, smask, spos, N, P, S)


def run_shared(decoder: torch.nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
               prompt_pos: torch.Tensor, rows: torch.Tensor, suffix_ids: torch.Tensor | None,
               suffix_mask: torch.Tensor | None, suffix_pos: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The two passes of `SharedRows`' tensors through `decoder`: (the prompts' last hidden states (U, H), the
    suffixes' hidden states (N, Sw, H) or None). Explicit tensors in and out, so `torch.compile` can take it whole."""
    kw, cache = cache_kwarg(decoder), DynamicCache()
    out = decoder(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=prompt_pos, use_cache=True,
                  **{kw: cache})
    last = out.last_hidden_state[:, -1]
    if suffix_ids is None:
        return last, None
    _copy_rows(cache, rows)
    rest = decoder(input_ids=suffix_ids, attention_mask=torch.cat([prompt_mask[rows], suffix_mask], dim=1),
                   position_ids=suffix_pos, use_cache=True, **{kw: cache}).last_hidden_state
    return last, rest


def shared_hidden(plan: SharedRows, last: torch.Tensor, rest: torch.Tensor | None, sel: torch.Tensor) -> torch.Tensor:
    """(K, H) hidden states at the targets `sel` (N, T-1), in the order of `hidden[:, :-1][sel]`, from
    `run_shared`'s outputs for `plan`; padded rows and columns are dropped here."""
    n, P, S = plan.n, plan.P, plan.S
    first = last[plan.rows[:n]][:, None]  # (N, 1, H): predicts each row's first completion token
    longest = int(S.max())
    hidden = torch.cat([first, rest[:n, :longest]], dim=1) if rest is not None and longest > 0 else first
    # column j of `hidden` is the original position P - 1 + j, whose target is token P + j
    cols = torch.arange(hidden.shape[1], device=hidden.device)
    pos = (P[:, None] - 1 + cols[None]).clamp(max=sel.shape[1] - 1)
    keep = (cols[None] < S[:, None]) & sel.gather(1, pos)
    return hidden[keep]


def shared_prefix_hidden(decoder: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor,
                         sel: torch.Tensor) -> torch.Tensor | None:
    """(K, H) decoder hidden states at the target positions `sel` (N, T-1) of right-padded rows `ids` /
    `attn` (N, T), in the order of `hidden[:, :-1][sel]`, with each distinct prompt run once. None when no
    two rows share a prompt (the caller runs the rows whole)."""
    plan = plan_shared(ids, attn, sel)
    if plan is None:
        return None
    last, rest = run_shared(decoder, *plan.inputs)
    return shared_hidden(plan, last, rest, sel)
