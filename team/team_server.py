"""Run the workshop's team tracking server on this machine: PostgreSQL plus `mlflow server`.

Not a lesson: the instructor's tool, explained in team/README.md. It keeps
everything in one folder (``.team-server/`` at the repository root by default):

- a PostgreSQL cluster of its own, listening on 127.0.0.1 only, holding the
  runs (and, with ``--auth``, the user accounts);
- ``artifacts/``, where the MLflow server stores every file the participants
  log. Clients never touch this folder: they send files to the server, which
  writes them here (proxied artifacts, ``--artifacts-destination``);
- the logs of both servers.

No Docker needed: it uses the PostgreSQL server programs (initdb, pg_ctl)
installed on this machine, and the `mlflow server` of this virtual environment.

    python team/team_server.py start              # http://127.0.0.1:5000
    python team/team_server.py start --auth       # the same with sign-in
    python team/team_server.py status
    python team/team_server.py stop

Participants then run the lesson scripts unchanged with
``MLFLOW_TRACKING_URI=http://127.0.0.1:5000`` (or this machine's address, when
started with ``--host 0.0.0.0 --allowed-hosts ...``).
"""

import argparse
import contextlib
import glob
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # this file is in team/
DATA_DIR = REPO_ROOT / ".team-server"
HOST = "127.0.0.1"
PORT = 5000
PG_PORT = 55432  # not 5432, which an installed PostgreSQL service may already use
WORKERS = 4
DB_USER = "mlflow"
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
ADMIN_USERNAME = "admin"
# PostgreSQL refuses to run as root; started by root, it runs as this user.
PG_SYSTEM_USER = "postgres"
START_TIMEOUT = 300  # seconds; a busy laptop needs a minute for the first start
IS_WINDOWS = os.name == "nt"


class Layout:
    """Where each part of the stack lives inside the data folder."""

    def __init__(self, data_dir):
        self.root = Path(data_dir).resolve()
        self.cluster = self.root / "postgres"
        self.artifacts = self.root / "artifacts"
        self.postgres_log = self.root / "postgres.log"
        self.mlflow_log = self.root / "mlflow.log"
        self.password_file = self.root / "postgres-password"
        self.auth_config = self.root / "basic_auth.ini"
        self.secret_key_file = self.root / "flask-secret-key"
        self.state_file = self.root / "server.json"

    def read_state(self):
        if not self.state_file.is_file():
            return {}
        return json.loads(self.state_file.read_text())

    def write_state(self, state):
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")


# %%
# Command line
# ------------
def port_number(text):
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help=f"folder for the database, artifacts and logs (default {DATA_DIR})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_start_command(commands)
    commands.add_parser("stop", help="stop the MLflow server and PostgreSQL")
    commands.add_parser("status", help="tell whether the stack is running")
    add_account_commands(commands)
    return parser.parse_args(argv)


def add_start_command(commands):
    start = commands.add_parser("start", help="start PostgreSQL and the MLflow server")
    start.add_argument(
        "--host",
        default=HOST,
        help=f"network interface the MLflow server listens on (default {HOST}: this "
        "machine only; 0.0.0.0 for every interface)",
    )
    start.add_argument(
        "--port", type=port_number, default=PORT, help=f"MLflow server port (default {PORT})"
    )
    start.add_argument(
        "--pg-port",
        type=port_number,
        default=PG_PORT,
        help=f"PostgreSQL port, on 127.0.0.1 only (default {PG_PORT})",
    )
    start.add_argument(
        "--workers",
        type=positive_int,
        default=WORKERS,
        help=f"MLflow server worker processes (default {WORKERS})",
    )
    start.add_argument(
        "--allowed-hosts",
        help="Host headers the server accepts, e.g. 'mlflow.example.org,192.168.1.20:5000' "
        "(default: localhost and private addresses)",
    )
    start.add_argument(
        "--cors-allowed-origins",
        help="web origins whose pages may call the server (default: localhost origins)",
    )
    start.add_argument(
        "--auth",
        action="store_true",
        help="require sign-in (MLflow's basic-auth app); the first start needs "
        "MLFLOW_AUTH_ADMIN_PASSWORD set",
    )
    start.add_argument(
        "--default-permission",
        choices=["READ", "EDIT"],
        default="READ",
        help="with --auth, what every signed-in user may do with experiments created by "
        "others (default READ, MLflow's default; EDIT lets everyone log runs to them)",
    )


def add_account_commands(commands):
    add_user = commands.add_parser(
        "add-user",
        help="with --auth: create an account with a random password (sign in as admin "
        "through MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)",
    )
    add_user.add_argument("username")
    set_password = commands.add_parser(
        "set-password",
        help="with --auth: change a password, asked for at the prompt (an admin may change "
        "anyone's, a user their own)",
    )
    set_password.add_argument("username")


# %%
# PostgreSQL
# ----------
# A private cluster: `initdb` creates it once, `pg_ctl` starts and stops it.
# It listens on 127.0.0.1 only and asks for a password, generated on first
# start and kept in the data folder.
def exe(name):
    return name + ".exe" if IS_WINDOWS else name


def postgres_bin_dir():
    """The folder holding initdb, pg_ctl and postgres, or None."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    on_path = shutil.which(exe("pg_ctl"))
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for pattern in (
        "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
        "/usr/pgsql-*/bin",  # Red Hat, Fedora
        "/opt/homebrew/opt/postgresql*/bin",  # Homebrew, Apple silicon
        "/usr/local/opt/postgresql*/bin",  # Homebrew, Intel
        "C:/Program Files/PostgreSQL/*/bin",  # the EDB installer on Windows
    ):
        newest_first = sorted(
            glob.glob(pattern),
            key=lambda path: [int(n) for n in re.findall(r"\d+", path)],
            reverse=True,
        )
        candidates.extend(newest_first)
    for candidate in candidates:
        folder = Path(candidate)
        if all((folder / exe(name)).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def running_as_root():
    return not IS_WINDOWS and os.geteuid() == 0


def postgres_account():
    """Keyword arguments that make subprocess run PostgreSQL's programs as a non-root user."""
    if not running_as_root():
        return {}
    import pwd

    try:
        account = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise SystemExit(
            f"PostgreSQL refuses to run as root and there is no '{PG_SYSTEM_USER}' user to run "
            "it as; run this as an ordinary user."
        ) from None
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def hand_to_postgres_account(*paths):
    """As root: give PostgreSQL's user the files it writes, and check it can reach them."""
    account = postgres_account()
    if not account:
        return
    for path in paths:
        os.chown(path, account["user"], account["group"])
    for folder in [paths[0].parent, *paths[0].parent.parents]:
        info = folder.stat()
        if info.st_uid != account["user"] and not info.st_mode & 0o001:
            raise SystemExit(
                f"PostgreSQL runs as user '{PG_SYSTEM_USER}' here, which cannot enter {folder}; "
                "choose a --data-dir outside it, e.g. under /tmp."
            )


def run_postgres_tool(bin_dir, layout, *args):
    """Run initdb or pg_ctl (as PostgreSQL's user when we are root); return the result."""
    return subprocess.run(
        [str(bin_dir / exe(args[0])), *args[1:]],
        cwd=layout.root,
        capture_output=True,
        text=True,
        **postgres_account(),
    )


def init_cluster(bin_dir, layout):
    print(f"Creating a PostgreSQL cluster in {layout.cluster}")
    layout.cluster.mkdir(mode=0o700)
    layout.password_file.write_text(secrets.token_urlsafe(24))
    layout.password_file.chmod(0o600)
    layout.postgres_log.touch()
    hand_to_postgres_account(layout.cluster, layout.password_file, layout.postgres_log)
    result = run_postgres_tool(
        bin_dir,
        layout,
        "initdb",
        "--pgdata",
        str(layout.cluster),
        "--username",
        DB_USER,
        "--pwfile",
        str(layout.password_file),
        "--auth",
        "scram-sha-256",
        "--encoding",
        "UTF8",
        "--locale",
        "C",
        "--no-instructions",
    )
    if result.returncode != 0:
        shutil.rmtree(layout.cluster, ignore_errors=True)
        raise SystemExit(f"initdb failed: {last_line(result.stderr or result.stdout)}")
    with open(layout.cluster / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# Added by team_server.py: TCP on this machine only, no Unix socket.\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
        )


def postgres_is_running(bin_dir, layout):
    return (
        run_postgres_tool(
            bin_dir, layout, "pg_ctl", "status", "--pgdata", str(layout.cluster)
        ).returncode
        == 0
    )


def start_postgres(bin_dir, layout, pg_port):
    print(f"Starting PostgreSQL on 127.0.0.1:{pg_port}")
    result = run_postgres_tool(
        bin_dir,
        layout,
        "pg_ctl",
        "start",
        "--pgdata",
        str(layout.cluster),
        "--log",
        str(layout.postgres_log),
        "--wait",
        "--timeout",
        "120",
        "-o",
        f"-p {pg_port}",
    )
    if result.returncode != 0:
        log_tail = last_line(layout.postgres_log.read_text(errors="replace"))
        raise SystemExit(
            f"PostgreSQL did not start on port {pg_port}: {log_tail} (log: {layout.postgres_log})"
        )


def stop_postgres(bin_dir, layout):
    result = run_postgres_tool(
        bin_dir, layout, "pg_ctl", "stop", "--pgdata", str(layout.cluster), "-m", "fast", "--wait"
    )
    if result.returncode != 0:
        raise SystemExit(f"pg_ctl stop failed: {last_line(result.stderr or result.stdout)}")


def connect_to_postgres(layout, pg_port, dbname):
    try:
        import psycopg
    except ImportError:
        raise SystemExit(
            "The PostgreSQL driver is missing: pip install -r team/requirements.txt"
        ) from None
    return psycopg.connect(
        host="127.0.0.1",
        port=pg_port,
        user=DB_USER,
        password=layout.password_file.read_text(),
        dbname=dbname,
        autocommit=True,
    )


def create_databases(layout, pg_port, names):
    """Create the databases that do not exist yet."""
    from psycopg import sql

    with connect_to_postgres(layout, pg_port, "postgres") as connection:
        for name in names:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def admin_exists(layout, pg_port):
    """Whether the sign-in database already holds the admin user."""
    import psycopg

    with connect_to_postgres(layout, pg_port, AUTH_DB) as connection:
        try:
            row = connection.execute(
                "SELECT 1 FROM users WHERE username = %s", [ADMIN_USERNAME]
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # MLflow has not created its tables yet
            return False
    return row is not None


def database_uri(pg_port, name):
    # No password in the URI, so none shows up in `ps`: the PostgreSQL driver
    # reads it from the PGPASSWORD environment variable.
    return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{pg_port}/{name}"


# %%
# The MLflow server
# -----------------
# `mlflow server` with the runs in PostgreSQL and the files in artifacts/,
# which it serves to clients itself. Started in its own process group so that
# `stop` ends it together with its worker processes.
def write_auth_config(layout, pg_port, default_permission):
    layout.auth_config.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri(pg_port, AUTH_DB)}\n"
        f"admin_username = {ADMIN_USERNAME}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Checking a password costs a tenth of a second of CPU by design, and a
        # lesson makes some forty requests: remember a good one for a minute.
        # (A changed password may still work for that minute.)
        "auth_cache_ttl_seconds = 60\n"
    )


def mlflow_server_command(args, layout):
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        database_uri(args.pg_port, TRACKING_DB),
        "--artifacts-destination",
        layout.artifacts.as_uri(),
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    if args.allowed_hosts:
        command += ["--allowed-hosts", args.allowed_hosts]
    if args.cors_allowed_origins:
        command += ["--cors-allowed-origins", args.cors_allowed_origins]
    if args.auth:
        command += ["--app-name", "basic-auth"]
    return command


def read_or_create_secret(path):
    if not path.is_file():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text()


def start_mlflow(args, layout):
    env = {
        **os.environ,
        "PGPASSWORD": layout.password_file.read_text(),
        # Background jobs serve MLflow's GenAI features, which the workshop does
        # not use; without them the server needs fewer processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
        ),
        # No anonymous usage reports to MLflow's makers, from the server or
        # passed on from the UI in participants' browsers.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if args.auth:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(layout.auth_config)
        # Signs the sign-in pages' forms (CSRF protection); must survive restarts.
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = read_or_create_secret(layout.secret_key_file)
    detach = (
        {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        if IS_WINDOWS
        else {"start_new_session": True}
    )
    with open(layout.mlflow_log, "ab") as log:
        process = subprocess.Popen(
            mlflow_server_command(args, layout),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=layout.root,
            env=env,
            **detach,
        )
    return process


def local_url(host, port):
    """The address this machine reaches the server at."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def port_is_free(host, port):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        if not IS_WINDOWS:  # as the server will: a just-closed connection does not block it
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def answers(url, timeout=2):
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP_PROXY
    try:
        with direct.open(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_ready(process, url, layout):
    print(f"Waiting for the MLflow server at {url} (log: {layout.mlflow_log})", flush=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = startup_error(layout.mlflow_log.read_text(errors="replace"))
            raise SystemExit(
                f"The MLflow server stopped while starting: {reason} (log: {layout.mlflow_log})"
            )
        if answers(url):
            return
        time.sleep(0.5)
    stop_process_group(process.pid)
    raise SystemExit(
        f"The MLflow server did not answer at {url} within {START_TIMEOUT} s; "
        f"see {layout.mlflow_log}."
    )


def process_is_alive(pid):
    if not pid:
        return False
    if IS_WINDOWS:
        result = subprocess.run(
            ["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True
        )
        return str(pid) in result.stdout
    try:
        # We started the server as the leader of its own process group; a
        # recycled process id would almost never be one.
        if os.getpgid(pid) != pid:
            return False
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # Linux: a killed process may linger as a zombie
    return not (stat.is_file() and stat.read_text().rpartition(")")[2].split()[0] == "Z")


def stop_process_group(pid, timeout=30):
    """Stop a server and its workers: politely first, forcefully after ``timeout`` seconds."""
    if IS_WINDOWS:
        subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], capture_output=True)
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    # The server waits for its workers before it exits; anything left now is stuck.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# %%
# The commands
# ------------
def startup_error(log_text):
    """The first line of the last exception in a server log, else its last line."""
    errors = re.findall(r"^[\w.]+(?:Error|Exception): (.*)$", log_text, flags=re.MULTILINE)
    return errors[-1] if errors else last_line(log_text)


def last_line(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def start(args, layout, bin_dir):
    state = layout.read_state()
    if process_is_alive(state.get("mlflow_pid")):
        print(f"Already running: {state['url']} (stop it first to change settings)")
        return state
    if not port_is_free(args.host, args.port):
        raise SystemExit(
            f"Port {args.port} is already in use, perhaps by the `mlflow ui` of the lessons: "
            "stop that, or choose another --port."
        )
    prepare_data_dir(layout)
    if not layout.cluster.is_dir():
        init_cluster(bin_dir, layout)
    if postgres_is_running(bin_dir, layout):
        args.pg_port = state.get("pg_port", args.pg_port)
        return start_on_postgres(args, layout)
    start_postgres(bin_dir, layout, args.pg_port)
    try:
        return start_on_postgres(args, layout)
    except BaseException:  # a failed start, or Ctrl+C: leave nothing running
        pid = layout.read_state().get("mlflow_pid")
        if process_is_alive(pid):
            stop_process_group(pid)
        stop_postgres(bin_dir, layout)
        layout.write_state({**layout.read_state(), "mlflow_pid": None})
        raise


def start_on_postgres(args, layout):
    """The databases, the sign-in settings with --auth, and the MLflow server."""
    create_databases(layout, args.pg_port, [TRACKING_DB, AUTH_DB] if args.auth else [TRACKING_DB])
    if args.auth:
        prepare_sign_in(args, layout)
    return launch_mlflow_server(args, layout)


def prepare_data_dir(layout):
    layout.root.mkdir(parents=True, exist_ok=True)
    # Keep the whole folder out of git, wherever it is.
    (layout.root / ".gitignore").write_text("*\n")
    layout.artifacts.mkdir(exist_ok=True)


def prepare_sign_in(args, layout):
    """With --auth: make sure the admin exists or can be created, then write the app's config."""
    if not admin_exists(layout, args.pg_port) and not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise SystemExit(
            f"The first start with --auth creates the user '{ADMIN_USERNAME}': set "
            "MLFLOW_AUTH_ADMIN_PASSWORD to its password (at least 12 characters) and run "
            "this again."
        )
    write_auth_config(layout, args.pg_port, args.default_permission)


def launch_mlflow_server(args, layout):
    """Start `mlflow server`, record it in the state file, and wait until it answers."""
    url = local_url(args.host, args.port)
    print(f"Starting the MLflow server (runs in PostgreSQL, files in {layout.artifacts}):")
    print("  " + shlex.join(["mlflow", *mlflow_server_command(args, layout)[3:]]))
    process = start_mlflow(args, layout)
    state = {
        "url": url,
        "host": args.host,
        "port": args.port,
        "pg_port": args.pg_port,
        "auth": args.auth,
        "mlflow_pid": process.pid,
    }
    layout.write_state(state)
    wait_until_ready(process, url, layout)
    print(f"Ready: {url}{' (sign-in required)' if args.auth else ''}")
    print(f"Participants: set MLFLOW_TRACKING_URI={url} and run the lesson scripts.")
    print(f"Stop it with: python team/team_server.py --data-dir {layout.root} stop")
    return state


def stop(layout, bin_dir):
    state = layout.read_state()
    pid = state.get("mlflow_pid")
    if process_is_alive(pid):
        print(f"Stopping the MLflow server (process {pid})")
        stop_process_group(pid)
    if layout.cluster.is_dir() and postgres_is_running(bin_dir, layout):
        print("Stopping PostgreSQL")
        stop_postgres(bin_dir, layout)
    if state:
        layout.write_state({**state, "mlflow_pid": None})
    print("Stopped.")
    return state


def status(layout, bin_dir):
    state = layout.read_state()
    mlflow_up = process_is_alive(state.get("mlflow_pid")) and answers(state["url"])
    postgres_up = layout.cluster.is_dir() and postgres_is_running(bin_dir, layout)
    if mlflow_up:
        auth = " with sign-in" if state.get("auth") else ""
        print(f"MLflow server: running at {state['url']}{auth}")
    else:
        print("MLflow server: not running")
    if postgres_up:
        print(f"PostgreSQL:    running on 127.0.0.1:{state.get('pg_port')}")
    else:
        print("PostgreSQL:    not running")
    print(f"Data folder:   {layout.root}")
    return {**state, "mlflow_running": mlflow_up, "postgres_running": postgres_up}


# %%
# Accounts, with --auth
# ---------------------
# MLflow's basic-auth app keeps users in the PostgreSQL database mlflow_auth.
# These commands call its REST API as whoever MLFLOW_TRACKING_USERNAME and
# MLFLOW_TRACKING_PASSWORD name, the same variables the lesson scripts use.
def call_user_api(layout, method, endpoint, payload, failure):
    """Call the basic-auth app's user API as the signed-in user; exit with ``failure`` on errors."""
    import requests

    state = layout.read_state()
    if not (process_is_alive(state.get("mlflow_pid")) and state.get("auth")):
        raise SystemExit("No server with sign-in is running: start it with `start --auth` first.")
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not (username and password):
        raise SystemExit(
            "Sign in first: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            f"(the {ADMIN_USERNAME}'s, to create users)."
        )
    response = requests.request(
        method,
        f"{state['url']}/api/2.0/mlflow/users/{endpoint}",
        json=payload,
        auth=(username, password),
        timeout=30,
    )
    if response.status_code != 200:
        try:
            reason = response.json().get("message", "")
        except ValueError:
            reason = response.text
        # The first sentence; MLflow may append the database's own error.
        reason = reason.strip().splitlines()[0].split(" Error: ")[0] if reason.strip() else ""
        raise SystemExit(f"{failure}: {reason or response.reason} (HTTP {response.status_code})")


def read_new_password(username):
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"New password for {username}: ")
        if getpass.getpass("Once more: ") != password:
            raise SystemExit("The two passwords differ; nothing changed.")
        return password
    return sys.stdin.readline().rstrip("\n")  # piped in, e.g. from a password manager


def add_user(layout, username):
    password = secrets.token_urlsafe(12)
    call_user_api(
        layout,
        "POST",
        "create",
        {"username": username, "password": password},
        f"Could not create user {username}",
    )
    print(f"Created user {username} with password {password}")
    print("Hand both to them; they can change the password with set-password.")
    return password


def set_password(layout, username):
    password = read_new_password(username)
    payload = {"username": username, "password": password}
    if os.environ.get("MLFLOW_TRACKING_USERNAME") == username:
        # Changing your own password needs the current one as well.
        payload["current_password"] = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    call_user_api(
        layout,
        "PATCH",
        "update-password",
        payload,
        f"Could not change the password of {username}",
    )
    print(f"Changed the password of {username}.")
    if "current_password" in payload:
        print("Put the new one in MLFLOW_TRACKING_PASSWORD.")


def main(argv=None):
    args = parse_args(argv)
    layout = Layout(args.data_dir)
    if args.command == "add-user":
        return add_user(layout, args.username)
    if args.command == "set-password":
        return set_password(layout, args.username)
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit(
            "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found: install "
            "PostgreSQL, or set PG_BIN to the folder holding them."
        )
    if args.command == "start":
        return start(args, layout, bin_dir)
    if args.command == "stop":
        return stop(layout, bin_dir)
    result = status(layout, bin_dir)
    if not result["mlflow_running"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
