"""docs/modules/ holds one page per module, generated from its documentation, and stays equal to what the generator
writes now: a module whose documentation changed without its page fails here (run tools/module_docs.py)."""

from __future__ import annotations

import pytest

from tools import module_docs


def test_every_module_has_its_page_and_every_page_is_current() -> None:
    wanted = module_docs.pages()
    assert sorted(path.stem for path in wanted) == sorted([*module_docs.module_names(), "README"])
    on_disk = {path: path.read_text(encoding="utf-8") for path in module_docs.PAGES_DIR.glob("*.md")}
    stale = sorted(path.name for path in set(wanted) | set(on_disk) if wanted.get(path) != on_disk.get(path))
    assert stale == [], "out of date; run .venv/bin/python tools/module_docs.py"


@pytest.mark.parametrize(
    ("source", "markdown"),
    [
        ("C(LogLevel) and O(state=restored)", "`LogLevel` and `state=restored`"),
        ("V(present), RV(previous), E(MAILFLOW_TRANSCRIPT_DIR)", "`present`, `previous`, `MAILFLOW_TRANSCRIPT_DIR`"),
        ("I(not) B(this)", "*not* **this**"),
        (
            "M(mailflow.remediation.spn) or M(ansible.windows.win_shell)",
            "[mailflow.remediation.spn](spn.md) or `ansible.windows.win_shell`",
        ),
        (
            "L(KB 979174, https://example.com/kb) U(https://example.com)",
            "[KB 979174](https://example.com/kb) <https://example.com>",
        ),
    ],
)
def test_ansible_markup_becomes_markdown(source: str, markdown: str) -> None:
    assert module_docs.markup(source) == markdown


def test_pages_name_no_path_of_the_machine_that_wrote_them() -> None:
    for path, text in module_docs.pages().items():
        assert str(module_docs.REPO_ROOT) not in text, path.name
