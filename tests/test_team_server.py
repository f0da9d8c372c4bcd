"""team/team_server.py against a real PostgreSQL and `mlflow server` with sign-in.

One stack serves the module: team_server.py starts it in a throwaway folder on
free loopback ports, with MLflow's default permission (READ, so that a second
user may look at an experiment but not log to it), and it is always stopped.
demo.py logs to it as a participant does: MLFLOW_TRACKING_URI, a user name and
password, and the retry settings team/README.md gives. check_exercises.py reads it
as the instructor does, signed in as the admin.
"""

import contextlib
import importlib.util
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest
import requests
from conftest import (
    REPO_ROOT,
    copy_lesson,
    free_port,
    load_lesson,
    participant_env,
    require,
    run_script,
)
from mlflow.exceptions import MlflowException

team_server = load_lesson("team/team_server.py")

TEAM_SERVER = str(REPO_ROOT / "team" / "team_server.py")
TEAM_README = REPO_ROOT / "team" / "README.md"
EXPERIMENT = "demo-mlflow-artifacts"
ADMIN = ("admin", "admin-password-of-the-tests")
ALICE = ("alice", "alice-password-of-the-tests")
BOB = ("bob", "bob-password-of-the-tests")  # may only read what alice created
CAROL = ("carol", "carol-password-of-the-tests")
NOT_AUTHENTICATED = (
    "Response body: 'You are not authenticated. Please see "
    "https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow "
    "on how to authenticate.'"
)


# %%
# What a participant sets
# -----------------------
def readme_retry_settings():
    """MLflow's retry variables as team/README.md has participants set them, in bash and
    PowerShell alike: {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", ...}."""
    text = TEAM_README.read_text()
    settings = dict(re.findall(r"^export (MLFLOW_HTTP_REQUEST_\w+)=(\d+)$", text, flags=re.M))
    assert set(settings) == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"}
    for name, value in settings.items():
        assert f'$env:{name} = "{value}"' in text
    return settings


def participant(url, user=None):
    """The environment of a participant who logs to ``url`` as ``user`` (name, password)."""
    env = {"MLFLOW_TRACKING_URI": url, **readme_retry_settings()}
    if user is not None:
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = user
    return env


@contextlib.contextmanager
def as_participant(env, folder):
    """This process as a participant: their variables set, in their folder; undone after."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.chdir(folder)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)  # the lesson set it, and MLFLOW_TRACKING_URI with it


def run_demo(folder, env):
    """demo.py copied alone into ``folder`` and run there; its result and wall time."""
    lesson = copy_lesson("demo.py", folder)
    started = time.monotonic()
    result = run_script(lesson, "--n-estimators", "5", cwd=folder, env=env)
    return result, time.monotonic() - started


# %%
# The stack
# ---------
def require_postgres():
    require(
        team_server.postgres_bin_dir() is not None,
        "PostgreSQL's server programs (initdb, pg_ctl, postgres) are not installed",
    )
    require(
        importlib.util.find_spec("psycopg") is not None,
        "psycopg is missing: pip install -r team/requirements.txt",
    )
    if team_server.running_as_root():
        import pwd

        accounts = {account.pw_name for account in pwd.getpwall()}
        require("postgres" in accounts, "running as root, with no 'postgres' user for PostgreSQL")


class Stack:
    """team_server.py's stack in ``data_dir``, driven through its command line."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.layout = team_server.Layout(data_dir)
        self.port, self.pg_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self, *args, env=None, stdin=None):
        # No MLFLOW_DISABLE_TELEMETRY from conftest: team_server.py must set it itself
        # (DO_NOT_TRACK stays, so nothing is sent even if it did not).
        environment = {
            k: v for k, v in participant_env().items() if k != "MLFLOW_DISABLE_TELEMETRY"
        }
        result = subprocess.run(
            [sys.executable, TEAM_SERVER, "--data-dir", str(self.data_dir), *args],
            env={**environment, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        return result

    def stop(self):
        """`stop`, then whatever it left, by process id; the folder goes too."""
        try:
            self.run("stop")
        finally:
            pid = self.layout.read_state().get("mlflow_pid")
            if team_server.process_is_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            postmaster = self.layout.cluster / "postmaster.pid"
            if postmaster.is_file():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(postmaster.read_text().split()[0]), signal.SIGKILL)
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def signed_in(user):
    """The variables team_server.py's account commands sign in with."""
    return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


@pytest.fixture(scope="module")
def stack():
    """Started once: PostgreSQL, `mlflow server --app-name basic-auth`, and three accounts."""
    require_postgres()
    # Started by root, PostgreSQL runs as 'postgres', who must be able to enter
    # the folder: pytest's tmp_path is root's alone.
    folder = Path(tempfile.mkdtemp(prefix="team-server-"))
    folder.chmod(0o755)
    stack = Stack(folder / "data")
    try:
        ports = ["--port", str(stack.port), "--pg-port", str(stack.pg_port)]
        admin_password = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1]}
        stack.run("start", "--auth", *ports, "--workers", "1", env=admin_password)
        for name, password in (ALICE, BOB, CAROL):
            stack.run("add-user", name, env=signed_in(ADMIN))
            # As the README does: the admin sets a password of their choosing.
            stack.run("set-password", name, env=signed_in(ADMIN), stdin=password + "\n")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def alices_run(stack, tmp_path_factory):
    """demo.py run as alice, the first to use the server: her experiment, her run."""
    folder = tmp_path_factory.mktemp("alice")
    printed = io.StringIO()
    with as_participant(participant(stack.url, ALICE), folder), contextlib.redirect_stdout(printed):
        result = load_lesson("demo.py").main(["--n-estimators", "5"])
    return result, printed.getvalue(), folder


@pytest.fixture
def as_admin(stack, monkeypatch):
    """A client of the server, signed in as admin (MLflow reads the variables per request)."""
    for name, value in signed_in(ADMIN).items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(stack.url)
    return mlflow.MlflowClient(stack.url)


def runs_by_user(client):
    """The demo experiment's runs, by the user who logged them: {"alice": [Run], ...}."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = {}
    for run in client.search_runs([experiment.experiment_id]):
        runs.setdefault(run.data.tags["mlflow.user"], []).append(run)
    return runs


# %%
# A lesson logs to it
# -------------------
def test_a_lesson_logs_to_the_team_server_as_a_signed_in_user(stack, alices_run, as_admin):
    result, printed, folder = alices_run
    run = as_admin.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.user"] == "alice"
    assert run.data.params["n_estimators"] == "5"
    assert run.data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    experiment_id = run.info.experiment_id
    assert f"See it:    {stack.url}/#/experiments/{experiment_id}/runs/{run.info.run_id}" in printed

    # The server chose where the files go, and carried them there itself.
    experiment = as_admin.get_experiment(experiment_id)
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment_id}"
    run_files = stack.layout.artifacts / experiment_id / run.info.run_id / "artifacts"
    assert (run_files / "plots" / "roc_curve.png").is_file()
    assert list(folder.iterdir()) == []  # nothing where the participant works

    # The model comes back through the server, and predicts.
    model_id = result["model_uri"].removeprefix("models:/")
    assert (stack.layout.artifacts / experiment_id / "models" / model_id).is_dir()
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).data.head(5)
    predictions = mlflow.sklearn.load_model(result["model_uri"]).predict(rows)
    assert set(predictions) <= {"malignant", "benign"}

    # The run itself is a row in PostgreSQL.
    with team_server.connect_to_postgres(stack.layout, stack.pg_port, "mlflow") as database:
        query = "SELECT status FROM runs WHERE run_uuid = %s"
        assert database.execute(query, [run.info.run_id]).fetchone() == ("FINISHED",)


# %%
# What goes wrong, in one line
# ----------------------------
def test_a_wrong_password_is_one_line(stack, tmp_path):
    wrong = (ALICE[0], "not-her-password")
    result, seconds = run_demo(tmp_path, participant(stack.url, wrong))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "MLflow: API request to endpoint /api/2.0/mlflow/experiments/get-by-name failed with "
        f"error code 401 != 200. {NOT_AUTHENTICATED}"
    ]
    assert seconds < 20


def test_a_user_who_may_only_read_gets_403_in_one_line(stack, alices_run, as_admin, tmp_path):
    result, seconds = run_demo(tmp_path, participant(stack.url, BOB))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "MLflow: API request to endpoint /api/2.0/mlflow/runs/create failed with error code "
        "403 != 200. Response body: 'Permission denied'"
    ]
    assert seconds < 20
    # Refused before bob's run existed: nothing is left RUNNING.
    runs = runs_by_user(as_admin)
    assert "bob" not in runs
    assert {run.info.status for user in runs for run in runs[user]} == {"FINISHED"}


def demo_fails(env, folder):
    """demo.py run in this process as a participant with ``env``, expected to fail: the
    MlflowException its main guard prints as ``MLflow: <message>``, and the seconds it took."""
    with as_participant(env, folder):
        lesson = load_lesson("demo.py")
        started = time.monotonic()
        with pytest.raises(MlflowException) as error:
            lesson.main(["--n-estimators", "5"])
    return error.value.message, time.monotonic() - started


def test_a_server_that_does_not_answer_is_one_sentence_within_20_s(tmp_path):
    """Nothing listens on one port; on the other a socket takes the connection and
    never answers. MLflow alone retries for minutes; with the README's settings the
    lesson stops after two tries."""
    timeout = readme_retry_settings()["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        causes = {
            "Connection refused": free_port(),
            f"Read timed out. (read timeout={timeout})": silent.getsockname()[1],
        }
        for cause, port in causes.items():
            url = f"http://127.0.0.1:{port}"
            message, seconds = demo_fails(participant(url), tmp_path)
            [sentence] = message.splitlines()
            endpoint = f"{url}/api/2.0/mlflow/experiments/get-by-name"
            assert sentence.startswith(f"API request to {endpoint} failed with exception ")
            assert "Max retries exceeded" in sentence
            assert cause in sentence
            assert seconds < 20, cause  # two tries of 5 s at most


def test_postgresql_down_is_one_sentence(stack, tmp_path):
    bin_dir = team_server.postgres_bin_dir()
    team_server.stop_postgres(bin_dir, stack.layout)
    try:
        message, seconds = demo_fails(participant(stack.url, ALICE), tmp_path)
    finally:
        team_server.start_postgres(bin_dir, stack.layout, stack.pg_port)
    assert message == (
        f"API request to {stack.url}/api/2.0/mlflow/experiments/get-by-name failed with "
        f"exception HTTPConnectionPool(host='127.0.0.1', port={stack.port}): Max retries "
        f"exceeded with url: /api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT} "
        "(Caused by ResponseError('too many 503 error responses'))"
    )
    assert seconds < 20
    assert "connection failed" in stack.layout.mlflow_log.read_text()


# %%
# The instructor's table
# ----------------------
def carols_training_loop():
    """Exercise 7 as carol solves it: a linear model trained an epoch at a time on the
    wines, its held-out RMSE logged per step, in an experiment of her own."""
    import pandas as pd
    from sklearn.linear_model import SGDRegressor
    from sklearn.metrics import root_mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    wines = pd.read_csv(REPO_ROOT / "data" / "winequality-red.csv").astype(float)
    training, held_out = train_test_split(wines, test_size=0.25, random_state=42)
    scaler = StandardScaler().fit(training.drop(columns="quality"))
    X_train, X_test = (
        scaler.transform(rows.drop(columns="quality")) for rows in (training, held_out)
    )
    model = SGDRegressor(random_state=0)
    mlflow.set_experiment("my-training-loop")
    with mlflow.start_run():
        for epoch in range(10):
            model.partial_fit(X_train, training["quality"])
            rmse = root_mean_squared_error(held_out["quality"], model.predict(X_test))
            mlflow.log_metric("val_rmse", rmse, step=epoch)


def test_the_instructor_sees_every_participants_progress(stack, alices_run, tmp_path):
    """Three participants at different stages, each logging only to experiments of their
    own (the others may read them), and `python check_exercises.py --everyone` as the admin."""
    with (
        as_participant(participant(stack.url, ALICE), tmp_path),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        load_lesson("demo.py").main(["--n-estimators", "5", "--max-depth", "2"])  # exercise 1
    with (
        as_participant(participant(stack.url, BOB), tmp_path),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        wine = {
            alpha: load_lesson("train_wine_elasticnet.py").main(["--alpha", alpha])
            for alpha in ["0.5", "1", "0.9", "0.1", "0.01"]
        }
        client = mlflow.MlflowClient()
        client.set_tag(wine["0.01"]["run_id"], "best", "true")  # exercise 3
        for alpha in ["0.1", "0.01"]:
            client.set_tag(wine[alpha]["run_id"], "beats_default", "true")  # exercise 4
    with as_participant(participant(stack.url, CAROL), tmp_path):
        carols_training_loop()  # exercise 7

    admin = participant(stack.url, ADMIN)
    result = run_script("check_exercises.py", "--everyone", env=admin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "user      1  2  3  4  5  6  7  8  9 10 11  done",
        "alice     x  .  .  .  .  .  .  .  .  .  x     2",
        "bob       .  .  x  x  .  .  .  .  .  .  x     3",
        "carol     .  .  .  .  .  .  x  .  .  .  x     2",
    ]
    # The admin logged nothing: exercise 11 asks for a run of one's own.
    with as_participant(admin, tmp_path), contextlib.redirect_stdout(io.StringIO()):
        checked = load_lesson("check_exercises.py").main(["--exercise", "11"])
    assert checked == {11: f"no run of yours on {stack.url} yet"}


# %%
# The stack's own promises
# ------------------------
def test_the_server_reports_nothing_to_mlflows_makers(stack):
    pid = stack.layout.read_state()["mlflow_pid"]
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"MLFLOW_DISABLE_TELEMETRY=true" in environment
    # The UI in a participant's browser is told so too.
    config = requests.get(f"{stack.url}/ajax-api/3.0/mlflow/ui-telemetry", auth=ADMIN, timeout=60)
    assert config.json()["disable_ui_telemetry"] is True


def test_it_listens_on_this_machine_only_and_asks_for_a_password(stack):
    assert stack.layout.read_state()["host"] == "127.0.0.1"
    with team_server.connect_to_postgres(stack.layout, stack.pg_port, "mlflow") as database:
        assert database.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    search = f"{stack.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=60).status_code == 401
    assert requests.get(search, auth=ADMIN, timeout=60).status_code == 200
    # Host headers from elsewhere are refused (DNS rebinding).
    elsewhere = {"Host": "attacker.example.com"}
    assert requests.get(search, auth=ADMIN, headers=elsewhere, timeout=60).status_code == 403


def test_start_refuses_a_port_in_use(tmp_path):
    require_postgres()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        folder = tmp_path / "stack"
        result = run_script(TEAM_SERVER, "--data-dir", folder, "start", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Port {port} is already in use, perhaps by the `mlflow ui` of the lessons: "
        "stop that, or choose another --port."
    ]
    assert not folder.exists()
