"""The plumbing package: the flag types and the wine data reader that every lesson relies on."""

import argparse
import contextlib
import http.server
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import (
    REPO_ROOT,
    WINE_CSV,
    free_port,
    make_read_only,
    run_script,
    small_filesystem,
    sqlite_uri,
    start_script,
)

import plumbing

COLUMNS = [*plumbing.WINE_FEATURES, plumbing.WINE_TARGET]


def synthetic_wine(rows=60, seed=0):
    """Made-up wines with the real columns and plausible ranges; quality follows alcohol."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "fixed acidity": rng.uniform(4.6, 15.9, rows).round(1),
            "volatile acidity": rng.uniform(0.12, 1.58, rows).round(3),
            "citric acid": rng.uniform(0, 1, rows).round(2),
            "residual sugar": rng.uniform(0.9, 15.5, rows).round(1),
            "chlorides": rng.uniform(0.012, 0.611, rows).round(3),
            "free sulfur dioxide": rng.integers(1, 72, rows),
            "total sulfur dioxide": rng.integers(6, 289, rows),
            "density": rng.uniform(0.990, 1.004, rows).round(4),
            "pH": rng.uniform(2.74, 4.01, rows).round(2),
            "sulphates": rng.uniform(0.33, 2.0, rows).round(2),
            "alcohol": rng.uniform(8.4, 14.9, rows).round(1),
        }
    )
    quality = 5.5 + 0.6 * (table["alcohol"] - 11.5) - 1.5 * (table["volatile acidity"] - 0.85)
    table["quality"] = (quality + rng.normal(0, 0.3, rows)).round().clip(3, 8).astype(int)
    return table


def write_csv(table, path, sep):
    """Comma form like data/, or UCI's semicolon form with a quoted header."""
    if sep == ";":
        table.to_csv(path, sep=";", index=False, quoting=1, float_format="%g")
        # UCI quotes the header only; unquote the numbers again.
        lines = path.read_text().splitlines()
        body = [line.replace('"', "") for line in lines[1:]]
        path.write_text("\n".join([lines[0], *body]) + "\n")
    else:
        table.to_csv(path, index=False)
    return path


class WineServer:
    """Serves ``body`` at any path on 127.0.0.1 and counts the requests."""

    def __init__(self, body, status=200):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/winequality-red.csv"

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# %%
# The wine data


def test_the_shipped_file_is_the_real_data():
    wine = plumbing.load_wine_data()
    assert wine.shape == (1599, 12)
    assert list(wine.columns) == COLUMNS
    assert (wine.dtypes == "float64").all()
    assert wine["quality"].between(3, 8).all()
    assert (plumbing.REPO_ROOT / "data" / "README.md").read_text().count("CC BY 4.0") == 1
    assert WINE_CSV == plumbing.WINE_CSV


@pytest.mark.parametrize("sep", [",", ";"])
def test_reads_comma_and_semicolon_files(tmp_path, sep):
    table = synthetic_wine()
    wine = plumbing.load_wine_data(write_csv(table, tmp_path / "wine.csv", sep))
    assert list(wine.columns) == COLUMNS
    pd.testing.assert_frame_equal(wine, table.astype(float))


def test_extra_columns_are_ignored(tmp_path):
    table = synthetic_wine().assign(colour="red")
    wine = plumbing.load_wine_data(write_csv(table, tmp_path / "wine.csv", ","))
    assert list(wine.columns) == COLUMNS


BAD_FILES = {
    "missing columns": (
        "fixed acidity,alcohol,quality\n7.4,9.4,5\n",
        "no column 'volatile acidity'",
    ),
    "non-numeric": ("alcohol", "missing, non-numeric or infinite value on line 4"),
    "infinite": ("inf", "missing, non-numeric or infinite value on line 4"),
    "empty": ("", "as a CSV file"),
    "header only": (",".join(COLUMNS) + "\n", "a header but no rows"),
    "three rows": (",".join(COLUMNS) + "\n" + ("1," * 11 + "5\n") * 3, "only 3 rows"),
    "not text": (b"\x89PNG\r\n\x1a\n\xff\xfe", "as a CSV file"),
    "ragged rows": (
        ",".join(COLUMNS) + "\n" + "1," * 11 + "5\n" + "1," * 13 + "5\n",
        "as a CSV file",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_file_that_is_not_the_wine_data_is_one_sentence(tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    if content in ("alcohol", "inf"):
        table = synthetic_wine().astype({"alcohol": object})
        table.loc[2, "alcohol"] = "twelve" if content == "alcohol" else "inf"
        write_csv(table, path, ",")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(path)
    sentence = str(exit_info.value.code)
    assert message in sentence and str(path) in sentence
    assert "\n" not in sentence


def test_a_url_that_answers_404_is_one_sentence():
    with WineServer(b"Not Found", status=404) as server, pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(server.url)
    assert str(exit_info.value.code).startswith(f"Could not read {server.url} as a CSV file (")
    assert "404" in str(exit_info.value.code)


class TricklingServer:
    """Accepts connections on 127.0.0.1 and sends one byte a second, for ever."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopped = threading.Event()

    def serve(self):
        with contextlib.suppress(OSError):
            while not self.stopped.is_set():
                connection, _ = self.listener.accept()
                threading.Thread(target=self.trickle, args=[connection], daemon=True).start()

    def trickle(self, connection):
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"1" * 100000:
                if self.stopped.wait(1):
                    return
                connection.sendall(bytes([byte]))

    def __enter__(self):
        threading.Thread(target=self.serve, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.listener.close()


def test_a_trickling_download_is_given_up_in_one_sentence(monkeypatch):
    monkeypatch.setattr(plumbing.wine, "DOWNLOAD_SECONDS", 3)
    started = time.monotonic()
    with TricklingServer() as server, pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(f"{server.url}/winequality-red.csv")
    assert time.monotonic() - started < 6
    assert exit_info.value.code == (
        f"Could not read {server.url}/winequality-red.csv as a CSV file (no complete answer "
        "within 3 s); pass the red-wine CSV with --data."
    )


def test_a_trickling_tracking_server_is_given_up_in_one_sentence(monkeypatch):
    monkeypatch.setattr(plumbing.servers, "SERVER_SECONDS", 3)
    with TricklingServer() as server, pytest.raises(SystemExit) as exit_info:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        started = time.monotonic()
        plumbing.connect()
    assert time.monotonic() - started < 6
    host_port = server.url.removeprefix("http://")
    assert exit_info.value.code == (
        f"Could not use the MLflow tracking store at {server.url}: {host_port} accepts "
        "connections but sent no complete answer within 3 s; restart the server or fix "
        "MLFLOW_TRACKING_URI."
    )


def test_a_database_server_that_never_answers_is_given_up_in_one_sentence(monkeypatch):
    monkeypatch.setattr(plumbing.servers, "SERVER_SECONDS", 2)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections queue, none is served
        port = silent.getsockname()[1]
        uri = f"postgresql://ann:secret@127.0.0.1:{port}/mlflow"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        started = time.monotonic()
        with pytest.raises(SystemExit) as exit_info:
            plumbing.connect()
    assert time.monotonic() - started < 5
    assert exit_info.value.code == (
        f"Could not use the MLflow tracking store at postgresql://ann:***@127.0.0.1:{port}/mlflow: "
        f"127.0.0.1:{port} accepts connections but sent no answer within 2 s; restart the "
        "server or fix MLFLOW_TRACKING_URI."
    )


def test_a_closed_port_is_one_sentence():
    url = f"http://127.0.0.1:{free_port()}/winequality-red.csv"
    with pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(url)
    assert str(exit_info.value.code).startswith(f"Could not read {url} as a CSV file (")


# %%
# Flag types


@pytest.mark.parametrize(
    ("flag_type", "text", "value"),
    [
        (plumbing.positive_int, "3", 3),
        (plumbing.seed, "0", 0),
        (plumbing.seed, "4294967295", 4294967295),
        (plumbing.non_negative_number, "0", 0.0),
        (plumbing.closed_fraction, "1", 1.0),
        (plumbing.holdout_fraction, "0.3", 0.3),
        (plumbing.port_number, "5001", 5001),
        (plumbing.grid, "10:2, 50:3", [(10, 2), (50, 3)]),
        (plumbing.spark_grid, "10:30", [(10, 30)]),
        (plumbing.learning_rate, "1", 1.0),
        (
            plumbing.model_uri,
            "models:/iris_classifier@champion",
            "models:/iris_classifier@champion",
        ),
    ],
)
def test_flag_types_accept_good_values(flag_type, text, value):
    assert flag_type(text) == value


@pytest.mark.parametrize(
    ("flag_type", "text"),
    [
        (plumbing.positive_int, "0"),
        (plumbing.positive_int, "1.5"),
        (plumbing.seed, "4294967296"),
        (plumbing.non_negative_number, "nan"),
        (plumbing.non_negative_number, "-inf"),
        (plumbing.closed_fraction, "1.01"),
        (plumbing.holdout_fraction, "0.999"),
        (plumbing.port_number, "70000"),
        (plumbing.grid, "10:0"),
        (plumbing.grid, "10:2,10:2"),
        (plumbing.grid, "ten:2"),
        (plumbing.spark_grid, "10:31"),
        (plumbing.learning_rate, "1.5"),
        (plumbing.model_uri, "iris_classifier"),
        (plumbing.model_uri, "models:/iris_classifier@"),
        (plumbing.model_uri, "models:/iris_classifier/"),
        (plumbing.model_uri, "runs:/0123abcd"),
        (plumbing.positive_int, "99999999999999999999"),
        (plumbing.positive_int, "2147483648"),
    ],
)
def test_flag_types_refuse_bad_values_in_one_sentence(flag_type, text):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        flag_type(text)
    assert text.strip() in str(error.value) or "twice" in str(error.value)


def test_a_device_is_not_read_as_wine_data():
    with pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(os.devnull if sys.platform == "win32" else "/dev/zero")
    assert str(exit_info.value.code).endswith("is not a file; pass the red-wine CSV with --data.")


# %%
# The store


@pytest.mark.parametrize("repetition", [1, 2, 3])
def test_eight_lessons_at_once_on_a_new_store(tmp_path, repetition):
    """Eight train_wine_elasticnet.py started at the same moment on a store that does not
    exist yet (a workshop room, a ``for … &`` loop, a CI matrix): all succeed."""
    db = tmp_path / "new" / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": sqlite_uri(db)}
    lesson = str(REPO_ROOT / "train_wine_elasticnet.py")
    copies = [start_script(lesson, "--seed", str(copy), env=env, cwd=tmp_path) for copy in range(8)]
    results = [(copy.wait(timeout=240), copy.communicate()[1]) for copy in copies]
    assert [code for code, _ in results] == [0] * 8, results
    with sqlite3.connect(db) as database:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        statuses = database.execute("SELECT status FROM runs").fetchall()
    assert statuses == [("FINISHED",)] * 8
    client = mlflow.MlflowClient(sqlite_uri(db))
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    models = client.search_logged_models(experiment_ids)
    assert [model.status.name for model in models] == ["READY"] * 8
    # The store stays usable: one more lesson opens it.
    again = run_script(lesson, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"this is not a database" * 100, "file is not a database"), (b"", None)],
    ids=["not-a-database", "empty"],
)
def test_a_broken_store_is_one_sentence(tmp_path, monkeypatch, content, reason):
    db = tmp_path / "mlflow.db"
    db.write_bytes(content)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(db))
    if reason is None:  # an empty file is a new store
        plumbing.connect()
        return
    with pytest.raises(SystemExit) as exit_info:
        plumbing.connect()
    text = str(exit_info.value.code)
    assert text == (
        f"Could not use the MLflow store {db} ((sqlite3.DatabaseError) {reason}): move it "
        "aside (rename mlflow.db to mlflow.db.broken) and the next script starts a new store there."
    )


@pytest.mark.parametrize("uri", ["foo://bar", "/tmp/some/folder", "file:///tmp/mlruns"])
def test_a_tracking_uri_of_no_known_form_is_one_sentence(monkeypatch, uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit) as exit_info:
        plumbing.connect()
    assert str(exit_info.value.code).startswith(
        f"MLFLOW_TRACKING_URI={uri} is not a tracking store these scripts can use: set it to "
    )


def test_a_read_only_store_is_read_but_not_written(tmp_path, monkeypatch, empty_store_template):
    with small_filesystem(tmp_path / "disk") as disk:
        shutil.copyfile(empty_store_template, disk / "mlflow.db")
        make_read_only(disk)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(disk / "mlflow.db"))
        plumbing.connect()  # compare_runs.py, load_model.py: reading is fine
        with pytest.raises(SystemExit) as exit_info:
            plumbing.use_experiment("read-only")
    assert exit_info.value.code == (
        f"Could not use the MLflow store {disk / 'mlflow.db'} (it is read-only for you): make "
        f"{disk / 'mlflow.db'} and its folder writable for you, or use another store."
    )


def test_a_database_server_that_refuses_is_one_sentence_at_once(monkeypatch):
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql://ann:secret@127.0.0.1:{port}/mlflow")
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        plumbing.connect()
    assert time.monotonic() - started < 15
    assert exit_info.value.code.startswith(
        f"Could not use the MLflow tracking store at postgresql://ann:***@127.0.0.1:{port}/mlflow: "
        f"nothing answers at 127.0.0.1:{port} ("
    )


# A Ctrl+C that arrives while Python runs a weakref callback (as it does, unseen, during
# a garbage collection) raises there, where Python prints the error and carries on.
INTERRUPTED_IN_A_CALLBACK = """
import os, signal, time, weakref
from plumbing import stopping
signal.signal(signal.SIGINT, stopping.on_signal)

class Thing:
    pass

def callback(reference):
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(100_000))  # Python runs the handler here, inside the callback

thing = Thing()
reference = weakref.ref(thing, callback)
del thing
time.sleep(10)
print("the interrupt was lost")
"""


def test_an_interrupt_inside_a_weakref_callback_is_not_lost():
    result = run_script("-c", INTERRUPTED_IN_A_CALLBACK, env={"PYTHONPATH": str(REPO_ROOT)})
    assert "the interrupt was lost" not in result.stdout
    assert result.stderr == "Stopped by Ctrl+C: no run was being logged.\n"
    assert result.returncode == -2  # killed by SIGINT: a shell shows 130


def test_sigterm_before_any_run_is_one_line(tmp_path):
    """From ``import plumbing`` on, before MLflow is even imported, SIGTERM ends in one line."""
    waiting = "import plumbing, time; print('imported', flush=True); time.sleep(30)"
    process = start_script("-c", waiting, env={"PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path)
    assert process.stdout.readline() == "imported\n"
    process.terminate()
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (-15, "Stopped by SIGTERM: no run was being logged.\n")


def test_ctrl_c_while_mlflow_is_being_imported_is_one_line():
    """A half-imported ``mlflow`` module (Ctrl+C inside ``import mlflow``) has no runs yet."""
    half_imported = (
        "import os, signal, sys, time, types, plumbing\n"
        "sys.modules['mlflow'] = types.ModuleType('mlflow')  # its attributes not yet defined\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(10)\n"
    )
    result = run_script("-c", half_imported, env={"PYTHONPATH": str(REPO_ROOT)})
    assert (result.returncode, result.stderr) == (
        -2,
        "Stopped by Ctrl+C: no run was being logged.\n",
    )


def test_a_store_elsewhere_gets_the_readme_ui_command_with_its_uri(tracking_store):
    run = mlflow.MlflowClient(tracking_store).create_run("0")  # in the Default experiment
    intro, command, link = plumbing.where_to_look(run)
    assert intro == f"See it in the UI: from {plumbing.REPO_ROOT} run"
    assert command.strip() == plumbing.UI_COMMAND.replace("sqlite:///mlflow.db", tracking_store)
    assert link.endswith(f"/runs/{run.info.run_id}{plumbing.UI_VIEW}")
