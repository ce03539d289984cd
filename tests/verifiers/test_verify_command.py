"""`rlvr verify`: the sub-command prints the Score as JSON and exits 0."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import pytest

from rlvr.commands import verify as command

from .helpers import code_answer, wrap


def cli(argv: list[str], stdin: str = "", monkeypatch=None) -> tuple[int, dict | None]:
    parser = argparse.ArgumentParser(prog="rlvr")
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *argv])
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    code = args.func(args)
    return code, (json.loads(out.getvalue()) if out.getvalue() else None)


def test_math_from_stdin(monkeypatch):
    code, score = cli(["math", "--answer", "0.5", "-"], wrap(r"\frac{1}{2}"), monkeypatch)
    assert code == 0 and score["correct"] and set(score) == {"reward", "correct", "formatted", "details"}


def test_completion_file_options_and_json_answers(tmp_path, monkeypatch):
    f = tmp_path / "c.txt"
    f.write_text("work\nFinal answer: 6*7")
    answer = json.dumps({"target": 42, "numbers": [6, 7]})
    code, score = cli(
        ["countdown", "--answer", answer, str(f), "--extract", "final_answer_line", "-o", "format_reward=0"],
        "",
        monkeypatch,
    )
    assert code == 0 and score["reward"] == 1.0


def test_code_with_a_tests_file(tmp_path, monkeypatch):
    (tmp_path / "t.py").write_text("assert inc(1) == 2\n")
    (tmp_path / "spec.json").write_text(json.dumps({"io": [{"input": "3", "output": "4"}]}))
    c = tmp_path / "c.txt"
    c.write_text(code_answer("def inc(x):\n    return x + 1"))
    code, score = cli(["code", "--answer", "inc", "--tests", str(tmp_path / "t.py"), str(c)], "", monkeypatch)
    assert code == 0 and score["correct"] and score["details"]["passed"] == 1
    c.write_text(code_answer("print(int(input()) + 1)"))
    code, score = cli(["code", "--tests", str(tmp_path / "spec.json"), str(c)], "", monkeypatch)
    assert score["correct"]


def test_a_wrong_answer_still_exits_zero_and_usage_errors_exit_two(monkeypatch, capsys):
    code, score = cli(["exact", "--answer", "Paris", "-"], wrap("London"), monkeypatch)
    assert code == 0 and score["reward"] == 0.1 and not score["correct"]
    code, score = cli(["nope", "--answer", "1", "-"], "", monkeypatch)
    assert code == 2 and score is None


@pytest.mark.parametrize("entry", [["-m", "rlvr.commands.verify"]])
def test_as_a_process(entry):
    out = subprocess.run(
        [sys.executable, *entry, "choice", "--answer", "B", "-"],
        input=wrap("(B)"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and json.loads(out.stdout)["correct"], out.stderr


def test_bad_options_and_missing_files_exit_two(monkeypatch, tmp_path):
    code, _ = cli(["numeric", "--answer", "1", "-o", "tolerance=1", "-"], wrap("1"), monkeypatch)
    assert code == 2
    code, _ = cli(["numeric", "--answer", "1", str(tmp_path / "missing.txt")], "", monkeypatch)
    assert code == 2


def test_a_sandbox_that_cannot_run_the_code_is_no_verdict(tmp_path, monkeypatch, capsys):
    """An infrastructure fault is exit status 3 and no Score: never a printed 0."""
    from rlvr.verifiers import sandbox

    tests = tmp_path / "t.py"
    tests.write_text("assert add(1, 2) == 3\n")
    sandbox.set_spawn_fault(lambda job, attempt: True)
    try:
        code, score = cli(
            ["code", "--answer", "add", "--tests", str(tests), "-"],
            code_answer("def add(a, b):\n    return a + b"),
            monkeypatch,
        )
    finally:
        sandbox.set_spawn_fault(None)
    assert code == 3 and score is None
    assert "not the candidate" in capsys.readouterr().err


def test_a_verifier_that_raises_is_no_verdict(monkeypatch, capsys):
    """The verifier's own fault (here: a countdown answer without a target) is exit status 4 and no Score."""
    code, score = cli(["countdown", "--answer", '{"numbers": [1, 2]}', "-"], wrap("1+2"), monkeypatch)
    assert code == 4 and score is None
    err = capsys.readouterr().err
    assert "verifier verify_countdown failed on problem countdown-cli: raised KeyError: 'target'" in err
