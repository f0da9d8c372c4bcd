"""Fixtures shared by the tests: a throwaway tracking store, the real wine data,
and the rule for things a laptop may lack (skip there, fail in CI)."""

import contextlib
import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# MLflow 3 reports anonymous usage to its makers; tests send nothing beyond
# 127.0.0.1. Set before MLflow is imported here and inherited by every script
# and server the tests start.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import mlflow  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
WINE_CSV = REPO_ROOT / "data" / "winequality-red.csv"
IN_CI = os.environ.get("CI", "").lower() == "true"

sys.path.insert(0, str(REPO_ROOT))  # the lesson scripts live at the top level


@pytest.fixture(autouse=True)
def unfreeze_garbage_collector():
    """Undo the scripts' ``gc.freeze()`` after each test.

    A script freezes what is alive when it connects (see plumbing/store.py). That
    suits a script's own process; in the one process running all tests, it
    would keep every earlier test's garbage for good.
    """
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def no_tracking_uri_left_behind():
    """Each test starts with the tracking URI the one before it started with.

    A lesson's ``connect`` calls ``mlflow.set_tracking_uri``, which also exports
    MLFLOW_TRACKING_URI for subprocesses: left alone, a later test's scripts and
    servers would inherit another test's store.
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(before)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


def require(available, reason):
    """Skip with ``reason`` on a laptop that lacks something; fail in CI, which must have it."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def spark_missing():
    """Why Spark cannot run here, or None: pyspark and Java are both needed."""
    import importlib.util

    import plumbing

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: pip install -r requirements-spark.txt"
    if plumbing.spark._java_command() is None:
        return "there is no Java: apt-get install openjdk-17-jre-headless (README, Spark)"
    return None


def require_spark():
    require(spark_missing() is None, spark_missing())


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for a test module (starting one takes 10 to 20 s), on two
    threads like the workshop machine; the Spark lessons find it active and use it."""
    import plumbing

    require_spark()
    with plumbing.spark_session("local[2]", "tests") as session:
        yield session


def sqlite_uri(path):
    return "sqlite:///" + Path(path).as_posix()


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory):
    """An MLflow SQLite database with its tables created once, copied by each test.

    Creating the tables runs MLflow's migrations, which takes a couple of seconds.
    """
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(sqlite_uri(path)).search_experiments()
    return path


@pytest.fixture
def tracking_store(tmp_path, monkeypatch, empty_store_template):
    """A fresh SQLite store for one test, given to the scripts via MLFLOW_TRACKING_URI.

    The test runs inside ``tmp_path`` so that artifacts (which MLflow puts under
    ``./mlruns`` for a store named by URI) land there, not in the repository.
    """
    db = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store_template, db)
    uri = sqlite_uri(db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    if mlflow.active_run():  # a test that failed mid-run must not leak it to the next
        mlflow.end_run("FAILED")


def new_store(tmp_path_factory, empty_store_template, name):
    """A new folder ``name`` holding an empty store; returns the folder and the store's URI.

    For a module-wide store: one fixture fills it, many tests read it.
    """
    folder = tmp_path_factory.mktemp(name)
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    return folder, sqlite_uri(folder / "mlflow.db")


@contextlib.contextmanager
def using_store(uri, folder):
    """Inside the block, the scripts and MLflow use the store at ``uri``, run from ``folder``.

    Yields the MonkeyPatch that does it, for more patches that end with the block.
    """
    previous_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        mlflow.set_tracking_uri(uri)
        try:
            yield patch
        finally:
            mlflow.set_tracking_uri(previous_uri)


@pytest.fixture
def client(tracking_store):
    return mlflow.MlflowClient(tracking_store)


@pytest.fixture(scope="session")
def wine_csv():
    """The real red-wine data, shipped in data/."""
    assert WINE_CSV.is_file(), f"the wine data should ship at {WINE_CSV}"
    return WINE_CSV


def run_script(*args, cwd=REPO_ROOT, env=None, timeout=300):
    """Run a command as a participant would and capture what it prints."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def all_runs(client):
    """Every run in the store, whatever its experiment or status."""
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiment_ids)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url, process=None, timeout=120):
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {process.returncode} before {url} answered"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def children_of(pid):
    """Process ids whose parent is ``pid`` (Linux; elsewhere none are known)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


class BackgroundProcess:
    """A server started for a test and always stopped, with its whole process group.

    Use as a context manager; output goes to a log file, shown if the test asks.
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
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
            start_new_session=True,  # its own process group: workers die with it
        )
        return self

    def stop(self):
        import signal

        if self.process is None or self.process.poll() is not None:
            return
        if os.name == "nt":  # no process groups: stop the server process itself
            self.process.terminate()
            self.process.wait(timeout=15)
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

    def wait_for_line(self, text, timeout=30):
        """The first line of the log that holds ``text``, once it is printed."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} never printed:\n{self.log()}"
            time.sleep(0.1)
        return next(line for line in self.log().splitlines() if text in line)


def start_script(*args, cwd, env=None):
    """Start a command in the background, its output captured.

    ``cwd`` is required: MLflow puts the artifacts of a store named by URI under
    ``./mlruns`` of the current folder, which must not be the repository's.
    """
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_row_count(db, table, count, process, timeout=300):
    """Poll the SQLite store ``db`` until ``table`` has ``count`` rows (the moment to signal)."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        database = contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True))
        with database as store, contextlib.suppress(sqlite3.OperationalError):  # locked, no table
            if store.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise TimeoutError(f"{table} did not reach {count} rows within {timeout} s")


@contextlib.contextmanager
def small_filesystem(folder, size="8m", read_only=False):
    """A tmpfs of ``size`` mounted at ``folder`` for the block: a disk that fills, or a
    read-only one. Needs root (CI runs as root); elsewhere the test skips."""
    mount = shutil.which("mount")
    require(os.name == "posix" and os.geteuid() == 0 and mount, "mounting a small disk needs root")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)])
    require(result.returncode == 0, "this machine does not allow mounting a tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def make_read_only(folder):
    """Remount the tmpfs at ``folder`` read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
