"""On CUDA: per-prompt seeded sampling gives each prompt the same group alone or in a batch (fp32, bf16 eager,
bf16 compiled). Run on the GPU machine after benchmarks/gpu_run.sh has written the random-weight SmolLM2
architecture to /tmp/rlvr_random_models/smollm2-135m (or pass another model directory):

    python benchmarks/seeded_sampling_gpu.py [MODEL_DIR]
"""

import sys

import torch
from transformers import AutoModelForCausalLM

from rlvr.rollout.base import SamplingParams
from rlvr.rollout.torch_engine import TorchEngine

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rlvr_random_models/smollm2-135m"
prompts = [[1, 200 + i, 300 + 7 * i] for i in range(6)]
seeds = [11 * i + 5 for i in range(6)]
sp = SamplingParams(n=4, max_new_tokens=24, temperature=1.0)
for dtype, compile in ((torch.float32, False), (torch.bfloat16, False), (torch.bfloat16, True)):
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=dtype).cuda()
    eng = TorchEngine(model, 0, "cuda", compile=compile)
    together = eng.generate(prompts, sp, seeds=seeds)
    alone = [eng.generate([p], sp, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    same = sum([c.token_ids for c in a] == [c.token_ids for c in b] for a, b in zip(together, alone))
    print(f"{dtype} compile={compile}: {same}/6 prompts' groups identical alone vs batched")
