"""Run configuration: YAML + `--set` overrides, and errors that name the key, what was given and what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rlvr
from rlvr.config import Config, ConfigError, load_config, parse_override, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _yaml(tmp_path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_then_overrides(tmp_path):
    path = _yaml(tmp_path, "train:\n  lr: 3e-3\n  steps: 7\nmodel:\n  hidden_size: 64\n")
    cfg = load_config(
        path,
        [
            "train.lr=3e-4",
            "rollout.num_generations=4",
            "eval.pass_k=[1, 2]",
            "eval.samples=2",
            "logging.progress=false",
        ],
    )
    assert cfg.train.lr == pytest.approx(0.0003) and isinstance(cfg.train.lr, float)
    assert cfg.train.steps == 7  # from the YAML, untouched by the overrides
    assert cfg.model.hidden_size == 64
    assert cfg.model.num_layers == Config().model.num_layers  # default
    assert cfg.rollout.num_generations == 4
    assert cfg.eval.pass_k == [1, 2]
    assert cfg.logging.progress is False


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    # YAML 1.1 reads `3e-3` as a string; the config must still see a number.
    cfg = load_config(_yaml(tmp_path, "train:\n  lr: 3e-3\npretrain:\n  lr: 1.0e-2\n"))
    assert cfg.train.lr == pytest.approx(3e-3)
    assert cfg.pretrain.lr == pytest.approx(1e-2)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train.lr=3e-4", ("train.lr", 0.0003)),
        ("train.lr=3.0e-4", ("train.lr", 0.0003)),
        ("train.steps=12", ("train.steps", 12)),
        ("model.path=null", ("model.path", None)),
        ("train.out_dir=runs/exp1", ("train.out_dir", "runs/exp1")),
        ("eval.pass_k=[1,4]", ("eval.pass_k", [1, 4])),
    ],
)
def test_parse_override(text, expected):
    key, value = parse_override(text)
    assert key == expected[0]
    assert value == expected[1] and type(value) is type(expected[1])


def test_ints_are_accepted_for_floats():
    cfg = load_config(None, ["train.lr=1"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.lr"])


def test_unknown_key_names_dotted_key_and_lists_allowed(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.lrr=0.1"])
    msg = str(e.value)
    assert "train.lrr" in msg
    for allowed in ("lr", "steps", "prompts_per_step", "checkpoint_every"):
        assert allowed in msg
    with pytest.raises(ConfigError, match=r"model\.hiden_size"):
        load_config(_yaml(tmp_path, "model:\n  hiden_size: 64\n"))
    with pytest.raises(ConfigError, match="'trainer'"):
        load_config(None, ["trainer.lr=0.1"])


@pytest.mark.parametrize(
    "override, key, what",
    [
        ("train.steps=abc", "train.steps", "integer"),
        ("train.steps=2.5", "train.steps", "integer"),
        ("train.steps=true", "train.steps", "integer"),
        ("train.lr=fast", "train.lr", "number"),
        ("logging.progress=3", "logging.progress", "true or false"),
        ("eval.pass_k=3", "eval.pass_k", "list"),
    ],
)
def test_wrong_type_names_the_key(override, key, what):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert key in str(e.value) and what in str(e.value)


def test_section_given_as_scalar():
    with pytest.raises(ConfigError, match="train"):
        load_config(None, ["train=3"])


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["train.steps=-1"], "train.steps"),
        (["pretrain.steps=-5"], "pretrain.steps"),
        (["rollout.top_p=0"], "rollout.top_p"),
        (["rollout.top_p=1.5"], "rollout.top_p"),
        (["rollout.temperature=-0.1"], "rollout.temperature"),
        (["rollout.num_generations=0"], "rollout.num_generations"),
        (["task.flaw_rate=0.6", "task.blind_spot=0.5"], "task.flaw_rate"),
        (["task.blind_spot=0"], "task.blind_spot"),
        (["train.max_verifier_error_rate=1.5"], "train.max_verifier_error_rate"),
        (["train.max_infra_error_rate=-0.1"], "train.max_infra_error_rate"),
        (["task.format_reward=1.0"], "task.format_reward"),
        (["train.lr=0"], "train.lr"),
        (["algorithm.clip_low=1.0"], "algorithm.clip_low"),
        (["algorithm.dual_clip=0.5"], "algorithm.dual_clip"),
        (["model.hidden_size=30", "model.num_heads=4"], "model.hidden_size"),
        (["eval.samples=2", "eval.pass_k=[1,4]"], "eval.pass_k[1]"),
        (["model.kind=hf"], "model.path"),
        (["algorithm.tis_cap=0.5"], "algorithm.tis_cap"),
        (["algorithm.seq_mask_cap=1.0"], "algorithm.seq_mask_cap"),
        (["algorithm.offpolicy_correction=maybe"], "algorithm.offpolicy_correction"),
        (["algorithm.seq_mask_reduce=max"], "algorithm.seq_mask_reduce"),
        (["rollout.weights=int4"], "rollout.weights"),
        (["rollout.ignore_eos=sometimes"], "rollout.ignore_eos"),
    ],
)
def test_impossible_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert key in str(e.value)


def test_flaw_rate_up_to_blind_spot_is_fine():
    cfg = load_config(None, ["task.flaw_rate=0.5", "task.blind_spot=0.5"])
    assert cfg.task.flaw_rate == cfg.task.blind_spot == 0.5


def test_choice_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["algorithm.name=foo"])
    msg = str(e.value)
    assert "algorithm.name" in msg and "'foo'" in msg
    for name in ("grpo", "dr_grpo", "dapo", "rloo", "gspo"):
        assert name in msg
    with pytest.raises(ConfigError, match=r"train\.scheduler.*constant.*cosine.*linear"):
        load_config(None, ["train.scheduler=step"])


def test_bare_on_off_choice_survives_yaml(tmp_path):
    # YAML 1.1 reads a bare `off` as false; a field whose choices are on/off takes it back as the word
    assert load_config(None, ["algorithm.offpolicy_correction=off"]).algorithm.offpolicy_correction == "off"
    assert load_config(None, ["algorithm.offpolicy_correction=on"]).algorithm.offpolicy_correction == "on"
    cfg = load_config(_yaml(tmp_path, "algorithm:\n  offpolicy_correction: off\n"), [])
    assert cfg.algorithm.offpolicy_correction == "off"
    with pytest.raises(ConfigError, match="rollout.weights: expected a string"):  # no on/off among its choices
        load_config(None, ["rollout.weights=off"])


def test_preset_fills_fields_and_explicit_values_win():
    cfg = load_config(None, ["algorithm.name=dapo"])
    assert cfg.algorithm.clip_high == pytest.approx(0.28) and cfg.algorithm.dynamic_sampling
    cfg = load_config(None, ["algorithm.name=dapo", "algorithm.clip_high=0.3"])
    assert cfg.algorithm.clip_high == pytest.approx(0.3)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_yaml(tmp_path, "train: [1,\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_yaml(tmp_path, "- 1\n- 2\n"))


def test_save_then_load_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "demo.yaml", ["train.lr=3e-5", "eval.pass_k=[1,2]", "eval.samples=4"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_demo_config_is_the_documented_run():
    cfg = load_config(CONFIGS / "demo.yaml")
    assert cfg.model.kind == "tiny" and cfg.task.name == "arithmetic"
    assert cfg.task.difficulty == 3 and cfg.task.flaw_rate == pytest.approx(0.3)
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.pretrain.lr == pytest.approx(3e-3)


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.glob("*.yaml")) + sorted(CONFIGS.glob("*.yml")), ids=lambda p: p.name
)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_negative_eval_length_is_refused():
    with pytest.raises(ConfigError, match=r"eval\.max_new_tokens"):
        load_config(None, ["eval.max_new_tokens=-5"])


@pytest.mark.parametrize("override, key", [
    ("distributed.rollout_workers=0", "distributed.rollout_workers"),
    ("distributed.learners=0", "distributed.learners"),
    ("distributed.worker_cpus=-1", "distributed.worker_cpus"),
    ("distributed.max_staleness=-1", "distributed.max_staleness"),
    ("distributed.backend=slurm", "distributed.backend"),
    ("distributed.sharding=zero3", "distributed.sharding"),
])
def test_bad_distributed_values_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=[override])


def test_async_needs_a_prefetch_and_fsdp_refuses_lora():
    with pytest.raises(ConfigError, match="distributed.prefetch_steps"):
        load_config(overrides=["distributed.async_rollouts=true", "distributed.prefetch_steps=0"])
    with pytest.raises(ConfigError, match="model.lora_r"):
        load_config(overrides=["distributed.sharding=fsdp", "model.lora_r=8"])
    cfg = load_config(overrides=["distributed.backend=ray"])
    assert (cfg.distributed.rollout_workers, cfg.distributed.learners, cfg.distributed.sharding) == (1, 1, "ddp")


def test_loading_a_config_imports_no_torch(tmp_path):
    """Reading a recipe (presets and choice lists included) must stay cheap: torch is never imported."""
    path = _yaml(tmp_path, "algorithm:\n  name: dapo\n")
    code = ("import sys, rlvr.config; cfg = rlvr.config.load_config(sys.argv[1], ['train.lr=3e-4']); "
            "assert cfg.algorithm.dynamic_sampling; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    root = str(Path(rlvr.__file__).resolve().parent.parent)  # this checkout's rlvr, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
