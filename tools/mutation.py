"""Mutation testing: plant one small bug at a time in the controller code and the lab's twins, and count how many of
them the unit tests catch.

Run by `make mutation`, never by `make test`: it runs the unit tests once per mutant, which takes tens of minutes.
The score is a measurement, so the exit code is 0 whatever it is, unless ``--fail-under`` asks otherwise.

How a mutant is made: each file is parsed with :mod:`ast`, and every mutation below becomes one mutant, a single
text edit of the source that is checked to parse into exactly the intended syntax tree (so the report quotes the
real mutated line, and a mutant never fails only because the edit broke the syntax). The mutations:

========  ======================================================================================================
compare   ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``in``/``not in``, ``is``/``is not``, each way
boolean   ``and``/``or`` swapped
not       ``not x`` becomes ``x``; a unary minus or ``~`` is dropped
negate    an ``if``/``while``/conditional-expression test becomes ``not (test)``; left out where it would only
          repeat a compare or not mutation (a single comparison, a ``not``)
constant  ``True``/``False`` flipped, a number ``n`` becomes ``n + 1``, a string ``s`` becomes ``"XXsXX"``
arith     ``+``/``-``, ``*``/``/``, ``//`` to ``/``, ``**`` to ``*``, ``&``/``|``, ``^`` to ``&``, ``<<``/``>>``,
          also in augmented assignments (``+=`` ...)
return    ``return x`` becomes ``return None``
raise     ``raise ...`` becomes ``pass``
call      a call made for its effect (a statement of its own) becomes ``pass``
dict      one entry of a dict display or one keyword of a ``dict(...)`` call removed; ``m.get(k, d)`` loses ``d``
loop      ``break``/``continue`` swapped
========  ======================================================================================================

Never mutated, since no test could tell the difference or the code never runs: docstrings, annotations, imports,
decorators (dataclass options, caches), ``if TYPE_CHECKING:`` blocks, ``__all__``, the DOCUMENTATION/EXAMPLES/RETURN
text of module stubs, the literal parts of f-strings (message wording), the type argument of ``cast``, and strings
with whitespace in them (prose for people, such as error messages: a mutant of one measures how many tests quote
wording, not whether the code works).

How a mutant is run: the tracked and untracked, not ignored, files of the checkout are copied into one temporary
directory per worker, with the ``.collections`` link that `make setup` made, so imports resolve exactly as in the
checkout; the working tree itself is never written. A worker writes the mutated file into its copy, runs the unit
tests that exercise that file (``TEST_SELECTION``; fastest modules first, so that most mutants die in seconds) with
``pytest -x``, and puts the original back. A mutant is *killed* when the tests fail (pytest names a failed test or a
module it could not collect, or the tests cannot start with the mutant but start without it: a conftest that imports
it), *survived* when they pass, *timeout* when they run past the limit (a mutant that hangs the tests is caught too).
Score = (killed + timeout) / mutants. Before any mutant, each selection of tests must pass on the unmutated copy;
otherwise there is nothing to measure and the exit code is 2. When the tests cannot start even without the mutant
(a virtual environment rebuilt under the run, a missing interpreter), the run stops with exit code 2 rather than
count every further mutant as killed. Nothing is cached between runs.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import copy
import dataclasses
import fnmatch
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing as t
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]

# What `make mutation` measures (fnmatch patterns, whose * also matches /): the controller code and what the lab
# puts in place of the Windows host (the twins of the host scripts, and the emulation of the bootstrap).
SCOPE = ("plugins/*.py", "tests/lab/twins/*.py", "tests/lab/runner.py", "tests/lab/scripts.py")

# The unit tests that can kill a mutant of a file; the first pattern that matches wins. Directories rather than single
# modules, because a file reaches tests in ways that an import graph does not show: ansible-playbook loads the action
# plugins in a subprocess of tests/unit/lab/test_transports.py, and the unit tests' EmulatedHost answers through
# tests/lab/runner.py and the twins. tests/unit/tools (this tool's own tests) is never selected.
TEST_SELECTION: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("plugins/*", ("tests/unit/plugins", "tests/unit/lab")),
    ("tests/lab/twins/*", ("tests/unit/lab", "tests/unit/plugins/action")),
    ("tests/lab/*", ("tests/unit/lab", "tests/unit/plugins")),
)

# Links that `make setup` creates and that git does not track: the collection is imported through them.
LINKED_DIRS = (".collections",)
REPORT = Path("build/mutation/report.txt")
# Module-level text of the docs-only module stubs and doc fragments: documentation, not behaviour.
DOCUMENTATION_NAMES = frozenset({"DOCUMENTATION", "EXAMPLES", "RETURN", "__all__"})

KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"
# pytest ended without passing and without naming a failed test: the mutant may have stopped the tests from starting
# (a conftest that imports it), or the environment is broken. Never a final status: the unmutated copy decides.
NOT_RUN = "not run"
# What pytest prints when a test failed or a module could not be collected (with -rfE).
PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) \S", re.MULTILINE)


# --- mutants ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutation of one file: replace ``source[start:end]`` with ``replacement``."""

    path: str
    line: int
    operator: str
    detail: str
    start: int
    end: int
    replacement: str

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line}: {self.operator} {self.detail}"

    def apply(self, source: str) -> str:
        return source[: self.start] + self.replacement + source[self.end :]

    def excerpt(self, source: str) -> tuple[str, str]:
        """The original source lines that the edit touches, and the same lines mutated, each on one line."""
        first = source.rfind("\n", 0, self.start) + 1
        last = source.find("\n", self.end)
        last = len(source) if last < 0 else last
        original = source[first:last]
        mutated = source[first : self.start] + self.replacement + source[self.end : last]
        return _one_line(original), _one_line(mutated)


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


# (AST type, text) of each operator; the text is what the mutated source spells.
COMPARE_SWAP: dict[type[ast.cmpop], tuple[type[ast.cmpop], str]] = {
    ast.Eq: (ast.NotEq, "!="),
    ast.NotEq: (ast.Eq, "=="),
    ast.Lt: (ast.LtE, "<="),
    ast.LtE: (ast.Lt, "<"),
    ast.Gt: (ast.GtE, ">="),
    ast.GtE: (ast.Gt, ">"),
    ast.In: (ast.NotIn, "not in"),
    ast.NotIn: (ast.In, "in"),
    ast.Is: (ast.IsNot, "is not"),
    ast.IsNot: (ast.Is, "is"),
}
COMPARE_TEXT = r"==|!=|<=|>=|<|>|not\s+in|in|is\s+not|is"
ARITH_SWAP: dict[type[ast.operator], tuple[type[ast.operator], str]] = {
    ast.Add: (ast.Sub, "-"),
    ast.Sub: (ast.Add, "+"),
    ast.Mult: (ast.Div, "/"),
    ast.Div: (ast.Mult, "*"),
    ast.FloorDiv: (ast.Div, "/"),
    ast.Pow: (ast.Mult, "*"),
    ast.BitAnd: (ast.BitOr, "|"),
    ast.BitOr: (ast.BitAnd, "&"),
    ast.BitXor: (ast.BitAnd, "&"),
    ast.LShift: (ast.RShift, ">>"),
    ast.RShift: (ast.LShift, "<<"),
}
ARITH_TEXT = r"\*\*|//|<<|>>|[-+*/&|^]"
# What may stand between two operands besides the operator: blanks, parentheses, line continuations.
_GAP = r"[\s()\\]*"

AstPath = tuple[tuple[str, int | None], ...]


@dataclasses.dataclass(frozen=True)
class _Candidate:
    node: ast.AST  # the node whose source span the edit replaces
    path: AstPath  # where that node sits in the module's tree
    new: ast.AST  # what the tree must hold there after the edit
    operator: str
    detail: str
    text: str | None = None  # the surgical replacement; None: use the unparsed new node


class _Source:
    """A module's text with its tree, and the character offsets of the tree's nodes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tree = ast.parse(text)
        self.dump = ast.dump(self.tree)
        # ast counts columns in UTF-8 bytes and lines by \r\n, \r or \n; offsets here are characters.
        self._lines = re.split(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)", text)
        self._starts = [0]
        for line in self._lines:
            self._starts.append(self._starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        return self._starts[line - 1] + len(self._lines[line - 1].encode("utf-8")[:col].decode("utf-8"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]


def _node_at(tree: ast.AST, path: AstPath) -> t.Any:
    node: t.Any = tree
    for name, index in path:
        node = getattr(node, name) if index is None else getattr(node, name)[index]
    return node


def _put_at(tree: ast.AST, path: AstPath, new: ast.AST) -> None:
    parent, (name, index) = _node_at(tree, path[:-1]), path[-1]
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new


def _means(mutated: str, source: _Source, path: AstPath, new: ast.AST) -> bool:
    """Whether ``mutated`` parses into the original tree with ``new`` at ``path``, and nothing else changed."""
    try:
        tree = ast.parse(mutated)
        found = _node_at(tree, path)
    except (SyntaxError, AttributeError, IndexError):
        return False
    if not isinstance(found, ast.AST) or ast.dump(found) != ast.dump(new):
        return False
    # The rest of the tree must be the original: put the original node back and compare the whole module.
    _put_at(tree, path, _node_at(source.tree, path))
    return ast.dump(tree) == source.dump


def _is_docstring(node: ast.AST, parent: ast.AST | None, index: int | None) -> bool:
    return (
        index == 0
        and isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


def _is_skipped_assignment(node: ast.AST) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else []
    return any(isinstance(target, ast.Name) and target.id in DOCUMENTATION_NAMES for target in targets)


def _is_cast(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "cast") or (
        isinstance(func, ast.Attribute) and func.attr == "cast"
    )


# Fields that hold annotations or decorators: evaluated at definition time at most, and never by a test.
_SKIPPED_FIELDS = frozenset({"annotation", "returns", "decorator_list", "type_comment", "type_params"})


def _walk(node: ast.AST, path: AstPath = ()) -> t.Iterator[tuple[ast.AST, AstPath]]:
    """Every node that may be mutated, with its path; prunes what the module docstring says is never mutated."""
    yield node, path
    for name, value in ast.iter_fields(node):
        if name in _SKIPPED_FIELDS:
            continue
        children = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, child in children:
            if not isinstance(child, ast.AST) or isinstance(child, ast.expr_context | ast.operator | ast.cmpop):
                continue
            if (
                _is_docstring(child, node, index)
                or isinstance(child, ast.Import | ast.ImportFrom | ast.JoinedStr)
                or _is_type_checking(child)
                or _is_main_guard(child)
                or _is_skipped_assignment(child)
            ):
                continue
            if isinstance(node, ast.Call) and _is_cast(node) and name == "args" and index == 0:
                continue
            yield from _walk(child, (*path, (name, index)))


def _gap_edit(gap: str, pattern: str, new_text: str) -> str | None:
    """``gap`` (the text between two operands) with its one operator replaced; None if it holds anything else."""
    match = re.fullmatch(f"({_GAP})({pattern})({_GAP})", gap)
    if match is None:
        return None
    return match.group(1) + new_text + match.group(3)


class _Generator:
    def __init__(self, path: str, source: _Source) -> None:
        self.path = path
        self.source = source

    def candidates(self) -> t.Iterator[_Candidate]:
        for node, path in _walk(self.source.tree):
            method = getattr(self, f"_{type(node).__name__.lower()}", None)
            if method is not None:
                yield from method(node, path)

    # Each method below yields the mutations of one node type.
    def _compare(self, node: ast.Compare, path: AstPath) -> t.Iterator[_Candidate]:
        start, _end = self.source.span(node)
        text = self.source.segment(node)
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            new_type, new_text = COMPARE_SWAP[type(op)]
            gap_start = self.source.span(operands[index])[1] - start
            gap_end = self.source.span(operands[index + 1])[0] - start
            gap = _gap_edit(text[gap_start:gap_end], COMPARE_TEXT, new_text)
            new = copy.deepcopy(node)
            new.ops[index] = new_type()
            surgical = None if gap is None else text[:gap_start] + gap + text[gap_end:]
            old_text = ast.unparse(ast.Compare(ast.Name("a"), [op], [ast.Name("b")]))[2:-2]
            yield _Candidate(node, path, new, "compare", f"'{old_text}' -> '{new_text}'", surgical)

    def _boolop(self, node: ast.BoolOp, path: AstPath) -> t.Iterator[_Candidate]:
        start, _end = self.source.span(node)
        text = self.source.segment(node)
        old, new_word = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        pieces: list[str] = []
        cursor = 0
        for left, right in zip(node.values, node.values[1:], strict=False):
            gap_start, gap_end = self.source.span(left)[1] - start, self.source.span(right)[0] - start
            gap = _gap_edit(text[gap_start:gap_end], old, new_word)
            if gap is None:
                pieces = []
                break
            pieces += [text[cursor:gap_start], gap]
            cursor = gap_end
        surgical = "".join([*pieces, text[cursor:]]) if pieces else None
        new = ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
        yield _Candidate(node, path, new, "boolean", f"'{old}' -> '{new_word}'", surgical)

    def _unaryop(self, node: ast.UnaryOp, path: AstPath) -> t.Iterator[_Candidate]:
        words = {ast.Not: "not", ast.USub: "-", ast.Invert: "~"}
        word = words.get(type(node.op))
        if word is not None:
            yield _Candidate(node, path, node.operand, "not", f"'{word}' removed", self.source.segment(node.operand))

    def _test(self, node: ast.If | ast.While | ast.IfExp, path: AstPath) -> t.Iterator[_Candidate]:
        test = node.test
        if (isinstance(test, ast.Compare) and len(test.ops) == 1) or (
            isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        ):
            return
        new = ast.UnaryOp(ast.Not(), test)
        yield _Candidate(
            test, (*path, ("test", None)), new, "negate", "condition", f"not ({self.source.segment(test)})"
        )

    _if = _while = _ifexp = _test

    def _constant(self, node: ast.Constant, path: AstPath) -> t.Iterator[_Candidate]:
        value = node.value
        new_value: t.Any
        if isinstance(value, bool):
            new_value = not value
        elif isinstance(value, int | float):
            new_value = value + 1
        elif isinstance(value, str | bytes):
            if any(character.isspace() for character in str(value)):
                return
            new_value = "XX" + value + "XX" if isinstance(value, str) else b"XX" + value + b"XX"
        else:
            return
        detail = f"{_short(value)} -> {_short(new_value)}"
        literal = (
            _literal(new_value, self.source.segment(node)) if isinstance(new_value, str | bytes) else repr(new_value)
        )
        yield _Candidate(node, path, ast.Constant(new_value), "constant", detail, literal)

    def _binop(self, node: ast.BinOp, path: AstPath) -> t.Iterator[_Candidate]:
        swap = ARITH_SWAP.get(type(node.op))
        if swap is None:
            return
        start, _end = self.source.span(node)
        text = self.source.segment(node)
        gap_start, gap_end = self.source.span(node.left)[1] - start, self.source.span(node.right)[0] - start
        gap = _gap_edit(text[gap_start:gap_end], ARITH_TEXT, swap[1])
        surgical = None if gap is None else text[:gap_start] + gap + text[gap_end:]
        new = ast.BinOp(node.left, swap[0](), node.right)
        yield _Candidate(node, path, new, "arith", f"'{_op_text(node.op)}' -> '{swap[1]}'", surgical)

    def _augassign(self, node: ast.AugAssign, path: AstPath) -> t.Iterator[_Candidate]:
        swap = ARITH_SWAP.get(type(node.op))
        if swap is None:
            return
        start, _end = self.source.span(node)
        text = self.source.segment(node)
        gap_start, gap_end = self.source.span(node.target)[1] - start, self.source.span(node.value)[0] - start
        gap = _gap_edit(text[gap_start:gap_end], f"(?:{ARITH_TEXT})=", swap[1] + "=")
        surgical = None if gap is None else text[:gap_start] + gap + text[gap_end:]
        new = ast.AugAssign(node.target, swap[0](), node.value)
        yield _Candidate(node, path, new, "arith", f"'{_op_text(node.op)}=' -> '{swap[1]}='", surgical)

    def _return(self, node: ast.Return, path: AstPath) -> t.Iterator[_Candidate]:
        if node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None):
            return
        yield _Candidate(node, path, ast.Return(ast.Constant(None)), "return", "value -> None", "return None")

    def _raise(self, node: ast.Raise, path: AstPath) -> t.Iterator[_Candidate]:
        yield _Candidate(node, path, ast.Pass(), "raise", "removed", "pass")

    def _expr(self, node: ast.Expr, path: AstPath) -> t.Iterator[_Candidate]:
        if isinstance(node.value, ast.Call):
            name = ast.unparse(node.value.func)
            yield _Candidate(node, path, ast.Pass(), "call", f"{name}(...) removed", "pass")

    def _break(self, node: ast.Break, path: AstPath) -> t.Iterator[_Candidate]:
        yield _Candidate(node, path, ast.Continue(), "loop", "break -> continue", "continue")

    def _continue(self, node: ast.Continue, path: AstPath) -> t.Iterator[_Candidate]:
        yield _Candidate(node, path, ast.Break(), "loop", "continue -> break", "break")

    def _dict(self, node: ast.Dict, path: AstPath) -> t.Iterator[_Candidate]:
        items = list(zip(node.keys, node.values, strict=True))
        for index, (key, _value) in enumerate(items):
            if key is None:  # removing a **spread is not a key change
                continue
            new = ast.Dict(
                [k for i, (k, _v) in enumerate(items) if i != index],
                [v for i, (_k, v) in enumerate(items) if i != index],
            )
            # A **spread has no key to cut from: such a dict is rewritten whole instead.
            edit = None if None in node.keys else self._cut(node, t.cast(list, items), index)
            yield _Candidate(node, path, new, "dict", f"entry {_short_node(key)} removed", edit)

    def _call(self, node: ast.Call, path: AstPath) -> t.Iterator[_Candidate]:
        if isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
            for index, keyword in enumerate(node.keywords):
                if keyword.arg is None:
                    continue
                new = ast.Call(node.func, [], [k for i, k in enumerate(node.keywords) if i != index])
                edit = self._cut(node, [(k, k) for k in node.keywords], index)
                yield _Candidate(node, path, new, "dict", f"key {keyword.arg!r} removed", edit)
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
            and not node.keywords
        ):
            new = ast.Call(node.func, node.args[:1], [])
            start, _end = self.source.span(node)
            text = self.source.segment(node)
            cut_start = self.source.span(node.args[0])[1] - start
            cut_end = self.source.span(node.args[1])[1] - start
            detail = f"default {_short_node(node.args[1])} removed"
            yield _Candidate(node, path, new, "dict", detail, text[:cut_start] + text[cut_end:])

    def _cut(self, node: ast.AST, items: list[tuple[ast.AST, ast.AST]], index: int) -> str:
        """The node's text without item ``index`` (from its first to its last node) and one separating comma."""
        start, _end = self.source.span(node)
        text = self.source.segment(node)
        item_start = self.source.span(items[index][0])[0] - start
        item_end = self.source.span(items[index][1])[1] - start
        if index + 1 < len(items):
            return text[:item_start] + text[self.source.span(items[index + 1][0])[0] - start :]
        if index > 0:
            return text[: self.source.span(items[index - 1][1])[1] - start] + text[item_end:]
        return text[:item_start] + text[item_end:]


def _op_text(op: ast.operator) -> str:
    return ast.unparse(ast.BinOp(ast.Name("a"), op, ast.Name("b")))[2:-2]


def _short(value: t.Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _short_node(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def generate(path: str, text: str) -> list[Mutant]:
    """Every mutant of one file, in source order; each is checked to parse into the tree that it means."""
    source = _Source(text)
    mutants: list[Mutant] = []
    seen: set[tuple[int, int, str]] = set()
    for candidate in _Generator(path, source).candidates():
        start, end = source.span(candidate.node)
        if ast.dump(candidate.new) == ast.dump(candidate.node):  # a mutation that changes nothing is none
            continue
        unparsed = ast.unparse(candidate.new)
        # The surgical edit keeps the author's formatting; parentheses around the unparsed node are the fallback
        # (e.g. for 'a and b or c' -> 'a and b and c', which would parse as one flat 'and').
        options = [candidate.text, unparsed, f"({unparsed})"] if isinstance(candidate.new, ast.expr) else []
        options = options or [candidate.text, unparsed]
        for replacement in options:
            if replacement is None or (start, end, replacement) in seen:
                continue
            if not _means(text[:start] + replacement + text[end:], source, candidate.path, candidate.new):
                continue
            seen.add((start, end, replacement))
            edit = _narrowed(text, start, end, replacement)
            line = text.count("\n", 0, edit[0]) + 1
            mutants.append(Mutant(path, line, candidate.operator, candidate.detail, *edit))
            break
    return sorted(mutants, key=lambda mutant: (mutant.start, mutant.end, mutant.operator, mutant.detail))


def _narrowed(text: str, start: int, end: int, replacement: str) -> tuple[int, int, str]:
    """The same edit without the text it leaves as it was, so that the report quotes only the lines it changes."""
    original = text[start:end]
    prefix = _common_prefix(original, replacement)
    suffix = _common_prefix(original[prefix:][::-1], replacement[prefix:][::-1])
    return start + prefix, end - suffix, replacement[prefix : len(replacement) - suffix]


def _common_prefix(first: str, second: str) -> int:
    length = 0
    while length < min(len(first), len(second)) and first[length] == second[length]:
        length += 1
    return length


def _literal(value: str | bytes, original: str) -> str:
    """``value`` as a literal in the quotes that the original literal used, as far as repr allows."""
    text = repr(value)
    quote = original.lstrip("rRbBuU")[:1]
    body = text[2:-1] if isinstance(value, bytes) else text[1:-1]
    if quote == '"' and text.endswith("'") and '"' not in body:
        return ("b" if isinstance(value, bytes) else "") + f'"{body}"'
    return text


def sample(mutants: list[Mutant], limit: int | None) -> list[Mutant]:
    """At most ``limit`` mutants, spread evenly over the file, so that a partial run still sees all of it."""
    if limit is None or len(mutants) <= limit:
        return mutants
    return [mutants[index * len(mutants) // limit] for index in range(limit)]


# --- the copies the tests run in -------------------------------------------------------------------------------------


def checkout_files(root: Path) -> list[str]:
    """The tracked files and the untracked ones git does not ignore: what the tests of a checkout can see."""
    git = shutil.which("git") or "git"
    listing = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    return sorted({name for name in listing.split("\0") if name and os.path.lexists(root / name)})


def make_sandbox(root: Path, files: t.Iterable[str], directory: Path) -> Path:
    """A copy of the checkout with the same layout, links included, in which mutants may be written."""
    for name in files:
        source, target = root / name, directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    for name in LINKED_DIRS:
        if (root / name).is_dir():
            # Relative links (remediation -> ../../..) then point into the copy, not back to the checkout.
            shutil.copytree(root / name, directory / name, symlinks=True, dirs_exist_ok=True)
    return directory


def test_environment() -> dict[str, str]:
    environment = dict(os.environ)
    # Without this, a mutant of the same size written within the same second as the original could be run from the
    # original's cached bytecode.
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    # Either would let the tests import or configure from the checkout instead of the copy.
    for name in ("PYTHONPATH", "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        environment.pop(name, None)
    return environment


@dataclasses.dataclass(frozen=True)
class TestRun:
    status: str
    seconds: float
    output: str
    returncode: int | None

    @property
    def failure(self) -> str:
        """The first test that failed, as pytest names it, or what else ended the run."""
        match = re.search(r"^(?:FAILED|ERROR) (\S+)", self.output, re.MULTILINE)
        if match:
            return match.group(1)
        return "timeout" if self.returncode is None else f"exit {self.returncode}"


class TestsDidNotRun(Exception):
    """pytest ended without passing and without naming a failed test: the interpreter, the virtual environment or
    the sandbox is broken, and every further mutant would be counted as killed by that."""


def run_tests(sandbox: Path, modules: t.Sequence[str], timeout: float, extra: t.Sequence[str] = ()) -> TestRun:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *extra, *modules]
    started = time.monotonic()
    # A session of its own, so that a timeout ends the tests' own children (the lab, ansible-playbook) too.
    with subprocess.Popen(
        command,
        cwd=sandbox,
        env=test_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as process:
        try:
            output = process.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0]
            return TestRun(TIMEOUT, time.monotonic() - started, output.decode("utf-8", "replace"), None)
    text = output.decode("utf-8", "replace")
    status = SURVIVED if process.returncode == 0 else KILLED if PYTEST_FAILED.search(text) else NOT_RUN
    return TestRun(status, time.monotonic() - started, text, process.returncode)


# --- which tests, in which order -------------------------------------------------------------------------------------


def selection_for(path: str, table: t.Sequence[tuple[str, tuple[str, ...]]]) -> tuple[str, ...]:
    for pattern, tests in table:
        if fnmatch.fnmatch(path, pattern):
            return tests
    raise SystemExit(f"mutation: no tests are selected for {path}; add it to TEST_SELECTION or pass --tests")


def test_modules(selection: t.Sequence[str], files: t.Sequence[str]) -> tuple[str, ...]:
    """The test modules of the selected files and directories, in a stable order."""
    modules: list[str] = []
    for entry in selection:
        if entry in files:
            modules.append(entry)
            continue
        prefix = entry.rstrip("/") + "/"
        modules += [
            name
            for name in files
            if name.startswith(prefix) and re.fullmatch(r"test_.*\.py|.*_test\.py", name.rsplit("/", 1)[-1])
        ]
    if not modules:
        raise SystemExit(f"mutation: the test selection {list(selection)} holds no test module")
    # Sorted, so that two orders of the same directories make one selection (and one baseline run).
    return tuple(sorted(set(modules)))


def module_durations(junit_xml: Path, modules: t.Sequence[str]) -> dict[str, float]:
    """Seconds per test module (fixtures included), from the JUnit XML file of a baseline run."""
    dotted = {module: module.removesuffix(".py").replace("/", ".") for module in modules}
    durations = dict.fromkeys(modules, 0.0)
    # Our own pytest run wrote this file a moment ago; it is not untrusted input.
    for case in ElementTree.parse(junit_xml).iter("testcase"):  # noqa: S314
        classname = case.get("classname", "")
        for module, name in dotted.items():
            if classname == name or classname.startswith(name + "."):
                durations[module] += float(case.get("time") or 0)
                break
    return durations


def fastest_first(modules: t.Sequence[str], durations: t.Mapping[str, float]) -> list[str]:
    return sorted(modules, key=lambda module: durations.get(module, float("inf")))


# --- a run -----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    mutant: Mutant
    status: str
    seconds: float
    failure: str


@dataclasses.dataclass
class FileTally:
    path: str
    results: list[Result] = dataclasses.field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def score(self) -> float | None:
        return score(self.results)


def score(results: t.Sequence[Result]) -> float | None:
    if not results:
        return None
    return 100.0 * sum(1 for result in results if result.status != SURVIVED) / len(results)


def format_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def format_report(
    tallies: t.Sequence[FileTally], sources: t.Mapping[str, str], *, seconds: float, jobs: int, partial: bool
) -> str:
    results = [result for tally in tallies for result in tally.results]
    total = len(results)
    killed = sum(1 for result in results if result.status == KILLED)
    timeouts = sum(1 for result in results if result.status == TIMEOUT)
    survivors = [result for result in results if result.status == SURVIVED]
    minutes, rest = divmod(round(seconds), 60)
    lines = [
        f"Mutation score: {format_score(score(results))} ({killed} killed, {timeouts} timed out, {len(survivors)} "
        f"survived of {total} mutants in {len(tallies)} files{', a partial run' if partial else ''}; "
        f"{minutes}m{rest:02d}s with {jobs} workers)",
        "",
        f"{'file':<44} {'mutants':>7} {'killed':>7} {'timeout':>7} {'survived':>8} {'score':>8}",
    ]
    for tally in tallies:
        lines.append(
            f"{tally.path:<44} {len(tally.results):>7} {tally.count(KILLED):>7} {tally.count(TIMEOUT):>7} "
            f"{tally.count(SURVIVED):>8} {format_score(tally.score):>8}"
        )
    lines.append(
        f"{'total':<44} {total:>7} {killed:>7} {timeouts:>7} {len(survivors):>8} {format_score(score(results)):>8}"
    )
    lines += ["", f"Surviving mutants ({len(survivors)}):" if survivors else "No mutant survived."]
    for result in survivors:
        original, mutated = result.mutant.excerpt(sources[result.mutant.path])
        lines += [f"{result.mutant.label}", f"    - {original}", f"    + {mutated}"]
    return "\n".join(lines) + "\n"


class Runner:
    """The worker copies of the checkout, and the runs of tests in them: one run per copy at a time."""

    def __init__(self, root: Path, files: t.Sequence[str], jobs: int) -> None:
        self.root = root
        self.files = files
        self.jobs = jobs
        self._copies: queue.Queue[Path] = queue.Queue()
        self._print_lock = threading.Lock()

    def say(self, message: str) -> None:
        with self._print_lock:
            print(message, flush=True)

    def prepare(self, directory: Path) -> None:
        for index in range(self.jobs):
            self._copies.put(make_sandbox(self.root, self.files, directory / f"worker-{index}"))

    def baseline(self, modules: tuple[str, ...], junit_dir: Path, timeout: float) -> tuple[TestRun, dict[str, float]]:
        sandbox = self._copies.get()
        try:
            handle, name = tempfile.mkstemp(suffix=".xml", dir=junit_dir)
            os.close(handle)
            run = run_tests(sandbox, modules, timeout, extra=[f"--junitxml={name}"])
            if run.status == NOT_RUN:
                raise TestsDidNotRun(f"the tests did not run (exit {run.returncode}):\n{run.output[-2000:]}")
            return run, module_durations(Path(name), modules) if os.path.getsize(name) else {}
        finally:
            self._copies.put(sandbox)

    def run_mutant(self, mutant: Mutant, source: str, modules: t.Sequence[str], timeout: float) -> Result:
        sandbox = self._copies.get()
        target = sandbox / mutant.path
        original = target.read_bytes()
        try:
            target.write_bytes(mutant.apply(source).encode("utf-8"))
            run = run_tests(sandbox, modules, timeout)
            if run.status == NOT_RUN:
                # The tests did not start. If they start without the mutant, the mutant stopped them (killed);
                # if not, the environment is broken and no further mutant can be measured.
                target.write_bytes(original)
                if run_tests(sandbox, modules, timeout, extra=["--collect-only"]).status != SURVIVED:
                    raise TestsDidNotRun(f"the tests did not run (exit {run.returncode}):\n{run.output[-2000:]}")
                run = dataclasses.replace(run, status=KILLED)
        finally:
            target.write_bytes(original)
            self._copies.put(sandbox)
        return Result(mutant, run.status, run.seconds, run.failure if run.status != SURVIVED else "")


def scope_files(root_files: t.Sequence[str], patterns: t.Sequence[str]) -> list[str]:
    return [name for name in root_files if name.endswith(".py") and any(fnmatch.fnmatch(name, p) for p in patterns)]


def relative_name(name: str, root: Path) -> str:
    """A file named on the command line, as a path inside the checkout."""
    if (root / name).is_file():
        return Path(name).as_posix()
    try:
        return Path(name).resolve().relative_to(root).as_posix()
    except ValueError:
        return name


def run_baselines(
    runner: Runner, selections: t.Iterable[tuple[str, ...]], directory: Path, timeout: float | None
) -> tuple[dict[str, float], dict[tuple[str, ...], float]] | None:
    """Each distinct selection of tests, unmutated: seconds per module and per selection, or None if one fails.

    A test that fails without a mutant would count every mutant as killed, so a failing baseline measures nothing.
    """
    durations: dict[str, float] = {}
    seconds: dict[tuple[str, ...], float] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=runner.jobs) as pool:
        futures = {
            modules: pool.submit(runner.baseline, modules, directory, timeout or 1800)
            for modules in sorted(set(selections))
        }
        for modules, future in futures.items():
            run, measured = future.result()
            if run.status != SURVIVED:
                runner.say(run.output[-4000:])
                runner.say(f"mutation: the unmutated tests do not pass ({run.failure}): nothing to measure")
                return None
            durations.update(measured)
            seconds[modules] = run.seconds
            runner.say(f"mutation: baseline, {len(modules)} test modules pass in {run.seconds:.1f} s")
    return durations, seconds


def run_mutants(
    runner: Runner,
    mutants: t.Mapping[str, list[Mutant]],
    sources: t.Mapping[str, str],
    plans: t.Mapping[str, tuple[list[str], float]],
    *,
    verbose: bool,
) -> dict[str, FileTally]:
    """Every mutant in the worker pool; ``plans`` holds each file's ordered test modules and timeout."""
    tallies = {name: FileTally(name) for name in mutants}
    total = sum(len(found) for found in mutants.values())
    with concurrent.futures.ThreadPoolExecutor(max_workers=runner.jobs) as pool:
        pending = [
            pool.submit(runner.run_mutant, mutant, sources[name], *plans[name])
            for name, found in mutants.items()
            for mutant in found
        ]
        for done, future in enumerate(concurrent.futures.as_completed(pending), start=1):
            try:
                result = future.result()
            except TestsDidNotRun:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            tallies[result.mutant.path].results.append(result)
            why = f" by {result.failure}" if verbose and result.failure else ""
            runner.say(f"[{done:>4}/{total}] {result.status:<8} {result.mutant.label} ({result.seconds:.1f} s){why}")
    for tally in tallies.values():
        tally.results.sort(key=lambda result: (result.mutant.start, result.mutant.end, result.mutant.detail))
    return tallies


def parse_arguments(argv: t.Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/mutation.py",
        description="Mutation testing of the collection's controller code and the lab's twins (see the docstring).",
    )
    parser.add_argument("--files", nargs="+", metavar="PATH", help="files to mutate (default: the whole scope)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N mutants per file, spread over the file")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default: 2)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 30 + 3 x its tests' baseline)")
    parser.add_argument("--report", type=Path, help=f"report file (default: {REPORT} in the checkout)")
    parser.add_argument("--fail-under", type=float, metavar="SCORE", help="exit 1 when the score is below SCORE %%")
    parser.add_argument("--tests", nargs="+", metavar="PATH", help="run these tests for every file (default: table)")
    parser.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    parser.add_argument("--verbose", action="store_true", help="print which test killed each mutant")
    # The checkout to measure; tools/mutation.py's own tests point it at a small one.
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    root: Path = args.root.resolve()
    files = checkout_files(root)
    paths = [relative_name(name, root) for name in args.files or []] or scope_files(files, SCOPE)
    missing = [name for name in paths if not (root / name).is_file()]
    if missing:
        raise SystemExit(f"mutation: no such file: {', '.join(missing)}")
    sources = {name: (root / name).read_text(encoding="utf-8") for name in paths}
    mutants = {name: sample(generate(name, sources[name]), args.limit) for name in paths}
    if args.list:
        for found in mutants.values():
            for mutant in found:
                original, mutated = mutant.excerpt(sources[mutant.path])
                print(f"{mutant.label}\n    - {original}\n    + {mutated}")
        print(f"{sum(len(found) for found in mutants.values())} mutants in {len(paths)} files")
        return 0

    table = [("*", tuple(args.tests))] if args.tests else TEST_SELECTION
    selections = {name: test_modules(selection_for(name, table), files) for name in paths if mutants[name]}
    runner = Runner(root, files, max(1, args.jobs))
    runner.say(f"mutation: {sum(map(len, mutants.values()))} mutants in {len(paths)} files, {runner.jobs} workers")
    with tempfile.TemporaryDirectory(prefix="mutation-") as temporary:
        runner.prepare(Path(temporary))
        try:
            measured = run_baselines(runner, selections.values(), Path(temporary), args.timeout)
            if measured is None:
                return 2
            durations, seconds = measured
            plans = {
                name: (fastest_first(modules, durations), args.timeout or 30 + 3 * seconds[modules])
                for name, modules in selections.items()
            }
            tallies = run_mutants(runner, mutants, sources, plans, verbose=args.verbose)
        except TestsDidNotRun as exc:
            runner.say(f"mutation: {exc}\nmutation: stopped, no score: a mutant is killed only by a failing test")
            return 2

    report = format_report(
        list(tallies.values()),
        sources,
        seconds=time.monotonic() - started,
        jobs=runner.jobs,
        partial=bool(args.files or args.limit),
    )
    report_path = args.report or root / REPORT
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report, encoding="utf-8")
    print(f"\n{report}\n(report written to {report_path})", flush=True)
    overall = score([result for tally in tallies.values() for result in tally.results])
    if args.fail_under is not None and overall is not None and overall < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
