"""Verifiable questions mined from documents (`rlvr questions`): read, split into passages, propose, filter.

Proposers: `rules.propose_rules` (offline, explicit numeric claims) and `llm.LLMProposer` (an
OpenAI-compatible endpoint or a local Hugging Face model). Filters: `filters.rejection`.
"""

from rlvr.tasks.questions.filters import FILTERS, Proposal
from rlvr.tasks.questions.pipeline import MiningReport, mine_questions, write_jsonl

__all__ = ["FILTERS", "MiningReport", "Proposal", "mine_questions", "write_jsonl"]
