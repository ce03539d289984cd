"""`rlvr questions PATHS... --out questions.jsonl`: verifiable questions mined from documents.

Reads .txt, .md, .html and .pdf files (gzip-compressed too; a directory means the files under it),
splits them into passages and asks a proposer for questions with short checkable answers: the offline
rule-based one by default, an OpenAI-compatible endpoint with `--endpoint URL --model NAME`, or a local
Hugging Face model with `--hf-model DIR`. Every proposal passes the filters of
`rlvr.tasks.questions.filters` before it is written; the counts are printed as JSON. The output is a
dataset file: `rlvr train` takes it as `task: {name: dataset, path: questions.jsonl}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlvr.config import ConfigError


def _documents(paths: list[str]) -> list[Path]:
    from rlvr.tasks.questions.documents import DocumentError, document_format

    out = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                try:
                    document_format(child)
                    out.append(child)
                except DocumentError:
                    continue
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"rlvr questions: {path}: no such file or directory")
    if not out:
        raise ConfigError("rlvr questions: no readable documents among " + ", ".join(paths))
    return out


def cmd_questions(args: argparse.Namespace) -> int:
    from rlvr.tasks.questions import mine_questions, write_jsonl
    from rlvr.tasks.questions.llm import LLMProposer, hf_complete, openai_complete
    from rlvr.tasks.questions.rules import propose_rules

    if args.endpoint and args.hf_model:
        raise ConfigError("rlvr questions: give --endpoint or --hf-model, not both")
    if args.endpoint:
        if not args.model:
            raise ConfigError("rlvr questions: --endpoint needs --model NAME")
        proposer = LLMProposer(
            openai_complete(args.endpoint, args.model, args.api_key_env, args.timeout),
            f"endpoint:{args.model}",
            args.per_passage,
        )
    elif args.hf_model:
        proposer = LLMProposer(hf_complete(args.hf_model), f"hf:{args.hf_model}", args.per_passage)
    else:
        proposer = propose_rules
    rows, report = mine_questions(_documents(args.paths), proposer, max_chars=args.max_chars)
    write_jsonl(rows, args.out)
    summary = {"out": str(args.out), **report.to_dict()}
    if hasattr(proposer, "failures"):
        summary["proposer_failures"] = proposer.failures
    print(json.dumps(summary, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("questions", help="mine verifiable questions from documents into a dataset file")
    p.add_argument("paths", nargs="+", help=".txt, .md, .html or .pdf files (or .gz of them), or directories")
    p.add_argument("--out", required=True, help="the JSONL file to write")
    p.add_argument("--endpoint", help="an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="the model name to ask at --endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--hf-model", help="a local Hugging Face model directory to propose with")
    p.add_argument("--per-passage", type=int, default=5, help="questions to ask an LLM for per passage")
    p.add_argument("--max-chars", type=int, default=1000, help="longest passage in characters")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the endpoint")
    p.set_defaults(func=cmd_questions)
