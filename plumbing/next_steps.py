"""Where to look next, and what exists: the lines a lesson ends with (a run in the UI,
what a mistyped model URI could have been), and compare_runs.py's chart and CSV file."""

import shutil
import socket
import sys
from pathlib import Path

from plumbing.store import REPO_ROOT, is_local, tracking_uri

UI_URL = "http://127.0.0.1:5000"
# ui.env switches off the UI's job workers and telemetry (README, "Open the MLflow UI").
UI_COMMAND = (
    "mlflow --env-file ui.env ui --workers 1 "
    "--backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000"
)
# The UI opens in its GenAI view unless a link asks for the model-training one.
UI_VIEW = "?workflowType=machine_learning"


def what_exists(client, uri):
    """For an unknown model URI: what does exist, so that a typo is easy to fix."""
    from mlflow.exceptions import MlflowException

    kind, _, rest = uri.partition(":/")
    name = rest.strip("/").split("/")[0].split("@")[0]  # a run id, model id or registered name
    try:
        if kind == "runs":
            experiment_id = client.get_run(name).info.experiment_id
            models = client.search_logged_models([experiment_id], f"source_run_id = '{name}'")
            names = ", ".join(f"runs:/{name}/{model.name}" for model in models) or "none"
            return f" (this run's models: {names})"
        if name.startswith("m-"):
            return " (python compare_runs.py lists the runs and their models)"
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        aliases = ", ".join(f"@{a}" for a in sorted(client.get_registered_model(name).aliases))
        return f" ('{name}' has versions {', '.join(map(str, versions))} and aliases {aliases})"
    except MlflowException:  # no such run, or no such registered model
        names = [model.name for model in client.search_registered_models()]
        return "" if kind == "runs" else f" (registered models: {', '.join(names) or 'none'})"


SCRIPTS_DIR = Path(sys.executable).parent  # the environment's bin/ (Scripts\\ on Windows)


def find_command(name):
    """A command of this Python's environment, else from PATH: activating it is easy to forget."""
    found = shutil.which(name, path=str(SCRIPTS_DIR)) or shutil.which(name)
    if found is None:
        raise SystemExit(
            f"The {name} command is neither next to {sys.executable} nor on PATH: activate "
            "the workshop's virtual environment, or `pip install -r requirements.txt` into it."
        )
    return found


def check_port_free(host, port):
    """Stop with one sentence if a program already answers on ``host``:``port``."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, port)) == 0:
            raise SystemExit(
                f"Port {port} on {host} is already in use, probably by another server: "
                "stop that one, or choose another port with --port."
            )


def print_summary(run, experiment, metrics, model_uri=None, next_steps=()):
    """The run, its metrics to three decimals, its model, what to run next, where to see it."""
    print(f"Run {run.info.run_id} ({run.info.run_name}) in experiment '{experiment.name}'")
    width = max(map(len, metrics), default=0)
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {value:.3f}")
    if model_uri:
        print(f"Model URI: {model_uri}")
        print(f"Load it:   python load_model.py --model-uri {model_uri}")
    for line in [*next_steps, *where_to_look(run)]:
        print(line)


def where_to_look(run):
    """Lines telling the participant how to see ``run`` in the MLflow UI."""
    uri = tracking_uri()
    path = f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}{UI_VIEW}"
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        return [f"See it in the UI: {uri.rstrip('/')}{path}"]
    command = UI_COMMAND if is_local() else UI_COMMAND.replace("sqlite:///mlflow.db", uri)
    link = f"  then open {UI_URL}{path}"
    return [f"See it in the UI: from {REPO_ROOT} run", f"  {command}", link]


def differing_params(runs):
    """The names of the params whose values differ between ``runs``, sorted."""
    names = sorted({name for run in runs for name in run.data.params})
    return [name for name in names if len({run.data.params.get(name) for run in runs}) > 1]


def plot_params(runs, metric, order, path):
    """Each numeric param that differs between ``runs`` against ``metric``, into a PNG.

    One panel per param, the best (first) run in orange; ``order``: ASC or DESC.
    A bare ``Figure`` draws to a file without a window (matplotlib takes 0.4 s).
    """
    import pandas as pd

    params = pd.DataFrame([run.data.params for run in runs])[differing_params(runs)]
    params = params.apply(pd.to_numeric, errors="coerce").dropna(axis="columns")
    if params.empty:
        return print("No chart: no numeric param differs between the ranked runs.")
    from matplotlib.figure import Figure

    scores = [run.data.metrics[metric] for run in runs]
    fig = Figure(figsize=(1 + 4 * len(params.columns), 4), layout="tight")
    axes = fig.subplots(1, len(params.columns), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, params.columns, strict=True):
        ax.scatter(params[name], scores, label="run")
        ax.scatter(params[name][:1], scores[:1], color="tab:orange", s=80, label="best run")
        ax.set_xlabel(name)
    axes[0].set_ylabel(f"{metric} ({'lower' if order == 'ASC' else 'higher'} is better)")
    axes[0].legend()
    _write(fig.savefig, path)
    print(f"Wrote the chart to {path}")


def write_csv(table, path):
    """Write the DataFrame ``table`` to ``path``; one sentence if that fails."""
    _write(lambda target: table.to_csv(target, index=False), path)


def _write(write, path):
    try:
        write(path)
    except OSError as error:  # the disk is full, or the folder changed since the flag check
        raise SystemExit(f"Could not write {path}: {error.strerror or error}.") from None
