"""Checking the `task.tools` and `task.episode` sections before a run starts; errors name the field."""

from __future__ import annotations

from rlvr.environments.tools import BUILTIN_TOOLS, resolve


def check_episode_config(task_cfg, max_new_tokens: int) -> None:
    """Raise ValueError("task.<field>: what is wrong") for an unusable tool or episode limit."""
    e = task_cfg.episode
    for key, value, low in (("max_turns", e.max_turns, 1), ("max_tool_calls", e.max_tool_calls, 0),
                            ("max_tokens", e.max_tokens, 0), ("max_observation_chars", e.max_observation_chars, 1)):
        if value < low:
            raise ValueError(f"task.episode.{key}: must be >= {low}, got {value!r}")
    for key in ("tool_timeout_s", "env_timeout_s"):
        if not getattr(e, key) > 0:
            raise ValueError(f"task.episode.{key}: must be > 0 seconds, got {getattr(e, key)!r}")
    if e.max_tokens > max_new_tokens:
        raise ValueError(f"task.episode.max_tokens: must be <= rollout.max_new_tokens ({max_new_tokens}), "
                         f"got {e.max_tokens!r}")
    seen = set()
    for i, t in enumerate(task_cfg.tools):
        where = f"task.tools[{i}]"
        if not t.name or not t.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{where}.name: a tool needs a name of letters, digits, '_' or '-', got {t.name!r}")
        if t.name in seen:
            raise ValueError(f"{where}.name: tool {t.name!r} is listed twice")
        seen.add(t.name)
        if t.function is None:
            if t.name not in BUILTIN_TOOLS:
                raise ValueError(f"{where}.name: {t.name!r} is not a built-in tool ({', '.join(BUILTIN_TOOLS)}); "
                                 "a user tool sets function: module:function")
            if t.parameters or t.trusted:
                raise ValueError(f"{where}: built-in tool {t.name!r} takes no parameters or trusted")
            continue
        try:
            resolve(t.function)
        except ValueError as err:
            raise ValueError(f"{where}.function: {err}") from None
        p = t.parameters
        if p and (p.get("type") != "object" or not isinstance(p.get("properties", {}), dict)):
            raise ValueError(f"{where}.parameters: must be a JSON schema object "
                             '{"type": "object", "properties": {...}, "required": [...]}')
        missing = [r for r in p.get("required", []) if r not in p.get("properties", {})]
        if missing:
            raise ValueError(f"{where}.parameters.required: {missing[0]!r} is not among the properties")
