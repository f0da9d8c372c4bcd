"""Each lesson keeps the shape CONTRIBUTING.md sets, so that it reads in a minute.

About 150 lines in all, a ``main`` of about 50, cells (``# %%``) at module
level only, a docstring with the command that runs it, a main guard, and no
lesson importing another. The DVC pipeline's stage scripts (dvc_pipeline/)
are read as lessons too and keep the same shape; DVC runs them, so their
docstrings name ``dvc repro``, and no stage imports another stage or a lesson.
ruff keeps the complexity limit.
"""

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

LESSONS = sorted(path.name for path in REPO_ROOT.glob("*.py") if "def main(" in path.read_text())
STAGES = sorted(f"dvc_pipeline/{path.name}" for path in (REPO_ROOT / "dvc_pipeline").glob("*.py"))
MAX_LINES, MAX_MAIN_LINES = 155, 55  # "about" 150 and 50


def test_the_lessons_and_stages_are_found():
    assert {"demo.py", "compare_runs.py", "load_model.py", "serve_model.py"} <= set(LESSONS)
    assert [Path(stage).name for stage in STAGES] == ["evaluate.py", "prepare.py", "train.py"]


def imported_modules(tree):
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    return imported | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def assert_reads_in_a_minute(path, command, not_to_import):
    source = path.read_text()
    tree = ast.parse(source)
    assert len(source.splitlines()) <= MAX_LINES
    [main] = [node for node in tree.body if getattr(node, "name", None) == "main"]
    assert main.end_lineno - main.lineno + 1 <= MAX_MAIN_LINES
    indented_cells = [line for line in source.splitlines() if line.strip() == "# %%" != line]
    assert indented_cells == []
    assert command in ast.get_docstring(tree)
    assert 'if __name__ == "__main__":\n    main()' in source
    assert imported_modules(tree).isdisjoint(not_to_import)


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_reads_in_a_minute(lesson):
    others = {name.removesuffix(".py") for name in LESSONS}
    assert_reads_in_a_minute(REPO_ROOT / lesson, f"python {lesson}", others)


@pytest.mark.parametrize("stage", STAGES)
def test_a_dvc_stage_reads_in_a_minute(stage):
    stages_and_lessons = {Path(name).stem for name in STAGES + LESSONS}
    assert_reads_in_a_minute(REPO_ROOT / stage, "dvc repro", stages_and_lessons)
