"""Adapters: the field's environment libraries in rlvr's loop, selected by `task.environment: <library>:<id>`
(options in `task.environment_options`; the `envs` extra installs the libraries).

- `skyrl_gym:<env id>`: SkyRL's Gymnasium-style text environments; problems come from the task as usual;
- `textarena:<game id>`: textarena's single-player games; problems are seeded games;
- `verifiers:<taskset id>`: verifiers environments, which drive the model through an OpenAI-compatible
  endpoint (rlvr.serve) themselves; problems are the taskset's tasks (`verifiers_env`).
Each model turn (up to its stop token) is the environment's action; what the environment says back is the
observation (masked from the loss); the environment's own reward scores the episode (`adapters.base`).
"""

from __future__ import annotations

import importlib.util

LIBRARIES = {"skyrl_gym": "skyrl_gym", "textarena": "textarena", "verifiers": "verifiers"}  # prefix -> module
EXTRA = {"verifiers": "verifiers"}  # the pip extra that installs a library (default: envs)


def parse_environment(spec: str) -> tuple[str, str]:
    """`library:env_id` -> (library, env_id); ValueError naming `task.environment` when it is not usable."""
    library, sep, env_id = (spec or "").partition(":")
    if not sep or not env_id:
        raise ValueError(f"task.environment: {spec!r} is not of the form <library>:<env id> "
                         f"(libraries: {', '.join(LIBRARIES)}), e.g. textarena:GuessTheNumber-v0")
    if library not in LIBRARIES:
        raise ValueError(f"task.environment: unknown library {library!r} in {spec!r}; adapters: {', '.join(LIBRARIES)}")
    if importlib.util.find_spec(LIBRARIES[library]) is None:
        raise ValueError(f"task.environment: {spec!r} needs the {library} package, which is not installed: "
                         f"pip install 'rlvr[{EXTRA.get(library, 'envs')}]'")
    return library, env_id


def check_environment_config(task_cfg) -> None:
    """Raise ValueError("task.<field>: ...") for an environment that cannot be built from `task_cfg`."""
    library, env_id = parse_environment(task_cfg.environment)
    if task_cfg.tools:
        raise ValueError("task.tools: an adapted environment (task.environment) answers the model's turns itself; "
                         "tools cannot be added to it")
    if not isinstance(task_cfg.environment_options, dict):
        raise ValueError(f"task.environment_options: must be a mapping, got {task_cfg.environment_options!r}")
    if library == "skyrl_gym":
        from rlvr.environments.adapters.skyrl_gym import check

        check(env_id, task_cfg.environment_options)
    elif library == "verifiers":
        from rlvr.environments.adapters.verifiers_env import env_config
        from rlvr.tasks.verifiers_tasks import check_options

        if task_cfg.path or task_cfg.mixture:
            raise ValueError("task.environment: a verifiers taskset is its own source of problems; "
                             "task.path and task.mixture cannot be set with it")
        check_options(task_cfg.environment_options)
        env_config(env_id, task_cfg.environment_options, task_cfg.episode.max_turns)
    else:
        from rlvr.tasks.textarena import make_game

        if task_cfg.path or task_cfg.mixture:
            raise ValueError("task.environment: a textarena game is its own source of problems; "
                             "task.path and task.mixture cannot be set with it")
        make_game(env_id, task_cfg.environment_options)


def build_adapter(task_cfg, tokenizer, max_new_tokens: int):
    """The `Environment` that `task.environment` names."""
    library, env_id = parse_environment(task_cfg.environment)
    e = task_cfg.episode
    args = (env_id, task_cfg.environment_options, tokenizer, e.max_turns,
            min(e.max_tokens or max_new_tokens, max_new_tokens), e.env_timeout_s)
    if library == "skyrl_gym":
        from rlvr.environments.adapters.skyrl_gym import SkyRLGymEnvironment

        return SkyRLGymEnvironment(*args)
    if library == "verifiers":
        from rlvr.environments.adapters.verifiers_env import VerifiersEnvironment

        return VerifiersEnvironment(*args[:5])  # its episodes run in verifiers' runtime: no per-step timeout
    from rlvr.environments.adapters.textarena import TextArenaEnvironment

    return TextArenaEnvironment(*args)
