"""Does the tracking server (or database) answer? One sentence at once if not.

Without these checks MLflow retries a stopped server, then prints a long chain
of connection errors (for a database server, after almost two minutes), and
waits for ever on one that hangs or trickles. Whole answers, not single reads,
have a deadline: a server that sends one byte every few seconds would never
trip a socket's timeout.
"""

import socket
import threading
import urllib.parse
import urllib.request

SERVER_SECONDS = 15
SERVER_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def check_server_answers(uri):
    """One sentence when a tracking server (or database) does not answer, or not in time."""
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.partition("+")[0]
    try:
        host, port = parts.hostname, parts.port or SERVER_PORTS.get(scheme)
    except ValueError:  # a malformed port: MLflow's own error says more
        return
    if host is None or port is None:  # SQLite, or a database on a local socket
        return
    if urllib.request.getproxies().get(scheme) and not urllib.request.proxy_bypass(host):
        return  # a proxy connects on our behalf
    address = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=5) as connection:
            problem = _no_reply(connection, address, f"{uri.rstrip('/')}/health", scheme)
    except OSError as error:
        problem = f"nothing answers at {address} ({error.strerror or error}); start the server"
    if problem:
        shown = uri.replace(f":{parts.password}@", ":***@") if parts.password else uri
        raise SystemExit(
            f"Could not use the MLflow tracking store at {shown}: {problem} "
            "or fix MLFLOW_TRACKING_URI."
        )


def _no_reply(connection, address, health_url, scheme):
    """What is wrong when a server accepts ``connection`` but sends no whole answer in time."""
    try:
        if scheme == "postgresql":
            _ask_postgres(connection)
        elif scheme in ("http", "https"):
            fetch(health_url, SERVER_SECONDS)
    except TimeoutError as error:  # it hangs, or trickles
        return f"{address} accepts connections but sent {error}; restart the server"
    except Exception:  # it answered, if only with an error or not in HTTP: MLflow says more
        pass
    return None


def _ask_postgres(connection):
    """PostgreSQL's first exchange on ``connection``: "use TLS?" (an SSLRequest), one byte back."""
    connection.settimeout(SERVER_SECONDS)
    connection.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
    try:
        connection.recv(1)
    except TimeoutError:
        raise TimeoutError(f"no answer within {SERVER_SECONDS} s") from None


def fetch(url, seconds):
    """The body at ``url``; TimeoutError if the whole answer takes more than ``seconds``."""

    def get():
        with urllib.request.urlopen(url, timeout=seconds) as response:
            return response.read()

    return in_thread(get, seconds)


def in_thread(work, seconds=None):
    """What ``work()`` returns, run in a thread of its own, or its error raised here;
    TimeoutError if it is not done within ``seconds`` (the thread is left behind)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as error:  # raised in the caller's thread below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no complete answer within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
