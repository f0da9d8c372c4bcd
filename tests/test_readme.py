"""README.md, EXERCISES.md and team/README.md run as printed by the README executor
(tests/readme_executor.py, which says how); the executor's own rules on a small README;
the quick start through uv; and the README's recipe for a run left RUNNING."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO_ROOT, require, run_script
from readme_executor import (
    BIN,
    READMES,
    RUN_BY,
    fenced_blocks,
    fresh_clone,
    matches,
    normalised,
    readmes_run_by,
    run_as_printed,
    run_readme,
    steps,
    terminal_env,
    tracked_files,
)


@pytest.mark.parametrize("readme", readmes_run_by("test_readme"))
def test_readme_commands_print_what_the_readme_shows(readme):
    run_as_printed(readme)


def test_every_readme_with_commands_is_run_by_one_test_file():
    assert sorted(RUN_BY) == sorted(READMES)
    for test_module in set(RUN_BY.values()):
        assert (REPO_ROOT / "tests" / f"{test_module}.py").is_file()


def test_no_readme_shows_an_empty_block():
    for readme in tracked_files():
        if readme.endswith(".md"):
            blocks = fenced_blocks((REPO_ROOT / readme).read_text())
            assert all("".join(lines).strip() for _, lines, _ in blocks), readme


# --- The executor's own rules, on a small README ----------------------------

EXAMPLE = """Intro.

```bash
export GREETING=hello
echo "$GREETING world" && echo "id 0123456789abcdef0123456789abcdef"
```

```text
hello …
id 89abcdef0123456789abcdef01234567
```

Prose between a command and a block that is not its output:

```bash
echo unchecked
```

Not output.

```text
anything
```

```bash
python -c "raise SystemExit('There is no such thing.')"
```

```text
There is no such thing.
```
"""


def test_the_executor_reads_blocks_carries_exports_and_allows_shown_errors(tmp_path):
    assert [expected for _, expected in steps(EXAMPLE)] == [
        ["hello …", "id 89abcdef0123456789abcdef01234567"],
        None,
        ["There is no such thing."],
    ]
    (tmp_path / "README.md").write_text(EXAMPLE)
    (tmp_path / "logs").mkdir()
    assert run_readme("README.md", tmp_path, tmp_path / "logs") == []
    (tmp_path / "README.md").write_text(EXAMPLE.replace("hello …", "goodbye …"))
    [drift] = run_readme("README.md", tmp_path, tmp_path / "logs")
    assert "goodbye" in drift and "hello world" in drift


def test_a_failing_command_fails_unless_its_output_is_shown(tmp_path):
    failing = 'python -c "raise SystemExit(3)"'
    (tmp_path / "README.md").write_text(f"```bash\n{failing}\n```\n\n```text\n…\n```\n")
    (tmp_path / "logs").mkdir()
    with pytest.raises(AssertionError, match="exited 3"):
        run_readme("README.md", tmp_path, tmp_path / "logs")


def test_commands_run_without_pytests_own_variables():
    """MLflow behaves differently when it sees PYTEST_CURRENT_TEST (it checks its database
    sessions); a participant's terminal has no such variable, and neither have the lessons
    the tests start."""
    assert "PYTEST_CURRENT_TEST" in os.environ
    code = "import os; print([name for name in os.environ if name.startswith('PYTEST_')])"
    assert run_script("-c", code).stdout == "[]\n"
    assert [name for name in terminal_env() if name.startswith("PYTEST_")] == []


# --- The quick start --------------------------------------------------------


def test_ci_runs_the_readmes_test_command():
    """.ci/run runs the quick start's second command, through uv."""
    [quick_start] = [block for block, _ in steps((REPO_ROOT / "README.md").read_text())[:1]]
    first, test_command = quick_start
    assert first == "uv run --isolated --with-requirements requirements.txt demo.py"
    assert test_command == "uv run --isolated --with-requirements requirements-dev.txt pytest"
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert any(line.endswith(test_command.removeprefix("uv")) for line in ci), test_command


def test_quick_start_runs_lesson_one_through_uv_and_prints_what_the_readme_shows(tmp_path):
    """The first command, in a fresh clone, as a participant runs it (no virtual
    environment on PATH): lesson 1's output as the README shows it, not one MLflow
    WARNING, and no .venv or uv.lock left behind. It installs requirements.txt, which
    names no test tool."""
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    require(uv, "uv is not installed (pip install -r requirements-dev.txt installs it)")
    requirements = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    assert not [line for line in requirements if line.startswith(("pytest", "ruff", "playwright"))]
    root = fresh_clone(tmp_path / "mlflow-workshop")
    text = (REPO_ROOT / "README.md").read_text()
    [(first, _), *_] = steps(text)
    [lesson_one] = [expected for block, expected in steps(text) if block == ["python demo.py"]]
    env = {k: v for k, v in terminal_env().items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    env["UV_PYTHON"] = str(Path(sys.base_prefix) / "bin" / "python3")  # not this environment's
    env["UV_PYTHON_DOWNLOADS"] = "never"
    command = [uv, *first[0].split()[1:]]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr and "Detected uv project" not in result.stderr
    printed = result.stdout.splitlines() + result.stderr.splitlines()
    assert matches(normalised(lesson_one, root), normalised(printed, root)), printed
    assert (root / "mlflow.db").is_file()
    assert not (root / ".venv").exists() and not (root / "uv.lock").exists()


# --- The recipe for a run left RUNNING --------------------------------------


def test_the_recipe_marks_a_run_left_running_failed(tmp_path, monkeypatch):
    """The README's snippet, run as printed with a real run id, on a run that a closed
    terminal left RUNNING with its model PENDING."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # MlflowClient() then uses ./mlflow.db, as in the README
    client = mlflow.MlflowClient("sqlite:///mlflow.db")
    experiment_id = client.create_experiment("left-running")
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, source_run_id=run.info.run_id)
    text = (REPO_ROOT / "README.md").read_text()
    [recipe] = [
        lines for language, lines, _ in fenced_blocks(text) if "set_terminated" in "".join(lines)
    ]
    code = "\n".join(recipe).replace("<run id>", run.info.run_id)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=terminal_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert client.get_logged_model(model.model_id).status.name == "FAILED"
