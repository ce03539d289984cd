"""`verifiers` environments in rlvr's loop (`task.environment: verifiers:<taskset id>`, verifiers 0.4).

A verifiers environment drives the model itself: its agent program (the harness) asks an OpenAI-compatible
endpoint for every model turn, and its tools, simulated users or game engine answer in between. So the
adapter wraps the rollout engine the other way round from the other adapters: `VerifiersEngine` serves the
engine behind rlvr's endpoint (rlvr.serve, in this process, on a background thread), opens one endpoint
session per sample (the trainer's sampling and seed, the episode's token budget), and runs the environment's
episodes against it (`Env.run_episode`, concurrently). The session keeps the episode's turns as one token
stream, recorded on the server side: the prompt the program sent, each model turn exactly as sampled with
its log-probs (mask 1), and the messages between turns rendered by the chat template (observations, mask 0).
The prompt is the program's own rendering of the task (`Completion.prompt_ids`).

Rewards are the environment's: the weighted sum of its trace's rewards (its rubric), through `score_sample`
like every adapter's (`EpisodeRecord.env_score`); `correct` when it reaches 1.0. A rollout that failed
(an error on its trace or episode, scoring that did not run), a history the program rewrote (not one
token stream), or an episode whose token budget ran out before it ended gives no reward and is counted.

Offline: the null harness (verifiers' tool-less chat loop, which also calls the taskset's MCP tools) runs as a
subprocess script whose dependencies verifiers itself has; verifiers would build a uv environment for it
(downloading uv and the packages). `use_this_interpreter` points verifiers' subprocess runtime at this
Python instead, so nothing is downloaded. Tasksets that ship their own harness keep it; the default
(`bash`, which executes model-written code) is replaced by `null`; every seat runs in the subprocess runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

from rlvr.environments.adapters.base import UNFINISHED
from rlvr.environments.base import Environment, Episode
from rlvr.models.loading import stop_token_ids
from rlvr.rollout.base import Completion, SamplingParams, sample_seed
from rlvr.rollout.episodes import OverEngine, record_transcript
from rlvr.tasks.verifiers_tasks import check_options, load_tasks, taskset_config
from rlvr.types import EpisodeRecord, Problem, Score

MODEL_NAME = "rlvr"


def use_this_interpreter() -> None:
    """Have verifiers' subprocess runtime run the chat-loop script with this Python (which has its
    dependencies: they are verifiers' own) instead of preparing a uv environment for it."""
    from verifiers.v1.harnesses.utils.launch import CHAT_PROGRAM_SOURCE
    from verifiers.v1.runtimes.subprocess import SubprocessRuntime

    data = CHAT_PROGRAM_SOURCE.encode()
    path = Path(SubprocessRuntime.scripts_dir) / f"{hashlib.sha256(data).hexdigest()}.py"
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    SubprocessRuntime._interpreters[str(path)] = sys.executable


def env_config(env_id: str, options: dict[str, Any], max_turns: int):
    """The environment's config: `options["env"]` over the taskset's, each seat in the subprocess runtime,
    with the null harness unless the taskset ships its own, and rlvr's `max_turns` unless the seat sets one."""
    import verifiers.v1 as vf
    from verifiers.v1.configs.agent import agent_config_fields
    from verifiers.v1.harnesses.null.harness import NullHarnessConfig
    from verifiers.v1.runtimes.subprocess import SubprocessConfig

    taskset = taskset_config(env_id, options).model_dump()
    try:
        cfg = vf.resolve_env_config({**options.get("env", {}), "taskset": taskset})
    except Exception as e:  # noqa: BLE001 - pydantic's message names the field
        raise ValueError(f"task.environment_options.env: {e}") from None
    own = vf.default_harness_id(env_id) != "bash"
    for name, seat in agent_config_fields(cfg).items():
        update: dict[str, Any] = {"runtime": SubprocessConfig()}
        if seat.harness is None and not own:
            update["harness"] = NullHarnessConfig(id="null")
        if seat.max_turns is None:
            update["max_turns"] = max_turns
        setattr(cfg, name, seat.model_copy(update=update))
    return cfg


class VerifiersEnvironment(Environment):
    """The adapter's `Environment`: it opens no rlvr episodes (the environment's program drives the model);
    `with_environment` hands it the engine, which it wraps in a `VerifiersEngine`."""

    drives_model = True

    def __init__(self, env_id: str, options: dict[str, Any], tokenizer, max_turns: int, max_tokens: int | None):
        check_options(options)
        self.spec, self.env_id, self.options = f"verifiers:{env_id}", env_id, dict(options)
        self.max_turns, self.max_tokens = max_turns, max_tokens
        self.max_concurrent = int(options.get("max_concurrent", 8))
        env_config(env_id, self.options, max_turns)  # a bad taskset, option or env field fails here, named

    def open(self, problem: Problem | None) -> Episode:
        raise TypeError(f"{self.spec}: a verifiers environment drives the model itself; its episodes run through "
                        "VerifiersEngine (rlvr.rollout.episodes.with_environment), not Environment.open")

    def engine(self, engine, tokenizer) -> VerifiersEngine:
        return VerifiersEngine(engine, self, tokenizer)


class VerifiersEngine(OverEngine):
    """The engine protocol over a verifiers environment's episodes, sampling with `engine` behind rlvr's
    endpoint; `problems` (VerifiersTask's) name the tasks."""

    def __init__(self, engine, environment: VerifiersEnvironment, tokenizer):
        from rlvr.serve.app import EngineServer

        self.engine, self.environment, self.tokenizer = engine, environment, tokenizer
        model = getattr(engine, "model", None)
        max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 32768
        self.server = EngineServer(engine, tokenizer, MODEL_NAME, stop_token_ids(tokenizer), max_len)
        self.http = None  # the endpoint's thread, started at the first episode
        self._env = None

    def load_weights(self, state, version: int) -> None:
        self.server.load_weights(state, version)  # between two of the endpoint's batches

    def close(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None

    def vf_env(self):
        if self._env is None:
            import verifiers.v1 as vf

            use_this_interpreter()
            env = self.environment
            self._env = vf.load_environment(env_config(env.env_id, env.options, env.max_turns))
        return self._env

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None, problems: list | None = None) -> list[list[Completion]]:
        """`sampling.n` episodes of each problem's task; sample j of prompt i is seeded with
        `sample_seed(seeds[i], j)` (or from `generator`), so its turns do not depend on the others'."""
        if not prompts or sampling.n < 1:
            return []
        if not problems or any(p is None or "verifiers_index" not in p.meta for p in problems):
            raise ValueError(f"{self.environment.spec}: episodes open from verifiers problems (task.environment "
                             "makes the taskset the source of problems)")
        if self.http is None:
            from rlvr.serve.app import ServerThread

            self.http = ServerThread(self.server)
        env, n = self.environment, sampling.n
        budget = min(env.max_tokens or sampling.max_new_tokens, sampling.max_new_tokens)
        tasks = load_tasks(env.env_id, env.options)
        plan = []
        for i, problem in enumerate(problems):
            for j in range(n):
                seed = (sample_seed(seeds[i], j) if seeds is not None
                        else int(torch.randint(0, 2**62, (1,), generator=generator)))
                sid = self.server.open_session(seed, sampling.temperature, sampling.top_p, budget)
                plan.append((tasks[problem.meta["verifiers_index"]], sid))
        episodes = asyncio.run(self._run(plan, sampling, budget))
        out = []
        for (_, sid), episode in zip(plan, episodes):
            out.append(self.completion(self.server.sessions.close(sid), episode))
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]

    async def _run(self, plan, sampling: SamplingParams, budget: int) -> list:
        import verifiers.v1 as vf

        env = self.vf_env()
        gate = asyncio.Semaphore(self.environment.max_concurrent)
        top_p = sampling.top_p if sampling.temperature > 0 else 1.0

        async def one(task, sid):
            ctx = vf.ModelContext(model=MODEL_NAME, client=vf.EvalClientConfig(base_url=self.http.session_url(sid),
                                                                                api_key_var="RLVR_SERVE_API_KEY"),
                                  sampling=vf.Sampling(temperature=sampling.temperature, top_p=top_p,
                                                       max_tokens=budget))
            async with gate:
                return await env.run_episode(task, ctx)

        async with env.serving():
            return await asyncio.gather(*(one(task, sid) for task, sid in plan), return_exceptions=True)

    def completion(self, session, episode) -> Completion:
        """The sample of one episode: its session's token stream (model turns mask 1, what came between them
        mask 0) and the environment's verdict on its record."""
        tokens: list[int] = []
        logprobs: list[float] = []
        mask: list[int] = []
        turns = session.turns
        end = len(turns[0].prompt_ids) if turns else 0
        for t in turns:
            between = t.prompt_ids[end:] if session.broken is None else []
            tokens += between + t.completion_ids
            logprobs += [0.0] * len(between) + t.logprobs
            mask += [0] * len(between) + [1] * len(t.completion_ids)
            end = len(t.prompt_ids) + len(t.completion_ids)
        rec = EpisodeRecord(turns=len(turns), env_scored=True)
        record_transcript(rec, tokens, mask, self.tokenizer)
        rec.env_score, rec.env_error = self.verdict(session, episode)
        rec.ended = "done" if rec.env_score is not None else ("length" if session.spent else "env_error")
        finish = turns[-1].finish_reason if turns else "length"
        return Completion(tokens, logprobs, finish, mask, rec, prompt_ids=turns[0].prompt_ids if turns else None)

    def verdict(self, session, episode) -> tuple[Score | None, str | None]:
        """(the environment's score, None), or (None, why it gave none)."""
        spec = self.environment.spec
        if isinstance(episode, BaseException):
            return None, f"the environment raised {type(episode).__name__}: {episode}"
        if session.broken:
            return None, f"not one token stream: {session.broken}"
        if session.spent:
            return None, UNFINISHED
        errors = list(episode.errors) + [e for t in episode.traces for e in t.errors]
        if not episode.ok or errors:
            first = errors[0] if errors else None
            why = f"{first.type}: {first.message}" if first is not None else "the rollout did not complete"
            return None, f"the environment's rollout failed ({why})"
        rewards = {f"{getattr(t.agent, 'name', None) or 'agent'}/{k}" if len(episode.traces) > 1 else k: r
                   for t in episode.traces for k, r in t.rewards.items()}
        if not rewards or any(r is None for r in rewards.values()):
            return None, "the environment's scoring did not run (no reward recorded)"
        reward = sum(r.value for r in rewards.values())
        return Score(reward, reward >= 1.0, True, {"environment": spec, "turns": len(session.turns),
                                                    "rewards": {k: r.value for k, r in rewards.items()}}), None
