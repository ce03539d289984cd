"""Documents -> passages -> proposals -> filters -> rows of a dataset file.

Each written row: `id`, `question`, `answer` (a number, `{"value", "unit"}` or text), `verifier`,
`answer_text` (as the passage has it), `source` (the document's path), `passage_index`, `passage` and
`proposer`. The file loads as a dataset task as it is (`task: {name: dataset, path: questions.jsonl}`,
the `verifier` column naming each row's verifier); add `template: "{passage}\\n\\nQuestion: {question}"` for
open-book questions.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.tasks.questions.documents import read_document, split_passages
from rlvr.tasks.questions.filters import FILTERS, Proposal, reference, rejection

Proposer = Callable[[str], list[Proposal]]


@dataclass
class MiningReport:
    """Counts of one `mine_questions` run (per document and in total)."""

    documents: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: Counter = field(default_factory=Counter)

    def total(self, key: str) -> int:
        return sum(d[key] for d in self.documents.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "passages": self.total("passages"),
            "proposals": self.total("proposals"),
            "accepted": self.total("accepted"),
            "rejected": {k: self.rejected[k] for k in FILTERS},
            "documents": self.documents,
        }


def row_for(proposal: Proposal, source: str, index: int, passage: str) -> dict[str, Any]:
    """The dataset row of an accepted proposal."""
    digest = hashlib.blake2b(f"{source}\0{index}\0{proposal.question}".encode(), digest_size=6).hexdigest()
    return {
        "id": f"q-{digest}",
        "question": proposal.question,
        "answer": reference(proposal),
        "verifier": proposal.verifier,
        "answer_text": proposal.answer,
        "source": source,
        "passage_index": index,
        "passage": passage,
        "proposer": proposal.proposer,
    }


def mine_questions(
    paths: Iterable[str | Path], proposer: Proposer, max_chars: int = 1000
) -> tuple[list[dict[str, Any]], MiningReport]:
    """Accepted question rows from every document and the report of what was proposed and filtered."""
    rows: list[dict[str, Any]] = []
    report = MiningReport()
    seen: set[str] = set()
    for path in paths:
        source = str(path)
        passages = split_passages(read_document(path), max_chars=max_chars)
        counts = {"passages": len(passages), "proposals": 0, "accepted": 0}
        for index, passage in enumerate(passages):
            for proposal in proposer(passage):
                counts["proposals"] += 1
                reason = rejection(proposal, passage, seen)
                if reason:
                    report.rejected[reason] += 1
                    continue
                counts["accepted"] += 1
                rows.append(row_for(proposal, source, index, passage))
        report.documents[source] = counts
    return rows, report


def write_jsonl(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Rows as JSON lines (UTF-8)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out
