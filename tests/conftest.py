"""What the tests share: a throwaway tracking store, lessons loaded from their
files, commands run as a participant runs them, and the rule for what a laptop
may lack (skip there, fail in CI)."""

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

# MLflow 3 reports anonymous usage to its makers: the tests, and every script
# and server they start, send nothing beyond 127.0.0.1 (README, "Set up").
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import mlflow  # noqa: E402
import pytest  # noqa: E402

# A shell that starts the tests in the background (``pytest &`` in a script) makes
# them ignore Ctrl+C (SIGINT), and every process they start inherits that: the
# lessons would ignore the Ctrl+C the interrupt tests send. Python's default, which
# a participant's terminal gives, is put back.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# The test files that take longest, longest first, as measured on two cores (about
# 170 s down to 40 s each): the four that run a README, then those that start Spark, a
# Jupyter kernel, eight lessons at once, PostgreSQL or Chromium.
LONGEST_FIRST = (
    "test_readme.py",
    "test_dvc_pipeline.py",
    "test_readme_solutions.py",
    "test_score_on_spark.py",
    "test_lesson_shape.py",
    "test_train_spark_forest.py",
    "test_train_wine_elasticnet.py",
    "test_team_server.py",
    "test_demo.py",
    "test_ui.py",
)


def pytest_collection_modifyitems(items):
    """pytest-xdist hands out whole test files in the order they are collected
    (pytest.ini): the longest go first, so that the short ones fill in around them
    instead of a long one finishing alone at the end."""

    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


REPO_ROOT = Path(__file__).resolve().parent.parent
WINE_CSV = REPO_ROOT / "data" / "winequality-red.csv"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available, reason):
    """Skip with ``reason`` on a laptop that lacks something; fail in CI, which must have it."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def load_lesson(path):
    """A lesson (or stage) imported fresh from its file, as ``python`` would find it.

    Fresh each time: a lesson reads ``MLFLOW_TRACKING_URI`` when it is imported.
    """
    path = REPO_ROOT / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def restore_tracking_uri(before):
    """The tracking URI, and MLFLOW_TRACKING_URI, back to ``before``.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI for
    subprocesses: left alone, a later test would use another test's store.
    """
    if mlflow.active_run():  # a test that failed mid-run must not leak it to the next
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(before)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(autouse=True, scope="module")
def no_tracking_uri_left_by_a_module():
    """Each test module starts with the tracking URI the one before it started with: a
    lesson run in a module's fixture sets it, and the tests below would otherwise hand it
    on to the next module on the same worker."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    restore_tracking_uri(before)


@pytest.fixture(autouse=True)
def no_tracking_uri_left_behind():
    """Each test starts with the tracking URI the one before it started with."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    restore_tracking_uri(before)


def sqlite_uri(path):
    return "sqlite:///" + Path(path).as_posix()


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory):
    """An MLflow SQLite store with its tables made once (seconds), for tests to copy."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(sqlite_uri(path)).search_experiments()
    return path


@pytest.fixture
def tracking_store(tmp_path, monkeypatch, empty_store_template):
    """A fresh SQLite store for one test, named by MLFLOW_TRACKING_URI, the test run in
    ``tmp_path`` (where MLflow puts the artifacts of a store named by URI)."""
    shutil.copyfile(empty_store_template, tmp_path / "mlflow.db")
    uri = sqlite_uri(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def client(tracking_store):
    return mlflow.MlflowClient(tracking_store)


def all_runs(client):
    """Every run in the store, whatever its experiment or status."""
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    return client.search_runs(experiment_ids)


def copy_lesson(lesson, folder, with_data=False):
    """``lesson`` copied alone into ``folder`` (with data/ for the wine lessons), as a
    participant would copy it; returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / lesson, folder)
    if with_data:
        shutil.copytree(REPO_ROOT / "data", folder / "data", dirs_exist_ok=True)
    return folder / Path(lesson).name


def participant_env(env=None):
    """The environment a participant's terminal gives a lesson: this one without pytest's
    own variables (MLflow checks its database sessions when it sees PYTEST_CURRENT_TEST),
    and ``env`` on top."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")
    }
    return {**inherited, **(env or {})}


def run_script(*args, cwd=REPO_ROOT, env=None, timeout=300):
    """Run ``python *args`` as a participant would and capture what it prints."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=participant_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_script(*args, cwd, env=None):
    """Start ``python *args`` in the background, its output captured."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=participant_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_row_count(db, table, count, process, timeout=120, where="1"):
    """Poll the SQLite store ``db`` until ``table`` has ``count`` rows (that match the
    SQL condition ``where``): the state to signal in. Fails if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        database = f"file:{db}?mode=ro"
        # No file or table yet, or locked: look again.
        with (
            contextlib.suppress(sqlite3.OperationalError),
            contextlib.closing(sqlite3.connect(database, uri=True)) as store,
        ):
            query = f"SELECT count(*) FROM {table} WHERE {where}"
            if store.execute(query).fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise TimeoutError(f"{table} did not reach {count} rows within {timeout} s")


def interrupt_when(db, table, count, process, signum=signal.SIGINT, where="1"):
    """Send ``signum`` to ``process`` once ``table`` in ``db`` has ``count`` rows (that
    match ``where``); return its exit code and stderr."""
    wait_for_row_count(db, table, count, process, where=where)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url, process=None, timeout=120):
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before {url}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class BackgroundProcess:
    """A server started for a test and always stopped, with its whole process group.

    Use as a context manager; its output goes to a log file.
    """

    def __init__(self, args, log_path, env=None, cwd=None):
        self.args, self.log_path, self.env, self.cwd = args, Path(log_path), env, cwd
        self.process = None

    def __enter__(self):
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=participant_env(self.env),
            cwd=self.cwd,
            start_new_session=True,  # its own process group: its workers stop with it
        )
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __exit__(self, *exc):
        self.stop()
        self._log.close()

    def log(self):
        return self.log_path.read_text(errors="replace")
