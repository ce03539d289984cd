"""Dataset-file tasks: formats, field mapping, template, verifier, split, duplicates, and bad inputs."""

from __future__ import annotations

import json
import os

import pytest

from rlvr.config import load_config
from rlvr.tasks.datasets import DatasetTask, normalise_question
from rlvr.tasks.files import DatasetError
from rlvr.tasks.registry import build_task


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def sums(n=30):
    return [{"q": f"What is {i} + {i + 1}?", "a": str(2 * i + 1), "ref": f"r{i}"} for i in range(n)]


def test_jsonl_fields_template_and_verifier(tmp_path):
    path = write_jsonl(tmp_path / "sums.jsonl", sums())
    task = DatasetTask(
        path,
        fields={"question": "q", "answer": "a", "id": "ref"},
        verifier="integer",
        template="Q: {question} ({ref})\nA:",
        eval_size=5,
        held_out_share=0.2,
    )
    p = task.train_problem(0)
    assert p.prompt.startswith("Q: What is ") and p.prompt.endswith(")\nA:")
    assert p.meta["question"] == p.prompt and p.task == "dataset/sums" and p.id.startswith("dataset/sums-r")
    assert task.verify(p, f"<think>x</think><answer>{p.answer}</answer>").correct
    assert not task.verify(p, "<think>x</think><answer>-1</answer>").correct
    assert task.report.train + task.report.held_out == 30 and 0 < task.report.held_out < 30
    assert len(task.eval_problems()) == min(5, task.report.held_out)


def test_split_is_seeded_disjoint_and_independent_of_row_order(tmp_path):
    rows = sums(40)
    a = DatasetTask(
        write_jsonl(tmp_path / "a.jsonl", rows),
        fields={"question": "q", "answer": "a"},
        verifier="integer",
        eval_size=8,
        seed=1,
        held_out_share=0.2,
    )
    b = DatasetTask(
        write_jsonl(tmp_path / "b.jsonl", rows[::-1]),
        fields={"question": "q", "answer": "a"},
        verifier="integer",
        eval_size=8,
        seed=1,
        held_out_share=0.2,
    )
    c = DatasetTask(
        write_jsonl(tmp_path / "c.jsonl", rows),
        fields={"question": "q", "answer": "a"},
        verifier="integer",
        eval_size=8,
        seed=2,
        held_out_share=0.2,
    )
    held = {p.meta["key"] for p in a.eval_problems()}
    assert held == {p.meta["key"] for p in b.eval_problems()}
    assert held != {p.meta["key"] for p in c.eval_problems()}
    train = {a.train_problem(i).meta["key"] for i in range(64)}
    assert len(train) == 40 - len(a.held) and not train & held
    assert [a.train_problem(i).id for i in range(40)] == [a.train_problem(i).id for i in range(40)]


def test_exact_and_near_duplicates_are_removed_and_reported(tmp_path):
    rows = sums(20) + [
        {"q": "What is 3 + 4?", "a": "7"},  # exact duplicate of row 4
        {"q": "what is 3+4", "a": "7"},  # near duplicate
        {"q": "WHAT IS 5 + 6 ?", "a": "11"},  # near duplicate
    ]
    task = DatasetTask(
        write_jsonl(tmp_path / "d.jsonl", rows),
        fields={"question": "q", "answer": "a"},
        verifier="integer",
        eval_size=4,
    )
    assert (task.report.exact_duplicates, task.report.near_duplicates) == (1, 2)
    assert task.report.train + task.report.held_out == 20
    assert normalise_question("What is 2.5+3?") != normalise_question("What is 25+3?")
    assert normalise_question("What is 2-3?") != normalise_question("What is 2+3?")


def test_csv_parquet_and_datasets_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": f"Capital number {i}?", "answer": f"city{i}"} for i in range(12)]
    csv_path = tmp_path / "caps.csv"
    csv_path.write_text("question,answer\n" + "".join(f'"{r["question"]}",{r["answer"]}\n' for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "caps.parquet")
    for path in (csv_path, tmp_path / "caps.parquet"):
        task = DatasetTask(path, verifier="exact", eval_size=2)
        p = task.train_problem(0)
        assert task.verify(p, f"<answer>{p.answer.upper()}</answer>").correct
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "hf"))
    task = DatasetTask(tmp_path / "hf", verifier="exact", eval_size=2)
    assert task.report.rows == 12


def test_built_from_config(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", sums())
    cfg = load_config(
        base={
            "task": {
                "name": "dataset",
                "path": str(path),
                "fields": {"question": "q", "answer": "a"},
                "verifier": "numeric",
                "params": {"eval_size": 3, "held_out_share": 0.25},
            }
        }
    )
    task = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    assert task.held_out_share == 0.25 and len(task.eval_problems()) == min(3, len(task.held))
    assert len(task.eval_problems(200)) == len(task.held) > 0
    with pytest.raises(ValueError, match="task.params.bogus"):
        build_task(
            load_config(base={"task": {"name": "dataset", "path": str(path), "params": {"bogus": 1}}}).task
        )


# --- bad inputs: each names the file, the row and the field ---------------------------------------------


def load(path, **kw):
    kw = {"verifier": "integer", "eval_size": 1, **kw}
    return DatasetTask(path, **kw)


def test_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "1+1?", "answer": "2"}, {"question": "2+2?"}] * 2)
    with pytest.raises(DatasetError, match=r"m\.jsonl, row 2, field 'answer': missing or empty"):
        load(path)


def test_wrong_type(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl", [{"question": "1+1?", "answer": "2"}, {"question": ["x"], "answer": "2"}]
    )
    with pytest.raises(DatasetError, match=r"t\.jsonl, row 2, field 'question': expected a string, got list"):
        load(path)
    path = write_jsonl(tmp_path / "u.jsonl", [{"question": "1+1?", "answer": [2]}])
    with pytest.raises(DatasetError, match=r"u\.jsonl, row 1, field 'answer': expected .* got list"):
        load(path)
    path = write_jsonl(tmp_path / "v.jsonl", ['{"question": "1+1?", "answer": "2"}', "[1, 2]"])
    with pytest.raises(DatasetError, match=r"v\.jsonl, row 2: expected an object"):
        load(path)
    path = write_jsonl(tmp_path / "w.jsonl", ['{"question": "1+1?", "answer": "2"}', '{"question": '])
    with pytest.raises(DatasetError, match=r"w\.jsonl, row 2: not valid JSON"):
        load(path)


def test_empty_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match=r"e\.jsonl: holds no rows"):
        load(tmp_path / "e.jsonl")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DatasetError, match=r"e\.csv: holds no rows"):
        load(tmp_path / "e.csv")


def test_unparsable_answer(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"question": "1+1?", "answer": "2"}, {"question": "2+2?", "answer": "four"}]
    )
    with pytest.raises(
        DatasetError, match=r"p\.jsonl, row 2, field 'answer': verifier 'integer' cannot use 'four'"
    ):
        load(path)
    with pytest.raises(DatasetError, match=r"row 1, field 'answer': verifier 'numeric' cannot use"):
        load(
            write_jsonl(tmp_path / "n.jsonl", [{"question": "How far?", "answer": "a few metres"}]),
            verifier="numeric",
        )


def test_a_verifier_that_raises_on_the_reference_says_so(monkeypatch):
    from rlvr.tasks.answers import check_answer
    from rlvr.verifiers import VERIFIERS

    def broken(problem, text, format_reward=0.1):
        raise KeyError("units")

    monkeypatch.setitem(VERIFIERS, "exact", broken)
    assert check_answer("exact", "Paris") == "verifier 'exact' raised on 'Paris': raised KeyError: 'units'"


def test_the_format_style_reaches_the_rows_verifier_or_is_refused(tmp_path, monkeypatch):
    from rlvr.verifiers import VERIFIERS

    path = write_jsonl(tmp_path / "q.jsonl", [{"question": f"{i}+1?", "answer": str(i + 1)} for i in range(40)])
    task = load(path, verifier="integer", format_style="answer")
    p = task.eval_problems()[0]
    assert task.verify(p, "<answer>-1</answer>").reward == pytest.approx(0.1)  # wrong, closed: the format
    assert task.verify(p, f"<answer>{p.answer}</answer>").reward == pytest.approx(1.1)

    def no_style(problem, text, format_reward=0.1):
        return VERIFIERS["integer"](problem, text, format_reward=format_reward)

    monkeypatch.setitem(VERIFIERS, "plain", no_style)
    with pytest.raises(DatasetError, match="task.format_style: 'answer', but verifier 'plain' has no format"):
        plain = load(path, verifier="plain", format_style="answer")
        plain.verify(plain.eval_problems()[0], "<answer>1</answer>")


def test_one_gigabyte_line_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:  # a sparse file: 1 GB long, next to nothing on disk
        f.write(b'{"question": "1+1?", "answer": "2"}\n{"question": "')
        f.seek(2**30)
        f.write(b'", "answer": "2"}\n')
    assert os.path.getsize(path) > 2**30
    with pytest.raises(DatasetError, match=r"big\.jsonl, row 2: line is longer than 8,388,608 bytes"):
        load(path)
    csv_path = tmp_path / "big.csv"
    with csv_path.open("wb") as f:
        f.write(b"question,answer\n")
        f.seek(2**30)
        f.write(b",2\n")
    with pytest.raises(DatasetError, match=r"big\.csv, row 2: line is longer"):
        load(csv_path)


def test_skip_invalid_counts_and_keeps_going(tmp_path, caplog):
    rows = sums(10) + [{"q": "x?"}, {"q": 5, "a": "1"}, {"q": "y?", "a": "zz"}]
    task = DatasetTask(
        write_jsonl(tmp_path / "s.jsonl", rows),
        fields={"question": "q", "answer": "a"},
        verifier="integer",
        eval_size=2,
        skip_invalid=True,
    )
    assert task.report.invalid == 3 and task.report.train + task.report.held_out == 10
    assert "skipped 3 invalid rows" in caplog.text
    with pytest.raises(DatasetError, match="none of its 1 rows is usable"):
        load(write_jsonl(tmp_path / "bad.jsonl", [{"question": "x?"}]), skip_invalid=True)


def test_config_mistakes_name_the_key(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", sums())
    with pytest.raises(DatasetError, match="task.fields.query: unknown role"):
        load(path, fields={"query": "q"})
    with pytest.raises(DatasetError, match="task.template names {missing}"):
        load(path, fields={"question": "q", "answer": "a"}, template="{missing}")
    with pytest.raises(DatasetError, match="task.verifier: unknown verifier 'nope'"):
        load(path, verifier="nope")
    with pytest.raises(DatasetError, match="all 30 usable rows fall in the held-out share"):
        load(path, fields={"question": "q", "answer": "a"}, held_out_share=0.999999)
    with pytest.raises(DatasetError, match="held_out_share: must be in"):
        load(path, fields={"question": "q", "answer": "a"}, held_out_share=1.5)
    with pytest.raises(DatasetError, match="no such file"):
        load(tmp_path / "absent.jsonl")


def test_held_out_rows_do_not_depend_on_eval_size_or_eval_num_problems(tmp_path):
    """The held-out side of a row is fixed by its key and the seed: a run that trained with one
    eval_size (or eval.num_problems) and an evaluation that asks for another never share a row."""
    path = write_jsonl(tmp_path / "s.jsonl", sums(400))
    small = DatasetTask(path, fields={"question": "q", "answer": "a"}, verifier="integer", eval_size=3)
    cfg = load_config(
        base={
            "task": {
                "name": "dataset",
                "path": str(path),
                "fields": {"question": "q", "answer": "a"},
                "verifier": "integer",
            },
            "eval": {"num_problems": 40},
        }
    )
    large = build_task(cfg.task, eval_size=cfg.eval.num_problems)
    assert large.eval_size == 40 and small.eval_size == 3
    assert [r.question for r in small.held] == [r.question for r in large.held]
    trained = {small.train_problem(i).meta["key"] for i in range(len(small.train))}
    evaluated = {p.meta["key"] for p in large.eval_problems(1000)}
    assert evaluated and not trained & evaluated
    assert [p.meta["key"] for p in small.eval_problems()] == [p.meta["key"] for p in large.eval_problems(3)]
