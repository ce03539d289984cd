"""Rows from dataset files: JSONL, CSV, Parquet, and `datasets` directories (`save_to_disk`).

`read_rows(path)` yields `(row_number, row)` with `row_number` counted from 1 (the line of a JSONL file, the
record of a CSV after its header, the row of a Parquet file or `datasets` split). A row that cannot be read
raises `DatasetError` naming the file and row. No line or field may exceed `max_row_bytes`: text files are
read through a capped line reader, so a 1 GB line is refused after reading `max_row_bytes` of it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_MAX_ROW_BYTES = 8 * 2**20
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file, row and field."""


def where(path: str | Path, row: int | None = None, field: str | None = None) -> str:
    """`data.jsonl, row 3, field 'answer'` for error messages."""
    parts = (
        [str(path)] + ([f"row {row}"] if row is not None else []) + ([f"field {field!r}"] if field else [])
    )
    return ", ".join(parts)


def capped_lines(f: io.BufferedReader, path: Path, max_bytes: int) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) from a binary file; a line longer than `max_bytes` raises without
    being read whole."""
    number = 0
    while True:
        line = f.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not (len(line) == max_bytes + 1 and line.endswith(b"\n")):
            raise DatasetError(
                f"{where(path, number)}: line is longer than {max_bytes:,} bytes "
                "(raise task.params.max_row_bytes if that is intended)"
            )
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DatasetError(f"{where(path, number)}: not UTF-8 text ({e})") from e


def _jsonl(path: Path, max_bytes: int) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        for number, line in capped_lines(f, path, max_bytes):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(
                    f"{where(path, number)}: not valid JSON ({e.msg} at column {e.colno})"
                ) from e


def _csv(path: Path, max_bytes: int) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(max_bytes)
    with path.open("rb") as f:
        lines = (line for _, line in capped_lines(f, path, max_bytes))
        reader = csv.DictReader(lines)
        number = 0
        try:
            for number, row in enumerate(reader, start=1):
                if None in row:
                    raise DatasetError(f"{where(path, number)}: more values than the header has columns")
                yield number, row
        except csv.Error as e:
            raise DatasetError(f"{where(path, number + 1)}: not valid CSV ({e})") from e


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DatasetError(f"{path}: not a readable Parquet file ({e})") from e
    number = 0
    for batch in table.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _hf_dir(path: Path, split: str | None) -> Iterator[tuple[int, Any]]:
    try:
        import datasets
    except ImportError as e:
        raise DatasetError(f"{path}: reading a `datasets` directory needs `pip install datasets`") from e
    try:
        data = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - not a save_to_disk directory
        raise DatasetError(f"{path}: not a `datasets` directory written by save_to_disk ({e})") from e
    if isinstance(data, datasets.DatasetDict):
        name = split or ("train" if "train" in data else next(iter(data), None))
        if name not in data:
            raise DatasetError(
                f"{path}: no split {name!r}; splits: {', '.join(data)} (set task.params.split)"
            )
        data = data[name]
    yield from enumerate(data, start=1)


def file_format(path: Path) -> str:
    """'jsonl', 'csv', 'parquet' or 'hf' (a directory); raises for anything else."""
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DatasetError(
            f"{path}: unknown dataset format {suffix or '(no suffix)'!r}; "
            f"use {', '.join(FORMATS)} or a `datasets` directory"
        )
    return FORMATS[suffix]


def read_rows(
    path: str | Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, split: str | None = None
) -> Iterator[tuple[int, Any]]:
    """Every row of the dataset at `path` as `(row_number, row)`; rows are whatever the file holds
    (validation of their shape is the caller's)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory (task.path)")
    kind = file_format(path)
    if kind == "jsonl":
        yield from _jsonl(path, max_row_bytes)
    elif kind == "csv":
        yield from _csv(path, max_row_bytes)
    elif kind == "parquet":
        yield from _parquet(path)
    else:
        yield from _hf_dir(path, split)
