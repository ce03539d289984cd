"""The torch rollout engine: batched sampling with a KV cache, for any transformers causal LM, CPU or GPU.

Prompts are left-padded into one batch (positions counted from each row's first real token), so every row
decodes its next token in the same forward call. Finished rows stop contributing tokens; the loop ends as
soon as every row has hit a stop token or the length limit.
"""

from __future__ import annotations

import contextlib
import copy
import inspect

import torch
from transformers import DynamicCache, StaticCache

from rlvr.compiled_forward import bucket
from rlvr.models import attention
from rlvr.models.lora import transformers_model as _hf
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.rollout.cpu_kernels import PackedLinears, can_pack, packs
from rlvr.rollout.layer_loop import LayerLoop
from rlvr.rollout.weights import QUANTIZED, load_quantized

SLOTS = 64  # with compile_loop, a decode's cache length is a multiple of this


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None,
                uniform: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens and the log-probs of the distribution they were drawn from (the behaviour policy).

    logits: (B, V). Greedy when `temperature == 0` (log-probs then at temperature 1). Top-p keeps the
    smallest set of tokens whose probability reaches `top_p` (always at least the most likely one), as vLLM's
    sampler does, and the log-prob returned is the nucleus-renormalised one, log(p_v / sum_kept p), which is
    what vLLM returns with `logprobs_mode="processed_logprobs"`: both engines report the same behaviour policy.
    The draw inverts each row's distribution function: one uniform u in [0, 1) per row, and the token is the
    first v whose running sum of probabilities, in float64, exceeds u times the row's total (a token of
    probability 0, outside the nucleus, is never drawn). The caller may fix each row's noise with `uniform` (B,)
    (seeded per prompt, so samples do not depend on what else is in the batch); otherwise it is drawn from
    `generator`. One uniform a row is the cheaper draw: 16 rows of SmolLM2's 49,152 tokens took 2.64 ms a step
    against 5.17 ms for the exponential race rlvr used before (a uniform per token: argmax p_v / -log u_v), 64
    rows 8.75 against 19.84 ms (one thread of an AVX-512 EPYC, `benchmarks/sampler.py`); `torch.multinomial`
    took 22-25 ms for 16 rows. The running sum is taken in two levels (`_draw`), and without top-p the
    probabilities are exp(z - max z), normalised by their float64 total, with no (B, V) log-softmax.
    """
    logits = logits.float()
    if temperature == 0:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logp.argmax(dim=-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    if uniform is None:
        uniform = torch.rand(logits.shape[0], generator=generator, device=logits.device)
    if top_p < 1.0:
        logp = behaviour_logprobs(logits, temperature, top_p)  # (B, V), -inf outside the nucleus
        tokens, _ = _draw(logp.exp(), uniform)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)
    z = logits / temperature if temperature != 1.0 else logits  # x / 1 == x
    top = z.amax(dim=-1, keepdim=True)
    tokens, total = _draw((z - top).exp_(), uniform)
    # log p(token) = z_token - logsumexp(z), the normaliser from the draw's own float64 total
    return tokens, (z.gather(-1, tokens[:, None]) - top).squeeze(-1) - total.log().float()


DRAW_BLOCK = 1024  # vocabulary entries a block of `_draw`'s first level sums


def _draw(weights: torch.Tensor, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (B,), totals (B,) float64): each row's first entry whose running sum of `weights` (B, V) (>= 0,
    not necessarily normalised), in float64, exceeds u times the row's total. Two levels: sums of blocks of
    `DRAW_BLOCK` entries and their running sum find the block, then the running sum inside that block alone
    finds the entry, so the float64 running sum covers 1,024 entries a row, not the vocabulary (16 rows of
    SmolLM2's 49,152: 0.96-0.99 against 1.55-1.72 ms a step with one running sum after a log-softmax, 64 rows
    5.6 against 7.1; one thread, AVX-512 EPYC, `benchmarks/sampler.py`; the two drew different tokens in 3 of
    4,800 draws, from rounding at an interval's edge). An entry of weight 0 is never drawn (its
    running sum equals the one before it)."""
    B, V = weights.shape
    pad = -V % DRAW_BLOCK
    if pad:
        weights = torch.nn.functional.pad(weights, (0, pad))
    cum = weights.view(B, -1, DRAW_BLOCK).sum(dim=-1, dtype=torch.float64).cumsum(dim=-1)  # (B, blocks)
    total = cum[:, -1]
    target = (uniform.to(torch.float64) * total)[:, None]  # < the total, since u < 1
    block = torch.searchsorted(cum, target, right=True).clamp_(max=cum.shape[1] - 1)  # (B, 1)
    before = torch.where(block > 0, cum.gather(-1, (block - 1).clamp(min=0)), 0.0)  # the blocks' sum before it
    first = block * DRAW_BLOCK
    inside = weights.gather(-1, first + torch.arange(DRAW_BLOCK, device=weights.device))
    inside = inside.cumsum(dim=-1, dtype=torch.float64).add_(before)
    at = torch.searchsorted(inside, target, right=True).clamp_(max=DRAW_BLOCK - 1)
    return (first + at).squeeze(-1).clamp_(max=V - 1), total


def behaviour_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """(B, V) log-probs of the distribution sampled from: softmax(logits / temperature), restricted with
    `top_p < 1` to the nucleus (tokens whose more likely tokens hold less than `top_p`; -inf elsewhere) and
    renormalised over it."""
    logits = logits.float()
    logp = torch.log_softmax(logits / temperature if temperature != 1.0 else logits, dim=-1)  # (B, V); x / 1 == x
    if top_p >= 1.0:
        return logp
    sorted_lp, order = logp.sort(dim=-1, descending=True)
    sorted_p = sorted_lp.exp()
    drop = sorted_p.cumsum(dim=-1) - sorted_p >= top_p  # mass of the more likely tokens already reaches top_p
    drop[:, 0] = False
    sorted_lp = sorted_lp.masked_fill(drop, -torch.inf)
    sorted_lp = sorted_lp - torch.logsumexp(sorted_lp, dim=-1, keepdim=True)
    return torch.empty_like(logp).scatter(-1, order, sorted_lp)


def cache_kwarg(model: torch.nn.Module) -> str:
    """Name of the KV-cache argument (`cache` in recent transformers, `past_key_values` before)."""
    params = inspect.signature(type(_hf(model)).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def takes_cache_position(model: torch.nn.Module) -> bool:
    """Older transformers want `cache_position` with a static cache; recent ones count positions inside it."""
    return "cache_position" in inspect.signature(type(_hf(model)).forward).parameters


def new_cache(model: torch.nn.Module, kind: str, max_len: int):
    """A KV cache for one decode: `static` preallocates `max_len` positions (no copy per token, as the
    concatenating dynamic cache does); `dynamic` grows. Models or versions without a static cache fall back."""
    if kind == "static":
        config = getattr(_hf(model), "config", None)
        try:
            return StaticCache(config=config, max_cache_len=max_len), True
        except Exception:  # noqa: BLE001 - e.g. an older StaticCache signature or an unsupported model
            pass
    return DynamicCache(), False


def select_rows(cache, rows: torch.Tensor) -> None:
    """Keep batch rows `rows` of `cache`, in that order: finished sequences leave the batch, and a repeated
    index copies a row (a prompt's cache shared by its samples)."""
    for layer in getattr(cache, "layers", []):
        if getattr(layer, "keys", None) is None or not getattr(layer, "is_initialized", True):
            continue
        layer.keys = layer.keys.index_select(0, rows)
        layer.values = layer.values.index_select(0, rows)
        if not torch.compiler.is_compiling():  # fixed addresses, so compiled decode steps update them in place
            torch._dynamo.mark_static_address(layer.keys)
            torch._dynamo.mark_static_address(layer.values)
        if hasattr(layer, "batch_size"):
            layer.batch_size = len(rows)
    if not hasattr(cache, "layers"):
        cache.batch_select_indices(rows)


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def fold_head_input(model: torch.nn.Module) -> None:
    """Make the output layer's input contiguous before its product (once per model).

    `logits_to_keep=1` hands the head a strided (B, 1, H) slice of the prefill's hidden states. For a
    frozen low-precision weight on CPU, `torch.matmul` then does not fold the batch into one product: it
    expands the (V, H) weight to (B, H, V) and runs a batched product, a transient of B * H * V elements
    (5.4 GB in bf16 for 100 SmolLM2 prompts, the evaluation's batch) and a copy of the weight per row. A
    contiguous (B, 1, H) input folds into one (B, H) x (H, V) product."""
    head = _hf(model).get_output_embeddings() if hasattr(_hf(model), "get_output_embeddings") else None
    if head is not None and not getattr(head, "_rlvr_folds_input", False):
        head.register_forward_pre_hook(_contiguous_input)
        head._rlvr_folds_input = True


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """`b` is a view of exactly `a`'s memory (the same weight), so loading it would copy it onto itself."""
    return (a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
            and a.dtype == b.dtype and a.device == b.device)


def holds_dtype(model: torch.nn.Module, dtype: torch.dtype | None) -> bool:
    """Whether `model`'s weights already sit in `dtype` (None: any), LoRA's frozen base for a LoRA model (a
    small adapter kept in fp32 is cast on the fly by PEFT)."""
    if dtype is None:
        return True
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    weights = frozen or [p for p in model.parameters() if p.is_floating_point()]
    return all(p.dtype == dtype for p in weights)


def inference_copy(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """`model` itself when its weights already sit in `dtype` (`holds_dtype`), else a frozen copy of it in
    `dtype`: the rollout form of fp32 master weights (half their memory; bf16 products run several times
    faster than fp32)."""
    if holds_dtype(model, dtype):
        return model
    return copy.deepcopy(model).to(dtype).eval().requires_grad_(False)


class TorchEngine:
    """Samples from `model` (a transformers causal LM) in place: the learner and the engine can share it,
    and then `load_weights` of the learner's state copies nothing."""

    def __init__(self, model: torch.nn.Module, pad_token_id: int, device: torch.device | str | None = None,
                 cache: str = "static", compact: float = 0.25, compile: bool = False, weights: str = "same",
                 cpu_kernels: bool = True, tokenizer=None, layer_loop: bool = True):
        self.model = model
        self.tokenizer = tokenizer  # decodes the last tokens of each row to find `SamplingParams.stop` strings
        fold_head_input(model)
        self.weights = weights  # the form `model` holds (rlvr.rollout.weights); int8/fp8 re-quantise at a sync
        self.pad_token_id = pad_token_id
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.version = 0
        self.cache = cache
        self.compact = compact  # drop finished rows once this share of the live batch has finished
        self._cache_kw = cache_kwarg(model)
        self._cache_position = takes_cache_position(model)
        # rlvr's CPU attention reads only the static cache's filled slots when told how many (rlvr.models.attention)
        self._bounded = getattr(getattr(_hf(model), "config", None), "_attn_implementation", None) == attention.NAME
        # compile on a CPU, with the packed kernels and the layer loop (bf16 or fp32 weights that oneDNN packs: fp32
        # is what AVX2-only CPUs pack): the loop's decode steps run through torch.compile, their linears still on
        # the packed weights (LayerLoop._packed_step). Shapes stay fixed (a graph per batch size and cache
        # length): the cache's length is rounded up, and finished rows leave the batch only down a ladder of batch
        # sizes (`rlvr.compiled_forward.bucket`: 16 rows go to 12, 8, 6, 4, 3, 2, 1, finished rows filling each
        # size), so a decode meets a few graphs. Other models and settings on a CPU decode eagerly.
        self.compile_loop = (compile and self.device.type == "cpu" and cpu_kernels and layer_loop and can_pack(self.device)
                             and any(packs(d) and holds_dtype(model, d) for d in (torch.bfloat16, torch.float32)))
        # compile elsewhere (GPUs): decode steps run through torch.compile (CUDA graphs). Shapes must stay fixed,
        # so the cache is static and finished rows stay in the batch.
        self.compile = compile and not self.compile_loop
        self._compiled = None
        if self.compile or self.compile_loop:
            self.cache = "static"
        if self.compile:
            self.compact = float("inf")
        self.compiled_shapes: set[tuple[int, int]] = set()  # (rows, cache slots) of the compiled loop steps run
        # cpu_kernels (rlvr.rollout.cpu_kernels): on a CPU, decode runs its linear layers on oneDNN-packed
        # copies of the weights; not with compiled forwards
        self.packed = PackedLinears(model, int8=weights == "w8a8") \
            if cpu_kernels and not self.compile and can_pack(self.device) else None
        if weights == "w8a8" and self.packed is None:
            raise ValueError("rollout.weights: w8a8 decodes on the packed CPU kernels: set rollout.cpu_kernels: true "
                             "(and, on a GPU, use same, bf16, int8 or fp8)")
        # layer_loop (rlvr.rollout.layer_loop): eager decode steps of Llama-family models on rlvr's CPU attention
        # run the model's modules in one plain loop, not through transformers' forward (the same logits)
        self.layer_loop = layer_loop and not self.compile
        self.loop_steps = 0  # decode steps the loop ran (the rest went through the model's forward)
        self.compiled_loop_steps = 0  # of those, steps that ran compiled (compile_loop)

    @property
    def loops_layers(self) -> bool:
        """Whether this engine's eager decode steps run as the layer loop (its model is of the kind; each
        decode's cache is checked again when it starts)."""
        return self.layer_loop and self._bounded and self.cache == "static" and LayerLoop.model_fits(self.model)

    @contextlib.contextmanager
    def decoding(self, rows: int, loop: bool = False):
        """The fast CPU kernels, in force while a batch of `rows` decodes (the model's own outside); for the
        layer loop (`loop`), the linears that read one input are packed as one (`LayerLoop.linear_groups`)."""
        if self.packed is None:
            yield
            return
        groups = LayerLoop.linear_groups(self.model) if loop else ()
        with self.packed.active(rows, self.version, groups):
            yield

    def load_weights(self, state: dict[str, torch.Tensor] | None, version: int) -> None:
        """Sample from `state` (policy `version`) from now on. Tensors the model already holds are skipped,
        so when the engine shares the learner's model (one process) only the version moves."""
        if state is not None:
            own = self.model.state_dict()
            if state.keys() != own.keys():
                self.model.load_state_dict(state, strict=True)  # raises, naming the missing and unexpected keys
            if self.weights in QUANTIZED:
                load_quantized(self.model, state, self.weights)
                state = {}
            fresh = {k: v for k, v in state.items() if not _same_tensor(own[k], v)}
            if fresh:
                self.model.load_state_dict(fresh, strict=False)
        self.version = version

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None) -> list[list[Completion]]:
        """With `seeds` (one per prompt) each prompt's samples come from its own seeded noise, so they are
        the same whichever other prompts share the batch (or the engine: this is what lets a run split
        across rollout workers reproduce the single-process run). Otherwise `generator` drives all rows."""
        if not prompts or sampling.n < 1:
            return []
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts")
        was_training = self.model.training
        self.model.eval()
        try:
            cache_len = self._cache_len(max(len(p) for p in prompts) + sampling.max_new_tokens)
            loop = self.loops_layers and LayerLoop.windows_fit(self.model, cache_len)
            with self.decoding(len(prompts) * sampling.n, loop=loop):
                tokens, logps, lengths, stopped = self._decode(prompts, sampling, generator, seeds)
        finally:
            self.model.train(was_training)
        out: list[list[Completion]] = []
        for i, _ in enumerate(prompts):
            group = []
            for j in range(i * sampling.n, (i + 1) * sampling.n):
                n = int(lengths[j])
                group.append(Completion(tokens[j, :n].tolist(), logps[j, :n].tolist(),
                                        "stop" if stopped[j] else "length"))
            out.append(group)
        return out

    def _cache_len(self, needed: int) -> int:
        """Slots of a decode's static cache for `needed` positions: compiled loop steps have fixed shapes, so
        there the length rounds up to a multiple of SLOTS (the extra slots masked) and decodes of nearby lengths
        share a graph."""
        return -(-needed // SLOTS) * SLOTS if self.compile_loop else needed

    def _ends_in_stop_text(self, tails: torch.Tensor, stop_text: tuple[str, ...]) -> torch.Tensor:
        """(rows,) bool: the row's last `tails` tokens hold a stop string. Checked after every token, so a
        string found here ends in the newest one (an earlier one would have ended the row then)."""
        texts = self.tokenizer.batch_decode(tails.cpu().tolist(), skip_special_tokens=False)
        return torch.tensor([any(s in x for s in stop_text) for x in texts], device=tails.device)

    def _decode(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None,
                seeds: list[int] | None = None):
        """Each prompt is run through the model once; its KV cache is then copied to its `n` samples
        (GRPO's group shares the prompt), so prefill costs 1/n of prefilling every row."""
        dev, n = self.device, sampling.n
        U, P, T = len(prompts), max(len(r) for r in prompts), sampling.max_new_tokens
        B = U * n
        input_ids = torch.full((U, P), self.pad_token_id, dtype=torch.long)
        slots = self._cache_len(P + T)
        mask = torch.zeros((U, slots), dtype=torch.long)
        for i, r in enumerate(prompts):  # left padding
            input_ids[i, P - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, P - len(r):P] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        position_ids = (mask[:, :P].cumsum(-1) - 1).clamp(min=0)  # (U, P)
        stop_ids = () if sampling.ignore_eos else sampling.stop_token_ids  # ignore_eos: every row runs to T
        stop = torch.tensor(sorted(set(stop_ids)) or [-1], device=dev)
        stop_text = () if sampling.ignore_eos else tuple(s for s in sampling.stop if s)
        if stop_text and self.tokenizer is None:
            raise ValueError("SamplingParams.stop: this engine was built without a tokenizer to read text with")
        window = max((len(s) for s in stop_text), default=0) + 1  # tokens: each writes at least one character

        cache, static = new_cache(self.model, self.cache, slots)

        def forward(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor, start: int) -> torch.Tensor:
            kw = {self._cache_kw: cache}
            if static and self._cache_position:
                kw["cache_position"] = torch.arange(start, start + ids.shape[1], device=dev)
            model = self.model
            if self.compile and static and start > 0:  # decode steps only; the prefill's shape varies
                if self._compiled is None:
                    self._compiled = torch.compile(self.model, mode="reduce-overhead", dynamic=False)
                if dev.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                model = self._compiled
            elif static and self._bounded:  # slots past the newest token are empty in every row
                kw[attention.KEYS] = start + ids.shape[1]
            out = model(input_ids=ids, attention_mask=attn if static else attn[:, : start + ids.shape[1]],
                        position_ids=pos, use_cache=True, logits_to_keep=1, **kw).logits[:, -1]
            return out.clone() if model is not self.model else out  # graph outputs are overwritten next call

        logits = forward(input_ids, mask, position_ids, 0)  # (U, V)
        if n > 1:  # every sample of a prompt starts from that prompt's cache
            expand = torch.arange(U, device=dev).repeat_interleave(n)
            select_rows(cache, expand)
            logits, mask = logits[expand], mask[expand]
        next_pos = mask[:, :P].sum(-1, keepdim=True)  # (B, 1)
        loop = (LayerLoop(self.model, cache, self.packed, compiled=self.compile_loop) if self.layer_loop and static and self._bounded
                and LayerLoop.fits(self.model, cache, slots) else None)
        tokens = torch.full((B, T), self.pad_token_id, dtype=torch.long, device=dev)
        logps = torch.zeros((B, T), dtype=torch.float32, device=dev)
        lengths = torch.zeros(B, dtype=torch.long, device=dev)
        stopped = torch.zeros(B, dtype=torch.bool, device=dev)
        live = torch.arange(B, device=dev)  # original row of each row still in the batch
        fin = torch.zeros(B, dtype=torch.bool, device=dev)  # finished, but not yet dropped from the batch
        noise = None
        if seeds is not None and sampling.temperature > 0:
            gens = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]
            drawn = torch.empty(B, device=dev)  # every step's noise (one uniform a row), written in place
            drawing = list(range(U))  # prompts with a row still in the batch

            def noise(rows: torch.Tensor) -> torch.Tensor:
                # each of those prompts draws (n,) per step, for its finished rows too, so its stream does not
                # depend on when they finished; a prompt with no row left needs no more noise
                for i in drawing:
                    rows_i = drawn[i * n:(i + 1) * n]
                    torch.rand(n, generator=gens[i], device=dev, out=rows_i)
                return drawn if len(rows) == B else drawn[rows]  # `live` keeps the original order of its rows
        for t in range(T):
            tok, lp = sample_next(logits, sampling.temperature, sampling.top_p, generator,
                                  None if noise is None else noise(live))
            # Integer indexing and torch.where only: no boolean-mask indexing, which waits for the GPU.
            # A finished row's slot t lies past its end, so writing pad / 0 there changes nothing.
            act = ~fin
            tokens[live, t] = torch.where(act, tok, self.pad_token_id)
            logps[live, t] = torch.where(act, lp, 0.0)
            lengths[live] += act.long()
            hit = torch.isin(tok, stop) & act
            if stop_text:
                hit |= self._ends_in_stop_text(tokens[live, max(0, t + 1 - window): t + 1], stop_text) & act
            stopped[live] |= hit
            fin |= hit
            if t == T - 1:
                break
            n_fin = int(fin.sum())
            if n_fin == len(live):
                break
            keep = None
            if loop is not None and loop.handles is not None:
                if bucket(len(live) - n_fin) < len(live):
                    # compiled steps: down to the next batch size of the ladder, the first finished rows filling it
                    pad = bucket(len(live) - n_fin) - (len(live) - n_fin)
                    keep = torch.cat([torch.nonzero(~fin).flatten(), torch.nonzero(fin).flatten()[:pad]]).sort().values
            elif n_fin and n_fin >= self.compact * len(live):  # finished rows leave the batch
                keep = torch.nonzero(~fin).flatten()
            if keep is not None:
                select_rows(cache, keep)
                live, tok, fin = live[keep], tok[keep], fin[keep]
                mask, next_pos = mask[keep], next_pos[keep]
                if noise is not None:
                    drawing = sorted(set((live // n).tolist()))
            mask[:, P + t] = 1
            if loop is not None:
                logits = loop.step(tok[:, None], mask, next_pos, P + t)
                self.loop_steps += 1
                if loop.handles is not None:
                    self.compiled_loop_steps += 1
                    self.compiled_shapes.add((len(live), slots))
            else:
                logits = forward(tok[:, None], mask, next_pos, P + t)
            next_pos = next_pos + 1
        return tokens.cpu(), logps.cpu(), lengths.cpu(), stopped.cpu()
