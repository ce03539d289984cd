"""Tools a model can call in an episode: `calculator`, `python` and user tools given as `module:function`.

A tool is a name, a JSON schema of its arguments, the parameter that a plain-text tag call fills (`main`),
and `call(arguments, state, timeout_s) -> output text`. A failure raises `ToolError` with its kind
("bad_arguments", "raised", "timeout", "infra"); the episode turns it into an error observation.

- `calculator`: arithmetic on numbers (+ - * / // % **, parentheses, unary signs) evaluated by walking the
  `ast` of the expression: no `eval`, nothing but those operators; powers and results are bounded.
- `python`: runs in the sandbox (rlvr.verifiers.sandbox), a fresh process per call. The episode's state
  persists as in a notebook by **replaying** the earlier cells that ran without error (their output
  discarded) before the new one: simple and as isolated as any sandbox run, at the cost of re-running them,
  counted per call in `replayed_cells`. A cell whose last statement is an expression prints its repr.
- user tools (`function: "module:function"`): called with the arguments as keyword arguments, the result
  turned to text (`str`, JSON for dicts and lists). In the sandbox by default (the module's directory is
  bound read-only); `trusted: true` calls it in this process, in a thread, with the timeout (a call that
  times out is reported at once but its thread runs on: Python cannot kill it).
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.pyast import parse
from rlvr.timeouts import CallTimeout, call_with_timeout


class ToolError(Exception):
    """A tool call that failed; `kind` is counted ("bad_arguments", "raised", "timeout", "infra")."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments (an object)
    main: str | None  # the parameter a plain-text tag call fills
    call: Callable[[dict[str, Any], dict, float], str]
    replays: bool = False  # state kept by replaying earlier calls (python)

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function entry that chat templates take as `tools=[...]`."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


# --- argument checking: the subset of JSON schema that tool signatures use --------------------------------

JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
              "array": list}


def check_arguments(schema: dict[str, Any], args: dict[str, Any]) -> None:
    """Raise ToolError("bad_arguments") unless `args` has every `required` property, no unknown one (when the
    schema lists `properties`), and each value of the declared `type`."""
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        raise ToolError("bad_arguments", f"missing argument {missing[0]!r}")
    for key, value in args.items():
        if props and key not in props:
            raise ToolError("bad_arguments", f"unknown argument {key!r}; arguments: {', '.join(props)}")
        want = JSON_TYPES.get(props.get(key, {}).get("type", ""))
        if want is not None and (not isinstance(value, want) or (isinstance(value, bool) and want is not bool)):
            raise ToolError("bad_arguments", f"argument {key!r} must be a {props[key]['type']}")


def string_schema(name: str, description: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string", "description": description}},
            "required": [name]}


# --- calculator --------------------------------------------------------------------------------------------

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200
MAX_EXPONENT = 64
MAX_MAGNITUDE = 10**60


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression; ValueError for anything else (names, calls, huge numbers)."""
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression: {e.msg}") from None

    def walk(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
            return UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise ValueError(f"exponent {right} is larger than {MAX_EXPONENT}")
            value = BINARY[type(node.op)](left, right)
            if isinstance(value, complex) or abs(value) > MAX_MAGNITUDE:
                raise ValueError("result out of range")
            return value
        raise ValueError(f"{type(node).__name__} is not allowed: only numbers, + - * / // % ** and parentheses")

    try:
        return walk(tree.body)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None


def format_number(value: int | float) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value) if isinstance(value, int) else format(value, ".10g")


def _calculator(args: dict, state: dict, timeout_s: float) -> str:
    try:
        return format_number(calculate(args["expression"]))
    except ValueError as e:
        raise ToolError("raised", str(e)) from None


def calculator_tool() -> Tool:
    return Tool("calculator", "Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses).",
                string_schema("expression", "e.g. 347*26"), "expression", _calculator)


# --- python in the sandbox ----------------------------------------------------------------------------------

REPLAY = """import contextlib as _c, io as _io, json as _j
_g = {"__name__": "__main__"}
_cells = _j.loads(%r)
for _cell in _cells[:-1]:
    with _c.redirect_stdout(_io.StringIO()):
        exec(compile(_cell, "<cell>", "exec"), _g)
exec(compile(_cells[-1], "<cell>", "exec"), _g)
"""


def notebook_cell(code: str) -> str:
    """`code` with its last statement printed when it is an expression (as a notebook shows it);
    ToolError("raised") for a syntax error, found before anything runs."""
    try:
        tree = parse(code)
    except SyntaxError as e:
        raise ToolError("raised", f"SyntaxError: {e.msg} (line {e.lineno})") from None
    if tree.body and isinstance(tree.body[-1], ast.Expr):  # shown as a notebook shows it: None is not shown
        show = parse("_ = None\nif _ is not None: print(repr(_))").body
        show[0].value = tree.body[-1].value
        tree.body[-1:] = show
        return ast.unparse(ast.fix_missing_locations(tree))
    return code


def sandbox_output(job) -> str:
    """stdout of a sandbox run, or ToolError of the run's kind."""
    from rlvr.verifiers.sandbox import run

    r = run(job)
    if r.status == "ok":
        return r.stdout
    if r.status == "infra":
        raise ToolError("infra", f"the sandbox could not run the call: {r.reason}")
    if r.status == "timeout" or "CPU time limit" in r.reason:  # either clock ran out: the call took too long
        raise ToolError("timeout", f"the call ran past {job.limits.wall_s:g} s")
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    raise ToolError("raised", lines[-1] if lines else r.reason or r.status)


def _limits(timeout_s: float):
    from rlvr.verifiers.sandbox import Limits

    # CPU time a little past the wall limit, so that the wall clock decides a timeout
    return Limits(wall_s=timeout_s, cpu_s=math.ceil(timeout_s) + 1, memory_mb=512, max_output=1 << 16)


def _python(args: dict, state: dict, timeout_s: float) -> str:
    from rlvr.verifiers.sandbox import Job

    cell = notebook_cell(args["code"])
    cells = state.setdefault("cells", [])
    state["replayed"] = len(cells)
    out = sandbox_output(Job(code=REPLAY % json.dumps(cells + [cell]), limits=_limits(timeout_s)))
    cells.append(cell)  # only cells that ran without error are replayed later
    return out


def python_tool() -> Tool:
    return Tool("python", "Run Python code; variables persist across calls. Print what you want to see.",
                string_schema("code", "Python source"), "code", _python, replays=True)


# --- user tools ------------------------------------------------------------------------------------------------


def resolve(function: str) -> Callable:
    """The callable `module:function` names; ValueError saying what is wrong."""
    module_name, _, attr = function.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{function!r} is not of the form module:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {function!r}: {e}") from None
    if not callable(fn):
        raise ValueError(f"{function!r} is not callable")
    return fn


def to_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


USER_JOB = """import json as _j, sys as _s
_s.path.insert(0, %r)
from %s import %s as _f
_r = _f(**_j.loads(%r))
print(_r if isinstance(_r, str) else _j.dumps(_r, default=str), end="")
"""


@dataclass
class UserTool:
    function: str
    trusted: bool

    def __call__(self, args: dict, state: dict, timeout_s: float) -> str:
        fn = resolve(self.function)
        if self.trusted:
            try:
                return to_text(call_with_timeout(fn, timeout_s, **args))
            except CallTimeout:
                raise ToolError("timeout", f"the call ran past {timeout_s:g} s") from None
            except Exception as e:  # noqa: BLE001 - whatever the user's function raises is the model's error
                raise ToolError("raised", f"{type(e).__name__}: {e}") from None
        from rlvr.verifiers.sandbox import Job

        module = importlib.import_module(self.function.partition(":")[0])
        root = Path(module.__file__).resolve().parents[len(module.__name__.split(".")) - 1]
        code = USER_JOB % (str(root), module.__name__, self.function.partition(":")[2], json.dumps(args))
        return sandbox_output(Job(code=code, limits=_limits(timeout_s), read_only=(str(root),)))


BUILTIN_TOOLS = {"calculator": calculator_tool, "python": python_tool}


def build_tool(cfg) -> Tool:
    """The tool a `ToolConfig` describes (checked beforehand by `check_tools`)."""
    if cfg.function is None:
        return BUILTIN_TOOLS[cfg.name]()
    params = cfg.parameters or {"type": "object", "properties": {}}
    props = list(params.get("properties", {}))
    main = props[0] if len(props) == 1 else None
    description = cfg.description or (resolve(cfg.function).__doc__ or "").strip().split("\n")[0]
    return Tool(cfg.name, description, params, main, UserTool(cfg.function, cfg.trusted))
