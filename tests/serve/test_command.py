"""`rlvr serve` (rlvr.commands.serve): the command serves a config's policy; a client gets tokens back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rlvr_serve_answers_over_http(tiny_recipe):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "serve", "--config", str(tiny_recipe()),
                             "--port", str(port), "--model-name", "tiny", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        for _ in range(600):  # up to a minute for the process to import torch and build the model
            if proc.poll() is not None:
                pytest.fail(f"rlvr serve exited: {proc.stdout.read()}")
            try:
                models = httpx.get(f"{url}/models").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("rlvr serve did not answer")
        assert [m["id"] for m in models["data"]] == ["tiny"]
        out = httpx.post(f"{url}/completions", json={"model": "tiny", "prompt": "1+1=", "max_tokens": 5, "seed": 0,
                                                      "logprobs": 0}).json()
        choice = out["choices"][0]
        assert len(choice["token_ids"]) == len(choice["logprobs"]["token_logprobs"]) >= 1
        assert choice["prompt_token_ids"] and choice["finish_reason"] in ("stop", "length")
        bad = httpx.post(f"{url}/completions", json={"model": "tiny", "prompt": "1", "temperature": -1})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
