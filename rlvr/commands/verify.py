"""`rlvr verify VERIFIER --answer ANSWER [--tests FILE] [COMPLETION_FILE|-]`: score one completion.

Prints the Score as JSON `{"reward", "correct", "formatted", "details"}` and exits 0 whatever the verdict
(2 for a usage error, 3 when the sandbox itself could not run the code, 4 when the verifier itself failed, e.g.
on an unusable reference: no verdict, not a 0). The completion is read from the file, or from stdin when it is
`-` or absent.
`--answer` is parsed as JSON when it starts with `{` or `[` (countdown's `{"target", "numbers"}`), else
kept as text. For `code`, `--tests FILE` holds either JSON (`{"tests", "entry_point"}` or `{"io": [...]}`)
or Python assert source, with `--answer` (or `--entry-point`) naming the function under test.
Options go as `-o key=value` (value parsed as JSON when it can be).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _answer(args: argparse.Namespace) -> Any:
    answer: Any = args.answer
    if isinstance(answer, str) and answer.lstrip()[:1] in ("{", "["):
        answer = _value(answer)
    if args.tests:
        source = Path(args.tests).read_text()
        try:
            spec = json.loads(source)
        except json.JSONDecodeError:
            spec = {"tests": source}
        if isinstance(spec, dict) and "tests" in spec:
            spec.setdefault("entry_point", args.entry_point or (answer if isinstance(answer, str) else None))
        answer = spec
    return answer


def handle(args: argparse.Namespace) -> int:
    """Run the verifier and print the Score; 0 on any verdict, 2 on a usage error, 3 on an infra error, 4 when
    the verifier itself failed (it raised or returned garbage: no verdict, as in training)."""
    from rlvr.verifiers import VERIFIERS, InfraError, VerifierError, check_options, verify_text

    if args.verifier not in VERIFIERS:
        print(
            f"rlvr verify: unknown verifier {args.verifier!r}; known: {', '.join(sorted(VERIFIERS))}",
            file=sys.stderr,
        )
        return 2
    if args.answer is None and not args.tests:
        print("rlvr verify: give --answer (and --tests FILE for code)", file=sys.stderr)
        return 2
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"rlvr verify: option {item!r} is not key=value", file=sys.stderr)
            return 2
        options[key.replace("-", "_")] = _value(value)
    if args.extract:
        options["extract"] = args.extract
    try:
        text = sys.stdin.read() if args.completion in (None, "-") else Path(args.completion).read_text()
        answer = _answer(args)
    except OSError as e:
        print(f"rlvr verify: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        check_options(args.verifier, VERIFIERS[args.verifier], options)
    except ValueError as e:
        print(f"rlvr verify: {e}", file=sys.stderr)
        return 2
    try:
        score = verify_text(args.verifier, answer, text, **options)
    except InfraError as e:
        print(f"rlvr verify: no verdict, the sandbox failed (not the candidate): {e}", file=sys.stderr)
        return 3
    except VerifierError as e:
        print(f"rlvr verify: no verdict, the {e} (not the candidate's doing)", file=sys.stderr)
        return 4
    print(json.dumps(score.to_dict(), default=str))
    return 0


class _IntermixedParser(argparse.ArgumentParser):
    """Lets the optional COMPLETION_FILE come after options (`verify math --answer 3 file`); plain argparse
    binds it, empty, together with VERIFIER before it sees the options."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `verify` sub-command; the handler is `args.func(args)`."""
    parser_class, subparsers._parser_class = subparsers._parser_class, _IntermixedParser
    try:
        p = subparsers.add_parser(
            "verify",
            help="score one completion with a verifier",
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    finally:
        subparsers._parser_class = parser_class
    p.add_argument("verifier", help="a registered verifier: math, numeric, exact, choice, code, format, ...")
    p.add_argument("--answer", help="the reference answer (JSON when it starts with { or [)")
    p.add_argument("--tests", help="code: a JSON test spec or a Python file of asserts")
    p.add_argument("--entry-point", help="code: the function the tests call (default: --answer)")
    p.add_argument("--extract", help="answer_tag | boxed | final_answer_line (code: answer_tag | fenced)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="verifier option")
    p.add_argument("completion", nargs="?", help="file with the completion, or - for stdin (default)")
    p.set_defaults(func=handle)
    return p


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: `python -m rlvr.commands.verify VERIFIER ...`."""
    parser = argparse.ArgumentParser(prog="rlvr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
