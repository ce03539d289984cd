import io
import math
import sys

from rlvr.logging.progress import Progress


def test_disabled_progress_prints_text_lines(capsys):
    with Progress(10, "rl", enabled=False) as progress:
        for step in range(1, 11):
            progress.update(step, {"reward/mean": 0.5, "accuracy": 0.25})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rl step  1/10  reward 0.500  acc 0.250")
    assert "step 10/10" in lines[-1] and "elapsed" in lines[-1] and "eta" in lines[-1]
    assert len(lines) == 10


def test_non_tty_prints_every_n_steps_and_the_last(capsys):
    assert not sys.stdout.isatty()  # pytest captures stdout
    with Progress(100, "pretrain") as progress:  # enabled, but no terminal
        for step in range(1, 101):
            progress.update(step, {"accuracy": step / 100})
    lines = capsys.readouterr().out.splitlines()
    assert 15 <= len(lines) <= 25
    assert "100/100" in lines[-1] and "acc 1.000" in lines[-1]
    assert "\x1b[" not in "".join(lines)  # plain text, no terminal escapes


def test_update_never_raises_on_odd_metrics(capsys):
    progress = Progress(4, "rl", enabled=False)  # used without `with`
    progress.update(1, {"reward/mean": "n/a", "accuracy": None})
    progress.update(2, {"reward/mean": math.nan})
    progress.update(3, None)
    progress.update(4, {"pretrain/loss": 1.25})  # what pretraining shows
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert "reward -  acc -" in lines[0] and "reward -" in lines[1]
    assert "reward" not in lines[2] and "3/4" in lines[2]
    assert "loss 1.250" in lines[3]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_tty_uses_a_rich_bar(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stdout", fake)
    with Progress(5, "rl") as progress:
        for step in range(1, 6):
            progress.update(step, {"reward/mean": 0.75, "accuracy": 0.5})
    out = fake.getvalue()
    assert "0.750" in out and "5/5" in out
