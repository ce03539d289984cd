"""The model being trained, its optimiser and schedule: `update(batch) -> stats`.

This is the only place in RL that calls `backward()`. Log-probs are recomputed here in one forward pass per
micro-batch and optimiser pass; the sampling log-probs come from the engine (no second "old policy" pass).
"""

from __future__ import annotations

import contextlib
import time

import torch

from rlvr.algorithms.entropy import entropy_from_logits, token_logprobs, token_logprobs_and_entropy
from rlvr.algorithms.kl import kl_estimate
from rlvr.algorithms.losses import aggregate, policy_loss
from rlvr.algorithms.offpolicy import decoupled_policy_loss, offpolicy_weights
from rlvr.compiled_forward import CompiledDecoder
from rlvr.models.lora import reference_off, transformers_model
from rlvr.optim import (
    autocast,
    build_optimizer,
    build_scheduler,
    changed_fraction,
    clip_and_step,
    loss_scaler,
    low_precision_params,
)
from rlvr.shared_prefix import prompt_owners, shared_prefix_hidden
from rlvr.types import Batch

# Causal LMs whose logits are exactly output_layer(decoder(x)): no soft-capping or logit scale after the head.
PLAIN_HEAD_MODELS = {"llama", "qwen2", "qwen3", "mistral", "phi3", "smollm3", "olmo2", "ministral"}


def _split_lm(model: torch.nn.Module):
    """(decoder, output layer) of a plain-headed causal LM (through a PEFT wrapper), else None."""
    hf = transformers_model(model)
    config = getattr(hf, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODELS:
        return None
    try:
        decoder, head = hf.get_decoder(), hf.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return (decoder, head) if decoder is not None and head is not None else None


class Learner:
    """Owns the policy's weights, optimiser and scheduler. `ref_model` (frozen) is used for a KL term.

    Mixed precision: the trainable weights (the masters) and the optimiser state are whatever `model` holds,
    fp32 by default (`load_policy`); forward and backward run under autocast in `compute_dtype` (bf16 on
    hardware that has it), gradients land in fp32. A model whose trainable weights are themselves low
    precision (`train.master_weights: false`) trains as it is, and every step logs `update/changed_frac`,
    the share of those weights the step changed: updates below half an ulp round away."""

    def __init__(self, model: torch.nn.Module, train_cfg, algo_cfg, temperature: float = 1.0,
                 max_new_tokens: int = 64, ref_model: torch.nn.Module | None = None,
                 compute_dtype: torch.dtype | None = None, behaviour_differs: bool = False):
        self.model = model
        self.compute_dtype = compute_dtype
        self.watch_updates = low_precision_params(model)
        # fp16 autocast (GPUs without bf16) needs loss scaling, or small gradients underflow to 0.
        self.scaler = loss_scaler(model, compute_dtype)
        self.cfg = train_cfg
        self.algo = algo_cfg
        self.temperature = temperature if temperature > 0 else 1.0
        self.max_new_tokens = max_new_tokens
        self.ref_model = ref_model
        self.optimizer = build_optimizer(model, train_cfg.lr, train_cfg.weight_decay)
        total = train_cfg.steps * algo_cfg.ppo_epochs
        self.scheduler = build_scheduler(self.optimizer, train_cfg.warmup_steps, total, train_cfg.scheduler)
        self.device = next(model.parameters()).device
        # Data parallel (rlvr.distributed): each learner runs its own rows of the batch, then `data_parallel`
        # sums the gradients and diagnostics over the group before the optimiser step. None: one process.
        self.data_parallel = None
        # Off-policy correction (rlvr.algorithms.offpolicy): with `auto`, on when the engine samples from
        # another form or distribution than this model's (the caller knows which engine it built).
        mode = algo_cfg.offpolicy_correction
        self.correct_offpolicy = mode == "on" or (mode == "auto" and behaviour_differs)
        self._compiled: CompiledDecoder | None = None  # train.compile: built at the first training forward

    # --- log-probs ----------------------------------------------------------------------------------
    def _micro_batches(self, batch: Batch, rows: torch.Tensor | None = None):
        """(rows, micro-batch) pairs over `rows` of the batch (all by default). Rows are taken shortest
        first, so each micro-batch holds sequences of similar length, and all-padding columns are cut off:
        padding is barely paid for. A micro-batch holds at most `micro_batch_size` rows and, with
        `micro_batch_tokens > 0`, at most that many padded tokens (rows x its longest row). Every
        rows-to-micro-batch split gives the same gradient (exact weights).
        With shared prompts (`train.share_prompts`), a prompt's rows are kept together (prompts ordered by their
        longest row) and the token budget counts each prompt once: what the shared forward runs."""
        lengths = batch.attention_mask.sum(-1)
        shared = self._shares_prompts()
        if shared:
            owner, _, prompt_len = prompt_owners(batch.input_ids, batch.completion_mask.bool())
            L, P = lengths.tolist(), prompt_len.tolist()
            longest: dict[int, int] = {}
            for i, u in enumerate(owner):
                longest[u] = max(longest.get(u, 0), L[i])
            ranked = sorted(range(len(owner)), key=lambda i: (longest[owner[i]], owner[i], L[i]))
            order = torch.tensor(ranked, dtype=torch.long)
        else:
            L = lengths.tolist()
            order = torch.argsort(lengths, stable=True)
        if rows is not None:
            keep = torch.zeros(len(lengths), dtype=torch.bool)
            keep[rows] = True
            order = order[keep[order]]
        budget = self.cfg.micro_batch_tokens

        def cost(members: list[int]) -> int:  # padded tokens the micro-batch's forward runs
            if not shared:
                return len(members) * max(L[i] for i in members)
            prompts = {owner[i] for i in members}
            suffix = max(L[i] - P[i] for i in members)
            return len(prompts) * max(P[i] for i in members) + len(members) * suffix

        def full(members: list[int]) -> bool:
            return len(members) > self.cfg.micro_batch_size or (budget > 0 and cost(members) > budget)

        groups, current = [], []
        order = order.tolist()
        rows_of: dict[int, list[int]] = {}  # each prompt's rows, in order (consecutive)
        for i in order if shared else ():
            rows_of.setdefault(owner[i], []).append(i)
        for k, i in enumerate(order):
            if shared and current and owner[order[k - 1]] != owner[i]:
                # a new prompt: its rows go together, into a fresh micro-batch when they do not fit here
                rows_u = rows_of[owner[i]]
                if full([*current, *rows_u]) and not full(rows_u):
                    groups.append(current)
                    current = []
            if current and full([*current, i]):
                groups.append(current)
                current = []
            current.append(i)
        if current:
            groups.append(current)
        for members in groups:
            idx = torch.tensor(members)
            mb = batch.select(idx)
            width = int(mb.attention_mask.sum(-1).max())  # drop all-padding columns
            yield idx, Batch(mb.input_ids[:, :width], mb.attention_mask[:, :width], mb.completion_mask[:, : width - 1],
                             mb.old_logprobs[:, : width - 1], mb.advantages,
                             None if mb.ref_logprobs is None else mb.ref_logprobs[:, : width - 1])

    def _shares_prompts(self, model: torch.nn.Module | None = None) -> bool:
        """Whether `model`'s (the policy's) forwards run each prompt once (rlvr.shared_prefix)."""
        model = self.model if model is None else model
        sharded = self.data_parallel is not None and self.data_parallel.full_forward and model is self.model
        return bool(getattr(self.cfg, "share_prompts", False)) and not sharded and _split_lm(model) is not None

    def _forward(self, model: torch.nn.Module, mb: Batch, want_entropy: bool, entropy_grad: bool = False):
        """Log-probs (N, T-1) of the targets under `model` at the sampling temperature, and the entropy.

        Only completion positions need them: where the model allows it, the decoder's hidden states are
        taken at those positions alone and the output layer runs on them, so no logits are computed for
        prompt or padding tokens and no (N, T, V) tensor is built; with `train.share_prompts` the rows of
        one prompt run it once (rlvr.shared_prefix). Positions outside the completion are 0."""
        ids = mb.input_ids.to(self.device)
        attn = mb.attention_mask.to(self.device)
        sel = mb.completion_mask.to(self.device).bool()  # (N, T-1)
        targets = ids[:, 1:][sel]  # (K,)
        sharded = self.data_parallel is not None and self.data_parallel.full_forward and model is self.model
        parts = None if sharded else _split_lm(model)  # a sharded model gathers its weights in its own forward
        compiled = None if sharded else self._compiled_forward(model, parts)
        with autocast(self.device, self.compute_dtype):
            shared = None
            if parts is not None and self._shares_prompts(model):  # (K, H); None: no prompt is shared
                shared = compiled.shared(ids, attn, sel) if compiled is not None else \
                    shared_prefix_hidden(parts[0], ids, attn, sel)
            if shared is not None:
                logits = parts[1](shared)
            elif parts is not None:
                decoder, head = parts
                hidden = compiled(ids, attn) if compiled is not None else \
                    decoder(input_ids=ids, attention_mask=attn).last_hidden_state
                logits = head(hidden[:, :-1][sel])  # (K, V) from (N, T-1, H)
            else:
                out = compiled(ids, attn) if compiled is not None else model(input_ids=ids, attention_mask=attn).logits
                logits = out[:, :-1][sel]
        logits = logits / self.temperature if self.temperature != 1.0 else logits  # x / 1 == x: no copy
        if want_entropy and entropy_grad and torch.is_grad_enabled():  # an entropy bonus: it has a gradient
            token_logp = token_logprobs(logits, targets)
            ent = torch.cat([entropy_from_logits(c) for c in logits.split(1024)]) if len(logits) else \
                logits.new_zeros(0, dtype=torch.float32)
        elif want_entropy:  # the logged entropy, read off the log-probs' own pass over the logits
            token_logp, ent = token_logprobs_and_entropy(logits, targets)
        else:
            token_logp, ent = token_logprobs(logits, targets), None
        logp = torch.zeros(sel.shape, dtype=torch.float32, device=self.device).masked_scatter(sel, token_logp.float())
        entropy = None if ent is None else \
            torch.zeros(sel.shape, dtype=ent.dtype, device=self.device).masked_scatter(sel, ent)
        return logp, entropy

    def _compiled_forward(self, model: torch.nn.Module, parts) -> CompiledDecoder | None:
        """With `train.compile`, the compiled decoder (the whole model when its head cannot be split off) for
        the policy's training forwards; None otherwise (reference and no-grad forwards stay eager)."""
        if not getattr(self.cfg, "compile", False) or model is not self.model or not torch.is_grad_enabled():
            return None
        if self._compiled is None:
            hf = transformers_model(model)
            max_length = getattr(getattr(hf, "config", None), "max_position_embeddings", None)
            self._compiled = CompiledDecoder(parts[0] if parts is not None else model, max_length)
        return self._compiled

    @torch.no_grad()
    def reference_logprobs(self, batch: Batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(N, T-1) log-probs under the frozen reference policy (for the KL term): `ref_model`, or with LoRA
        the policy itself with its adapter switched off. With `rows`, only those rows are filled."""
        out = torch.zeros_like(batch.old_logprobs)
        ref = self.ref_model if self.ref_model is not None else self.model
        for idx, mb in self._micro_batches(batch, rows):
            with reference_off(ref) if self.ref_model is None else contextlib.nullcontext():
                logp, _ = self._forward(ref, mb, want_entropy=False)
            out[idx, : logp.shape[1]] = logp.float().cpu()
        return out

    # --- the update ---------------------------------------------------------------------------------
    def _weight(self, mb: Batch, batch: Batch) -> float:
        """Share of the batch-level loss normaliser that this micro-batch carries (exact aggregation)."""
        if self.algo.loss_agg == "token_mean":
            return float(mb.completion_mask.sum() / batch.completion_mask.sum().clamp(min=1))
        if self.algo.loss_agg == "seq_mean_token_mean":
            return float((mb.completion_mask.sum(-1) > 0).sum() / (batch.completion_mask.sum(-1) > 0).sum().clamp(min=1))
        return len(mb) / len(batch)

    def update(self, batch: Batch, rows: torch.Tensor | None = None) -> dict[str, float]:
        """`ppo_epochs` optimiser passes over the batch; returns the step's diagnostics. With `rows`, this
        learner runs only those rows, each weighted by its share of the whole batch's loss, so the group's
        summed gradient is the one-process gradient."""
        a = self.algo
        self.model.train()
        sums: dict[str, float] = {}

        def add(key: str, value: float, weight: float) -> None:
            sums[key] = sums.get(key, 0.0) + value * weight

        dp = self.data_parallel
        loss_scale = dp.loss_scale if dp is not None else 1.0  # fsdp averages gradients: undo the mean
        grad_norms, changed = [], []
        proximal: dict = {}  # micro-batch rows -> the learner's log-probs at the first pass (pi_prox, detached)
        live = self._rows_with_gradient(batch)
        if live is not None:
            sums["update/skipped_rows"] = float(len(batch) - int(live.sum()))
            if self.cfg.skip_empty_updates:
                sums["update/empty"] = float(not bool(live.any()))
                if not live.any():  # `live` covers the whole batch, so every data-parallel learner returns here
                    return {**sums, "loss": 0.0, "grad_norm": 0.0, "lr": self.scheduler.get_last_lr()[0],
                            "offpolicy/active": float(self.correct_offpolicy)}
            rows = live.nonzero().flatten() if rows is None else rows[live[rows]]
        run_mask = batch.completion_mask if live is None else batch.completion_mask[live]
        n_tokens = float(run_mask.sum())  # token diagnostics are means over the rows that run
        n_seqs = float((run_mask.sum(-1) > 0).sum())
        off_kw = dict(tis_cap=a.tis_cap, seq_mask_cap=a.seq_mask_cap, seq_reduce=a.seq_mask_reduce)
        for epoch in range(a.ppo_epochs):
            micro = list(self._micro_batches(batch, rows))
            if not micro:  # nothing to run (every row skipped): zero gradients, so the optimiser steps (momentum,
                if dp is None:  # weight decay) exactly as over the whole batch; a group runs one pass weighted 0
                    for p in self._trainable():
                        p.grad = torch.zeros_like(p) if p.grad is None else p.grad
                else:
                    micro = [(None, self._filler(batch))]
            # Sharded learners meet inside every forward and backward, so each runs as many passes as the
            # busiest: the extra ones are a real row weighted 0.
            micro += [(None, self._filler(batch))] * (dp.padding(len(micro)) if dp is not None else 0)
            for idx, mb in micro:
                mask = mb.completion_mask.to(self.device)
                tok_share = float(mask.sum()) / max(n_tokens, 1.0)
                share = self._weight(mb, batch)  # this micro-batch's exact part of the batch-level loss
                t0 = self._clock()
                logp, entropy = self._forward(self.model, mb, want_entropy=True, entropy_grad=a.entropy_coef > 0)
                old = mb.old_logprobs.to(self.device)  # the behaviour policy's (the engine's)
                # pi_prox comes from this same forward at the first pass, and is reused after: no extra forward
                prox = proximal.setdefault(None if idx is None else tuple(idx.tolist()), logp.detach().float())
                clip_kw = dict(clip_low=a.clip_low, clip_high=a.clip_high, loss_agg=a.loss_agg,
                               ratio_level=a.ratio_level, dual_clip=a.dual_clip, max_tokens=self.max_new_tokens)
                adv = mb.advantages.to(self.device)
                if self.correct_offpolicy:
                    loss, st = decoupled_policy_loss(logp.float(), prox, old, adv, mask, **off_kw, **clip_kw)
                else:
                    loss, st = policy_loss(logp.float(), old, adv, mask, **clip_kw)
                    if epoch == 0:  # what the correction would do, logged all the same
                        st.update({f"offpolicy/{k}": v for k, v in offpolicy_weights(prox, old, mask, **off_kw)[1].items()})
                if a.kl_coef > 0 and not a.kl_in_reward and mb.ref_logprobs is not None:
                    kl_tok = kl_estimate(logp.float(), mb.ref_logprobs.to(self.device), a.kl_estimator)
                    kl = aggregate(kl_tok, mask, a.loss_agg, self.max_new_tokens)
                    loss = loss + a.kl_coef * kl
                    add("kl", kl.item(), share / a.ppo_epochs)
                if a.entropy_coef > 0:  # the bonus is aggregated like the loss, so micro-batching is exact
                    loss = loss - a.entropy_coef * aggregate(entropy.float(), mask, a.loss_agg, self.max_new_tokens)
                t1 = self._clock()
                scaled = loss * (0.0 if idx is None else share * loss_scale)
                (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
                t2 = self._clock()
                if idx is None:
                    continue
                add("time/forward", t1 - t0, 1.0)
                add("time/backward", t2 - t1, 1.0)
                add("loss", loss.item(), share / a.ppo_epochs)
                w = tok_share / a.ppo_epochs  # token-level diagnostics: the batch's token mean
                add("entropy", aggregate(entropy.detach().float(), mask, "token_mean").item(), w)
                for k in ("clip_frac", "ratio_mean", "approx_kl"):
                    add(k, float(st[k]), w)
                sums["ratio_max"] = max(sums.get("ratio_max", 0.0), float(st["ratio_max"]))
                if epoch == 0:  # engine vs learner numerics on the same weights
                    gap = ((logp.detach().float() - old).abs() * mask).sum() / mask.sum().clamp(min=1)
                    add("logprob_gap", float(gap), tok_share)
                    add("offpolicy/kl", float(st["offpolicy/kl"]), tok_share)
                    add("offpolicy/truncated_frac", float(st["offpolicy/truncated_frac"]), tok_share)
                    seq_share = float((mask.sum(-1) > 0).sum()) / max(n_seqs, 1.0)
                    add("offpolicy/masked_frac", float(st["offpolicy/masked_frac"]), seq_share)
            t0 = self._clock()
            if dp is not None:
                dp.reduce_gradients(self.model)
                add("time/grad_reduce", self._clock() - t0, 1.0)
                t0 = self._clock()
            before = [p.detach().clone() for p in self._trainable()] if self.watch_updates else None
            grad_norms.append(clip_and_step(self.model, self.optimizer, self.scheduler, self.cfg.grad_clip,
                                            self.scaler))
            if before is not None:
                changed.append(changed_fraction(before, self._trainable()))
            add("time/optimizer", self._clock() - t0, 1.0)
        if live is not None:  # the skipped rows' loss is exactly 0
            sums.setdefault("loss", 0.0)
        if dp is not None:
            sums = dp.reduce_stats(sums)
        sums["grad_norm"] = sum(grad_norms) / len(grad_norms)
        if changed:
            sums["update/changed_frac"] = sum(changed) / len(changed)
        sums["lr"] = self.scheduler.get_last_lr()[0]
        sums["offpolicy/active"] = float(self.correct_offpolicy)
        return sums

    def _rows_with_gradient(self, batch: Batch) -> torch.Tensor | None:
        """(N,) bool: the rows whose loss has a gradient, with `train.skip_zero_advantage`; None: all rows run.

        Without a KL or entropy term in the loss, a completion whose advantage is 0 adds exactly 0 to the
        loss and its gradient (clipped or not, corrected or not: every term is a multiple of A), so it is not
        run at all. Its tokens still count in the loss normaliser (`_weight` divides by the whole batch's), so
        the update is the one over the whole batch. In thin-signal GRPO most groups are constant: this is most
        of the learner's time."""
        a = self.algo
        if not self.cfg.skip_zero_advantage or a.entropy_coef > 0 or \
                (a.kl_coef > 0 and not a.kl_in_reward):
            return None
        return batch.advantages != 0

    def _trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _filler(self, batch: Batch) -> Batch:
        """The batch's shortest row as a micro-batch (a pass that keeps sharded learners in step)."""
        shortest = torch.argsort(batch.attention_mask.sum(-1), stable=True)[:1]
        return next(self._micro_batches(batch, shortest))[1]

    def _clock(self) -> float:
        """Wall time after the device's queued work (so forward/backward/optimizer times are each their own)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
