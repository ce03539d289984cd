"""The offline proposer: explicit numeric claims of a passage become cloze questions.

A claim is a numeral with what it counts or measures ("within 30 days", "900 kB", "by 45%", "$20") or a
year after a preposition ("in 1996"). The question is the claim's sentence with that span replaced by
"how many days" / "how many kB" / "what percentage" / "how many dollars" / "what year", so the answer is
the span and the verifier is `numeric` (the unit kept, so "30 days" and "30" are both accepted).
Numbers that name rather than measure are skipped: versions (3.0.1), section/figure/page numbers,
ranges ("100 to 900 kB"), dates with a month, list markers, 1 of anything and "100%" (mostly idiom).
"""

from __future__ import annotations

import re

from rlvr.tasks.questions.documents import sentences
from rlvr.tasks.questions.filters import Proposal

NAME = "rules"
NUM = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?"
YEAR_RE = re.compile(
    r"\b(?P<prep>[Ii]n|[Ss]ince|[Bb]y|[Uu]ntil|[Bb]efore|[Aa]fter|[Dd]uring)\s+(?P<num>1[6-9]\d\d|20\d\d)\b"
    r"(?![-–/.,]?\d)"
)
MONEY_RE = re.compile(rf"\$\s?(?P<num>{NUM})\b(?![.,]?\d)")
QUANTITY_RE = re.compile(
    rf"(?<![\w.,$#/-])(?P<num>{NUM})(?:\s?(?P<pct>%)|\s(?P<unit>percent|[A-Za-zµ°][A-Za-z°²³µ/]*))"
)
UNITS = {
    "bits",
    "bytes",
    "kb",
    "kib",
    "mb",
    "mib",
    "gb",
    "gib",
    "tb",
    "kbit",
    "mbit",
    "ms",
    "ns",
    "us",
    "µs",
    "seconds",
    "minutes",
    "hours",
    "days",
    "weeks",
    "months",
    "years",
    "km",
    "m",
    "cm",
    "mm",
    "nm",
    "kg",
    "g",
    "mg",
    "hz",
    "khz",
    "mhz",
    "ghz",
    "w",
    "kw",
    "mw",
    "v",
    "mv",
    "°c",
    "°f",
    "times",
    "percent",
}
NOT_COUNTED = {  # words ending in s that follow numbers without being what is counted (verbs, adverbs)
    "others",
    "ones",
    "respectively",
    "thus",
    "this",
    "has",
    "was",
    "is",
    "as",
    "its",
    "less",
    "plus",
    "yes",
    "does",
    "always",
    "sometimes",
    "perhaps",
    "unless",
    "whereas",
    "us",
    "bus",
    "status",
    "gives",
    "takes",
    "means",
    "makes",
    "uses",
    "requires",
    "needs",
    "becomes",
    "seems",
    "goes",
    "works",
    "runs",
    "returns",
    "yields",
    "causes",
    "contains",
    "provides",
    "allows",
    "sets",
    "gets",
    "specifies",
    "indicates",
    "selects",
    "corresponds",
    "represents",
    "applies",
    "appears",
    "follows",
    "remains",
    "includes",
    "refers",
}
IDENTIFIER_BEFORE = re.compile(
    r"(?:version|section|sections|chapter|page|pages|figure|fig|table|article|paragraph|clause|item|step|part|"
    r"rule|line|lines|no|number|rfc|iso|gpl|lgpl|license|licence|option|level|appendix|volume|vol|edition|"
    r"release|bug|issue|port|code|exit|v|step|stage|phase|type|class|mode|case|example|exercise|note|"
    r"january|february|march|april|may|june|july|august|september|october|november|december)\.?\s*[(#]?\s*$",
    re.IGNORECASE,
)
LIST_MARKER_RE = re.compile(r"^\s*(?:[-*•]|\(?[0-9]{1,2}[.)]|\(?[a-z][.)]|[ivx]{1,4}[.)])\s+")
RANGE_AFTER_RE = re.compile(r"^\s*(?:-|–|to|and|or|x|×|/)\s*\$?\d")
RANGE_BEFORE_RE = re.compile(r"\d\s*(?:-|–|to|and|or|x|×|/)\s*$")


def _plausible(sentence: str) -> bool:
    letters = sum(c.isalpha() for c in sentence)
    return (
        25 <= len(sentence) <= 400
        and letters >= 0.6 * len(sentence.replace(" ", ""))
        and len(re.findall(r"\d+", sentence)) <= 4
        and "http" not in sentence
        and "{" not in sentence
    )


def _is_identifier(sentence: str, start: int, end: int) -> bool:
    before, after = sentence[:start], sentence[end:]
    return bool(
        IDENTIFIER_BEFORE.search(before)
        or RANGE_AFTER_RE.match(after)
        or RANGE_BEFORE_RE.search(before)
        or re.match(r"^[.,]\d", after)
    )


def _question(sentence: str, start: int, end: int, phrase: str) -> str | None:
    body = (sentence[:start] + phrase + sentence[end:]).strip().rstrip(".:;!,")
    if len(re.findall(r"[A-Za-z]{2,}", body)) - len(phrase.split()) < 5:
        return None
    return body[0].upper() + body[1:] + "?"


def _claims(sentence: str):
    """(start, end, answer text, wh-phrase) of each numeric claim in the sentence."""
    for m in YEAR_RE.finditer(sentence):
        yield m.start("num"), m.end("num"), m["num"], "what year"
    for m in MONEY_RE.finditer(sentence):
        if not _is_identifier(sentence, m.start(), m.end()):
            yield m.start(), m.end(), m.group(), "how many dollars"
    for m in QUANTITY_RE.finditer(sentence):
        num, unit = m["num"], m["unit"]
        if _is_identifier(sentence, m.start(), m.end()) or (unit and float(num.replace(",", "")) == 1):
            continue
        if m["pct"] or unit == "percent":
            if num != "100":  # "100% sure" is an idiom far more often than a measurement
                yield m.start(), m.end(), m.group(), "what percentage"
            continue
        word = unit.rstrip("/")
        counted = word.lower() in UNITS or (
            word.islower()
            and len(word) >= 4
            and word.endswith("s")
            and not word.endswith("ss")
            and word not in NOT_COUNTED
        )
        if counted and not re.match(r"^(?:1[6-9]\d\d|20\d\d)$", num):
            yield m.start(), m.start("unit") + len(word), f"{num} {word}", f"how many {word}"


def propose_rules(passage: str) -> list[Proposal]:
    """Cloze questions for the explicit numeric claims of `passage` (one per claim)."""
    out = []
    for line in passage.split("\n"):
        for sentence in sentences(line):
            sentence = LIST_MARKER_RE.sub("", sentence).strip()
            if not _plausible(sentence):
                continue
            for start, end, answer, phrase in _claims(sentence):
                question = _question(sentence, start, end, phrase)
                if question:
                    out.append(Proposal(question, answer, "numeric", NAME, {"sentence": sentence}))
    return out
