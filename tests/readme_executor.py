"""The README executor: every README's commands, run as printed, in a fresh copy of
the repository.

One executor for README.md, the folder READMEs (spark/, dvc_pipeline/, team/,
solutions/) and EXERCISES.md. For each README it copies the repository's
tracked files into an empty folder (a fresh clone: a git repository, no
store), then goes through the README's fenced blocks in order:

- each line of a ```bash block is one command, run with bash from the copy's
  root, with MLFLOW_TRACKING_URI unset unless the README exports it (what a
  command exports, later commands see, as in one terminal);
- a ```text block directly after a ```bash block (only blank lines between) is
  what that block's last command printed, stdout then stderr. ``…`` within a
  line stands for any text, a line of only ``…`` for any lines; blank lines,
  run and model ids (32 hex digits, or the 8 of a short run id) and the copy's
  path (shown as /home/you/mlflow-workshop) do not count;
- every command must exit with 0, but one whose whole output a text block
  shows (no line of only ``…``): that block shows what went wrong;
- a ```bash block of one command with ``--port N`` and no text block after it
  is a server that stays in the foreground (``mlflow ui``, ``mlflow models
  serve``, ``mlflow server``): it is started in the background on a free port
  (later commands get that port for N), waited for (``/health``) once a
  command names its port, another server starts or the README ends, and
  stopped when the README is done;
- set-up lines (git clone, venv, pip install, uv, pytest) are CI's to run, and
  ```powershell and ```python blocks are not run here (tests/test_serving.py
  runs the Python request).

A README whose commands need something a laptop may lack (Java and pyspark,
DVC, PostgreSQL) is skipped there with the reason, and fails in CI.

The READMEs take minutes each. Several test files run them (``RUN_BY``), so that
pytest-xdist, which gives a test file to one worker whole, shares them out.
tests/test_dvc_pipeline.py and tests/test_score_on_spark.py run their folder's README
(``walk``) in a module fixture and look at what its commands left, instead of making
the same runs again.
"""

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import (
    REPO_ROOT,
    BackgroundProcess,
    free_port,
    participant_env,
    require,
    wait_for_http,
)


def tracked_files():
    """The repository's files as git knows them: what a fresh clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [name for name in listed.stdout.split("\0") if (REPO_ROOT / name).is_file()]


READMES = [
    name
    for name in tracked_files()
    if name.endswith(("README.md", "EXERCISES.md")) and "```bash" in (REPO_ROOT / name).read_text()
]
README_FOLDER = "/home/you/mlflow-workshop"  # where the READMEs' examples live
SET_UP = re.compile(
    r"^(git clone|cd mlflow-workshop|python3? -m venv|py -m venv|source \S*activate"
    r"|\S*pip install|uv |pytest)"
)
SERVER_PORT = re.compile(r"--port (\d+)")
BIN = Path(sys.executable).parent  # python, mlflow and dvc of the environment under test
# Variables bash sets by itself: not carried from one command to the next.
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}


def postgresql_installed():
    found = shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return bool(found) and importlib.util.find_spec("psycopg") is not None


# What a README's commands may need, found by what they run: (pattern, available, reason).
NEEDS = [
    (
        r"\bspark/|pyspark",
        lambda: shutil.which("java") and importlib.util.find_spec("pyspark"),
        "the Spark lessons need Java and pyspark (pip install -r spark/requirements.txt)",
    ),
    (
        r"\bdvc\b",
        lambda: (BIN / "dvc").exists() or shutil.which("dvc"),
        "the DVC lesson needs DVC (pip install -r dvc_pipeline/requirements.txt)",
    ),
    (
        r"team_server\.py|postgres",
        postgresql_installed,
        "the team server needs PostgreSQL's programs (initdb, pg_ctl) and psycopg",
    ),
]


# --- Reading a README -------------------------------------------------------


def fenced_blocks(text):
    """Each fenced block in order: (language, body lines, whether only blank lines
    separate it from the block before)."""
    blocks, previous_end = [], None
    fence = re.compile(r"^( *)```(\w*)\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
    for match in fence.finditer(text):
        indent = len(match[1])
        lines = [line[indent:] for line in match[3].splitlines()]
        adjacent = previous_end is not None and not text[previous_end : match.start()].strip()
        blocks.append((match[2], lines, adjacent))
        previous_end = match.end()
    return blocks


def commands(lines):
    """A bash block's commands: continuation lines joined, blanks and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()[:1] not in ("", "#")]


def steps(text):
    """The README as (commands, expected output or None) per bash block, in order."""
    blocks = fenced_blocks(text)
    result = []
    for index, (language, lines, _) in enumerate(blocks):
        if language != "bash":
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following[1] if following and following[0] == "text" and following[2] else None
        result.append((commands(lines), expected))
    return result


# --- Comparing output -------------------------------------------------------


def normalised(lines, root):
    """Lines without blanks, trailing spaces, ids or the copy's path."""
    result = []
    for line in lines:
        line = line.replace(str(root), README_FOLDER).rstrip()
        line = re.sub(r"\b[0-9a-f]{32}\b", "<id>", line)
        line = re.sub(r"\b[0-9a-f]{8}\b", "<short id>", line)
        if line.strip():
            result.append(line)
    return result


def matches(expected, printed):
    """Whether ``printed`` is what the text block ``expected`` shows (both normalised)."""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == "…" else ".*".join(map(re.escape, line.split("…"))) + r"\n"
        for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in printed)) is not None


# --- Running it -------------------------------------------------------------


def copy_tracked_files(folder):
    """The repository's tracked files, as they are now (a file deleted here left out),
    copied into ``folder``."""
    for name in tracked_files():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, folder / name)


def fresh_clone(folder):
    """The repository's tracked files, as they are now, in ``folder``: a git repository
    with one commit, and no store."""
    copy_tracked_files(folder)
    for git in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "A fresh clone"],
    ):
        subprocess.run(["git", *git], cwd=folder, env=terminal_env(), check=True)
    return folder


def terminal_env():
    """A participant's terminal: the environment's programs first, no tracking URI,
    no telemetry, and a git identity for the READMEs' commits."""
    env = {k: v for k, v in participant_env().items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "You"
        env[f"GIT_{role}_EMAIL"] = "you@example.org"
    return env


class Terminal:
    """Runs README commands one after the other, as one terminal would, from ``root``."""

    def __init__(self, root, logs):
        self.root, self.logs = root, logs
        self.env = terminal_env()
        self.ports = {}  # a README's port -> the free port used instead
        self.servers = []
        self.starting = []  # (command, README port, server) not yet seen answering

    def with_ports(self, command):
        for port, free in self.ports.items():
            command = re.sub(rf"(?<=[:/]){port}\b|(?<=--port ){port}\b", str(free), command)
        return command

    def run(self, command):
        """``command`` run by bash; the variables it exports are kept for the next."""
        self.wait_for_servers(command)
        state = self.logs / "environment"
        script = f'{self.with_ports(command)}\nstatus=$?\nenv -0 > "{state}"\nexit $status\n'
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if state.exists():
            pairs = (item.partition("=") for item in state.read_text().split("\0") if item)
            self.env = {name: value for name, _, value in pairs if name not in SHELL_OWN}
            state.unlink()
        printed = result.stdout.splitlines() + result.stderr.splitlines()
        for port, free in self.ports.items():
            printed = [line.replace(f"127.0.0.1:{free}", f"127.0.0.1:{port}") for line in printed]
        return result.returncode, printed

    def start_server(self, command):
        """A foreground server, started in the background on a free port. It is waited
        for once a later command names its port, or another server starts, or at the end:
        meanwhile the README goes on, as a participant's does in the first terminal."""
        self.wait_for_servers()
        port = SERVER_PORT.search(command)[1]
        self.ports[port] = free_port()
        log = self.logs / f"server-{len(self.servers)}.log"
        server = BackgroundProcess(
            ["bash", "-c", f"exec {self.with_ports(command)}"], log, env=self.env, cwd=self.root
        )
        self.servers.append(server.__enter__())
        self.starting.append((command, port, server))

    def wait_for_servers(self, command=None):
        """Wait for the servers still starting (those whose port ``command`` names)."""
        for started in list(self.starting):
            server_command, port, server = started
            if command is not None and not re.search(rf"\b{port}\b", command):
                continue
            try:
                wait_for_http(f"http://127.0.0.1:{self.ports[port]}/health", server.process)
            except (RuntimeError, TimeoutError) as error:
                message = f"{server_command!r} did not start: {error}\n{server.log()}"
                raise AssertionError(message) from None
            self.starting.remove(started)

    def stop_servers(self):
        for server in self.servers:
            server.__exit__(None, None, None)


def run_readme(readme, root, logs, watch=None):
    """Every command of ``readme`` in the copy at ``root``; the output blocks that
    differ from what was printed, as text to show. ``watch(command, printed)``, if
    given, is called after each command: a test can look at the copy on the way."""
    terminal = Terminal(root, logs)
    drifted = []
    try:
        for block, expected in steps((root / readme).read_text()):
            if len(block) == 1 and expected is None and SERVER_PORT.search(block[0]):
                terminal.start_server(block[0])
                continue
            status, printed = 0, []
            for command in block:
                if SET_UP.match(command):
                    continue
                status, printed = terminal.run(command)
                if watch is not None:
                    watch(command, printed)
                complete = expected is not None and command == block[-1]
                complete = complete and not any(line.strip() == "…" for line in expected)
                if status != 0 and not complete:
                    earlier = "".join(f"\n\nAn earlier block differs:\n{d}" for d in drifted)
                    shown = "\n".join(printed)
                    raise AssertionError(f"{command!r} exited {status}:\n{shown}{earlier}")
            if expected is not None and not matches(
                normalised(expected, root), normalised(printed, root)
            ):
                shown = "\n".join(expected)
                drifted.append(f"$ {block[-1]}\nREADME:\n{shown}\nprinted:\n" + "\n".join(printed))
        terminal.wait_for_servers()
    finally:
        terminal.stop_servers()
    return drifted


# --- One README, start to end -----------------------------------------------

# Which test file runs which README: each file takes two or three minutes.
RUN_BY = {
    "README.md": "test_readme",
    "EXERCISES.md": "test_readme",
    "team/README.md": "test_readme",
    "dvc_pipeline/README.md": "test_dvc_pipeline",
    "spark/README.md": "test_score_on_spark",
    "solutions/README.md": "test_readme_solutions",
}


def readmes_run_by(test_module):
    return [readme for readme, runner in RUN_BY.items() if runner == test_module]


def run_as_printed(readme):
    """Every command of ``readme`` in a fresh clone, and every output block compared.

    The clone is in a folder every user may enter: started by root, PostgreSQL runs
    as 'postgres' (team/README.md), and pytest's own folders are closed to it.
    Whatever the README started there and did not stop is stopped afterwards."""
    text = (REPO_ROOT / readme).read_text()
    everything = "\n".join(c for block, _ in steps(text) for c in block if not SET_UP.match(c))
    for pattern, available, reason in NEEDS:
        if re.search(pattern, everything):
            require(available(), reason)
    folder = Path(tempfile.mkdtemp(prefix="readme-"))
    folder.chmod(0o755)
    try:
        drifted = walk(readme, fresh_clone(folder / "mlflow-workshop"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert_prints_what_it_shows(readme, drifted)


def walk(readme, root, watch=None):
    """Every command of ``readme`` in the fresh clone at ``root`` (run_readme), with its
    logs beside the clone; the output blocks that differ. Whatever the README started
    there and did not stop is stopped afterwards."""
    logs = root.parent / "logs"
    logs.mkdir()
    try:
        return run_readme(readme, root, logs, watch)
    finally:
        stop_processes_in(root.parent)


def assert_prints_what_it_shows(readme, drifted):
    shown = "\n\n".join(drifted)
    assert not drifted, f"{readme}: output blocks that differ:\n\n{shown}"


def stop_processes_in(folder):
    """Stop the processes that run in ``folder`` or name it, such as a server a README
    started in the background (its own ``stop`` command never ran if a step failed)."""
    mine = {os.getpid()}
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(entry.name) not in mine and (
                str(folder) in command or os.readlink(entry / "cwd").startswith(str(folder))
            ):
                found.append(int(entry.name))
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in found):
            time.sleep(0.1)
