"""The README's commands, run exactly as printed, in the order a participant meets them.

The walkthrough copies the workshop's scripts into a temporary folder (a
stand-in for a fresh clone, so the real repository's store stays untouched),
then runs every ```bash block of the README there with bash. A few kinds of
line need more than "run it and expect exit code 0":

- servers that stay in the foreground (``mlflow ui``, ``python serve_model.py``)
  are started in the background, checked, and stopped;
- ports are replaced by free ones, and ``<RUN_ID>``-style placeholders by
  real values from the store;
- set-up lines (clone, venv, pip) are run by ``.ci/run`` in a fresh virtual
  environment; the quick start's ``uv run`` lines by test_quick_start_with_uv.

The team server's commands are in team/README.md, which tests/test_team_server.py
runs against a real PostgreSQL and `mlflow server`.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import (
    IN_CI,
    REPO_ROOT,
    BackgroundProcess,
    all_runs,
    free_port,
    require,
    spark_missing,
    sqlite_uri,
    wait_for_http,
)

README = REPO_ROOT / "README.md"
SETUP_LINE = re.compile(
    r"^(git clone|python3? -m venv|source |pip install|cd mlflow-workshop|uv run (demo.py|pytest)$)"
)
FOREGROUND_SERVERS = ("mlflow --env-file ui.env ui ", "mlflow ui ", "python serve_model.py")
SERVE_READY_LINE = "Stop the server with Ctrl+C."


SPARK_MISSING = spark_missing()


def not_run_here(line):
    """Why the walkthrough leaves ``line`` out, or None."""
    if SETUP_LINE.match(line) or "pytest" in line:
        return "run by .ci/run"  # test_ui.py writes the screenshots
    if line.startswith("python -m benchmarks.run"):
        return "a quarter of an hour"  # test_benchmarks.py runs it at tiny sizes
    if SPARK_MISSING and re.search(r"spark|java", line):
        if IN_CI:
            pytest.fail(f"CI=true but {SPARK_MISSING}")
        return SPARK_MISSING
    return None


def code_blocks(language, text=None):
    """The fenced ``language`` blocks of the README, as lists of command lines.

    Continuation lines (ending in a backslash or PowerShell's backtick) are
    joined; blank lines and comments are dropped.
    """
    text = README.read_text() if text is None else text
    blocks = re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    result = []
    for block in blocks:
        joined = re.sub(r"[\\`]\n\s*", " ", block)
        lines = [line.strip() for line in joined.splitlines()]
        result.append([line for line in lines if line and not line.startswith("#")])
    return result


def test_readme_has_bash_and_powershell_setup():
    bash = [line for block in code_blocks("bash") for line in block]
    powershell = [line for block in code_blocks("powershell") for line in block]
    assert "pip install -r requirements.txt" in bash
    assert "source .venv/bin/activate" in bash
    assert r".venv\Scripts\Activate.ps1" in powershell
    assert "pip install -r requirements-dev.txt" in bash and "pytest" in bash


def test_ci_runs_the_readmes_test_command():
    """.ci/run installs requirements-dev.txt and runs the README's exact test command."""
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    [test_block] = [b for b in code_blocks("bash") if "pip install -r requirements-dev.txt" in b]
    assert test_block == ["pip install -r requirements-dev.txt", "pytest"]
    assert any("pip install" in line and "-r requirements-dev.txt" in line for line in ci)
    assert "pytest" in [line.strip() for line in ci]


def test_quick_start_with_uv(tmp_path):
    """The quick start, in a copy with no virtual environment: uv installs the pins and runs."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    require(uv, "uv is not installed (pip install -r requirements-dev.txt installs it)")
    copy = tmp_path / "mlflow-workshop"
    copy.mkdir()
    for name in ["*.py", "*.toml", "*.txt", "ui.env"]:
        for path in REPO_ROOT.glob(name):
            shutil.copy(path, copy)
    for folder in ["data", "plumbing", "team", "tests"]:
        shutil.copytree(REPO_ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__py*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))}
    env |= {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true"}
    [commands] = [block for block in code_blocks("bash") if block[0].startswith("uv run")]
    assert commands == ["uv run demo.py", "uv run pytest"]
    demo = subprocess.run([uv, "run", "demo.py"], cwd=copy, env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "accuracy" in demo.stdout and (copy / "mlflow.db").is_file()
    assert (copy / ".venv").is_dir()
    # uv writes uv.lock, which records the package index's address: git must ignore it.
    assert "uv.lock" in (REPO_ROOT / ".gitignore").read_text().split()
    # The whole suite would run inside this test; one file shows the test tools are there.
    tests = [uv, "run", "pytest", "-q", "tests/test_requirements.py"]
    result = subprocess.run(tests, cwd=copy, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture
def workshop_copy(tmp_path):
    """A fresh-clone stand-in: the tracked top-level files, data/ and plumbing/, no store."""
    copy = tmp_path / "mlflow-workshop"
    copy.mkdir()
    for path in [
        *REPO_ROOT.glob("*.py"),
        REPO_ROOT / "ui.env",
        REPO_ROOT / "spark-log4j2.properties",
    ]:
        shutil.copy(path, copy)
    for folder in ["data", "plumbing", "tests"]:
        shutil.copytree(REPO_ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__py*"))
    return copy


class Walkthrough:
    """Runs README lines in the copy with bash, the venv's python and mlflow first on PATH."""

    def __init__(self, folder, tmp_path):
        self.folder, self.tmp_path = folder, tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + self.env["PATH"]
        self.servers = []
        self.served_port = None  # the port of serve_model.py, once the README starts it

    def client(self):
        return mlflow.MlflowClient(sqlite_uri(self.folder / "mlflow.db"))

    def substitute(self, line):
        """Fill placeholders with real values from the store."""
        if "<RUN_ID>" in line:
            line = line.replace("<RUN_ID>", all_runs(self.client())[-1].info.run_id)
        if "<EXPERIMENT_ID>" in line:
            demo = self.client().get_experiment_by_name("demo-mlflow-artifacts")
            line = line.replace("<EXPERIMENT_ID>", demo.experiment_id)
        return line

    def run_readme_line(self, line):
        """Run one line of a README bash block: what it printed, or None if that is not
        compared (a line left out here, a server started)."""
        if not_run_here(line):
            return None
        line = self.substitute(line)
        if line.startswith(FOREGROUND_SERVERS[:2]):
            port = self.start_server(line, "/health")
            names = {
                e.name for e in mlflow.MlflowClient(f"http://127.0.0.1:{port}").search_experiments()
            }
            assert "demo-mlflow-artifacts" in names, names
            return None
        if line.startswith("python serve_model.py"):
            self.served_port = self.start_server(line, "/ping")
            return self.served_start_up()
        if line.startswith("rm -rf mlflow.db"):
            # Before starting over: everything the lessons logged finished.
            runs = all_runs(self.client())
            assert runs and all(run.info.status == "FINISHED" for run in runs)
            self.run(line)
            assert not (self.folder / "mlflow.db").exists()
            return []
        if self.served_port is not None:
            line = line.replace("127.0.0.1:5001", f"127.0.0.1:{self.served_port}")
        return self.run(line).stdout.splitlines()

    def transcript(self, block):
        """Each ``$ command`` line of ``block`` with what it prints (stdout, then stderr),
        whatever its exit status: such blocks show errors."""
        printed = []
        for line in block:
            if line.startswith("$ "):
                result = self.bash(line[2:])
                printed += [line, *result.stdout.splitlines(), *result.stderr.splitlines()]
        return printed

    def bash(self, line):
        """``line`` run by bash in the copy, whatever its exit status."""
        return subprocess.run(
            ["bash", "-c", line],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def run(self, line):
        result = self.bash(line)
        assert result.returncode == 0, f"{line!r} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def start_server(self, line, readiness_path):
        port = free_port()
        line = re.sub(r"--port \d+", f"--port {port}", line)
        if "--port" not in line:
            line += f" --port {port}"
        log = self.tmp_path / f"server-{len(self.servers)}.log"
        # BackgroundProcess adds this process's environment, where an earlier test's
        # mlflow.set_tracking_uri may have left MLFLOW_TRACKING_URI: empty means unset.
        env = self.env | {"MLFLOW_TRACKING_URI": ""}
        server = BackgroundProcess(["bash", "-c", f"exec {line}"], log, env=env, cwd=self.folder)
        server.__enter__()
        self.servers.append(server)
        try:
            wait_for_http(f"http://127.0.0.1:{port}{readiness_path}", server.process, timeout=180)
        except Exception:
            raise AssertionError(f"{line!r} did not start:\n{server.log()}") from None
        return port

    def served_start_up(self):
        """What serve_model.py printed up to its last start-up line, at the README's port."""
        server, port = self.servers[-1], self.served_port
        last_line = server.wait_for_line(SERVE_READY_LINE)
        start_up = server.log().partition(last_line)[0] + last_line
        start_up = start_up.replace(f"127.0.0.1:{port}", "127.0.0.1:5001")
        return start_up.replace(f"--port {port}", "--port 5001").splitlines()

    def stop_servers(self):
        for server in self.servers:
            server.__exit__(None, None, None)


def fenced_blocks(text=None):
    """Every fenced block of the README in order: (language, lines).

    Shell blocks as code_blocks gives them; other blocks (program output)
    line for line, without blank lines.
    """
    text = README.read_text() if text is None else text
    found = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [
        (language, code_blocks(language, f"```{language}\n{body}```")[0])
        if language in ("bash", "powershell")
        else (language, [line for line in body.splitlines() if line.strip()])
        for language, body in found
    ]


def normalised(lines, folder):
    """Output lines with what differs from run to run replaced: ids, times, the folder."""
    result = []
    for line in filter(str.strip, lines):
        line = line.replace(str(folder), "/home/you/mlflow-workshop").rstrip()
        line = re.sub(r"[0-9a-f]{32}", "<id>", line)
        line = re.sub(r"\b[0-9a-f]{8}\b", "<short id>", line)  # compare_runs.py's run id column
        line = re.sub(r"sweep_\d{8}_\d{6}", "sweep_<time>", line)
        line = re.sub(r"\b\d+(\.\d+)? s\b", "<seconds> s", line)
        # A Python set in a message (MLflow's BAD_REQUEST) prints in any order.
        line = re.sub(
            r"\{'[\w', ]+'\}", lambda m: "{" + ", ".join(sorted(m[0][1:-1].split(", "))) + "}", line
        )
        result.append(line)
    return result


def differences(expected, printed, folder):
    """'' if the README's output block is what was printed, else both, to show.

    Line for line after ``normalised``; a line ``...`` (or ``… (what they are) …``)
    stands for any lines, a line ending in ``…`` for any line that starts so.
    """
    expected, printed = normalised(expected, folder), normalised(printed, folder)
    pattern = "".join(
        "(?:.*\n)*?"
        if line == "..." or re.fullmatch(r"… \(.*\) …", line)
        else re.escape(line[:-1]) + ".*\n"  # a long line cut short with …
        if line.endswith("…")
        else re.escape(line) + "\n"
        for line in expected
    )
    text = "".join(line + "\n" for line in printed)
    if re.fullmatch(pattern, text):
        return ""
    return "README:\n" + "\n".join(expected) + "\nprinted:\n" + text


def check_python_client(walk):
    """The README's Python client, against the model server still running."""
    [client_code] = [
        code
        for code in re.findall(r"^```python\n(.*?)^```", README.read_text(), re.M | re.S)
        if "127.0.0.1:5001" in code
    ]
    client_code = client_code.replace("127.0.0.1:5001", f"127.0.0.1:{walk.served_port}")
    result = walk.run(f"python - <<'EOF'\n{client_code}EOF")
    assert result.stdout.strip() == "['setosa', 'versicolor', 'virginica']"


def test_walkthrough_runs_every_readme_command(workshop_copy, tmp_path):
    """Every bash line, in order; a text block right after a bash block is what it prints."""
    walk = Walkthrough(workshop_copy, tmp_path)
    printed = None  # the stdout of the last bash block, if it printed to compare
    drifted = []  # README output blocks that differ from the real output
    try:
        for language, block in fenced_blocks():
            if language == "text" and block[0].startswith("$ "):  # commands and their output
                printed = walk.transcript(block)
            if language == "text" and printed is not None:
                drifted.append(differences(block, printed, workshop_copy))
            printed = [] if language == "bash" else None
            for line in block if language == "bash" else []:
                output = walk.run_readme_line(line)
                printed = None if output is None or printed is None else printed + output
        check_python_client(walk)
    finally:
        walk.stop_servers()
    drifted = [difference for difference in drifted if difference]
    assert not drifted, "README output blocks that drifted:\n\n" + "\n\n".join(drifted)
    if SPARK_MISSING:  # all else ran and matched
        pytest.skip(f"every README command ran but the Spark chapter's: {SPARK_MISSING}")
