"""Multi-turn episodes on the torch engine: decoding pauses at the end of a tool call, the environment answers,
and decoding resumes from the KV cache.

Every row of the batch (G samples of each prompt) is an episode of the environment. After each sampled
token, a row whose current turn ends (a pause string such as `</call>`, or a stop token) is paused; the
environment's `respond` runs for all rows paused at that step together, in threads (tools run concurrently,
python in the sandbox pool). A row that gets an observation feeds, in the next forward call, the token it
sampled followed by the observation's tokens, `feed_chunk` of them per forward call (a row still reading an
observation samples nothing meanwhile); the other live rows feed their one sampled token. The call is
as wide as the longest feed and each row's tokens sit at its right end, the columns before them masked out
of attention, so every row's last column gives its next token, positions count only real tokens, and what
each row attends to is exactly its own history: nothing is prefilled twice (`stats["fed_tokens"]` counts
the tokens that went through the model). Once masked columns pile up in the cache (every row gets as many
new columns as the widest feed), `compact_columns` moves each row's real columns together and drops the
rest. Rows whose episode ended leave the batch at once.

Observation tokens are kept in the completion with mask 0 and log-prob 0 (`Completion.mask`): the learner
trains on model-written tokens only. Sampling noise is drawn as the single-turn engine draws it (per prompt
seed, one draw per sampled token), so an episode in which no tool is called is the single-turn sample.
The cache is always dynamic here (rows grow by different amounts); episodes run within one `generate`
call, so they never span a training step.

`SamplingParams.ignore_eos` (fixed-length generation) holds here as in the single-turn engine: a stop token
is sampled like any other and ends neither a turn nor the episode, so a turn ends only at a pause string and
every episode runs to its token budget unless its environment ends it (after a tool call, e.g. at
`max_turns`) or an observation would not fit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import DynamicCache

from rlvr.environments.base import Environment, Episode
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.rollout.torch_engine import TorchEngine, sample_next, select_rows
from rlvr.types import EpisodeRecord


def with_environment(engine, environment: Environment, tokenizer):
    """`engine` itself for a single-turn environment (its own path, unchanged), else an `EpisodeEngine` over
    a torch engine or a `VLLMEpisodeEngine` over vLLM (in the trainer's process, or on each Ray rollout
    worker); an environment that drives the model itself (`drives_model`: verifiers) wraps the engine its
    own way."""
    if not environment.multi_turn:
        return engine
    if getattr(environment, "drives_model", False):  # its own program asks for the turns (verifiers)
        return environment.engine(engine, tokenizer)
    from rlvr.rollout.vllm_engine import VLLMEngine

    if isinstance(engine, VLLMEngine):  # a request per turn, the history's KV from vLLM's prefix cache
        from rlvr.rollout.vllm_episodes import VLLMEpisodeEngine

        return VLLMEpisodeEngine(engine, environment, tokenizer)
    if not isinstance(engine, TorchEngine):
        raise ValueError("task.tools: multi-turn episodes run on rollout.engine: torch or vllm, got "
                         f"{type(engine).__name__}")
    return EpisodeEngine(engine, environment, tokenizer)


def runs_episodes(engine) -> bool:
    """Whether `engine` opens an episode for every sample, and so takes the problems: an `EpisodeEngine`, a
    `VLLMEpisodeEngine`, or a Ray `RolloutPool` whose workers run one (each has the `environment` it runs)."""
    return getattr(engine, "environment", None) is not None


def generate_for(engine, problems, prompts: list[list[int]], sampling: SamplingParams,
                 generator: torch.Generator | None = None, seeds: list[int] | None = None) -> list[list[Completion]]:
    """`engine.generate`, opening each episode with its problem when `engine` runs episodes (any other engine
    takes prompts only)."""
    if runs_episodes(engine):
        return engine.generate(prompts, sampling, generator, seeds, problems=problems)
    return engine.generate(prompts, sampling, generator, **({} if seeds is None else {"seeds": seeds}))


def prompt_tools(engine) -> list[dict] | None:
    """The tool schemas prompts show the model when `engine` runs episodes of an environment that has them."""
    return engine.environment.prompt_tools if runs_episodes(engine) else None


def compact_columns(cache, mask: torch.Tensor) -> torch.Tensor:
    """Drop the cache columns that only padding fills: each row's real (mask 1) columns are moved, in order,
    to the right end of a cache as long as the longest row's real history, and the (B, L) mask to match.
    Exact: keys already carry their rotary positions and attention ignores the order of masked columns.
    Returns the new mask."""
    B, L = mask.shape
    keep = int(mask.sum(-1).max())
    idx = torch.argsort(mask, dim=1, stable=True)[:, L - keep:]  # per row: masked columns first, real ones last
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)  # (B, heads, L, head_dim)
            setattr(layer, name, t.gather(2, idx[:, None, :, None].expand(B, t.shape[1], keep, t.shape[3])))
    return mask.gather(1, idx)


def pause_end(text: str, new_chars: int, pauses) -> int | None:
    """Where in `text` a pause string ends, if it ends within the last `new_chars` characters (those of the
    token just sampled), else None. A token may run past the pause: SmolLM2's tokenizer writes
    `</call><result>` as `</`, `call`, `><`, ..., so a turn ends inside the token `><`."""
    ends = [i + len(p) for p in pauses if (i := text.rfind(p, max(0, len(text) - new_chars - len(p) + 1))) >= 0]
    return max(ends, default=None)


def segments(mask: list[int]) -> list[tuple[str, int, int]]:
    """Runs of model (1) and observation (0) tokens: [(role, start, end), ...]."""
    out: list[tuple[str, int, int]] = []
    for i, m in enumerate(mask):
        role = "model" if m else "observation"
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1], i + 1)
        else:
            out.append((role, i, i + 1))
    return out


def record_transcript(rec: EpisodeRecord, tokens: list[int], mask: list[int], tokenizer) -> None:
    """An episode's `segments` and `transcript` (the text of each run of model or observation tokens)."""
    rec.segments = segments(mask)
    rec.transcript = [(role, tokenizer.decode(tokens[a:b], skip_special_tokens=False)) for role, a, b in rec.segments]


class _Row:
    """One episode in the batch: what it has written and been told, and where its current turn began."""

    def __init__(self, episode: Episode, pos: int):
        self.episode = episode
        self.tokens: list[int] = []
        self.logps: list[float] = []
        self.mask: list[int] = []
        self.turn_start = 0
        self.pos = pos  # real tokens in the cache (positions count only these)
        self.reason = ""
        self.pending: list[int] = []  # tokens to feed: the last sampled one, then an observation's
        self.overrun = 0  # characters the turn's last token wrote past the pause string (left out of the turn)

    def completion(self, tokenizer) -> Completion:
        rec: EpisodeRecord = self.episode.record
        record_transcript(rec, self.tokens, self.mask, tokenizer)
        return Completion(self.tokens, self.logps, self.reason, list(self.mask), rec)

    def resume(self, obs: str | None, budget: int, stop: set[int], tokenizer) -> list[int] | None:
        """After a turn: end the episode (`obs` None) or append the observation (mask 0, log-prob 0);
        returns what the row feeds next (the token that ended its turn, then the observation), None when
        its episode ended (also when the observation would leave no room within `budget`)."""
        last = self.tokens[-1]
        if obs is None:
            self.reason = "stop" if last in stop else "length"
            return None
        obs_ids = tokenizer(obs, add_special_tokens=False)["input_ids"]
        if len(self.tokens) + len(obs_ids) >= budget:  # no room left for the model to read it and answer
            self.reason, self.episode.record.ended = "length", "length"
            return None
        self.tokens += obs_ids
        self.logps += [0.0] * len(obs_ids)
        self.mask += [0] * len(obs_ids)
        self.turn_start = len(self.tokens)
        return [last] + obs_ids


class OverEngine:
    """An engine that runs episodes over another (`self.engine`): the policy version, the weights and their
    form are that engine's."""

    engine = None

    @property
    def version(self) -> int:
        return self.engine.version

    @property
    def model(self) -> torch.nn.Module:
        """The module episodes are sampled from: the torch engine's (the learner's own when it shares it, so
        `rlvr.rollout.behaviour_differs` sees through the episodes to the weights)."""
        return self.engine.model

    @property
    def weights(self) -> str:
        return self.engine.weights

    def load_weights(self, state, version: int) -> None:
        self.engine.load_weights(state, version)


class EpisodeEngine(OverEngine):
    """The engine protocol over episodes of `environment`, sampling with a `TorchEngine`'s model."""

    def __init__(self, engine: TorchEngine, environment: Environment, tokenizer, workers: int = 8,
                 feed_chunk: int | None = None):
        self.engine, self.environment, self.tokenizer = engine, environment, tokenizer
        self.workers = workers
        # observation tokens a row feeds per forward call: on a CPU compute grows with the call's width, so one
        # (an observation is read at decoding pace, beside the other rows); on a GPU a wide call costs about as
        # much as a narrow one, so whole observations (benchmarks/episodes_throughput.py measures both)
        self.feed_chunk = feed_chunk or (1 if engine.device.type == "cpu" else 256)
        self.stats = {"fed_tokens": 0, "forward_calls": 0, "compactions": 0}
        tail = max((len(s) for s in environment.pause_strings), default=0)
        self._tail_tokens = tail + 4  # tokens decoded to find a pause string (each token is >= 1 character)

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None, problems: list | None = None) -> list[list[Completion]]:
        """The engine protocol's `generate`, each sample an episode; `problems` (one per prompt) open them
        (None: opened without, as from bare prompts)."""
        if not prompts or sampling.n < 1:
            return []
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"generate: {len(seeds)} seeds for {len(prompts)} prompts")
        model = self.engine.model
        was_training = model.training
        model.eval()
        try:
            with self.engine.decoding(len(prompts) * sampling.n):
                rows = self._decode(prompts, sampling, generator, seeds, problems or [None] * len(prompts))
        finally:
            model.train(was_training)
        n = sampling.n
        return [[rows[j].completion(self.tokenizer) for j in range(i * n, (i + 1) * n)] for i in range(len(prompts))]

    def _forward(self, cache, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        self.stats["forward_calls"] += 1
        self.stats["fed_tokens"] += int(mask[:, -ids.shape[1]:].sum())
        out = self.engine.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                                logits_to_keep=1, **{self.engine._cache_kw: cache})
        return out.logits[:, -1]

    def _turn_ended(self, row: _Row, stopped: bool) -> bool:
        """Whether the row's last token ends its turn: a stop token, or a pause string ending in that token
        (then `row.overrun` counts the token's characters past it)."""
        row.overrun = 0
        if stopped:
            return True
        tail = self.tokenizer.decode(row.tokens[-self._tail_tokens:], skip_special_tokens=False)
        before = self.tokenizer.decode(row.tokens[-self._tail_tokens:-1], skip_special_tokens=False)
        end = pause_end(tail, max(len(tail) - len(before), 1), self.environment.pause_strings)
        if end is None:
            return False
        row.overrun = len(tail) - end
        return True

    def _turn_text(self, row: _Row) -> str:
        """What the environment reads of the row's current turn: up to the end of its pause string."""
        text = self.tokenizer.decode(row.tokens[row.turn_start:], skip_special_tokens=False)
        return text[: len(text) - row.overrun]

    def _decode(self, prompts, sampling: SamplingParams, generator, seeds, problems) -> list[_Row]:
        eng, env = self.engine, self.environment
        dev, n, pad = eng.device, sampling.n, eng.pad_token_id
        U, P = len(prompts), max(len(p) for p in prompts)
        budget = min(env.max_tokens or sampling.max_new_tokens, sampling.max_new_tokens)
        ids = torch.full((U, P), pad, dtype=torch.long)
        mask = torch.zeros((U, P), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding, as in the single-turn engine
            ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, P - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        cache = DynamicCache()
        logits = self._forward(cache, ids, mask, (mask.cumsum(-1) - 1).clamp(min=0))  # (U, V)
        expand = torch.arange(U, device=dev).repeat_interleave(n)
        if n > 1:  # each prompt's cache is shared by its n samples
            select_rows(cache, expand)
            logits, mask = logits[expand], mask[expand]
        rows = [_Row(env.open(problems[j // n]), len(prompts[j // n])) for j in range(U * n)]
        live = list(range(U * n))
        stop = set() if sampling.ignore_eos else set(sampling.stop_token_ids)  # ignore_eos: only pauses end turns
        noise = None
        if seeds is not None and sampling.temperature > 0:
            gens = [torch.Generator(device=dev).manual_seed(int(s)) for s in seeds]

            def noise(idx: list[int]) -> torch.Tensor:  # every prompt draws (n,) per token, as the engine does
                return torch.cat([torch.rand(n, generator=g, device=dev) for g in gens])[idx]

        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rlvr-episode")
        try:
            while live:
                new, lp = sample_next(logits, sampling.temperature, sampling.top_p, generator,
                                      None if noise is None else noise(live))
                paused = []
                for k, j in enumerate(live):
                    row, t = rows[j], int(new[k])
                    if row.pending:  # still reading an observation: no token sampled this step
                        continue
                    row.tokens.append(t)
                    row.logps.append(float(lp[k]))
                    row.mask.append(1)
                    if self._turn_ended(row, t in stop):
                        paused.append(j)
                    elif len(row.tokens) >= budget:  # a turn cut by the budget: counted, never answered
                        row.reason, row.episode.record.ended = "length", "length"
                        row.episode.cut(self._turn_text(row))
                    else:
                        row.pending = [t]
                turns = [self._turn_text(rows[j]) for j in paused]
                for j, obs in zip(paused, pool.map(lambda a: rows[a[0]].episode.respond(a[1]), zip(paused, turns))):
                    rows[j].pending = rows[j].resume(obs, budget, stop, self.tokenizer) or []
                keep = [k for k, j in enumerate(live) if rows[j].pending]
                if not keep:
                    break
                if len(keep) < len(live):  # ended episodes leave the batch
                    idx = torch.tensor(keep, device=dev)
                    select_rows(cache, idx)
                    mask = mask[idx]
                    live = [live[k] for k in keep]
                logits, mask = self._step(cache, mask, [rows[j] for j in live], pad)
        finally:
            pool.shutdown(wait=True)
            for row in rows:
                row.episode.close()
        return rows

    def _step(self, cache, mask: torch.Tensor, rows: list[_Row], pad: int):
        """One forward call: each row feeds the next `feed_chunk` of its pending tokens, right-aligned in a call
        as wide as the longest feed (the columns before it masked), at the row's own positions. Returns the
        next logits (B, V) and the grown mask."""
        dev = mask.device
        feeds = []
        for row in rows:
            feeds.append(row.pending[: self.feed_chunk])
            row.pending = row.pending[self.feed_chunk:]
        B, W = len(feeds), max(len(f) for f in feeds)
        ids = torch.full((B, W), pad, dtype=torch.long)
        new_mask = torch.zeros((B, W), dtype=torch.long)
        pos = torch.zeros((B, W), dtype=torch.long)
        for b, (f, row) in enumerate(zip(feeds, rows)):
            ids[b, W - len(f):] = torch.tensor(f, dtype=torch.long)
            new_mask[b, W - len(f):] = 1
            pos[b, W - len(f):] = torch.arange(row.pos, row.pos + len(f))
            row.pos += len(f)
        if mask.shape[1] > 1.5 * int(mask.sum(-1).max()) + 16:  # padding columns pile up after observations
            mask = compact_columns(cache, mask)
            self.stats["compactions"] += 1
        mask = torch.cat([mask, new_mask.to(dev)], dim=1)
        return self._forward(cache, ids.to(dev), mask, pos.to(dev)), mask
