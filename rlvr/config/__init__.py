"""Run configuration: the schema (`schema.py`, one dataclass per section), its loading from YAML and
`--set a.b=c` overrides with checks that name the key (`loading.py`), and the algorithm presets as data
(`presets.py`). `import rlvr.config` imports no torch."""

from rlvr.config.loading import ConfigError, load_config, parse_override, save_config, validate
from rlvr.config.schema import (
    AlgorithmConfig,
    CheckConfig,
    Config,
    DistributedConfig,
    EvalConfig,
    LoggingConfig,
    ModelConfig,
    PretrainConfig,
    RolloutConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = [
    "AlgorithmConfig",
    "CheckConfig",
    "Config",
    "ConfigError",
    "DistributedConfig",
    "EvalConfig",
    "LoggingConfig",
    "ModelConfig",
    "PretrainConfig",
    "RolloutConfig",
    "TaskConfig",
    "TrainConfig",
    "load_config",
    "parse_override",
    "save_config",
    "validate",
]
