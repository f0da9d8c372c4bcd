"""Each lesson keeps the shape CONTRIBUTING.md sets, so that it reads in a minute.

About 150 lines in all, a ``main`` of about 50, cells (``# %%``) at module
level only, and no lesson importing another. ruff keeps the complexity limit.
"""

import ast

import pytest
from conftest import REPO_ROOT

LESSONS = sorted(path.name for path in REPO_ROOT.glob("*.py") if "def main(" in path.read_text())
MAX_LINES, MAX_MAIN_LINES = 155, 55  # "about" 150 and 50


def test_the_lessons_are_found():
    assert {"demo.py", "compare_runs.py", "load_model.py", "serve_model.py"} <= set(LESSONS)


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_reads_in_a_minute(lesson):
    source = (REPO_ROOT / lesson).read_text()
    tree = ast.parse(source)
    assert len(source.splitlines()) <= MAX_LINES
    [main] = [node for node in tree.body if getattr(node, "name", None) == "main"]
    assert main.end_lineno - main.lineno + 1 <= MAX_MAIN_LINES
    indented_cells = [line for line in source.splitlines() if line.strip() == "# %%" != line]
    assert indented_cells == []
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported.isdisjoint(name.removesuffix(".py") for name in LESSONS)
