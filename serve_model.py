"""Lesson: a registered model behind a REST endpoint, with `mlflow models serve`.

`mlflow models serve` puts any MLflow Model behind a small web server (uvicorn and FastAPI)
without a line of web code: `/ping` and `/health` (is it up?), `/version` and `/invocations`
(predictions). This script checks the model, starts that server in the foreground on
127.0.0.1 and prints requests to try; by default it serves the sweep's iris champion.

    python serve_model.py
    python serve_model.py --model-uri models:/iris_classifier/1 --port 5002
"""

# %%
# Settings
# --------
# ``@champion`` moves when a better version wins; port 5001 leaves 5000 free for the MLflow UI.
import plumbing

MODEL_URI = "models:/iris_classifier@champion"
PORT = 5001
HOST = "127.0.0.1"  # this computer only; nobody else on the network can reach it


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--model-uri", type=plumbing.model_uri, default=MODEL_URI, help=plumbing.URI_FORMS)
    add("--port", type=plumbing.port_number, default=PORT, help=f"the port to listen on at {HOST}")
    return parser.parse_args(argv)


# %%
# 1. Check before starting
# ------------------------
# Each check spares a long trace from the server. ``mlflow models serve`` starts ``uvicorn``
# by name: both live next to this Python, on PATH only in an activated environment. Only one
# program can listen on a port. ``get_model_info`` reads just the model's MLmodel file: an
# unknown name, alias, version or run fails at once.
import mlflow
from mlflow.exceptions import MlflowException


def model_info(model_uri):
    try:
        return mlflow.models.get_model_info(model_uri)
    except MlflowException as error:
        reason = str(error).splitlines()[0].rstrip(".")
        if "No such artifact" in reason:  # the store knows the model, its files are gone
            reason += " (its files are missing from the artifact store)"
        elif model_uri == MODEL_URI:
            reason += "; run `python train_iris_sweep.py` first, which registers the champion"
        raise SystemExit(f"Could not find the model {model_uri}: {reason}.") from None


# %%
# 2. A request to try
# -------------------
# ``/invocations`` takes JSON with exactly one of ``dataframe_split``, ``dataframe_records``,
# ``inputs`` or ``instances``; a model logged with an input example keeps one such request.
import json
import os
import shlex

from mlflow.models.utils import load_serving_example


def example_body(model_uri, info):
    """The model's serving input example on one line, or None if it was logged without one."""
    if "serving_input_path" not in (info.saved_input_example_info or {}):
        return None
    return json.dumps(json.loads(load_serving_example(model_uri)))


def print_requests(url, startup_seconds, body):
    print(f"\nServing at {url} (ready after {startup_seconds:.1f} s). From another terminal:")
    print(f"  curl {url}/ping\n  curl {url}/version")
    if body and os.name == "nt":  # PowerShell's curl is another program
        quoted = "'" + body.replace("'", "''") + "'"
        print(f"  Invoke-RestMethod -Uri {url}/invocations -Method Post", end="")
        print(f" -ContentType 'application/json' -Body {quoted}")
    elif body:
        print(f"  curl -X POST {url}/invocations -H 'Content-Type: application/json'", end="")
        print(f" -d {shlex.quote(body)}")
    print("Stop the server with Ctrl+C.", flush=True)


# %%
# 3. Serve until Ctrl+C
# ---------------------
# ``--env-manager local`` uses this environment's packages (the default builds a new one, which
# needs pyenv and the network). Ctrl+C reaches the server too; SIGTERM stops the script alike.
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
    """Give the server 10 s to shut down after Ctrl+C (or SIGTERM), then make sure it does."""
    try:
        server.wait(timeout=10)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        server.terminate()
        server.wait()


def main(argv=None):
    args = parse_args(argv)
    mlflow_command = plumbing.find_command("mlflow")
    uvicorn_command = plumbing.find_command("uvicorn")
    plumbing.check_port_free(HOST, args.port)
    store = plumbing.connect()
    info = model_info(args.model_uri)
    body = example_body(args.model_uri, info)
    print(f"Model {args.model_uri} is {info.model_uri}, logged by run {info.run_id}")
    url = f"http://{HOST}:{args.port}"
    serve = ["models", "serve", "-m", args.model_uri, "--env-manager", "local"]
    serve += ["--host", HOST, "--port", str(args.port)]
    print(f"Starting: mlflow {' '.join(serve)}", flush=True)
    path = os.pathsep.join([os.path.dirname(uvicorn_command), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": path}  # uvicorn first on PATH
    server = subprocess.Popen([mlflow_command, *serve], env=env)
    startup_seconds = None
    try:
        startup_seconds = wait_until_ready(server, url)
        if startup_seconds is not None:
            print_requests(url, startup_seconds, body)
        returncode = server.wait()
    except KeyboardInterrupt:
        stop(server)
        returncode = 0
    if returncode != 0:
        raise SystemExit(f"The model server stopped with exit code {returncode}; see above.")
    print("Server stopped.")
    return {"url": url, "model_uri": info.model_uri, "startup_seconds": startup_seconds}


if __name__ == "__main__":
    main()
