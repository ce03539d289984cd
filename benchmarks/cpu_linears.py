"""The linear layers of one CPU decode step, kernel against kernel: which rollout weight form pays on this CPU.

    python benchmarks/cpu_linears.py [--model models/smollm2-135m-instruct] [--rows 16 64] [--rounds 3]
                                     [--threads 1] [--json benchmarks/results/cpu_linears.json]

A decode step of `rows` rows runs every linear layer of the model once, in order, each on a (rows, in) input:
the model's real weights (their shapes and sizes, read from memory as decode reads them, not the same small
matrix again from cache, which flatters every kernel by 2x or more). Arms, each over all of the model's linear
layers and the output layer:

- `fp32` / `bf16`: `F.linear` on the weight in that dtype (the model's own kernels; `model.generate` runs these);
- `fp32-packed` / `bf16-packed`: oneDNN's product on a weight reordered once into its blocked layout
  (`rollout.cpu_kernels`, rlvr.rollout.cpu_kernels; bf16 only where oneDNN packs it: AVX-512 or AVX-NE-CONVERT,
  left out and said so elsewhere);
- `fp32-mkl`: MKL's packed single-precision product (`torch.ops.mkl._mkl_reorder_linear_weight` once, then
  `_mkl_linear`: `cblas_sgemm_compute` on a weight packed for the row count, what inductor packs fp32 weights
  into where torch has MKL);
- `int8`: weight-only int8 with per-channel scales and bf16 activations, the kernel torchao's
  `Int8WeightOnlyConfig` dispatches to on a CPU (`aten._weight_int8pack_mm`; `rollout.weights: int8`);
- `w8a8`: int8 weights and each input row quantised to int8 as the product runs, on oneDNN's int8 product
  (VNNI / AMX-INT8; `rollout.weights: w8a8`, rlvr.rollout.cpu_kernels), the quantisation counted, as the eager
  engine runs it; `w8a8-product`: the same product on rows quantised beforehand (a compiled decode step fuses
  the quantisation into the ops before each product);
- `bf16-read`: no product, a sum over each bf16 weight: the rate at which this core reads the weights from
  memory, what a bandwidth-bound decode step cannot beat.

Each arm's packing (what a weight sync redoes: oneDNN's reorder, int8 quantisation) is timed once per row count.

Each round runs every arm once, the order turning each round; the first round warms up and is left out.
Printed per row count: ms per decode step (all products), GFLOP/s, and each arm's speed against `fp32`, with
the CPU's flags: on a CPU without native bf16 (AVX2 only) bf16 products are emulated, so the fp32 arms are the
machine's own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_machine import cpu_flags, cpu_name, write_result  # noqa: E402

from rlvr.rollout.cpu_kernels import int8_product, pack_int8, packs, packs_int8, quantize_rows, run_int8  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("fp32", "fp32-packed", "fp32-mkl", "bf16", "bf16-packed", "int8", "w8a8", "w8a8-product", "bf16-read")


def linear_weights(model_dir: str) -> list[torch.Tensor]:
    """Every linear layer's weight of the checkpoint, in the order a decode step uses them, the output layer
    last (fp32)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    weights = [m.weight.detach() for m in model.modules() if type(m) is torch.nn.Linear]
    head = model.get_output_embeddings().weight.detach()
    if all(w.data_ptr() != head.data_ptr() for w in weights):  # the head is listed once, tied or not
        weights.append(head)
    return weights


def prepare(arm: str, weights: list[torch.Tensor], rows: int) -> list:
    """Each weight in the form `arm` multiplies with."""
    if arm == "fp32":
        return [w.contiguous() for w in weights]
    if arm in ("bf16", "bf16-read"):
        return [w.to(torch.bfloat16) for w in weights]
    if arm in ("fp32-packed", "bf16-packed"):
        dtype = torch.float32 if arm == "fp32-packed" else torch.bfloat16
        return [torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), rows) for w in weights]
    if arm == "fp32-mkl":
        return [(torch.ops.mkl._mkl_reorder_linear_weight(w.contiguous(), rows), w.contiguous()) for w in weights]
    if arm in ("w8a8", "w8a8-product"):
        return [pack_int8(w, rows) for w in weights]
    if arm == "int8":
        out = []
        for w in weights:
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
            out.append(((w / scale[:, None]).round().clamp(-127, 127).to(torch.int8), scale.to(torch.bfloat16)))
        return out
    raise ValueError(f"unknown arm {arm}")


def product(arm: str, x: torch.Tensor, w) -> torch.Tensor:
    if arm in ("fp32", "bf16"):
        return F.linear(x, w)
    if arm == "bf16-read":
        return w.sum()
    if arm in ("fp32-packed", "bf16-packed"):
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    if arm == "fp32-mkl":
        return torch.ops.mkl._mkl_linear(x, w[0], w[1], None, x.shape[0])
    if arm == "w8a8":
        return run_int8(x, w, None)
    if arm == "w8a8-product":
        return int8_product(*x, w, None)
    return torch.ops.aten._weight_int8pack_mm(x, *w)


def decode_step(arm: str, inputs: list[torch.Tensor], prepared: list) -> None:
    for x, w in zip(inputs, prepared):
        product(arm, x, w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--rows", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    ap.add_argument("--steps", type=int, default=3, help="decode steps per arm per round")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cpu_linears.json"))
    args = ap.parse_args(argv)
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"cpu_linears: no checkpoint at {args.model}; run `make smollm2`")
    if not torch.backends.mkldnn.is_available():
        raise SystemExit("cpu_linears: this torch build has no oneDNN")
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    print(f"machine: {cpu_name()}; CPU flags: {' '.join(flags) or 'none'}; torch threads {torch.get_num_threads()}")
    arms = [a for a in args.arms if (a != "bf16-packed" or packs(torch.bfloat16)) and (a != "fp32-mkl" or torch._C.has_mkl)
            and (not a.startswith("w8a8") or packs_int8())]
    if any(a.startswith("w8a8") for a in args.arms) and not packs_int8():
        print("w8a8 left out: oneDNN's int8 product does not run on this CPU")
    if "fp32-mkl" in args.arms and "fp32-mkl" not in arms:
        print("fp32-mkl left out: this torch build has no MKL")
    if "bf16-packed" in args.arms and "bf16-packed" not in arms:
        print("bf16-packed left out: oneDNN does not pack bf16 weights on this CPU (no AVX-512 or AVX-NE-CONVERT)")
    weights = linear_weights(args.model)
    params = sum(w.numel() for w in weights)
    out: dict = {"machine": cpu_name(), "cpu_flags": flags, "threads": torch.get_num_threads(),
                 "linear_params": params, "layers": len(weights), "arms": arms, "rows": {}}
    for rows in args.rows:
        gflop = 2 * rows * params / 1e9
        prepared, pack_s = {}, {}
        for arm in arms:
            t0 = time.perf_counter()
            prepared[arm] = prepare(arm, weights, rows)
            pack_s[arm] = time.perf_counter() - t0
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        for r in range(args.rounds + 1):
            order = arms[r % len(arms):] + arms[:r % len(arms)]
            for arm in order:
                dtype = torch.float32 if arm.startswith("fp32") else torch.bfloat16
                inputs = [torch.randn(rows, w.shape[1]).to(dtype) for w in weights]
                if arm == "w8a8-product":
                    inputs = [quantize_rows(x) for x in inputs]
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    decode_step(arm, inputs, prepared[arm])
                dt = (time.perf_counter() - t0) / args.steps
                if r:
                    times[arm].append(dt)
        med = {arm: statistics.median(v) for arm, v in times.items()}
        base = med.get("fp32")
        row = {"ms_per_step": {a: 1000 * v for a, v in med.items()},
               "gflop_s": {a: gflop / v for a, v in med.items()},
               "speed_vs_fp32": {a: base / v for a, v in med.items()} if base else None,
               "ms_per_step_rounds": {a: [1000 * t for t in v] for a, v in times.items()}, "pack_s": pack_s}
        out["rows"][str(rows)] = row
        print(f"{rows} rows, {gflop:.2f} GFLOP a step:")
        for arm in arms:
            vs = f", {base / med[arm]:.2f}x fp32" if base else ""
            print(f"  {arm:12s} {1000 * med[arm]:7.1f} ms/step  {gflop / med[arm]:5.1f} GFLOP/s{vs}  "
                  f"(packing {pack_s[arm]:.2f} s)", flush=True)
        del prepared
    write_result(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
