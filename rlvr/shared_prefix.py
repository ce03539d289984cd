"""The learner's forward with each distinct prompt run once: a GRPO group's G completions share one prompt, so
the decoder runs the prompt for one row, its keys and values are copied to the group's rows, and only the
completions run per row. Gradients from every completion flow back through the copies into the one prompt
pass (summed, as over G separate prompt passes), so the update is the one over whole rows.

Where prompts are long and completions short (a question with a chat template and a one-line answer), most of
a full forward and backward is the prompt's G copies: this removes them.
"""

from __future__ import annotations

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


def shared_prefix_hidden(decoder: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor,
                         sel: torch.Tensor) -> torch.Tensor | None:
    """(K, H) decoder hidden states at the target positions `sel` (N, T-1) of right-padded rows `ids` /
    `attn` (N, T), in the order of `hidden[:, :-1][sel]`, with each distinct prompt run once. None when no
    two rows share a prompt (the caller runs the rows whole)."""
    owner, prompts, P = prompt_owners(ids, sel)
    N, U = ids.shape[0], len(prompts)
    if U == N:
        return None
    dev = ids.device
    width = max(len(p) for p in prompts)
    pids = torch.zeros((U, width), dtype=torch.long)
    pmask = torch.zeros((U, width), dtype=torch.long)
    for u, p in enumerate(prompts):  # left padding: every prompt's last token is in the last column
        pids[u, width - len(p):] = torch.tensor(p, dtype=torch.long)
        pmask[u, width - len(p):] = 1
    pids, pmask = pids.to(dev), pmask.to(dev)
    kw, cache = cache_kwarg(decoder), DynamicCache()
    out = decoder(input_ids=pids, attention_mask=pmask, position_ids=(pmask.cumsum(-1) - 1).clamp(min=0),
                  use_cache=True, **{kw: cache})
    rows = torch.tensor(owner, device=dev)
    last = out.last_hidden_state[:, -1][rows]  # (N, H): predicts each row's first completion token
    P = P.to(dev)
    S = attn.sum(-1) - P  # completion (and observation) tokens per row
    width_s = int(S.max())
    if width_s > 0:
        cols = torch.arange(width_s, device=dev)
        take = (P[:, None] + cols[None]).clamp(max=ids.shape[1] - 1)
        smask = (cols[None] < S[:, None]).long()
        sids = ids.gather(1, take) * smask
        _copy_rows(cache, rows)
        rest = decoder(input_ids=sids, attention_mask=torch.cat([pmask[rows], smask], dim=1),
                       position_ids=P[:, None] + cols[None], use_cache=True, **{kw: cache}).last_hidden_state
        hidden = torch.cat([last[:, None], rest], dim=1)
    else:
        hidden = last[:, None]
    # column j of `hidden` is the original position P - 1 + j, whose target is token P + j
    cols = torch.arange(hidden.shape[1], device=dev)
    pos = (P[:, None] - 1 + cols[None]).clamp(max=sel.shape[1] - 1)
    keep = (cols[None] < S[:, None]) & sel.gather(1, pos)
    return hidden[keep]
