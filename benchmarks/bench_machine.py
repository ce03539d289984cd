"""The machine side of the rlvr-vs-TRL benchmark: CPU description, the floor (matrix-product rate and
memory bandwidth, and the step time they allow), peak memory, and counting generated tokens."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch


# --- machine -------------------------------------------------------------------------------------------
def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in have]


ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def isa_limits() -> dict[str, str]:
    """The environment's caps on the instruction sets the kernels use (PyTorch's own kernels and inductor's
    generated code, oneDNN, MKL): set, they run a CPU as an older one would (AVX2 on an AVX-512 CPU), with
    this CPU's clock, caches and memory. Empty when none is set."""
    return {k: os.environ[k] for k in ISA_LIMITS if os.environ.get(k)}


def cpu_name() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_floor(device: torch.device, dtype: torch.dtype, quick: bool) -> dict:
    """Matrix-product rate (GFLOP/s) in `dtype` and memory bandwidth (GB/s, bytes read + written)."""
    n = 8192 if device.type == "cuda" else (1024 if quick else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for i in range(6 if not quick else 3):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if i:
            times.append(time.perf_counter() - t)
    gflops = 2 * n**3 / statistics.median(times) / 1e9
    size = (2 << 30) if device.type == "cuda" else (256 << 20)
    x = torch.randn(size // 4, device=device)
    y = torch.empty_like(x)
    times = []
    for i in range(6 if not quick else 3):
        sync(device)
        t = time.perf_counter()
        y.copy_(x)
        sync(device)
        if i:
            times.append(time.perf_counter() - t)
    bw = 2 * size / statistics.median(times) / 1e9
    del a, b, x, y
    return {"matmul_gflops": gflops, "bandwidth_gbs": bw}


def floor_seconds(model: torch.nn.Module, floor: dict, prompt_len: int, lengths: list[int], trained: int,
                  dtype: torch.dtype, prompts: int) -> dict:
    """Step time the measured rate and bandwidth allow for this work.

    Generation: the prompt once (2 * N_mm FLOPs per token), then each decode step reads every weight once
    and does 2 * N_mm FLOPs per live row: max(arithmetic, weight bytes / bandwidth). Learning: forward and
    backward are 6 * N_body FLOPs per token, each prompt's tokens once (its completions can share one pass of
    it, as they share its cache in generation), plus 6 * N_head per completion token (the output layer runs on
    completion tokens only). A decode step's weights are counted in `dtype`, the headline's (what the
    engine's copy holds), not in the learner's fp32 masters: counting those doubled the bytes and made the
    floor lenient. AdamW reads weight, gradient and two moments and writes three: 28 bytes per fp32
    trainable parameter (counted in the trainable parameters' own dtype)."""
    rate, bw = floor["matmul_gflops"] * 1e9, floor["bandwidth_gbs"] * 1e9
    head = model.get_output_embeddings().weight.numel()
    embed = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    body = total - embed if model.config.tie_word_embeddings else total - embed - head
    n_mm = body + head
    elem = torch.finfo(dtype).bits // 8
    weight_bytes = n_mm * elem  # every weight a decode step reads (the body and the output layer), in `dtype`
    gen = 2 * n_mm * prompts * prompt_len / rate  # each prompt once: its samples share its cache
    for t in range(max(lengths, default=0)):
        live = sum(1 for n in lengths if n > t)
        gen += max(2 * n_mm * live / rate, weight_bytes / bw)
    tokens = prompts * prompt_len + sum(lengths)
    learn = 6 * (body * tokens + head * sum(lengths)) / rate
    master = next((p.element_size() for p in model.parameters() if p.requires_grad), elem)
    optim = trained * 7 * master / bw
    return {"generate": gen, "learn": learn, "optimizer": optim, "total": gen + learn + optim}


class PeakMemory:
    """Peak memory above the level at `__enter__`: the CUDA allocator's, or the process RSS sampled every 20 ms
    (on a CPU, memory the process already holds and reuses does not count: a growth, not a footprint)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peaks: list[float] = []

    def _rss(self) -> int:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = self.peak = self._rss()
            self.running = True

            def sample():
                while self.running:
                    self.peak = max(self.peak, self._rss())
                    time.sleep(0.02)

            self.thread = threading.Thread(target=sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.running = False
            self.thread.join()
            peak = max(self.peak, self._rss())
        self.peaks.append((peak - self.base) / 2**20)
        return False


def generated_lengths(out: torch.Tensor, prompt_len: int, eos: set[int]) -> list[int]:
    """Real tokens per row of a `generate` output: up to and including the first end-of-sequence token."""
    lengths = []
    for row in out[:, prompt_len:].tolist():
        n = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
        lengths.append(n)
    return lengths


def write_result(path: str | Path, out: dict) -> None:
    """Write a benchmark's results as JSON at `path` (its folder made), with the load average at the end of the
    run (what else the machine was doing), and say so."""
    out = {**out, "loadavg_end": Path("/proc/loadavg").read_text().split()[:3]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
