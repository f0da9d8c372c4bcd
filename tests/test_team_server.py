"""team/team_server.py and team/README.md, against real servers.

One stack (a throwaway PostgreSQL cluster and `mlflow server`, on free
loopback ports, started with team/team_server.py exactly as team/README.md
says) serves the whole module: first eight trainings at once on the fresh
server, then the lesson scripts through MLFLOW_TRACKING_URI, faults, and last
the team README's sign-in steps, which switch the same stack to sign-in. The tests therefore
rely on file order, which is pytest's order. Wall times (server starts, the
load tests) appear in pytest's summary under "team server timings".
"""

import contextlib
import importlib
import importlib.util
import os
import re
import shlex
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
    BackgroundProcess,
    all_runs,
    children_of,
    free_port,
    require,
    run_script,
    sqlite_uri,
    wait_for_http,
)

sys.path.insert(0, str(REPO_ROOT / "team"))  # the team server is no lesson: it lives in team/
import team_server

import plumbing

README = REPO_ROOT / "README.md"
TEAM_README = REPO_ROOT / "team" / "README.md"
DEMO_EXPERIMENT = "demo-mlflow-artifacts"
DEMO_METRICS = {"accuracy", "roc_auc", "precision", "recall", "f1_score"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONCURRENT_TRAININGS = 8
# The team README's admin password, and the one its set-password step changes it to.
NEW_ADMIN_PASSWORD = "admin-password-from-the-prompt"


# %%
# Timings in pytest's summary
# ---------------------------
class Timings:
    """Wall times worth seeing in every test run, printed in the terminal summary."""

    def __init__(self):
        self.lines = []

    def add(self, what, seconds):
        self.lines.append(f"{what}: {seconds:.1f} s")

    def pytest_terminal_summary(self, terminalreporter):
        if self.lines:
            terminalreporter.section("team server timings")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def timings(request):
    reporter = Timings()
    request.config.pluginmanager.register(reporter, "team-server-timings")
    return reporter


# %%
# The stack: team/team_server.py in a throwaway folder
# ----------------------------------------------------
def require_postgres():
    require(
        team_server.postgres_bin_dir() is not None,
        "PostgreSQL's server programs (initdb, pg_ctl, postgres) are not installed",
    )
    require(
        importlib.util.find_spec("psycopg") is not None,
        "psycopg is not installed: pip install -r team/requirements.txt",
    )
    if team_server.running_as_root():
        import pwd

        try:
            pwd.getpwnam(team_server.PG_SYSTEM_USER)
            has_account = True
        except KeyError:
            has_account = False
        require(has_account, "running as root, with no 'postgres' user to run PostgreSQL as")


def clean_env(**extra):
    """This process's environment without MLflow settings that tests may have left."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return {**env, **extra}


def wait_until_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise TimeoutError(f"process {pid} still exists after {timeout} s")


class Stack:
    """A team/team_server.py stack in a throwaway folder, driven through its command line."""

    def __init__(self):
        # Started by root, PostgreSQL runs as the 'postgres' user, who must be
        # able to enter the folder: pytest's tmp_path is private to root.
        self.data_dir = Path(tempfile.mkdtemp(prefix="team-server-"))
        self.data_dir.chmod(0o755)
        self.port, self.pg_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.layout = team_server.Layout(self.data_dir)

    def command_line(self, line):
        """A team README line for this stack: its folder, its ports."""
        line = line.replace(
            "python team/team_server.py", f"python team/team_server.py --data-dir {self.data_dir}"
        )
        if "team_server.py" in line and " start" in line:
            line += f" --port {self.port} --pg-port {self.pg_port} --workers 2"
        return line.replace("127.0.0.1:5000", f"127.0.0.1:{self.port}")

    def run(self, *args, env=None, timeout=400):
        return subprocess.run(
            [sys.executable, "team/team_server.py", "--data-dir", str(self.data_dir), *args],
            cwd=REPO_ROOT,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *options, env=None):
        """Start the stack; return the seconds it took."""
        started = time.monotonic()
        args = ["start", *options, "--port", str(self.port), "--pg-port", str(self.pg_port)]
        result = self.run(*args, "--workers", "2", env=env)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{self.log()}"
        return time.monotonic() - started

    def state(self):
        return self.layout.read_state()

    def log(self):
        path = self.layout.mlflow_log
        return path.read_text(errors="replace")[-1500:] if path.is_file() else ""

    def postgres(self, database="mlflow"):
        return team_server.connect_to_postgres(self.layout, self.pg_port, database)

    def kill(self):
        """SIGKILL the MLflow server with its workers, and PostgreSQL: a crash, not a stop."""
        mlflow_pid = self.state()["mlflow_pid"]
        postmaster = int((self.layout.cluster / "postmaster.pid").read_text().split()[0])
        backends = children_of(postmaster)
        os.killpg(mlflow_pid, signal.SIGKILL)
        os.kill(postmaster, signal.SIGKILL)
        # PostgreSQL's own processes end when they notice; a new one starts after.
        for pid in [mlflow_pid, postmaster, *backends]:
            wait_until_gone(pid)

    def cleanup(self):
        try:
            self.run("stop", timeout=120)
        finally:
            pid = self.state().get("mlflow_pid")
            if team_server.process_is_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            pid_file = self.layout.cluster / "postmaster.pid"
            if pid_file.is_file():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def team_stack(timings):
    require_postgres()
    stack = Stack()
    try:
        timings.add("first start (new PostgreSQL cluster, MLflow tables)", stack.start())
        yield stack
    finally:
        stack.cleanup()


@pytest.fixture
def participant(team_stack, monkeypatch, tmp_path):
    """This process as a participant: MLFLOW_TRACKING_URI set, in a folder of its own."""
    folder = tmp_path / "participant"
    folder.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_stack.url)
    monkeypatch.chdir(folder)
    yield folder
    if mlflow.active_run():
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)  # back to MLFLOW_TRACKING_URI, which monkeypatch restores


@pytest.fixture
def workshop_copy(tmp_path):
    """A participant's clone: the scripts, plumbing/ and team/, no store."""
    copy = tmp_path / "mlflow-workshop"
    copy.mkdir()
    for path in REPO_ROOT.glob("*.py"):
        shutil.copy(path, copy)
    for folder in ("plumbing", "team"):
        shutil.copytree(REPO_ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__py*"))
    return copy


# %%
# team/README.md
# --------------
def team_readme_blocks():
    """The ```bash blocks of team/README.md, as lists of lines."""
    blocks = re.findall(r"^```bash\n(.*?)^```", TEAM_README.read_text(), flags=re.M | re.S)
    return [
        [line.strip() for line in block.splitlines() if line.strip() and line[0] != "#"]
        for block in blocks
    ]


def readme_block(containing):
    found = [b for b in team_readme_blocks() if any(containing in line for line in b)]
    assert found, f"no bash block of team/README.md contains {containing!r}"
    return found[0]


def run_readme_lines(stack, lines, cwd, env=None, prompts=None):
    """Run team README lines in one bash, as printed except for the stack's folder and ports.

    ``prompts`` maps a line to what a person would type at its prompt.
    """
    script = ["set -euo pipefail"]
    for line in lines:
        if line.startswith("pip install"):
            continue  # .ci/run installs the requirements
        command = stack.command_line(line)
        if prompts and line in prompts:
            command = f"printf '%s\\n' {shlex.quote(prompts[line])} | {command}"
        script.append(command)
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{lines}\n{result.stdout}\n{result.stderr}\n{stack.log()}"
    return result


# %%
# A stopped server
# ----------------
def test_stopped_server_gets_one_sentence_in_seconds(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = run_script(
        str(REPO_ROOT / "demo.py"),
        "--n-estimators",
        "5",
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    seconds = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Could not use the MLflow tracking store at {uri}: nothing answers at "
        f"127.0.0.1:{port} (Connection refused); start the server or fix MLFLOW_TRACKING_URI."
    ]
    assert seconds < 30  # MLflow alone would retry for minutes
    assert list(tmp_path.iterdir()) == []


def test_a_running_postgres_passes_the_lessons_answer_check(team_stack):
    """Before MLflow connects to a postgresql:// store, plumbing asks the server its first
    question (an SSLRequest): a real PostgreSQL answers it."""
    pg_port = team_stack.state()["pg_port"]
    plumbing.servers.check_server_answers(f"postgresql://mlflow@127.0.0.1:{pg_port}/mlflow")


@pytest.mark.parametrize(
    "script",
    [
        "train_wine_elasticnet",
        "train_iris_sweep",
        "track_training_curves",
        "autolog_grid_search",
        "compare_runs",
        "load_model",
        "serve_model",
    ],
)
def test_every_lesson_names_the_stopped_server(script, monkeypatch, tmp_path, request):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    lesson = importlib.import_module(script)
    argv = []
    if script == "train_wine_elasticnet":
        argv = ["--data", str(request.getfixturevalue("wine_csv"))]
    elif script == "serve_model":
        argv = ["--port", str(free_port())]
    with pytest.raises(SystemExit) as exit_info:
        lesson.main(argv)
    message = str(exit_info.value.code)
    assert message.startswith(f"Could not use the MLflow tracking store at {uri}: nothing answers")
    assert "\n" not in message


# %%
# The stack as team/README.md starts it
# -------------------------------------
def test_readme_points_to_the_team_readme():
    chapter = re.search(
        r"^## Run it as a team\n(.*?)(?=^## )", README.read_text(), flags=re.M | re.S
    )
    assert chapter is not None, "README.md has no 'Run it as a team' chapter"
    assert "(team/README.md)" in chapter.group(1)


def test_readme_starts_the_stack_with_team_server_py():
    assert readme_block("team_server.py start") == [
        "pip install -r team/requirements.txt",
        "python team/team_server.py start",
    ]
    requirements = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r team/requirements.txt" in requirements
    assert "-r ../requirements.txt" in (REPO_ROOT / "team" / "requirements.txt").read_text()


def test_readme_shows_the_mlflow_server_command_the_helper_runs():
    example_folder = Path("/home/you/mlflow-workshop/.team-server")
    command = team_server.mlflow_server_command(
        team_server.parse_args(["start"]), team_server.Layout(example_folder)
    )
    printed = shlex.join(["mlflow", *command[3:]])
    assert f"\n  {printed}\n" in TEAM_README.read_text()


def test_stack_listens_on_loopback_only(team_stack, workshop_copy):
    result = run_readme_lines(team_stack, readme_block("team_server.py status"), workshop_copy)
    assert f"MLflow server: running at {team_stack.url}" in result.stdout
    assert f"PostgreSQL:    running on 127.0.0.1:{team_stack.pg_port}" in result.stdout
    assert team_stack.state()["host"] == "127.0.0.1"
    with team_stack.postgres() as db:
        assert db.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert db.execute("SHOW unix_socket_directories").fetchone() == ("",)
    # The server refuses Host headers from outside (DNS rebinding protection).
    response = requests.get(
        f"{team_stack.url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        headers={"Host": "attacker.example.com"},
        timeout=30,
    )
    assert response.status_code == 403


def test_status_and_stop_when_nothing_runs(tmp_path):
    require_postgres()
    args = [str(REPO_ROOT / "team" / "team_server.py"), "--data-dir", str(tmp_path / "none")]
    status = run_script(*args, "status")
    assert status.returncode == 1
    assert "MLflow server: not running" in status.stdout
    stop = run_script(*args, "stop")
    assert stop.returncode == 0
    assert "Stopped." in stop.stdout


def test_start_refuses_a_port_in_use(tmp_path):
    require_postgres()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_script(
            str(REPO_ROOT / "team" / "team_server.py"),
            "--data-dir",
            str(tmp_path / "stack"),
            "start",
            "--port",
            str(port),
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Port {port} is already in use, perhaps by the `mlflow ui` of the lessons: "
        "stop that, or choose another --port."
    )
    assert not (tmp_path / "stack").exists()


def test_a_failed_start_leaves_nothing_running():
    """A too-short admin password stops `mlflow server`; the PostgreSQL started for it stops too."""
    require_postgres()
    data_dir = Path(tempfile.mkdtemp(prefix="team-server-"))  # PostgreSQL's user must enter it
    data_dir.chmod(0o755)
    args = [str(REPO_ROOT / "team" / "team_server.py"), "--data-dir", str(data_dir / "stack")]
    env = clean_env(MLFLOW_AUTH_ADMIN_PASSWORD="short")
    try:
        result = run_script(*args, "start", "--auth", "--port", str(free_port()), env=env)
        assert result.returncode == 1
        [sentence] = result.stderr.strip().splitlines()
        assert sentence.startswith("The MLflow server stopped while starting: ")
        assert "The configured password for the admin user 'admin' is invalid" in sentence
        status = run_script(*args, "status", env=env)
        assert "MLflow server: not running" in status.stdout
        assert "PostgreSQL:    not running" in status.stdout
    finally:
        run_script(*args, "stop", env=env)
        shutil.rmtree(data_dir, ignore_errors=True)


# %%
# Load: eight trainings at once
# -----------------------------
# First thing on the fresh server, so that the eight also race to create the
# demo's experiment, as a class does when everyone starts the first lesson.
def run_at_once(commands, cwd, env, log_dir):
    """Start every command at the same moment; return the wall time and each (code, output)."""
    logs = [log_dir / f"process-{number}.log" for number in range(len(commands))]
    started = time.monotonic()
    processes = []
    for command, log in zip(commands, logs, strict=True):
        with open(log, "w") as output:
            processes.append(
                subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=output)
            )
    codes = [process.wait(timeout=900) for process in processes]
    seconds = time.monotonic() - started
    return seconds, [(code, log.read_text()) for code, log in zip(codes, logs, strict=True)]


@pytest.mark.parametrize("store", ["server", "sqlite"])
def test_eight_trainings_at_once(store, request, tmp_path, timings, empty_store_template):
    if store == "server":
        uri = request.getfixturevalue("team_stack").url
    else:
        # A store that a first script run has already created, as the local
        # store is by the time a participant runs several scripts at once.
        database = tmp_path / "mlflow.db"
        shutil.copyfile(empty_store_template, database)
        uri = sqlite_uri(database)
    owner = f"load-{store}"
    commands = [
        [
            sys.executable,
            str(REPO_ROOT / "demo.py"),
            "--n-estimators",
            "10",
            "--seed",
            str(number),
            "--owner",
            f"{owner}-{number}",
        ]
        for number in range(CONCURRENT_TRAININGS)
    ]
    seconds, results = run_at_once(commands, tmp_path, clean_env(MLFLOW_TRACKING_URI=uri), tmp_path)
    timings.add(f"{CONCURRENT_TRAININGS} x demo.py at once against {store}", seconds)

    for code, output in results:
        assert "database is locked" not in output
        assert code == 0, output
    client = mlflow.MlflowClient(uri)
    assert client.search_runs(["0"]) == []  # none lost the race into the Default experiment
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.owner LIKE '{owner}-%'"
    )
    assert sorted(run.data.tags["owner"] for run in runs) == sorted(
        f"{owner}-{number}" for number in range(CONCURRENT_TRAININGS)
    )
    assert all(run.info.status == "FINISHED" for run in runs)
    values = [
        point
        for run in runs
        for metric in DEMO_METRICS
        for point in client.get_metric_history(run.info.run_id, metric)
    ]
    assert len(values) == CONCURRENT_TRAININGS * len(DEMO_METRICS)
    for run in runs:
        assert len(run.data.params) == 4
        plots = client.list_artifacts(run.info.run_id, "plots")
        assert len(plots) == 3


# %%
# The lesson scripts, unchanged, through the server
# -------------------------------------------------
def test_demo_logs_through_the_server_into_postgres(team_stack, participant, capsys):
    import demo

    result = demo.main(["--n-estimators", "10", "--owner", "participant"])
    run_id, model_uri = result["run_id"], result["model_uri"]
    printed = capsys.readouterr().out
    assert f"See it in the UI: {team_stack.url}/#/experiments/" in printed
    assert "mlflow ui" not in printed  # the server is the UI

    client = mlflow.MlflowClient(team_stack.url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == DEMO_METRICS
    assert run.data.params["n_estimators"] == "10"
    assert run.data.tags["owner"] == "participant"

    # The server decides where files go, and carries them there itself.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    on_server = team_stack.layout.artifacts / experiment.experiment_id
    run_files = on_server / run_id / "artifacts"
    assert (run_files / "plots" / "roc_curve.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "malignant" in (run_files / "classification_report.txt").read_text()
    model_id = model_uri.removeprefix("models:/")
    assert (on_server / "models" / model_id / "artifacts" / "model.skops").is_file()

    # The run itself is in PostgreSQL.
    with team_stack.postgres() as db:
        status = db.execute("SELECT status FROM runs WHERE run_uuid = %s", [run_id]).fetchone()
        metric_rows = db.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = %s", [run_id]
        ).fetchone()
    assert status == ("FINISHED",)
    assert metric_rows == (len(DEMO_METRICS),)

    # The model comes back through the server, and predicts.
    from sklearn.datasets import load_breast_cancer

    predictions = mlflow.pyfunc.load_model(model_uri).predict(
        load_breast_cancer(as_frame=True).data.head(10)
    )
    assert set(predictions) <= {"malignant", "benign"}
    assert list(participant.iterdir()) == []  # nothing written where the participant works


def assert_serve_model_predicts(team_stack, participant, tmp_path):
    """serve_model.py fetches the champion through the server and answers requests."""
    port = free_port()
    server = BackgroundProcess(
        [sys.executable, str(REPO_ROOT / "serve_model.py"), "--port", str(port)],
        tmp_path / "serve.log",
        env={"MLFLOW_TRACKING_URI": team_stack.url},
        cwd=participant,
    )
    with server:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/ping", server.process, timeout=180)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()}")
        iris_rows = {
            "dataframe_split": {
                "columns": [
                    "sepal length (cm)",
                    "sepal width (cm)",
                    "petal length (cm)",
                    "petal width (cm)",
                ],
                "data": [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]],
            }
        }
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=iris_rows, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": ["setosa", "versicolor", "virginica"]}


def test_every_lesson_works_through_the_server(team_stack, participant, wine_csv, tmp_path):
    import autolog_grid_search
    import compare_runs
    import load_model
    import track_training_curves
    import train_iris_sweep
    import train_wine_elasticnet

    client = mlflow.MlflowClient(team_stack.url)
    artifacts = team_stack.layout.artifacts

    wine = train_wine_elasticnet.main(["--data", str(wine_csv), "--alpha", "0.1"])
    wine_run = client.get_run(wine["run_id"])
    assert wine_run.info.status == "FINISHED"
    assert {"rmse", "r2", "mae"} <= set(wine_run.data.metrics)
    wine_experiment = wine_run.info.experiment_id
    assert list((artifacts / wine_experiment / "models").glob("m-*/artifacts/MLmodel"))

    ranked = compare_runs.main(["--experiment", "wine-quality-elasticnet"])
    assert ranked["best_run"].info.run_id == wine["run_id"]

    curves = track_training_curves.main(["--epochs", "3"])
    for metric in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        history = client.get_metric_history(curves["run_id"], metric)
        assert [point.step for point in history] == [0, 1, 2]
    autologged = autolog_grid_search.main([])
    assert client.get_run(autologged["run_id"]).info.status == "FINISHED"

    train_iris_sweep.main(["--grid", "5:2,10:3"])
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    assert champion.status == "READY"
    loaded = load_model.main(["--model-uri", "models:/iris_classifier@champion"])
    assert len(loaded["table"]["predicted"]) > 0

    assert_serve_model_predicts(team_stack, participant, tmp_path)
    every_run = all_runs(client)
    assert every_run and all(run.info.status == "FINISHED" for run in every_run)
    assert list(participant.iterdir()) == []


def test_readme_participant_commands(team_stack, workshop_copy):
    lines = readme_block("export MLFLOW_TRACKING_URI=http://127.0.0.1:5000")
    assert lines[0] == "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000"
    assert "python demo.py" in lines
    result = run_readme_lines(team_stack, lines, workshop_copy)
    assert f"See it in the UI: {team_stack.url}/#/experiments/" in result.stdout
    assert "held-out rows predicted correctly." in result.stdout  # load_model.py
    for local_store in ("mlflow.db", "mlruns", "mlartifacts"):
        assert not (workshop_copy / local_store).exists()


# %%
# Faults
# ------
def like_a_terminal():
    """Ctrl+C reaches a program in a terminal; a background job may have it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_script_leaves_no_running_run(team_stack, tmp_path, signum):
    owner = f"interrupted-{signum.name.lower()}"
    client = mlflow.MlflowClient(team_stack.url)
    with open(tmp_path / "demo.log", "w+") as log:
        process = subprocess.Popen(
            # Many trees: training takes long enough to interrupt it.
            [sys.executable, str(REPO_ROOT / "demo.py"), "--n-estimators", "3000"]
            + ["--owner", owner],
            cwd=tmp_path,
            env=clean_env(MLFLOW_TRACKING_URI=team_stack.url),
            stdout=log,
            stderr=log,
            preexec_fn=like_a_terminal,
        )
        try:
            running = None
            deadline = time.monotonic() + 180
            while running is None:
                assert process.poll() is None, "demo.py ended before its run was seen RUNNING"
                assert time.monotonic() < deadline, "demo.py's run never showed up RUNNING"
                experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
                if experiment is not None:
                    found = client.search_runs(
                        [experiment.experiment_id],
                        filter_string=f"tags.owner = '{owner}' AND attributes.status = 'RUNNING'",
                    )
                    running = found[0] if found else None
                time.sleep(0.2)
            process.send_signal(signum)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        log.seek(0)
        output = log.read()
    assert code != 0, output
    assert client.get_run(running.info.run_id).info.status in {"FAILED", "KILLED"}, output


def test_killed_stack_restarts_with_every_finished_run(team_stack, timings):
    client = mlflow.MlflowClient(team_stack.url)
    experiment_id = client.create_experiment(f"before-the-crash-{time.time_ns()}")
    last_run = client.create_run(experiment_id)
    client.log_metric(last_run.info.run_id, "finished_just_before", 1.0)
    client.set_terminated(last_run.info.run_id)
    finished = {run.info.run_id: run for run in all_runs(client) if run.info.status == "FINISHED"}
    team_stack.kill()
    assert not team_server.answers(team_stack.url)
    timings.add("start after SIGKILL of the server and PostgreSQL", team_stack.start())

    after = {run.info.run_id: run for run in all_runs(client)}
    for run_id, before in finished.items():
        assert after[run_id].info.status == "FINISHED"
        assert after[run_id].data.metrics == before.data.metrics
        assert after[run_id].data.params == before.data.params
    assert (
        "database system was not properly shut down" in team_stack.layout.postgres_log.read_text()
    )


# %%
# Sign-in, as team/README.md sets it up
# -------------------------------------
def api(stack, method, path, auth=None, **kwargs):
    """One REST call to the stack, as ``auth`` = (user, password) or nobody."""
    return requests.request(method, f"{stack.url}/api/{path}", auth=auth, timeout=60, **kwargs)


def search_status(stack, auth=None):
    """The HTTP status of listing the experiments as ``auth``."""
    search = "2.0/mlflow/experiments/search"
    return api(stack, "GET", search, auth=auth, params={"max_results": 10}).status_code


@pytest.fixture(scope="module")
def signed_in(team_stack, timings):
    """The team README's sign-in steps on the module's stack, which needs sign-in from here on."""
    start_lines = readme_block("start --auth")
    account_lines = readme_block("add-user alice")
    prompts = {"python team/team_server.py set-password admin": NEW_ADMIN_PASSWORD}
    started = time.monotonic()
    result = run_readme_lines(team_stack, start_lines + account_lines, REPO_ROOT, prompts=prompts)
    timings.add("README sign-in steps (stop, start --auth, accounts)", time.monotonic() - started)
    first_admin_password = re.search(
        r"MLFLOW_AUTH_ADMIN_PASSWORD='([^']+)'", " ".join(start_lines)
    ).group(1)
    alice_password = re.search(
        r"^Created user alice with password (\S+)$", result.stdout, flags=re.M
    ).group(1)
    return {
        "output": result.stdout,
        "first_admin_password": first_admin_password,
        "admin": ("admin", NEW_ADMIN_PASSWORD),
        "alice": ("alice", alice_password),
    }


def add_user(stack, signed_in, name):
    result = stack.run(
        "add-user",
        name,
        env=clean_env(
            MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=NEW_ADMIN_PASSWORD
        ),
    )
    assert result.returncode == 0, result.stderr
    return (name, re.search(r"with password (\S+)$", result.stdout, flags=re.M).group(1))


def test_readme_sign_in_steps(team_stack, signed_in, workshop_copy):
    assert team_stack.state()["auth"] is True
    assert "--app-name basic-auth" in signed_in["output"]
    assert "Changed the password of admin." in signed_in["output"]
    assert search_status(team_stack, ("admin", signed_in["first_admin_password"])) == 401
    assert search_status(team_stack, signed_in["admin"]) == 200
    # Admins can also create accounts in the browser; others cannot.
    signup = f"{team_stack.url}/signup"
    assert requests.get(signup, auth=signed_in["admin"], timeout=60).status_code == 200
    assert requests.get(signup, auth=signed_in["alice"], timeout=60).status_code == 403

    # A participant's commands, with the password add-user printed.
    lines = [
        line.replace("<the password from add-user>", signed_in["alice"][1])
        for line in readme_block("MLFLOW_TRACKING_USERNAME=alice")
    ]
    result = run_readme_lines(team_stack, lines, workshop_copy)
    run_id = re.search(r"^Run (\w{32}) ", result.stdout, flags=re.M).group(1)
    run = api(
        team_stack, "GET", "2.0/mlflow/runs/get", auth=signed_in["alice"], params={"run_id": run_id}
    )
    assert run.status_code == 200
    assert run.json()["run"]["info"]["status"] == "FINISHED"
    tags = {tag["key"]: tag["value"] for tag in run.json()["run"]["data"]["tags"]}
    assert tags["mlflow.user"] == "alice"


def test_no_or_wrong_password_gets_401(team_stack, signed_in):
    assert search_status(team_stack) == 401
    assert search_status(team_stack, ("alice", "not-her-password")) == 401
    assert search_status(team_stack, ("nobody", "no-such-user-here")) == 401
    assert search_status(team_stack, signed_in["alice"]) == 200
    # The files behind the runs, and the UI, are behind the same door.
    artifacts = "2.0/mlflow-artifacts/artifacts"
    assert api(team_stack, "GET", artifacts).status_code == 401
    assert requests.get(team_stack.url, timeout=60).status_code == 401


def test_script_without_password_says_so(team_stack, signed_in, monkeypatch, tmp_path):
    import demo

    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_stack.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-her-password")
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(SystemExit) as exit_info:
            demo.main(["--n-estimators", "2"])
    finally:
        mlflow.set_tracking_uri(None)
    assert exit_info.value.code == (
        f"Could not use the MLflow tracking store at {team_stack.url}: the server does not let "
        "in user 'alice' with this password (401): set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD to your account on it."
    )


def create_experiment_with_run(stack, user, name):
    created = api(stack, "POST", "2.0/mlflow/experiments/create", auth=user, json={"name": name})
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    run = api(
        stack, "POST", "2.0/mlflow/runs/create", auth=user, json={"experiment_id": experiment_id}
    )
    assert run.status_code == 200, run.text
    return experiment_id, run.json()["run"]["info"]["run_id"]


def grant(stack, granted_by, username, experiment_id, permission):
    body = {
        "username": username,
        "resource_type": "experiment",
        "resource_id": experiment_id,
        "permission": permission,
    }
    return api(stack, "POST", "3.0/mlflow/users/permissions/grant", auth=granted_by, json=body)


def test_with_edit_others_log_but_cannot_delete_or_take_over(team_stack, signed_in):
    """The README's workshop setting, --default-permission EDIT."""
    alice = signed_in["alice"]
    bob = add_user(team_stack, signed_in, "bob")
    experiment_id, alice_run = create_experiment_with_run(team_stack, alice, "alice-shared")

    def as_bob(path, body):
        return api(team_stack, "POST", f"2.0/mlflow/{path}", auth=bob, json=body).status_code

    # Bob may add runs: the lessons log into shared experiment names.
    assert as_bob("runs/create", {"experiment_id": experiment_id}) == 200
    # But he cannot delete alice's experiment or runs, or give himself more rights.
    assert as_bob("experiments/delete", {"experiment_id": experiment_id}) == 403
    assert as_bob("runs/delete", {"run_id": alice_run}) == 403
    assert grant(team_stack, bob, "bob", experiment_id, "MANAGE").status_code == 403
    assert (
        api(
            team_stack,
            "GET",
            "2.0/mlflow/experiments/get",
            auth=alice,
            params={"experiment_id": experiment_id},
        ).json()["experiment"]["lifecycle_stage"]
        == "active"
    )


@pytest.fixture(scope="module")
def read_by_default(team_stack, signed_in, timings):
    """The stack restarted with MLflow's default, --default-permission READ, for the tests
    from here on: others look, only an experiment's creator (or an admin) writes."""
    assert team_stack.run("stop").returncode == 0
    seconds = team_stack.start("--auth", "--default-permission", "READ")
    timings.add("restart with --auth --default-permission READ", seconds)


def test_with_read_a_second_user_cannot_change_the_first_users_experiment(
    team_stack, signed_in, read_by_default
):
    """With READ by default, bob looks at alice's experiment but cannot change it."""
    alice = signed_in["alice"]  # accounts survive the restart: they live in PostgreSQL
    bob = add_user(team_stack, signed_in, "bob-reads")
    experiment_id, alice_run = create_experiment_with_run(team_stack, alice, "alice-own")

    def as_bob(path, body):
        return api(team_stack, "POST", f"2.0/mlflow/{path}", auth=bob, json=body).status_code

    rename = {"experiment_id": experiment_id, "new_name": "bob-was-here"}
    assert as_bob("experiments/update", rename) == 403
    tag = {"experiment_id": experiment_id, "key": "owner", "value": "bob"}
    assert as_bob("experiments/set-experiment-tag", tag) == 403
    assert as_bob("experiments/delete", {"experiment_id": experiment_id}) == 403
    assert as_bob("runs/create", {"experiment_id": experiment_id}) == 403
    assert as_bob("runs/set-tag", {"run_id": alice_run, "key": "k", "value": "v"}) == 403
    assert as_bob("runs/delete", {"run_id": alice_run}) == 403
    read = api(
        team_stack,
        "GET",
        "2.0/mlflow/experiments/get",
        auth=bob,
        params={"experiment_id": experiment_id},
    )
    assert read.status_code == 200
    assert read.json()["experiment"]["name"] == "alice-own"

    # Alice manages her experiment, so she can let bob log into it after all.
    assert grant(team_stack, alice, "bob-reads", experiment_id, "EDIT").status_code == 200
    assert as_bob("runs/create", {"experiment_id": experiment_id}) == 200


def test_a_user_who_may_only_read_gets_one_sentence(
    team_stack, signed_in, read_by_default, workshop_copy
):
    """With READ by default, carol may look at the demo's experiment, which others
    created, but not add a run to it."""
    demo = {"experiment_name": "demo-mlflow-artifacts"}
    admin = signed_in["admin"]
    found = api(team_stack, "GET", "2.0/mlflow/experiments/get-by-name", auth=admin, params=demo)
    if not found.ok:  # no earlier test's demo.py made it: the admin does
        create_experiment_with_run(team_stack, admin, demo["experiment_name"])
    carol, password = add_user(team_stack, signed_in, "carol-reads")
    env = clean_env(
        MLFLOW_TRACKING_URI=team_stack.url,
        MLFLOW_TRACKING_USERNAME=carol,
        MLFLOW_TRACKING_PASSWORD=password,
    )
    result = run_script("demo.py", "--n-estimators", "2", cwd=workshop_copy, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Could not use the MLflow tracking store at {team_stack.url}: user 'carol-reads' may "
        "not write to the experiment 'demo-mlflow-artifacts' (403): its owner or an admin "
        "must grant you EDIT permission on it (team/README.md, sign-in)."
    )


def test_a_user_who_may_not_register_gets_one_sentence(
    team_stack, signed_in, read_by_default, workshop_copy
):
    """With READ by default, the iris experiment and its registered model are the admin's;
    granted EDIT on the experiment, dave may log runs into it, not add versions to the model:
    his sweep's runs are FAILED, one sentence naming the model."""
    admin = ("admin", NEW_ADMIN_PASSWORD)
    sweep = ("train_iris_sweep.py", "--grid", "2:1")
    as_admin = clean_env(
        MLFLOW_TRACKING_URI=team_stack.url,
        MLFLOW_TRACKING_USERNAME=admin[0],
        MLFLOW_TRACKING_PASSWORD=admin[1],
    )
    first = run_script(*sweep, cwd=workshop_copy, env=as_admin)  # both exist from here on
    assert first.returncode == 0, first.stderr
    dave, password = add_user(team_stack, signed_in, "dave-logs-runs")
    by_name = {"experiment_name": "iris_classification"}
    found = api(team_stack, "GET", "2.0/mlflow/experiments/get-by-name", auth=admin, params=by_name)
    experiment_id = found.json()["experiment"]["experiment_id"]
    assert grant(team_stack, admin, dave, experiment_id, "EDIT").status_code == 200
    as_dave = {**as_admin, "MLFLOW_TRACKING_USERNAME": dave, "MLFLOW_TRACKING_PASSWORD": password}
    before = {run["info"]["run_id"] for run in runs_in(team_stack, admin, experiment_id)}
    result = run_script(*sweep, cwd=workshop_copy, env=as_dave)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Could not use the MLflow tracking store at {team_stack.url}: user 'dave-logs-runs' "
        "may not write to the registered model 'iris_classifier' (403): its owner or an admin "
        "must grant you EDIT permission on it (team/README.md, sign-in)."
    )
    daves = [
        run
        for run in runs_in(team_stack, admin, experiment_id)
        if run["info"]["run_id"] not in before
    ]
    assert len(daves) == 2  # the sweep's parent run and its one child
    assert {run["info"]["status"] for run in daves} == {"FAILED"}


def runs_in(stack, auth, experiment_id):
    search = {"experiment_ids": [experiment_id], "max_results": 1000}
    return api(stack, "POST", "2.0/mlflow/runs/search", auth=auth, json=search).json()["runs"]
