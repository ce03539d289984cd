"""What a sandbox run is asked to do (`Job`, `Limits`) and what came of it (`RunResult`), and whose fault
a failure was.

A run fails either through the candidate (it ran, and then crashed, timed out, exited early...) or
through the sandbox (the process never started, or the harness never acknowledged the job before the
candidate's code began). Only the second is `"infra"`; it is decided on evidence the candidate cannot
produce, because its code has not run yet. The code verifier raises `InfraError` for it, so that such a
sample is left out of training instead of being scored 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Statuses where the candidate ran and the outcome is its own doing.
CANDIDATE_STATUSES = ("failed", "timeout", "output_limit", "killed", "incomplete")


class InfraError(RuntimeError):
    """The sandbox could not run a candidate (after retries): a fault of the host, never of the
    candidate. A trainer leaves the sample out (and counts it) instead of scoring it 0."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution. Units: seconds, MiB, bytes for `max_output` (per stream).

    `wall_s` counts from the harness's acknowledgement, so a slow start on a loaded host is not the
    candidate's time; `startup_s` bounds that start (past it the run is an infrastructure fault).
    `max_procs` counts only the run's own processes and threads (see `isolation()["process_limit"]`)."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_mb: int = 16
    max_procs: int = 32
    max_files: int = 64
    max_output: int = 1 << 20
    startup_s: float = 30.0


@dataclass
class Job:
    """What to run. Script mode (`units is None`): `code` runs as `__main__` with `stdin`. Test mode:
    `code` is loaded, then each unit `{"src": str, "test": bool}` runs in order (see `harness.py`);
    `entry_point` names the function the tests call `candidate`. `read_only`: host paths the run may
    read, bound read-only at the same place (nothing else of the host's files is visible)."""

    code: str
    stdin: str = ""
    units: list[dict] | None = None
    entry_point: str | None = None
    plain_returns: bool = True
    limits: Limits = field(default_factory=Limits)
    guard: bool = True  # the in-interpreter audit hook; off only to test the OS-level layers
    read_only: tuple[str, ...] = ()


@dataclass
class RunResult:
    """Outcome of one execution.

    `status`, and whose fault it is (`fault`):
    - "ok" (nobody's): ran to the end: exit 0 in script mode; an authenticated, complete report in test mode;
    - the candidate's: "failed" (exit non-zero / some test failed), "timeout", "output_limit", "killed"
      (by a signal: CPU or memory limit, or an attack on itself), "incomplete" (test mode: no valid
      complete report);
    - "infra" (the sandbox's): the process never started or the harness never acknowledged the job,
      after `attempts` tries. `tests` holds one bool per test (test mode); `slot` is the node pool slot."""

    status: str
    reason: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    tests: list[bool] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    attempts: int = 1
    slot: int | None = None

    @property
    def passed(self) -> int:
        return sum(self.tests)

    @property
    def fault(self) -> str:
        """ "none", "candidate" or "infra"."""
        if self.status == "ok":
            return "none"
        return "infra" if self.status == "infra" else "candidate"

    def to_dict(self) -> dict:
        return {**asdict(self), "fault": self.fault}
