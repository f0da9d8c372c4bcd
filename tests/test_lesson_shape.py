"""Every lesson keeps the shape a participant relies on (CONTRIBUTING.md, "How a lesson reads"):
a docstring with its command, ``# %%`` cells at module level, a main guard, no import of the
repository, nothing changed by importing it, and cells that run in a real Jupyter kernel."""

import ast
import json
import shutil
import subprocess
import sys

import mlflow
import pytest
from conftest import REPO_ROOT, all_runs, require, sqlite_uri

TOP_LEVEL = sorted(path.name for path in REPO_ROOT.glob("*.py") if "def main(" in path.read_text())
IN_FOLDERS = sorted(
    f"{path.parent.name}/{path.name}"
    for folder in ("spark", "dvc_pipeline", "solutions")
    for path in (REPO_ROOT / folder).glob("*.py")
)
LESSONS = TOP_LEVEL + IN_FOLDERS
OURS = {path.stem for path in REPO_ROOT.rglob("*.py")} | {"benchmarks", "tests"}


def test_every_lesson_is_found():
    assert TOP_LEVEL == [
        "autolog_grid_search.py",
        "check_exercises.py",
        "compare_runs.py",
        "demo.py",
        "load_model.py",
        "track_training_curves.py",
        "train_iris_sweep.py",
        "train_wine_elasticnet.py",
    ]
    assert IN_FOLDERS == [
        "dvc_pipeline/evaluate.py",
        "dvc_pipeline/prepare.py",
        "dvc_pipeline/train.py",
        "solutions/03_tag_best_run.py",
        "solutions/04_tag_runs_that_beat_the_default.py",
        "solutions/05_register_champion.py",
        "solutions/06_score_champion.py",
        "solutions/07_my_training_loop.py",
        "solutions/10_evaluate_and_promote.py",
        "spark/score_on_spark.py",
        "spark/train_spark_forest.py",
    ]


def imports(tree):
    """Every name ``tree`` imports, in full: ``matplotlib.pyplot``, ``sklearn.metrics.r2_score``."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def imported_modules(tree):
    """The top-level names of every module ``tree`` imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_lesson_reads_top_to_bottom(lesson):
    source = (REPO_ROOT / lesson).read_text()
    tree = ast.parse(source)
    command = "dvc repro" if lesson.startswith("dvc_pipeline/") else f"python {lesson}"
    assert command in ast.get_docstring(tree)
    indented_cells = [line for line in source.splitlines() if line.strip() == "# %%" != line]
    assert indented_cells == []
    assert source.count("\n# %%\n") >= 3
    assert 'if __name__ == "__main__":\n' in source
    assert imported_modules(tree).isdisjoint(OURS)
    assert "sys.path" not in source


# Run in a fresh interpreter: import what the lesson imports, note the state of the process,
# import the lesson itself, and report every difference.
IMPORT_PROBE = """
import ast, atexit, gc, json, os, signal, sys, threading, importlib, importlib.util
from pathlib import Path

path = Path(sys.argv[1])
for name in json.loads(sys.argv[2]):  # "matplotlib.pyplot", "sklearn.metrics.r2_score", ...
    try:
        importlib.import_module(name)
    except ImportError:  # a function or class, not a module: its module is imported
        importlib.import_module(name.rpartition(".")[0])

def state():
    handlers = {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                if isinstance(s, signal.Signals) and s not in (signal.SIGKILL, signal.SIGSTOP)}
    import mlflow.tracking._tracking_service.utils as tracking
    return {
        "environment": dict(os.environ), "signal handlers": handlers,
        "hooks": [repr(h) for h in (sys.excepthook, sys.unraisablehook, sys.displayhook,
                                    sys.breakpointhook, sys.gettrace(), sys.getprofile())],
        "gc": [gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()],
        "atexit": atexit._ncallbacks(), "threads": threading.active_count(),
        "sys.path": list(sys.path), "cwd": os.getcwd(), "files": sorted(os.listdir()),
        "tracking uri": repr(tracking._tracking_uri),
    }

before = state()
spec = importlib.util.spec_from_file_location("lesson", path)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
after = state()
print(json.dumps([key for key in before if before[key] != after[key]]))
"""


@pytest.mark.parametrize("lesson", LESSONS)
def test_importing_a_lesson_changes_nothing(lesson, tmp_path):
    tree = ast.parse((REPO_ROOT / lesson).read_text())
    modules = imported_modules(tree)
    missing = sorted(name for name in modules if not importlib_find(name))
    require(
        not missing, f"{lesson} needs {', '.join(missing)}: pip install -r requirements-dev.txt"
    )
    probe = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(REPO_ROOT / lesson), json.dumps(imports(tree))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]", f"importing {lesson} changed: {probe.stdout}"
    assert list(tmp_path.iterdir()) == []


def importlib_find(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


# The lessons in the order a participant meets them, as notebooks run cell by cell in one
# folder: compare, load and the checker read what the lessons before them logged. The
# scripts in folders (spark/, dvc_pipeline/, solutions/) are not here: their store is the
# folder above theirs, and the solutions need the exercises' runs before them.
KERNEL_ORDER = [
    "demo.py",
    "train_wine_elasticnet.py",
    "compare_runs.py",
    "load_model.py",
    "train_iris_sweep.py",
    "track_training_curves.py",
    "autolog_grid_search.py",
    "check_exercises.py",
]
READ_ONLY = ("compare_runs.py", "load_model.py", "check_exercises.py")


@pytest.fixture(scope="module")
def kernel_folder(tmp_path_factory):
    """An empty folder with the lessons and data/ copied in: the kernel's working folder."""
    for package in ("jupytext", "nbclient", "ipykernel"):
        require(importlib_find(package), f"{package} is not installed (requirements-dev.txt)")
    folder = tmp_path_factory.mktemp("notebooks")
    shutil.copytree(REPO_ROOT / "data", folder / "data")
    return folder


@pytest.mark.parametrize("lesson", KERNEL_ORDER)
def test_cells_run_one_by_one_in_a_jupyter_kernel(lesson, kernel_folder, monkeypatch):
    """jupytext turns the lesson into a notebook; nbclient runs its cells in a real kernel,
    the last one included, which runs ``main`` with the lesson's defaults."""
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    notebook = jupytext.read(REPO_ROOT / lesson)
    assert len([cell for cell in notebook.cells if cell.cell_type == "code"]) >= 4
    runs_before = stored_runs(kernel_folder)
    resources = {"metadata": {"path": str(kernel_folder)}}
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources=resources).execute()
    outputs = [
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    ]
    assert "".join(outputs).strip()
    if lesson not in READ_ONLY:
        assert len(stored_runs(kernel_folder)) > len(runs_before)


def stored_runs(folder):
    if not (folder / "mlflow.db").exists():
        return []
    return [
        run.info.run_id for run in all_runs(mlflow.MlflowClient(sqlite_uri(folder / "mlflow.db")))
    ]
