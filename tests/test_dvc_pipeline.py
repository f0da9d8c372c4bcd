"""dvc_pipeline/: MLflow added to a DVC pipeline, run with real DVC and git.

The module fixture runs dvc_pipeline/README.md's commands as printed, with the README
executor, in a fresh clone of the workshop (a git repository): ``dvc repro``, the
baseline committed, experiments in the workspace, in a temporary copy and from the
queue, ``dvc exp show`` and compare_runs.py. The tests then look at what those
commands printed and logged, and the tests that run DVC again do so in that clone, as
a participant does, with no MLFLOW_TRACKING_URI: the stages must find the store,
``mlflow.db`` in the clone's root, by themselves, from the project folder and from
DVC's temporary copies alike.
"""

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, participant_env, require, sqlite_uri, wait_for_row_count
from readme_executor import assert_prints_what_it_shows, fresh_clone, readmes_run_by, walk

BIN = Path(sys.executable).parent
DVC = shutil.which("dvc", path=str(BIN)) or shutil.which("dvc")
EXPERIMENT = "wine-quality-dvc"
MODEL = "wine_quality_dvc"
[README] = readmes_run_by("test_dvc_pipeline")
README_TEXT = (REPO_ROOT / README).read_text()
REPRO = "dvc --cd dvc_pipeline repro"


class Workshop:
    """A fresh clone of the workshop, and DVC and git run in it."""

    def __init__(self, root):
        self.root = root
        self.pipeline = root / "dvc_pipeline"
        # Nothing leaves the machine (the committed .dvc/config already says so for
        # DVC), and no setting of this computer's user counts. DVC runs each stage with
        # `$SHELL -c`: bash, the usual login shell, hands the process over to python, so
        # a stage stopped by Ctrl+C exits 130; dash (/bin/sh, taken when SHELL is unset,
        # as in CI) waits, dies of the Ctrl+C itself, and DVC says "exited with -2".
        env = {k: v for k, v in participant_env().items() if not k.startswith(("MLFLOW_", "DVC_"))}
        self.env = env | {
            "PATH": str(BIN) + os.pathsep + env["PATH"],  # the stages' `python`
            "SHELL": "/bin/bash",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(root.parent / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(root.parent / "dvc-global-config"),
            "DVC_SYSTEM_CONFIG_DIR": str(root.parent / "dvc-system-config"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.git("config", "user.name", "Workshop participant")
        self.git("config", "user.email", "participant@example.invalid")
        self.uri = sqlite_uri(root / "mlflow.db")

    def command(self, args, cwd, check=True):
        result = subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def git(self, *args):
        return self.command(["git", *args], self.root).stdout.strip()

    def dvc(self, *args, check=True):
        """``dvc --cd dvc_pipeline ...`` from the workshop's folder, as the README runs it."""
        return self.command([DVC, "--cd", "dvc_pipeline", *args], self.root, check)

    def runs(self):
        """The pipeline's runs, oldest first."""
        client = mlflow.MlflowClient(self.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        order = ["attributes.start_time ASC"]
        return client.search_runs([experiment.experiment_id], order_by=order)

    def rows(self, table):
        with contextlib.closing(sqlite3.connect(self.root / "mlflow.db")) as store:
            return store.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def read(self, name):
        text = (self.pipeline / name).read_text()
        return yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """A fresh clone in which the README's commands ran: what each printed, what the
    README shows that they did not print, and what ``dvc repro`` left, looked at before
    the experiments changed the workspace."""
    require(DVC is not None, "dvc is not installed: pip install -r dvc_pipeline/requirements.txt")
    require(shutil.which("git") is not None, "git is not installed")
    workshop = Workshop(fresh_clone(tmp_path_factory.mktemp("dvc") / "mlflow-workshop"))
    printed = {}
    first = SimpleNamespace()

    def look(command, output):
        printed[command] = "\n".join(output)
        if command == REPRO:
            first.params = workshop.read("params.yaml")
            first.runs = workshop.runs()
            first.metrics = workshop.read("metrics.json")
            first.card = workshop.read("model/model_card.json")
            first.head = workshop.git("rev-parse", "HEAD")

    drifted = walk(README, workshop.root, watch=look)
    shown = json.loads(workshop.dvc("exp", "show", "--json").stdout)
    return SimpleNamespace(
        workshop=workshop,
        first=first,
        printed=printed,
        drifted=drifted,
        baseline=workshop.git("rev-parse", "HEAD"),
        experiments={
            rev["name"]: rev["data"]["metrics"]["metrics.json"]["data"]
            for row in shown
            for experiment in row.get("experiments") or []
            for rev in experiment["revs"]
        },
    )


@pytest.fixture
def workshop(walked):
    """The clone the README walked, for a test that changes params.yaml: restored
    afterwards."""
    yield walked.workshop
    walked.workshop.git("checkout", "--", "dvc_pipeline/params.yaml")


# %%
# The README's commands print what it shows
# -----------------------------------------


def test_the_readmes_commands_print_what_it_shows(walked):
    assert_prints_what_it_shows(README, walked.drifted)
    assert not [command for command, output in walked.printed.items() if "Traceback" in output]


# %%
# dvc repro: one run with params, metrics, tags and a registered model
# --------------------------------------------------------------------


def test_dvc_repro_logs_one_run_with_the_params_and_the_metrics_of_the_pipeline(walked):
    first = walked.first
    [run] = first.runs
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "repro_a0.5_l0.5"
    params = first.params
    logged = params["train"] | {k: params["prepare"][k] for k in ("test_size", "seed")}
    assert run.data.params == {name: str(value) for name, value in logged.items()}
    # The evaluate stage's scores, the same in MLflow as in metrics.json (dvc metrics show).
    assert run.data.metrics == pytest.approx(first.metrics)
    assert set(first.metrics) == {"rmse", "r2", "mae"}
    assert 0.6 < first.metrics["rmse"] < 0.8
    tags = run.data.tags
    assert tags["dvc_stage"] == "train"
    assert tags["model_type"] == "ElasticNet"
    assert tags["mlflow.source.git.commit"] == first.head
    assert "dvc_exp_name" not in tags  # dvc repro is no experiment
    assert first.card["mlflow_run_id"] == run.info.run_id
    assert first.card["mlflow_model_uri"] == f"models:/{MODEL}/1"
    # What evaluate.py prints, after its own line: the run, the model, where to see it.
    run_id, experiment_id = run.info.run_id, run.info.experiment_id
    scores = "evaluate: " + ", ".join(f"{k} {v:.3f}" for k, v in first.metrics.items())
    printed = walked.printed[REPRO].splitlines()
    start = printed.index(scores)
    assert printed[start : start + 4] == [
        scores,
        f"Run {run_id} (repro_a0.5_l0.5) in experiment '{EXPERIMENT}'",
        f"Model URI: models:/{MODEL}/1",
        f"See it:    http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
        "?workflowType=machine_learning",
    ]


def test_the_registered_model_loads_and_scores_as_the_pipeline_did(walked):
    workshop, first = walked.workshop, walked.first
    [run] = first.runs
    version_1 = mlflow.MlflowClient(workshop.uri).get_model_version(MODEL, "1")
    assert version_1.run_id == run.info.run_id
    mlflow.set_tracking_uri(workshop.uri)
    uri = f"models:/{MODEL}/1"
    info = mlflow.models.get_model_info(uri)
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.signature.inputs.input_names() == first.card["features"]
    model = mlflow.sklearn.load_model(uri)
    test = pd.read_csv(workshop.pipeline / "prepared" / "test.csv")
    errors = model.predict(test[first.card["features"]]) - test["quality"]
    assert (errors**2).mean() ** 0.5 == pytest.approx(run.data.metrics["rmse"])
    # Everything MLflow wrote is in the workshop's root, which git ignores.
    artifacts = workshop.root / "mlruns" / EXPERIMENT / run.info.run_id / "artifacts"
    assert (artifacts / "held_out_rows.json").is_file()
    assert list(workshop.pipeline.glob("**/mlruns")) + list(workshop.pipeline.glob("**/*.db")) == []
    ignored = workshop.git("status", "--porcelain", "--ignored")
    assert "!! mlflow.db" in ignored and "!! mlruns/" in ignored


# %%
# dvc exp run: one run per experiment, in the workspace, a temporary copy, the queue
# ----------------------------------------------------------------------------------


def test_each_experiment_is_one_run_named_after_it_in_the_workshops_store(walked):
    workshop = walked.workshop
    _, *new = workshop.runs()
    assert [run.info.run_name for run in new] == ["alpha-0.1", "alpha-0.02", "alpha-0.05"]
    for run, alpha in zip(new, ["0.1", "0.02", "0.05"], strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.params["alpha"] == alpha
        assert run.data.tags["dvc_exp_name"] == run.info.run_name
        # The commit the experiment started from: DVC commits the experiment afterwards.
        assert run.data.tags["dvc_exp_baseline_rev"] == walked.baseline
        assert run.data.tags["mlflow.source.git.commit"] == walked.baseline
        # dvc exp show and MLflow hold the same numbers.
        assert run.data.metrics == pytest.approx(walked.experiments[run.info.run_name])
        held_out = workshop.root / "mlruns" / EXPERIMENT / run.info.run_id / "artifacts"
        assert (held_out / "held_out_rows.json").is_file()
    versions = mlflow.MlflowClient(workshop.uri).search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(version.version) for version in versions) == [1, 2, 3, 4]
    # DVC's temporary copies are gone, and took no store with them.
    assert list((workshop.pipeline / ".dvc" / "tmp" / "exps").glob("tmp*")) == []
    temp = "dvc --cd dvc_pipeline exp run --temp -n alpha-0.02 -S train.alpha=0.02"
    assert "Ran experiment(s): alpha-0.02" in walked.printed[temp]


def test_dvc_analytics_are_off_in_the_committed_config(walked):
    for option in ("core.analytics", "core.check_update"):
        shown = walked.workshop.dvc("config", "--show-origin", option).stdout.split()
        assert shown == [".dvc/config", "false"], option


# %%
# Errors, Ctrl+C and tracking off: one line, no run RUNNING
# ---------------------------------------------------------


def test_a_bad_param_stops_its_stage_with_one_sentence_and_logs_nothing(workshop):
    before = len(workshop.runs())
    result = workshop.dvc("exp", "run", "-S", "train.alpha=-1", check=False)
    assert result.returncode == 255  # DVC's own code for a failed command
    assert result.stderr.splitlines() == [
        "params.yaml: train.alpha must be a number above 0, got -1.",
        "ERROR: failed to reproduce 'train': failed to run: python train.py, exited with 1",
    ]
    assert result.stderr in README_TEXT  # the README shows it as it is
    assert len(workshop.runs()) == before


def interrupt_the_train_stage(workshop):
    """``dvc repro`` of the train stage, sent Ctrl+C (SIGINT to its process group, as a
    terminal sends it) once the stage's model is being saved; its exit code and stderr."""
    models_before = workshop.rows("logged_models")
    process = subprocess.Popen(
        [DVC, "--cd", "dvc_pipeline", "repro", "--force", "--single-item", "train"],
        cwd=workshop.root,
        env=workshop.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's command has
    )
    wait_for_row_count(workshop.root / "mlflow.db", "logged_models", models_before + 1, process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_ctrl_c_in_a_stage_is_one_line_and_the_run_is_marked_failed(workshop):
    """Ctrl+C in a terminal reaches DVC and the stage (a process group); the stage says one
    line and exits 130, then DVC says that the stage failed. Sent once the model is being
    saved (its logged_models row exists), when no SQLite statement is under way: an interrupt
    inside one keeps that statement's lock while MLflow ends the run, which then waits 20 s
    and stays RUNNING (MLflow 3.17.2 with SQLAlchemy 2.0). The stage runs under bash
    (Workshop's SHELL).

    Python may raise the interrupt inside a clean-up callback instead, while garbage
    collection removes the classes of one of MLflow's migration scripts, which it loads
    each time it opens a store (SQLAlchemy's ``_MultipleClassMarker._remove_item``). It
    prints "Exception ignored in: ..." and carries on: the stage finishes and DVC exits 0
    (README, "When things go wrong"; 5 times in 15 here with the signal sent up to 1.5 s
    later, and once in CI). Then the test presses Ctrl+C again, on a new run."""
    for _ in range(3):
        before = len(workshop.runs())
        returncode, stderr = interrupt_the_train_stage(workshop)
        if not (returncode == 0 and "Exception ignored in" in stderr):
            break
    assert returncode == 255, stderr
    assert stderr.splitlines() == [
        "Stopped by Ctrl+C: a run under way is marked FAILED.",
        "ERROR: failed to reproduce 'train': failed to run: python train.py, exited with 130",
    ]
    assert stderr in README_TEXT
    assert len(workshop.runs()) == before + 1
    *_, stopped = workshop.runs()
    assert stopped.info.status == "FAILED"
    assert [run for run in workshop.runs() if run.info.status == "RUNNING"] == []


def test_with_tracking_off_the_pipeline_runs_as_before_and_logs_no_run(workshop):
    before = len(workshop.runs())
    result = workshop.dvc("exp", "run", "-n", "tracking-off", "-S", "enable_mlflow=false")
    assert "evaluate: rmse" in result.stdout
    assert "MLflow" not in result.stdout + result.stderr
    assert "mlflow_run_id" not in workshop.read("model/model_card.json")
    assert set(workshop.read("metrics.json")) == {"rmse", "r2", "mae"}
    assert len(workshop.runs()) == before
