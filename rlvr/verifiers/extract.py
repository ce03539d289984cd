"""Answer extraction shared by every verifier.

Three ways to find the final answer, picked per task with `extract=`:
- `"answer_tag"`: the content of the final `<answer>...</answer>`;
- `"boxed"`: the content of the last `\\boxed{...}` (or `\\fbox{...}`), nested braces allowed;
- `"final_answer_line"`: the rest of a line that starts with "final answer:" (or "the final answer is").

Rules common to all three: text inside `<think>` never counts (an unclosed `<think>` runs to the end);
exactly one final answer counts, so several *different* candidates (two tags, two boxes, two final lines)
give no answer; answers longer than `max_chars` and answers written with look-alike digits (fullwidth
'４２', Arabic-Indic '٤٢', ...) give no answer either. Each failure says why in `Extraction.reason`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT_RE = re.compile(
    r"^\s*<think>(?:(?!<think>|</think>|<answer>|</answer>).)*</think>\s*"
    r"<answer>(?:(?!<think>|</think>|<answer>|</answer>).)+</answer>\s*$",
    re.DOTALL,
)
ANSWER_ONLY_RE = re.compile(r"^\s*<answer>(?:(?!<think>|</think>|<answer>|</answer>).)+</answer>\s*$", re.DOTALL)
FORMAT_STYLES = {"think_answer": FORMAT_RE, "answer": ANSWER_ONLY_RE}
BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
FINAL_LINE_RE = re.compile(
    r"^[ \t>*#_-]*(?:the\s+)?final\s+answer[*_ \t]*(?::|\bis\b)[*_ \t]*(.*?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
CODE_LANGS = {"", "python", "py", "python3"}

EXTRACTORS = ("answer_tag", "boxed", "final_answer_line")
MAX_ANSWER_CHARS = 1000


@dataclass
class Extraction:
    """What was found: `answer` is None when there is no usable final answer; `reason` says why."""

    answer: str | None
    reason: str = ""


def strip_think(text: str) -> str:
    """Remove every `<think>...</think>` block (an unclosed one runs to the end of the text)."""
    return THINK_RE.sub(" ", text)


def _one_of(found: list[str], what: str) -> Extraction:
    """The single distinct non-empty candidate in `found`, or no answer with the reason."""
    if not found:
        return Extraction(None, f"no {what} outside <think>")
    distinct = list(dict.fromkeys(f.strip() for f in found))
    if len(distinct) > 1:
        return Extraction(None, f"several different answers: {distinct[:5]}")
    if not distinct[0]:
        return Extraction(None, f"empty {what}")
    return Extraction(distinct[0])


def extract_answer_tag(text: str) -> Extraction:
    """The content of the last `<answer>` tag outside `<think>`, stripped of surrounding whitespace."""
    return _one_of(ANSWER_RE.findall(strip_think(text)), "<answer>...</answer>")


def boxed_contents(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` / `\\fbox{...}` in `text`, in order, with nested braces kept.
    An unbalanced box (no closing brace) is ignored."""
    out = []
    for m in BOXED_RE.finditer(text):
        depth, start = 1, m.end()
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{" and text[i - 1] != "\\":
                depth += 1
            elif ch == "}" and text[i - 1] != "\\":
                depth -= 1
                if depth == 0:
                    out.append(text[start:i])
                    break
    return out


def extract_boxed(text: str) -> Extraction:
    """The content of the `\\boxed{...}` outside `<think>`; several different boxes give no answer."""
    return _one_of(boxed_contents(strip_think(text)), "\\boxed{...}")


def extract_final_answer_line(text: str) -> Extraction:
    """The rest of the "final answer: ..." line outside `<think>` (markdown decoration, `$...$` and a
    trailing full stop removed); several different final-answer lines give no answer."""
    found = []
    for m in FINAL_LINE_RE.finditer(strip_think(text)):
        value = m.group(1).strip().rstrip(".").strip()
        if len(value) >= 2 and value[0] == value[-1] == "$":
            value = value.strip("$").strip()
        found.append(value)
    return _one_of(found, "'final answer:' line")


def has_lookalike_digits(s: str) -> bool:
    """True when `s` holds a decimal digit that is not ASCII 0-9 (fullwidth, Arabic-Indic, Devanagari...)."""
    return any(ch.isdecimal() and not ch.isascii() for ch in s)


def extract(text: str, method: str = "answer_tag", max_chars: int = MAX_ANSWER_CHARS) -> Extraction:
    """The single final answer of `text` found by `method` (one of `EXTRACTORS`).

    Inside an answer tag or a final line, a `\\boxed{...}` is unwrapped to its content (several
    different boxes give no answer). Answers longer than `max_chars` characters, or with look-alike digits, give no answer.
    """
    if method == "answer_tag":
        ext = extract_answer_tag(text)
    elif method == "boxed":
        ext = extract_boxed(text)
    elif method == "final_answer_line":
        ext = extract_final_answer_line(text)
    else:
        raise ValueError(f"unknown extract={method!r}; expected one of {', '.join(EXTRACTORS)}")
    if ext.answer is None:
        return ext
    answer = ext.answer
    if method != "boxed" and BOXED_RE.search(answer):
        inner = _one_of(boxed_contents(answer), "\\boxed{...}")
        if inner.answer is None:
            return inner
        answer = inner.answer
    if len(answer) > max_chars:
        return Extraction(None, f"answer longer than {max_chars} characters ({len(answer)})")
    if has_lookalike_digits(answer):
        return Extraction(None, "answer uses look-alike (non-ASCII) digits")
    return Extraction(answer)


def code_blocks(text: str) -> list[str]:
    """Bodies of the fenced code blocks in `text` tagged python (or untagged), in order."""
    return [body for lang, body in FENCE_RE.findall(text) if lang.lower() in CODE_LANGS]


def extract_code(text: str, method: str = "answer_tag", max_chars: int = 100_000) -> Extraction:
    """The candidate program: the one fenced ```python block inside the final answer (`method=
    "answer_tag"`), or the last such block outside `<think>` (`method="fenced"`)."""
    if method == "fenced":
        blocks = code_blocks(strip_think(text))
        if not blocks:
            return Extraction(None, "no ```python block outside <think>")
        code = blocks[-1]
    elif method == "answer_tag":
        ext = extract_answer_tag(text)
        if ext.answer is None:
            return ext
        blocks = code_blocks(ext.answer)
        if not blocks:
            return Extraction(None, "no ```python block inside <answer>")
        if len(set(blocks)) > 1:
            return Extraction(None, f"several different code blocks inside <answer> ({len(blocks)})")
        code = blocks[0]
    else:
        raise ValueError(f"unknown extract={method!r} for code; expected 'answer_tag' or 'fenced'")
    if len(code) > max_chars:
        return Extraction(None, f"code longer than {max_chars} characters ({len(code)})")
    if not code.strip():
        return Extraction(None, "empty code block")
    return Extraction(code)


def checked_format_style(style: str) -> str:
    """`style` if it is one of `FORMAT_STYLES`, else a ValueError naming `task.format_style`."""
    if style not in FORMAT_STYLES:
        raise ValueError(f"task.format_style: {style!r}; expected one of {', '.join(FORMAT_STYLES)}")
    return style


FORMAT_OPENINGS = {"think_answer": "<think>", "answer": "<answer>"}


def format_reachable(prefix: str | None, style: str) -> bool:
    """Whether a reply that starts with `prefix` (model.response_prefix) can still be well formatted in
    `style`: the prefix must open the way the format does (a `<think>` prefix can never be `answer`, an
    `<answer>` one never `think_answer`)."""
    head, opening = (prefix or "").lstrip(), FORMAT_OPENINGS[checked_format_style(style)]
    return head.startswith(opening) or opening.startswith(head)


def is_well_formatted(text: str, style: str = "think_answer") -> bool:
    """True for exactly `<think>...</think><answer>...</answer>` (style `think_answer`), or exactly
    `<answer>...</answer>` (style `answer`: a reply primed with `<answer>` that closes its tag), with nothing
    else around them."""
    return FORMAT_STYLES[checked_format_style(style)].match(text) is not None
