"""`rlvr report DIR1 DIR2 ...`: seeds of one run become one curve with a min-max band; other runs stay apart."""

from __future__ import annotations

from rlvr.config import Config, save_config
from rlvr.logging.compare import expand, group_series, render_compare
from rlvr.logging.metrics import MetricsLogger
from rlvr.logging.plots import Series


def _run(path, seed, lr=1e-4, shift=0.0):
    cfg = Config()
    cfg.train.seed = cfg.task.seed = seed
    cfg.train.lr = lr
    cfg.train.out_dir = str(path)
    path.mkdir()
    save_config(cfg, path / "config.yaml")
    with MetricsLogger(path) as logger:
        for step in range(1, 5):
            logger.log(step, {"phase": "rl", "reward/mean": step / 10 + shift, "format_rate": 0.5 + shift,
                              "response_length/mean": 20 + step})
        logger.log_eval(4, {"accuracy": 0.5 + shift})
    return path


def test_seeds_group_and_other_configs_do_not(tmp_path):
    a, b = _run(tmp_path / "run-s0", 0), _run(tmp_path / "run-s1", 1, shift=0.2)
    c = _run(tmp_path / "other", 0, lr=3e-4)
    keys = [key for key, _, _ in expand([a, b, c])]
    assert keys[0] == keys[1] != keys[2]
    html = render_compare([a, b, c])
    assert "run-s0" in html and "other" in html and html.count("<img") == 4  # no training-accuracy rows


def test_group_series_is_the_mean_with_a_min_max_band():
    one = Series("x", [1, 2, 3], [0.0, 1.0, 2.0])
    two = Series("x", [1, 2], [2.0, 3.0])
    merged = group_series("run", [one, two])
    assert merged.x == [1, 2] and merged.y == [1.0, 2.0]
    assert merged.band == ([0.0, 1.0], [2.0, 3.0])
    assert group_series("run", [one]).band is None
