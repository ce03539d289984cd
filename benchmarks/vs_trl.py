"""rlvr vs TRL's GRPOTrainer on identical GRPO work, with the machine's own floor measured in the same run.

    python benchmarks/vs_trl.py --model models/smollm2-135m-instruct [--dtype auto] [--json PATH] [--quick]
                                [--mode both|fixed|natural] [--large] [--compile] [--compile-learner]
                                [--skip-zero-advantage] [--micro-batch-rows N]

The work, the same for both: one model (SmolLM2-135M-Instruct by default, the same weights and dtype; with
bf16 both learners keep fp32 master weights and compute under bf16 autocast),
2 prompts x 8 completions per step (`--large`: 8 x 8 and 256 new tokens), 64 new tokens, temperature 1.0,
top-p 1, no KL, one optimiser
step per batch (AdamW, same learning rate), token-mean PPO-clip loss, no gradient checkpointing. The prompts
are the same two-digit arithmetic questions in the same order. The dtype is the one the hardware runs
fastest (bf16 on a GPU or a CPU with native bf16, fp32 on an AVX2-only CPU), `--dtype` forces one.

Modes: `fixed` (the headline) makes every completion exactly `max_new_tokens` long on both sides (rlvr:
`rollout.ignore_eos`; TRL: `generation_kwargs={"min_new_tokens": N}`, model.generate: `min_new_tokens`), so
the work is identical token for token; `natural` stops at the end-of-sequence token (the two sides then
sample different numbers of tokens). `--mode both` (default) runs fixed, then natural as a second table.

Steps alternate: a TRL step, then an rlvr step, then TRL again, ... (after `--warmup` steps each), so both
see the same machine state. Printed: median seconds per step, the ratio, generation tokens per second of
each and of `model.generate` against rlvr's engine on the same batch, memory growth during a step (on a GPU
the allocator's peak above the step's start; on a CPU the process RSS above it: both sides share one process,
so a side that reuses memory it already holds shows 0 there, not its footprint), and the
machine floor: matrix-product GFLOP/s in the chosen dtype and memory bandwidth, turned into the step time
they allow for the tokens rlvr actually processed. Warm-up steps (and the compile of `--compile`) are left out
of the medians and reported on their own line.

Set-up (`make bench` does it): the `bench` extra (TRL) and the converted checkpoint (`make smollm2`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_machine import (
    PeakMemory,
    cpu_flags,
    cpu_name,
    floor_seconds,
    generated_lengths,
    isa_limits,
    measure_floor,
    sync,
)

USER_INDUCTOR_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # as the process started: a choice of the user's
REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "smollm2-135m-instruct"
TEMPLATE = "{question} Think briefly inside <think></think>, then give only the final number inside <answer></answer>."


def die(msg: str) -> None:
    print(f"vs_trl: {msg}", file=sys.stderr)
    raise SystemExit(2)


# --- the two trainers ------------------------------------------------------------------------------------
def rlvr_trainer(args, dtype_name: str, run_dir: Path, fixed: bool, overrides: tuple[str, ...] = ()):
    from rlvr.config import load_config
    from rlvr.trainer import Trainer

    cfg = load_config(None, [
        "model.kind=hf", f"model.path={args.model}", f"model.dtype={dtype_name}", f"model.device={args.device}",
        "task.name=arithmetic", "task.difficulty=2", f"task.template={TEMPLATE}",
        f"rollout.num_generations={args.generations}", f"rollout.max_new_tokens={args.max_new_tokens}",
        "rollout.temperature=1.0", "rollout.top_p=1.0",
        "algorithm.name=grpo", "algorithm.kl_coef=0.0", "algorithm.ppo_epochs=1",
        f"train.prompts_per_step={args.prompts}", f"train.lr={args.lr}", "train.steps=100000",
        f"train.micro_batch_size={micro_rows(args)}", "train.checkpoint_every=0",
        f"train.micro_batch_tokens={args.micro_batch_tokens}",
        "train.grad_clip=1.0", "eval.every=0", "eval.num_problems=8", "logging.progress=false",
        "logging.samples_per_step=0", f"rollout.compile={str(args.compile).lower()}",
        f"rollout.ignore_eos={str(fixed).lower()}", f"rollout.weights={args.rollout_weights}",
        f"train.compile={str(args.compile_learner).lower()}",
        # TRL runs every completion through its learner; rlvr's default leaves the zero-advantage ones out
        # (the same update, less work): off unless asked, so both sides train on the same tokens
        f"train.skip_zero_advantage={str(args.skip_zero_advantage).lower()}", *overrides,
    ])
    return Trainer(cfg, run_dir)


def micro_rows(args) -> int:
    """Rows per learner micro-batch on both sides: the whole batch by default; `--micro-batch-rows` splits it
    (TRL: that many rows per device batch and gradient accumulation over the rest, so it still generates the
    whole batch at once and steps the optimiser once a batch; rlvr: `train.micro_batch_size`)."""
    rows = args.prompts * args.generations
    n = getattr(args, "micro_batch_rows", 0) or rows
    if rows % n or n % args.generations:
        die(f"--micro-batch-rows {n} must divide the batch ({rows} rows) and be a multiple of --generations")
    return n


def headline_run(model: str, micro_batch_tokens: int = 0) -> argparse.Namespace:
    """The headline's settings for `rlvr_trainer` on a CPU (2 prompts x 8, at most 64 new tokens, lr 1e-6, eager,
    rollout weights auto, every row trained): what the benchmarks that take vs_trl's step apart measure."""
    return argparse.Namespace(model=model, device="cpu", generations=8, prompts=2, max_new_tokens=64, lr=1e-6,
                              micro_batch_tokens=micro_batch_tokens, compile=False, rollout_weights="auto",
                              compile_learner=False, skip_zero_advantage=False)


def trl_dataset(trainer, n: int):
    from datasets import Dataset

    problems = [trainer.task.train_problem(i) for i in range(n)]  # the same questions rlvr trains on, in order
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": p.meta["question"]}], "answer": str(p.answer), "index": i}
        for i, p in enumerate(problems)
    ]), problems


def trl_trainer(args, model, tokenizer, dataset, problems, task, bf16: bool, run_dir: Path, callback,
                fixed: bool):
    from trl import GRPOConfig, GRPOTrainer

    def correctness(prompts, completions, index, **kw):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [task.verify(problems[i], t).reward for i, t in zip(index, texts)]

    config = GRPOConfig(
        output_dir=str(run_dir), per_device_train_batch_size=micro_rows(args),
        num_generations=args.generations, max_completion_length=args.max_new_tokens, temperature=1.0,
        top_p=1.0, top_k=0, beta=0.0, learning_rate=args.lr, num_iterations=1,
        gradient_accumulation_steps=args.prompts * args.generations // micro_rows(args),  # one optimiser step a batch
        max_steps=args.warmup + args.steps, logging_steps=1, report_to="none", save_strategy="no",
        use_cpu=args.device == "cpu", bf16=bf16, gradient_checkpointing=False, shuffle_dataset=False,
        loss_type="dapo", scale_rewards="group", disable_dropout=True, max_grad_norm=1.0,
        lr_scheduler_type="constant", seed=0, dataloader_num_workers=0,
        generation_kwargs={"min_new_tokens": args.max_new_tokens} if fixed else None,
    )
    return GRPOTrainer(model=model, reward_funcs=correctness, args=config, train_dataset=dataset,
                       processing_class=tokenizer, callbacks=[callback])


# --- generation throughput: rlvr's engine vs model.generate ------------------------------------------------
def rollout_forms() -> tuple[str, ...]:
    """The forms `rollout.weights` takes (rlvr.config.schema)."""
    import dataclasses

    from rlvr.config.schema import RolloutConfig

    return next(f.metadata["choices"] for f in dataclasses.fields(RolloutConfig) if f.name == "weights")


def race_batch(trainer, args, fixed: bool):
    """(prompts, sampling) of the generation race: `args.prompts` questions the training stream does not reach
    first, `args.generations` completions each at temperature 1, every one exactly `args.max_new_tokens`
    long when `fixed`."""
    from rlvr.rollout.base import SamplingParams

    prompts = [trainer.encode(trainer.task.train_problem(10_000 + i)) for i in range(args.prompts)]
    sampling = SamplingParams(args.generations, args.max_new_tokens, 1.0, 1.0, (trainer.tokenizer.eos_token_id,),
                              ignore_eos=fixed)
    return prompts, sampling


def generation_race(trainer, model, tokenizer, args, device, repeats: int, fixed: bool) -> dict:
    from rlvr.rollout.torch_engine import TorchEngine

    prompts, sampling = race_batch(trainer, args, fixed)
    eos = set(sampling.stop_token_ids)
    min_new = {"min_new_tokens": args.max_new_tokens} if fixed else {}
    P = max(len(p) for p in prompts)
    batch = torch.full((len(prompts), P), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(batch)
    for i, p in enumerate(prompts):
        batch[i, P - len(p):] = torch.tensor(p)
        attn[i, P - len(p):] = 1
    batch, attn = batch.to(device), attn.to(device)
    rates: dict[str, list[float]] = {"rlvr": [], "hf_generate": []}
    warm: dict[str, float] = {}  # seconds of the warm-up rounds (compile included), left out of the medians
    gen = torch.Generator(device=device).manual_seed(0)
    # "rlvr" is the eager engine on the rollout form (the trainer's own engine is compiled with --compile)
    form = getattr(trainer.engine, "weights", "same")  # the rollout form (w8a8 packs its own int8 weights)
    eager = TorchEngine(trainer.engine.model, tokenizer.pad_token_id, device, weights=form) if args.compile \
        else trainer.engine
    engines = {"rlvr": eager}
    if args.compile:  # the same engine with compiled decode steps (CUDA graphs on a GPU)
        # the engine's own rollout form (the bf16 copy beside fp32 masters), compiled; two warm-up rounds
        # (compilation, then graph recording) apart, then it takes its turn with the others in each round
        compiled = TorchEngine(trainer.engine.model, tokenizer.pad_token_id, device, compile=True, weights=form)
        try:
            for _ in range(2):
                sync(device)
                t = time.perf_counter()
                compiled.generate(prompts, sampling, gen)
                sync(device)
                warm["rlvr_compiled"] = warm.get("rlvr_compiled", 0.0) + time.perf_counter() - t
            engines["rlvr_compiled"] = compiled
        except Exception as e:  # noqa: BLE001 - report it and go on with the eager engine
            print(f"compiled engine failed: {type(e).__name__}: {str(e)[:300]}")
    # the same engine on the model's own kernels (rollout.cpu_kernels=false): what the packed weights gain
    if getattr(eager, "packed", None) is not None:
        engines["rlvr_plain_kernels"] = TorchEngine(eager.model, tokenizer.pad_token_id, device, cpu_kernels=False)
    for r in range(repeats + 1):  # the first round warms up
        for name, engine in engines.items():
            sync(device)
            t = time.perf_counter()
            groups = engine.generate(prompts, sampling, gen)
            sync(device)
            dt = time.perf_counter() - t
            n_tokens = sum(len(c.token_ids) for g in groups for c in g)
            if r:
                rates.setdefault(name, []).append(n_tokens / dt)
            else:
                warm[name] = dt
        sync(device)
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=batch, attention_mask=attn, do_sample=True, temperature=1.0,
                                 top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens,
                                 num_return_sequences=args.generations, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=list(eos), **min_new)
        sync(device)
        dt = time.perf_counter() - t
        if r:
            rates["hf_generate"].append(sum(generated_lengths(out, P, eos)) / dt)
        else:
            warm["hf_generate"] = dt
    return {**{k: statistics.median(v) for k, v in rates.items()}, "warmup_s": warm}


def run_mode(args, mode: str, device: torch.device, dtype: torch.dtype, floor: dict, machine: str) -> dict:
    """Both trainers on the same work in `mode` (fixed | natural), steps alternating; the mode's results."""
    from transformers import AutoModelForCausalLM, TrainerCallback

    fixed = mode == "fixed"
    print(f"\n=== mode: {mode} ({'every completion exactly' if fixed else 'completions stop at EOS, at most'} "
          f"{args.max_new_tokens} new tokens) ===", flush=True)
    work = Path(tempfile.mkdtemp(prefix="vs_trl_"))
    trainer = rlvr_trainer(args, args.dtype, work / "rlvr", fixed)
    tokenizer = trainer.tokenizer
    # Both learners do the real mixed-precision update: fp32 master weights and optimiser state, bf16
    # compute. For TRL that is the HF Trainer's way: an fp32 model with `bf16=True` (autocast). (A model
    # loaded in bf16 would train pure bf16, where updates at RL learning rates mostly round away.)
    trl_model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device)
    dataset, problems = trl_dataset(trainer, args.prompts * (args.warmup + args.steps))

    # `model.generate` races rlvr's engine in the same dtype.
    hf_model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device)
    gen_rates = generation_race(trainer, hf_model, tokenizer, args, device, args.gen_repeats, fixed)
    gen_warm = gen_rates.pop("warmup_s")
    del hf_model
    print("generation: " + ", ".join(f"{k} {v:.0f} tok/s" for k, v in gen_rates.items()))
    if args.gen_only:
        return {"mode": mode, "machine": machine, "isa_limits": isa_limits(), "dtype": args.dtype, **gen_rates,
                "gen_warmup_s": gen_warm,
                "rollout_weights": args.rollout_weights, "prompts": args.prompts, "generations": args.generations,
                "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads()}

    mem_rlvr, mem_trl = PeakMemory(device), PeakMemory(device)
    results: dict[str, list] = {"rlvr": [], "trl": [], "rlvr_parts": [], "trl_gen": [], "trl_tokens": [],
                                "rlvr_tokens": [], "rlvr_lengths": []}

    # Time TRL's generation inside its step, and the real tokens it produced.
    inner_generate = trl_model.generate

    def timed_generate(*a, **kw):
        sync(device)
        t = time.perf_counter()
        out = inner_generate(*a, **kw)
        sync(device)
        results["trl_gen"].append(time.perf_counter() - t)
        ids = kw.get("input_ids", a[0] if a else None)
        P = ids.shape[1] if ids is not None else 0
        results["trl_tokens"].append(sum(generated_lengths(out, P, {tokenizer.eos_token_id})))
        return out

    trl_model.generate = timed_generate

    # The rollouts each rlvr step sampled (what its collect returned).
    collect, collected = trainer.collect, []
    trainer.collect = lambda: collected.append(collect()) or collected[-1]

    class Alternate(TrainerCallback):
        """Times TRL's step, then runs (and times) one rlvr step before TRL's next one."""

        def on_step_begin(self, *a, **kw):
            mem_trl.__enter__()
            sync(device)
            self.t = time.perf_counter()

        def on_step_end(self, state_args, state, *a, **kw):
            sync(device)
            results["trl"].append(time.perf_counter() - self.t)
            mem_trl.__exit__()
            with mem_rlvr:
                sync(device)
                before = resource.getrusage(resource.RUSAGE_SELF)
                t = time.perf_counter()
                m = trainer.step()
                sync(device)
                results["rlvr"].append(time.perf_counter() - t)
                after = resource.getrusage(resource.RUSAGE_SELF)
            # minor page faults and system CPU seconds of the process during rlvr's step (rlvr.models.host_memory)
            results.setdefault("rlvr_faults", []).append(after.ru_minflt - before.ru_minflt)
            results.setdefault("rlvr_sys_s", []).append(after.ru_stime - before.ru_stime)
            results["rlvr_parts"].append({k: m.get(f"time/{k}", 0.0) for k in
                                          ("generate", "verify", "forward", "backward", "optimizer")})
            rollouts = collected[-1].sampled
            results["rlvr_lengths"].append([len(r.completion_ids) for r in rollouts])
            results["rlvr_tokens"].append(sum(len(r.completion_ids) for r in rollouts))
            results.setdefault("logprob_gap", []).append(m.get("logprob_gap", float("nan")))
            print(f"  step {state.global_step}: TRL {results['trl'][-1]:.2f} s, rlvr {results['rlvr'][-1]:.2f} s",
                  flush=True)

    trl = trl_trainer(args, trl_model, tokenizer, dataset, problems, trainer.task, args.dtype == "bfloat16",
                      work / "trl", Alternate(), fixed)
    trl.train()

    w = args.warmup
    med = statistics.median
    trl_s, rlvr_s = med(results["trl"][w:]), med(results["rlvr"][w:])
    trl_gen_tok_s = sum(results["trl_tokens"][w:]) / sum(results["trl_gen"][w:])
    parts = {k: med(p[k] for p in results["rlvr_parts"][w:]) for k in results["rlvr_parts"][0]}
    rlvr_gen_tok_s = sum(results["rlvr_tokens"][w:]) / sum(p["generate"] for p in results["rlvr_parts"][w:])
    prompt_len = statistics.mean(len(trainer.encode(p)) for p in problems)
    trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    floors = [floor_seconds(trainer.model, floor, round(prompt_len), lens, trained, dtype, args.prompts)
              for lens in results["rlvr_lengths"][w:]]
    fl = {k: med(f[k] for f in floors) for k in floors[0]}
    out = {
        "mode": mode, "rlvr_s_per_step": rlvr_s, "trl_s_per_step": trl_s, "speedup": trl_s / rlvr_s,
        "rlvr_gen_tok_s": gen_rates["rlvr"], "hf_generate_tok_s": gen_rates["hf_generate"],
        "gen_speedup": gen_rates["rlvr"] / gen_rates["hf_generate"],
        "rlvr_compiled_gen_tok_s": gen_rates.get("rlvr_compiled"),
        "compiled_gen_speedup": (gen_rates["rlvr_compiled"] / gen_rates["hf_generate"]
                                 if gen_rates.get("rlvr_compiled") else None),
        "rlvr_plain_kernels_gen_tok_s": gen_rates.get("rlvr_plain_kernels"),
        "rlvr_peak_mb": max(mem_rlvr.peaks[w:]), "trl_peak_mb": max(mem_trl.peaks[w:]),
        "dtype": args.dtype, "floor_s_per_step": fl["total"], "rlvr_over_floor": rlvr_s / fl["total"],
        "warmup_s": {"rlvr_steps": sum(results["rlvr"][:w]), "trl_steps": sum(results["trl"][:w]),
                     "generation_race": gen_warm},
        "prompts": args.prompts, "generations": args.generations, "threads": torch.get_num_threads(),
        "micro_batch_tokens": args.micro_batch_tokens, "micro_batch_rows": micro_rows(args), "rlvr_step_faults": results.get("rlvr_faults"),
        "rlvr_step_sys_s": results.get("rlvr_sys_s"),
        "rollout_weights": args.rollout_weights, "rlvr_header": trainer.header(),
        "machine": machine, "cpu_flags": cpu_flags(), "isa_limits": isa_limits(), "device": device.type,
        "floor": floor, "floor_parts_s": fl, "rlvr_parts_s": parts,
        "rlvr_step_gen_tok_s": rlvr_gen_tok_s, "trl_step_gen_tok_s": trl_gen_tok_s,
        "rlvr_tokens_per_step": med(results["rlvr_tokens"][w:]), "trl_tokens_per_step": med(results["trl_tokens"][w:]),
        "steps": args.steps, "warmup": args.warmup, "max_new_tokens": args.max_new_tokens,
        "trl_steps_s": results["trl"], "rlvr_steps_s": results["rlvr"],
        "rlvr_logprob_gap": results.get("logprob_gap", []),
    }
    print(f"\n[{mode}]")
    print(f"{'':28}{'rlvr':>12}{'TRL':>12}")
    print(f"{'median s/step':28}{rlvr_s:12.2f}{trl_s:12.2f}   speedup {out['speedup']:.2f}x")
    print(f"{'gen tok/s inside the step':28}{rlvr_gen_tok_s:12.0f}{trl_gen_tok_s:12.0f}")
    print(f"{'completion tokens/step':28}{out['rlvr_tokens_per_step']:12.0f}{out['trl_tokens_per_step']:12.0f}")
    print(f"{'memory growth in a step, MB':28}{out['rlvr_peak_mb']:12.0f}{out['trl_peak_mb']:12.0f}")
    print(f"engine vs model.generate: {gen_rates['rlvr']:.0f} vs {gen_rates['hf_generate']:.0f} tok/s "
          f"({out['gen_speedup']:.2f}x)")
    print("rlvr step parts (s): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    print(f"floor (s): generate {fl['generate']:.2f}, learn {fl['learn']:.2f}, optimizer {fl['optimizer']:.2f}, "
          f"total {fl['total']:.2f}; rlvr is {rlvr_s / fl['total']:.2f}x the floor")
    warm = out["warmup_s"]
    print(f"warm-up, left out of the medians (s): rlvr steps {warm['rlvr_steps']:.2f}, TRL steps "
          f"{warm['trl_steps']:.2f}, generation race " + ", ".join(f"{k} {v:.2f}" for k, v in gen_warm.items()))
    return out



# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="a Hugging Face checkpoint directory")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=4, help="timed steps each (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--gen-repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="rlvr's engine with compiled decode steps (CUDA graphs on a GPU), in the race and in the steps")
    ap.add_argument("--skip-zero-advantage", action="store_true",
                    help="rlvr's learner leaves zero-advantage completions out (its default in training; off here so "
                         "that both sides train on the same tokens)")
    ap.add_argument("--compile-learner", action="store_true",
                    help="rlvr's learner forward and backward through torch.compile (train.compile); its compiles "
                         "fall in the warm-up steps only if every bucket was met there")
    ap.add_argument("--micro-batch-tokens", type=int, default=0,
                    help="rlvr's length buckets (padded tokens per micro-batch); default 0, off: the whole batch in "
                         "one micro-batch, as the trainer's default (512, the old CPU default, split the headline's 16 "
                         "rows into 3 micro-batches, 1.26x slower at fixed and 1.23x at natural length on a 2-core "
                         "AVX-512 BF16 CPU: benchmarks/results/micro_batches.json)")
    ap.add_argument("--micro-batch-rows", type=int, default=0,
                    help="rows per learner micro-batch on both sides (default 0: the whole batch); the larger "
                         "setting's 64 rows in one batch run TRL out of memory on a 24 GiB machine")
    ap.add_argument("--gen-only", action="store_true", help="only the generation race (engine vs model.generate)")
    ap.add_argument("--quick", action="store_true", help="one timed step each and 16 new tokens: a check")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--mode", default="both", choices=["both", "fixed", "natural"],
                    help="fixed: every completion exactly --max-new-tokens (the headline); natural: stop at EOS")
    ap.add_argument("--rollout-weights", default="auto", choices=rollout_forms(),
                    help="rlvr's rollout weight form (rollout.weights); the headline keeps auto")
    ap.add_argument("--large", action="store_true", help="the larger setting: 8 prompts x 8, 256 new tokens")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: OMP_NUM_THREADS when set, else every core)")
    args = ap.parse_args(argv)
    if args.large:
        args.prompts, args.max_new_tokens = 8, 256
    if args.quick:
        args.steps, args.warmup, args.max_new_tokens, args.gen_repeats = 1, 0, 16, 1

    if not (Path(args.model) / "config.json").exists():
        die(f"no checkpoint at {args.model}; run `make smollm2` (or `make bench`, which does all the set-up)")
    try:
        import trl  # noqa: F401
    except ImportError:
        die("TRL is not installed; run `make bench` (it installs the `bench` extra: pip install -e '.[bench]')")

    from rlvr.models.loading import cpu_has_native_bf16, pick_device

    device = pick_device(args.device)
    args.device = device.type
    detected = args.dtype == "auto"
    if detected:
        native = device.type == "cuda" or cpu_has_native_bf16()
        args.dtype = "bfloat16" if native else "float32"
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"machine: {machine}; CPU flags: {' '.join(cpu_flags()) or 'none'}; torch threads {torch.get_num_threads()}")
    caps = isa_limits()
    if caps:
        # inductor's cache does not key its kernels on these caps: a graph compiled under them and run without
        # them (or the reverse) crashed here, so capped runs keep a cache of their own
        tag = "_".join(f"{k}-{v}" for k, v in sorted(caps.items()))
        if USER_INDUCTOR_CACHE is None:  # (imports may have set the variable to inductor's default since)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"torchinductor_{tag}")
        print(f"instruction sets capped: {caps}; inductor cache {os.environ['TORCHINDUCTOR_CACHE_DIR']}")
    print(f"dtype: {args.dtype} ({'detected: the fastest this hardware runs' if detected else 'forced'})")

    floor = measure_floor(device, dtype, args.quick)
    print(f"floor: matmul {floor['matmul_gflops']:.0f} GFLOP/s in {args.dtype}, memory {floor['bandwidth_gbs']:.1f} GB/s")

    modes = ["fixed", "natural"] if args.mode == "both" else [args.mode]
    runs = {m: run_mode(args, m, device, dtype, floor, machine) for m in modes}
    out = dict(runs[modes[0]])  # the headline (fixed-length unless only natural ran) keeps the top-level keys
    if len(modes) > 1:
        out[modes[1]] = runs[modes[1]]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
