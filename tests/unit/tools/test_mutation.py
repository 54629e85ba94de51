"""tools/mutation.py: which mutants it makes, that it tells killed from surviving mutants, never writes the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tools import mutation

GIT = shutil.which("git") or "git"


def mutants_of(source: str) -> list[tuple[str, str, str]]:
    """(operator, detail, mutated line) of every mutant of ``source``."""
    source = textwrap.dedent(source)
    return [
        (mutant.operator, mutant.detail, mutant.excerpt(source)[1]) for mutant in mutation.generate("module.py", source)
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = a != b\n", [("compare", "'!=' -> '=='", "x = a == b")]),
        ("x = a not in b\n", [("compare", "'not in' -> 'in'", "x = a in b")]),
        (
            "x = 0 <= a < b\n",
            [
                ("constant", "0 -> 1", "x = 1 <= a < b"),
                ("compare", "'<=' -> '<'", "x = 0 < a < b"),
                ("compare", "'<' -> '<='", "x = 0 <= a <= b"),
            ],
        ),
        (
            "x = a and (b or c)\n",
            [("boolean", "'and' -> 'or'", "x = a or (b or c)"), ("boolean", "'or' -> 'and'", "x = a and (b and c)")],
        ),
        ("x = not a\n", [("not", "'not' removed", "x = a")]),
        ("x = True\n", [("constant", "True -> False", "x = False")]),
        ('x = "read"\n', [("constant", "'read' -> 'XXreadXX'", 'x = "XXreadXX"')]),
        ("x = a - b\n", [("arith", "'-' -> '+'", "x = a + b")]),
        ("x += b\n", [("arith", "'+=' -> '-='", "x -= b")]),
        ("def f():\n    return a\n", [("return", "value -> None", "return None")]),
        ("raise E\n", [("raise", "removed", "pass")]),
        ("f(a)\n", [("call", "f(...) removed", "pass")]),
        (
            "x = a if b or c else d\n",
            [
                ("negate", "condition", "x = a if not (b or c) else d"),
                ("boolean", "'or' -> 'and'", "x = a if b and c else d"),
            ],
        ),
        ("x = {a: b, c: d}\n", [("dict", "entry a removed", "x = {c: d}"), ("dict", "entry c removed", "x = {a: b}")]),
        ("x = dict(a=b)\n", [("dict", "key 'a' removed", "x = dict()")]),
        ("x = m.get(k, d)\n", [("dict", "default d removed", "x = m.get(k)")]),
        ("for a in b:\n    break\n", [("loop", "break -> continue", "continue")]),
    ],
)
def test_each_mutation_is_one_edit_that_the_report_quotes_as_the_mutated_line(
    source: str, expected: list[tuple[str, str, str]]
) -> None:
    assert mutants_of(source) == expected


def test_what_no_test_could_tell_apart_is_never_mutated() -> None:
    source = '''
        """A docstring."""
        from __future__ import annotations
        import typing as t
        if t.TYPE_CHECKING:
            from os import path
        __all__ = ["f"]
        DOCUMENTATION = "name: f"
        MESSAGE = "words for people are not behaviour"

        @decorator(frozen=True)
        def f(value: int = None) -> dict[str, int]:
            """Its docstring."""
            number: t.Literal[1]
            return t.cast("dict", value)

        label = f"{value} is text"
    '''
    assert mutants_of(source) == [("return", "value -> None", "return None")]


def test_every_mutant_of_the_scope_compiles_and_changes_the_code_and_documentation_has_none() -> None:
    files = mutation.scope_files(mutation.checkout_files(mutation.ROOT), mutation.SCOPE)
    assert "plugins/plugin_utils/_host_script.py" in files
    assert "tests/lab/twins/kerberos_log_level.py" in files
    for path in files:
        source = (mutation.ROOT / path).read_text(encoding="utf-8")
        mutants = mutation.generate(path, source)
        # Module stubs and doc fragments are documentation only: nothing in them for a test to run.
        assert bool(mutants) != path.startswith(("plugins/modules/", "plugins/doc_fragments/")), path
        for mutant in mutants:
            mutated = mutant.apply(source)
            assert mutated != source, mutant.label
            compile(mutated, path, "exec")


def test_every_file_of_the_scope_has_tests_and_never_this_tools_own() -> None:
    files = mutation.checkout_files(mutation.ROOT)
    for path in mutation.scope_files(files, mutation.SCOPE):
        modules = mutation.test_modules(mutation.selection_for(path, mutation.TEST_SELECTION), files)
        assert modules, path
        assert not [module for module in modules if module.startswith("tests/unit/tools/")], path


FIXTURE = {
    "pytest.ini": "[pytest]\npythonpath = .\n",
    ".gitignore": ".collections/\nignored.txt\n",
    "ignored.txt": "not for the copy\n",
    "calc.py": textwrap.dedent(
        """\
        def clamp(value: int, ceiling: int = 10) -> int:
            if value > ceiling:
                return ceiling
            return value
        """
    ),
    "test_calc.py": textwrap.dedent(
        """\
        from calc import clamp


        def test_clamp() -> None:
            assert clamp(20) == 10
            assert clamp(3) == 3
        """
    ),
    "loop.py": textwrap.dedent(
        """\
        def countdown(n: int) -> int:
            while n > 0:
                n -= 1
            return n
        """
    ),
    "test_loop.py": "from loop import countdown\n\n\ndef test_countdown() -> None:\n    assert countdown(3) == 0\n",
}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A tiny git checkout with a module, its test and a link like .collections that git ignores."""
    root = tmp_path / "checkout"
    for name, text in FIXTURE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / ".collections" / "ns").mkdir(parents=True)
    (root / ".collections" / "ns" / "checkout").symlink_to("../..")
    subprocess.run([GIT, "init", "-q", str(root)], check=True)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if ".git" not in path.relative_to(root).parts and path.is_file() and not path.is_symlink()
    }


def test_an_obvious_mutant_is_killed_an_equivalent_one_survives_a_hang_times_out_and_the_checkout_is_untouched(
    checkout: Path, tmp_path: Path
) -> None:
    before = snapshot(checkout)
    report = tmp_path / "report.txt"
    common = ["--root", str(checkout), "--report", str(report), "--jobs", "2", "--timeout", "5"]

    rc = mutation.main(
        [*common, "--files", "calc.py", "loop.py", "--tests", "test_calc.py", "test_loop.py", "--fail-under", "100"]
    )

    text = report.read_text(encoding="utf-8")
    survivors = text.split("Surviving mutants")[1]
    # 'value >= ceiling' returns ceiling when value == ceiling, which is the same number: an equivalent mutant.
    assert "calc.py:2: compare '>' -> '>='" in survivors
    assert "    - if value > ceiling:\n    + if value >= ceiling:" in survivors
    # Returning None instead of the clamped value fails test_clamp.
    assert "return value -> None" not in survivors
    # 'n += 1' counts up forever from 3: the tests hang until the timeout.
    assert "1 timed out" in text
    assert "loop.py:3" not in survivors
    assert rc == 1  # below --fail-under 100
    assert snapshot(checkout) == before
    status = subprocess.run([GIT, "status", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True)
    assert status.stdout.splitlines() == sorted(f"?? {name}" for name in FIXTURE if name != "ignored.txt")


def test_the_score_is_a_measurement_and_a_failing_baseline_measures_nothing(checkout: Path, tmp_path: Path) -> None:
    common = ["--root", str(checkout), "--report", str(tmp_path / "report.txt"), "--jobs", "1"]
    assert mutation.main([*common, "--files", "calc.py", "--tests", "test_calc.py", "--limit", "2"]) == 0
    assert "a partial run" in (tmp_path / "report.txt").read_text(encoding="utf-8")

    (checkout / "test_calc.py").write_text("def test_broken() -> None:\n    assert False\n", encoding="utf-8")
    assert mutation.main([*common, "--files", "calc.py", "--tests", "test_calc.py"]) == 2


def test_a_mutant_is_killed_by_a_failing_test_never_by_tests_that_could_not_run(checkout: Path, tmp_path: Path) -> None:
    (checkout / "test_calc.py").write_text("def test_broken() -> None:\n    assert False\n", encoding="utf-8")
    failed = mutation.run_tests(checkout, ["test_calc.py"], 60)
    assert (failed.status, failed.failure) == (mutation.KILLED, "test_calc.py::test_broken")

    (checkout / "test_calc.py").write_text("import no_such_module\n", encoding="utf-8")
    uncollectable = mutation.run_tests(checkout, ["test_calc.py"], 60)
    assert (uncollectable.status, uncollectable.failure) == (mutation.KILLED, "test_calc.py")

    # A mutant that a conftest imports can stop the tests from starting at all: that is a kill too, since the
    # unmutated copy starts.
    (checkout / "names.py").write_text('SEPARATOR = "-" * 3\n', encoding="utf-8")
    (checkout / "conftest.py").write_text("import names  # noqa: F401\n", encoding="utf-8")
    (checkout / "test_names.py").write_text(
        'from names import SEPARATOR\n\n\ndef test_separator() -> None:\n    assert SEPARATOR == "---"\n',
        encoding="utf-8",
    )
    common = ["--root", str(checkout), "--report", str(tmp_path / "report.txt"), "--jobs", "1"]
    assert mutation.main([*common, "--files", "names.py", "--tests", "test_names.py", "--fail-under", "100"]) == 0
    assert (
        "names.py:1: arith '*' -> '/'"
        not in (tmp_path / "report.txt").read_text(encoding="utf-8").split("Surviving mutants")[-1]
    )

    # pytest that cannot start at all, as when the virtual environment is rebuilt in the middle of a run: no score.
    (tmp_path / "report.txt").unlink()
    (checkout / "pytest.ini").write_text("[pytest]\naddopts = -p no_such_plugin\n", encoding="utf-8")
    assert mutation.run_tests(checkout, ["test_loop.py"], 60).status == mutation.NOT_RUN
    assert mutation.main([*common, "--files", "loop.py", "--tests", "test_loop.py"]) == 2
    assert not (tmp_path / "report.txt").exists()


def test_the_copy_holds_what_git_sees_and_links_into_itself(checkout: Path, tmp_path: Path) -> None:
    files = mutation.checkout_files(checkout)
    copy = mutation.make_sandbox(checkout, files, tmp_path / "copy")

    assert "ignored.txt" not in files and not (copy / "ignored.txt").exists()
    assert (copy / "calc.py").read_text(encoding="utf-8") == FIXTURE["calc.py"]
    link = copy / ".collections" / "ns" / "checkout"
    assert link.is_symlink() and os.readlink(link) == "../.."
    assert link.resolve() == copy.resolve()
