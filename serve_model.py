"""Lesson: a registered model behind a REST endpoint, with `mlflow models serve`.

Any MLflow Model can answer HTTP requests without a line of web code:
`mlflow models serve` loads it and starts a small web server (uvicorn and
FastAPI) with four endpoints: `/ping` and `/health` (is it up?), `/version`
(the MLflow version) and `/invocations` (predictions). This script checks that
the model exists, then starts that server in the foreground on 127.0.0.1 and
prints requests to try. By default it serves the iris classifier that
train_iris_sweep.py registered and named `champion`.

Run it once `python train_iris_sweep.py` has registered a champion:

    python serve_model.py
    python serve_model.py --model-uri models:/iris_classifier/1 --port 5002

and stop it with Ctrl+C.
"""

# %%
# Settings
# --------
# A model URI names a model without saying where its files are. Every form
# works here: ``models:/<name>@<alias>`` (the registry's alias, which moves
# when a better version is named champion), ``models:/<name>/<version>``,
# ``models:/<model id>`` and ``runs:/<run id>/model``. Port 5001 leaves 5000
# free for the MLflow UI.
import argparse

MODEL_URI = "models:/iris_classifier@champion"
PORT = 5001
HOST = "127.0.0.1"  # this computer only; nobody else on the network can reach it


def port_number(text):
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-uri",
        default=MODEL_URI,
        help=f"the model to serve (default {MODEL_URI})",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=PORT,
        help=f"port to listen on at {HOST} (default {PORT})",
    )
    return parser.parse_args(argv)


# %%
# 1. The commands the server needs
# ---------------------------------
# ``mlflow models serve`` is a command of the mlflow package, and it starts
# the ``uvicorn`` command by name. Both live in the virtual environment's
# ``bin/`` folder (``Scripts\`` on Windows), next to the Python running this
# script, which is on PATH only while the environment is activated. So look
# there first, and put that folder first on the server's PATH.
import os
import shutil
import sys
from pathlib import Path

SCRIPTS_DIR = Path(sys.executable).parent


def find_command(name):
    """The full path of command ``name`` from this Python's environment or PATH, else None."""
    return shutil.which(name, path=str(SCRIPTS_DIR)) or shutil.which(name)


def find_server_commands():
    mlflow_command, uvicorn_command = find_command("mlflow"), find_command("uvicorn")
    if mlflow_command is None or uvicorn_command is None:
        raise SystemExit(
            f"The mlflow and uvicorn commands are neither next to {sys.executable} nor on PATH: "
            "activate the workshop's virtual environment, or install the requirements into it "
            "with `pip install -r requirements.txt`."
        )
    return mlflow_command, Path(uvicorn_command).parent


# %%
# 2. Is the port free?
# --------------------
# Only one program can listen on a port. Trying to bind it ourselves gives a
# clear answer now instead of a server that starts, fails and prints a trace.
import socket


def port_is_free(port):
    with socket.socket() as probe:
        if os.name != "nt":  # as uvicorn does; on Windows this option would share a busy port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


# %%
# 3. Does the model exist?
# ------------------------
# ``get_model_info`` reads only the model's MLmodel file: its flavors, its
# signature and the run it came from. An unknown name, alias, version or run
# fails here in a second, before any server starts.
import mlflow
from mlflow.exceptions import MlflowException

import workshop_store


def resolve(model_uri):
    try:
        info = mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError, ValueError) as error:
        not_registered = getattr(error, "error_code", None) in {
            "RESOURCE_DOES_NOT_EXIST",  # no registered model of that name
            "INVALID_PARAMETER_VALUE",  # the model exists, the alias does not
        }
        if model_uri == MODEL_URI and not_registered:
            raise SystemExit(
                f"There is no {MODEL_URI} in the store at {workshop_store.tracking_uri()} yet: "
                "run `python train_iris_sweep.py` first, which registers iris_classifier "
                "and names its best version champion."
            ) from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SystemExit(f"Could not find the model {model_uri}: {reason}") from None
    if "python_function" not in info.flavors:
        raise SystemExit(f"{model_uri} has no python_function flavor, so MLflow cannot serve it.")
    return info


# %%
# 4. A request to try
# --------------------
# ``/invocations`` takes JSON with exactly one of ``dataframe_split``,
# ``dataframe_records``, ``inputs`` or ``instances``; the ``{"data": ...}``
# body of older tutorials gets 400 Bad Request. A model logged with an input
# example also stores that example in this format
# (``serving_input_example.json``), so the script can show a request that
# fits the model's signature.
import json
import shlex

from mlflow.models.utils import load_serving_example


def example_body(model_uri, info, rows=3):
    """A short request body from the model's own input example, or None without one."""
    if "serving_input_path" not in (info.saved_input_example_info or {}):
        return None
    try:
        body = json.loads(load_serving_example(model_uri))
    except (MlflowException, OSError, ValueError):
        return None
    if "dataframe_split" in body:  # the first few rows are enough to try it
        body["dataframe_split"].pop("index", None)
        body["dataframe_split"]["data"] = body["dataframe_split"]["data"][:rows]
    return json.dumps(body)


def print_how_to_use(url, startup_seconds, body):
    print(f"\nServing at {url} (ready after {startup_seconds:.1f} s). From another terminal:")
    print(f"  curl {url}/ping")
    print(f"  curl {url}/version")
    if body is not None and os.name == "nt":
        powershell_body = "'" + body.replace("'", "''") + "'"
        print(
            f"  Invoke-RestMethod -Uri {url}/invocations -Method Post"
            f" -ContentType 'application/json' -Body {powershell_body}"
        )
    elif body is not None:
        print(
            f"  curl -X POST {url}/invocations -H 'Content-Type: application/json'"
            f" -d {shlex.quote(body)}"
        )
    print("Stop the server with Ctrl+C.", flush=True)


# %%
# 5. Serve until Ctrl+C
# ---------------------
# ``--env-manager local`` serves the model with the packages of this virtual
# environment. The default, ``virtualenv``, would first build a new
# environment from the model's requirements, which needs pyenv and network
# access. The server is a child process using the same tracking store, so it
# finds the same registered models; Ctrl+C in the terminal stops both.
import subprocess
import time
import urllib.request


def wait_until_ready(server, url):
    """Seconds until ``url``/ping answers, or None if the server exits first."""
    started = time.monotonic()
    while server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):
                return time.monotonic() - started
        except OSError:  # not listening yet
            time.sleep(0.25)
    return None


def stop(server):
    """Ctrl+C reached the server too: let it shut down, and make sure it does."""
    try:
        server.wait(timeout=10)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        server.terminate()
        server.wait()


def main(argv=None):
    args = parse_args(argv)
    mlflow_command, scripts_dir = find_server_commands()
    if not port_is_free(args.port):
        raise SystemExit(
            f"Port {args.port} on {HOST} is already in use, probably by another server: "
            "stop that one, or choose another port with --port."
        )
    store = workshop_store.connect()
    info = resolve(args.model_uri)
    body = example_body(args.model_uri, info)
    print(f"Model {args.model_uri} is {info.model_uri}, logged by run {info.run_id}")

    serve_args = ["models", "serve", "-m", args.model_uri, "--env-manager", "local"]
    serve_args += ["--host", HOST, "--port", str(args.port)]
    print(f"Starting: mlflow {' '.join(serve_args)}", flush=True)
    server_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "PATH": os.pathsep.join([str(scripts_dir), os.environ.get("PATH", "")]),
    }
    url = f"http://{HOST}:{args.port}"
    startup_seconds = None
    server = subprocess.Popen([mlflow_command, *serve_args], env=server_env)
    try:
        startup_seconds = wait_until_ready(server, url)
        if startup_seconds is not None:
            print_how_to_use(url, startup_seconds, body)
        returncode = server.wait()
    except KeyboardInterrupt:
        stop(server)
        returncode = 0
    if returncode != 0:
        raise SystemExit(
            f"The model server stopped with exit code {returncode}; see its messages above."
        )
    print("Server stopped.")
    return {"url": url, "model_uri": info.model_uri, "startup_seconds": startup_seconds}


if __name__ == "__main__":
    main()
