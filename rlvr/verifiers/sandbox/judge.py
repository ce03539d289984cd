"""Turn what came back from one sandboxed run into a `RunResult`, and say whose fault a failure was.

The first line the harness writes on its private result pipe is `NONCE ack`, after every layer is set
up and before it looks at the candidate's code. No ack means the candidate never ran: the fault is the
sandbox's ("infra"). With the ack, everything that follows is the candidate's. In test mode only
nonce-bearing records count, and the final count must match the tests sent.
"""

from __future__ import annotations

import signal

from rlvr.verifiers.sandbox.job import Job, RunResult


def acked(result: bytes, nonce: str) -> bool:
    """Did the harness acknowledge the job (the first line of the result pipe)?"""
    return result.startswith(f"{nonce} ack\n".encode())


def text(data: bytes, limit: int = 4000) -> str:
    s = data.decode("utf-8", "replace")
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more characters]"


def judge(job: Job, out: dict, returncode: int | None, nonce: str, wall: float, cpu_s: float) -> RunResult:
    """The run's `RunResult` from its output `out` (stop reason, stdout, stderr, result pipe bytes)."""
    res = RunResult(
        "ok",
        returncode=returncode,
        stdout=out["stdout"].decode("utf-8", "replace"),
        stderr=text(out["stderr"]),
        wall_s=wall,
    )
    if not acked(out["result"], nonce):
        why = "did not start in time" if out["stop"] == "startup" else f"ended with status {returncode}"
        tail = out["stderr"].decode("utf-8", "replace").strip()[-300:]
        res.status, res.reason = (
            "infra",
            f"the sandbox never acknowledged the job: it {why}" + (f" ({tail})" if tail else ""),
        )
        return res
    stop = out["stop"]
    if stop == "timeout":
        res.status, res.reason = "timeout", f"wall-clock limit of {job.limits.wall_s:g}s exceeded"
    elif stop.startswith("output_limit"):
        stream = stop.split(":")[1]
        res.status, res.reason = "output_limit", f"{stream} exceeded {job.limits.max_output} bytes"
    elif cpu_s >= 0.95 * job.limits.cpu_s or returncode in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        res.status, res.reason = "killed", f"CPU time limit of {job.limits.cpu_s}s exceeded"
    elif returncode is not None and (returncode < 0 or 128 < returncode <= 192):
        # A launcher in between (bubblewrap, `unshare`) reports a child's death by signal as 128 + signal.
        signum = -returncode if returncode < 0 else returncode - 128
        sig = signal.Signals(signum).name if signum in signal.valid_signals() else signum
        res.status = "killed"
        res.reason = {"SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file size limit exceeded"}.get(
            str(sig), f"killed by {sig} (memory limit, CPU limit or the program itself)"
        )
    if job.units is None:
        if res.status == "ok" and returncode != 0:
            res.status, res.reason = "failed", f"exit status {returncode}"
        return res
    return _judge_tests(job, res, out["result"], nonce, returncode)


def _judge_tests(job: Job, res: RunResult, result: bytes, nonce: str, returncode: int | None) -> RunResult:
    expected = sum(1 for u in job.units if u["test"])
    records, done, syntax, conflicting = {}, None, None, False
    for line in result.decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 2 or parts[0] != nonce:
            continue
        if parts[1] == "done" and len(parts) == 4:
            conflicting |= done is not None
            done = (parts[2], parts[3])
        elif parts[1] == "syntax":
            syntax = " ".join(parts[2:])
        elif parts[1].isdigit() and len(parts) >= 3 and parts[2] in ("pass", "fail"):
            conflicting |= int(parts[1]) in records
            records.setdefault(int(parts[1]), (parts[2] == "pass", parts[3] if len(parts) == 4 else ""))
    res.tests = [records[i][0] if i in records else False for i in range(expected)]
    res.messages = [records[i][1] if i in records else "" for i in range(expected)]
    if syntax is not None:
        res.status, res.reason = "failed", f"candidate code does not compile: {syntax}"
        res.tests = [False] * expected
        return res
    # The harness writes each record once; two for one test means someone else knew the nonce.
    complete = (
        not conflicting
        and done is not None
        and done[1] == str(expected)
        and sorted(records) == list(range(expected))
    )
    if conflicting:
        res.tests = [False] * expected
    if res.status == "ok" and not complete:
        res.status = "incomplete"
        res.reason = f"the harness did not report all {expected} tests (exit status {returncode}); " + (
            "the candidate ended the process early" if done is None else "the report was inconsistent"
        )
    if res.status == "ok" and not all(res.tests):
        first = next(i for i, ok in enumerate(res.tests) if not ok)
        res.status, res.reason = "failed", f"test {first} failed: {res.messages[first]}"
    return res
