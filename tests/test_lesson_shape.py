"""Every lesson keeps the shape a participant relies on (CONTRIBUTING.md, "How a lesson reads"):
a docstring with its command, ``# %%`` cells at module level, a main guard, no import of the
repository, nothing changed by importing it, cells that run in a real Jupyter kernel, and, for
the scripts that only read, the store's lock taken before they open it."""

import ast
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import pytest
from conftest import (
    REPO_ROOT,
    all_runs,
    copy_lesson,
    load_lesson,
    participant_env,
    require,
    sqlite_uri,
)
from filelock import FileLock
from readme_executor import copy_tracked_files

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


# One fresh interpreter imports every lesson in turn: for each, it imports what the lesson
# imports, notes the state of the process, imports the lesson itself in an empty folder of
# its own, and reports every difference. One interpreter for all: starting Python with
# MLflow once instead of once per lesson saves about a minute of the suite.
IMPORT_PROBE = """
import atexit, gc, json, os, signal, sys, threading, importlib, importlib.util
from pathlib import Path

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

changes = {}
for lesson, path, names, folder in json.loads(sys.argv[1]):
    os.chdir(folder)
    for name in names:  # "matplotlib.pyplot", "sklearn.metrics.r2_score", ...
        try:
            importlib.import_module(name)
        except ImportError:  # a function or class, not a module: its module is imported
            importlib.import_module(name.rpartition(".")[0])
    before = state()
    spec = importlib.util.spec_from_file_location("lesson", path)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except BaseException as error:
        changes[lesson] = [f"importing it raised {error!r}"]
        continue
    after = state()
    changes[lesson] = [key for key in before if before[key] != after[key]]
print(json.dumps(changes))
"""


def missing_packages(lesson):
    modules = imported_modules(ast.parse((REPO_ROOT / lesson).read_text()))
    return sorted(name for name in modules if not importlib_find(name))


@pytest.fixture(scope="module")
def import_changes(tmp_path_factory):
    """{lesson: what importing it changed}, for every lesson whose packages are installed."""
    probes = []
    for lesson in LESSONS:
        if not missing_packages(lesson):
            folder = tmp_path_factory.mktemp("import")
            tree = ast.parse((REPO_ROOT / lesson).read_text())
            probes.append([lesson, str(REPO_ROOT / lesson), imports(tree), str(folder)])
    probe = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, json.dumps(probes)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    folders = {lesson: Path(folder) for lesson, _, _, folder in probes}
    return json.loads(probe.stdout), folders


@pytest.mark.parametrize("lesson", LESSONS)
def test_importing_a_lesson_changes_nothing(lesson, import_changes):
    missing = missing_packages(lesson)
    require(
        not missing, f"{lesson} needs {', '.join(missing)}: pip install -r requirements-dev.txt"
    )
    changes, folders = import_changes
    assert changes[lesson] == [], f"importing {lesson} changed: {changes[lesson]}"
    assert list(folders[lesson].iterdir()) == []


# The scripts that only read the store: each opens it with use_store(), which waits for the
# lock a lesson holds while it makes a new store's tables.
READERS = [
    "check_exercises.py",
    "compare_runs.py",
    "load_model.py",
    "solutions/03_tag_best_run.py",
    "solutions/04_tag_runs_that_beat_the_default.py",
    "solutions/05_register_champion.py",
    "spark/score_on_spark.py",
]


@pytest.mark.parametrize("reader", READERS)
def test_a_reader_waits_while_a_lesson_makes_a_new_store(reader, tmp_path, monkeypatch):
    """Started a moment after the first lesson on a new store, a reader finds the store's file
    there and its tables still being made, under mlflow.db.lock. Had it opened the store then,
    MLflow would have made the tables a second time at once and broken the store for good: it
    waits for the lock, then finds what the lesson made."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workshop = tmp_path / "workshop"
    script = copy_lesson(reader, workshop / Path(reader).parent)
    lesson = load_lesson(script)
    store = workshop / "mlflow.db"

    reached_the_lock = threading.Event()

    class WatchedLock(FileLock):  # the real lock, and a sign that the reader asked for it
        def acquire(self, *args, **kwargs):
            reached_the_lock.set()
            return super().acquire(*args, **kwargs)

    monkeypatch.setattr(lesson, "FileLock", WatchedLock)
    opened = {}
    reader_thread = threading.Thread(target=lambda: opened.update(client=lesson.use_store()))
    with FileLock(workshop / "mlflow.db.lock"):  # as the lesson making the store holds it
        with contextlib.closing(sqlite3.connect(store)) as new_store:
            new_store.execute("PRAGMA journal_mode=WAL")  # the file there, no tables yet
        reader_thread.start()
        while reader_thread.is_alive() and not reached_the_lock.wait(0.05):
            pass
        assert reached_the_lock.is_set(), "the reader opened the store without the lock"
        assert reader_thread.is_alive()  # waiting
        mlflow.MlflowClient(sqlite_uri(store)).create_experiment("made-by-the-lesson")
    reader_thread.join(timeout=120)
    assert opened["client"].get_experiment_by_name("made-by-the-lesson") is not None
    with contextlib.closing(sqlite3.connect(store)) as made:
        assert made.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def importlib_find(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


# Every lesson in the order a participant meets them, as notebooks run cell by cell in one
# workshop folder: compare, load, the checker and the solutions read what the lessons before
# them logged. A lesson in a folder runs with the kernel in its folder (``%cd``), as an
# editor starts it there: it finds the store in the folder above.
KERNEL_ORDER = [
    "demo.py",
    "train_wine_elasticnet.py",
    "compare_runs.py",
    "load_model.py",
    "train_iris_sweep.py",
    "track_training_curves.py",
    "autolog_grid_search.py",
    "check_exercises.py",
    "solutions/03_tag_best_run.py",
    "solutions/04_tag_runs_that_beat_the_default.py",
    "solutions/05_register_champion.py",
    "solutions/06_score_champion.py",
    "solutions/07_my_training_loop.py",
    "train_wine_elasticnet.py",  # again: exercise 10 takes the newest wine run as its challenger
    "solutions/10_evaluate_and_promote.py",
    "dvc_pipeline/prepare.py",
    "dvc_pipeline/train.py",
    "dvc_pipeline/evaluate.py",
    "spark/train_spark_forest.py",
    "spark/score_on_spark.py",
]
# The lessons that read the store, or only tag and register: no new run.
LOGS_NO_RUN = (
    "compare_runs.py",
    "load_model.py",
    "check_exercises.py",
    "solutions/03_tag_best_run.py",
    "solutions/04_tag_runs_that_beat_the_default.py",
    "solutions/05_register_champion.py",
    "dvc_pipeline/prepare.py",
    "dvc_pipeline/evaluate.py",
    "spark/score_on_spark.py",
)


def test_every_lesson_runs_in_a_kernel():
    assert sorted(set(KERNEL_ORDER)) == sorted(LESSONS)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One Jupyter kernel for every lesson, in a workshop folder holding the repository's
    tracked files: starting a kernel and importing MLflow in it once instead of once per
    lesson saves half a minute. Each lesson's notebook begins with ``NEW_KERNEL_NAMES``, so
    that it starts with the names of a new kernel and no others."""
    for package in ("jupytext", "nbclient", "ipykernel"):
        require(importlib_find(package), f"{package} is not installed (requirements-dev.txt)")
    from jupyter_client import KernelManager

    folder = tmp_path_factory.mktemp("notebooks")
    copy_tracked_files(folder)
    environment = {
        name: value for name, value in participant_env().items() if name != "MLFLOW_TRACKING_URI"
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(folder), env=environment)
    try:
        yield manager, folder
    finally:
        manager.shutdown_kernel(now=True)


# No names but a new kernel's: ``%reset -f`` also deletes four that a new kernel's __main__
# has, and pyspark reads ``__main__.__spec__``.
NEW_KERNEL_NAMES = """%reset -f
__doc__ = "Automatically created module for IPython interactive environment"
__loader__ = None
__package__ = None
__spec__ = None
"""


@pytest.mark.parametrize(
    "lesson",
    [
        pytest.param(lesson, id=f"{lesson} again" if lesson in KERNEL_ORDER[:index] else lesson)
        for index, lesson in enumerate(KERNEL_ORDER)
    ],
)
def test_cells_run_one_by_one_in_a_jupyter_kernel(lesson, kernel):
    """jupytext turns the lesson into a notebook; nbclient runs its cells in a real kernel,
    the last one included, which runs ``main`` with the lesson's defaults."""
    missing = missing_packages(lesson)
    require(
        not missing, f"{lesson} needs {', '.join(missing)}: pip install -r requirements-dev.txt"
    )
    if lesson.startswith("spark/"):
        require(shutil.which("java"), "the Spark lessons need Java 17 or newer")
    import jupytext
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    manager, folder = kernel
    notebook = jupytext.read(REPO_ROOT / lesson)
    assert len([cell for cell in notebook.cells if cell.cell_type == "code"]) >= 4
    notebook.cells[:0] = [
        new_code_cell(NEW_KERNEL_NAMES),
        new_code_cell(f"%cd -q {(folder / lesson).parent}"),
    ]
    runs_before = stored_runs(folder)
    client = NotebookClient(notebook, km=manager, timeout=300)
    try:
        client.execute()
    finally:
        if client.kc is not None:  # the kernel stays for the next lesson; its channels go
            client.kc.stop_channels()
    outputs = [
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    ]
    assert "".join(outputs).strip()
    if lesson not in LOGS_NO_RUN:
        assert len(stored_runs(folder)) > len(runs_before)


def stored_runs(folder):
    if not (folder / "mlflow.db").exists():
        return []
    return [
        run.info.run_id for run in all_runs(mlflow.MlflowClient(sqlite_uri(folder / "mlflow.db")))
    ]
