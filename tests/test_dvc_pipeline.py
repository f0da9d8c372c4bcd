"""dvc_pipeline/: MLflow added to a DVC pipeline, on real DVC and git.

Each test works in a copy of the workshop (the pipeline, its data, the plumbing
and the lessons it uses) with a git repository of its own, and runs ``dvc``
and the lessons as a participant does: as processes, with no
MLFLOW_TRACKING_URI, so that the runs must find the workshop's store
(``mlflow.db`` in the copy's root) by themselves, from the project folder and
from DVC's temporary copies of it alike.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
import yaml
from conftest import REPO_ROOT, BackgroundProcess, free_port, require, sqlite_uri, wait_for_http

PIPELINE = REPO_ROOT / "dvc_pipeline"
BIN = Path(sys.executable).parent
DVC = shutil.which("dvc", path=str(BIN)) or shutil.which("dvc")
EXPERIMENT, MODEL = "wine-quality-dvc", "wine_quality_dvc"
# What a fresh clone holds that the pipeline lesson uses.
WORKSHOP_FILES = ["compare_runs.py", "load_model.py", "serve_model.py"]
WORKSHOP_FILES += [".gitignore", "ui.env"]
# What the stages make; never copied from a developer's own runs.
OUTPUTS = ("prepared", "model", "dvc.lock", "metrics.json", "tmp", "cache", "__pycache__")


def require_dvc():
    require(DVC is not None, "dvc is not installed: pip install -r requirements-dvc.txt")
    require(shutil.which("git") is not None, "git is not installed")


class Workshop:
    """A copy of the workshop with its own git repository, and the commands run in it."""

    def __init__(self, root, store_template=None):
        self.root, self.pipeline = root, root / "dvc_pipeline"
        root.mkdir(parents=True)
        for name in WORKSHOP_FILES:
            shutil.copy(REPO_ROOT / name, root / name)
        for folder in ("data", "plumbing"):
            shutil.copytree(REPO_ROOT / folder, root / folder)
        shutil.copytree(PIPELINE, self.pipeline, ignore=shutil.ignore_patterns(*OUTPUTS))
        if store_template:  # an empty store with its tables made, to save MLflow's migrations
            shutil.copyfile(store_template, root / "mlflow.db")
        # Nothing leaves the machine, no setting of this computer's user counts,
        # and DVC's per-user state goes to the test's own folder.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        self.env = env | {
            "PATH": str(BIN) + os.pathsep + env["PATH"],  # the stages' `python`
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(root.parent / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(root.parent / "dvc-global-config"),
            "DVC_SYSTEM_CONFIG_DIR": str(root.parent / "dvc-system-config"),
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "user.name", "Workshop participant")
        self.git("config", "user.email", "participant@example.invalid")
        self.git("add", ".")
        self.git("commit", "--quiet", "--message", "The workshop, with the DVC pipeline")

    def command(self, args, cwd, check=True, timeout=300):
        result = subprocess.run(
            args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def git(self, *args):
        return self.command(["git", *args], self.root)

    def dvc(self, *args, check=True):
        return self.command([DVC, *args], self.pipeline, check)

    def python(self, *args, check=True):
        return self.command([sys.executable, *args], self.root, check)

    def set_params(self, **sections):
        """Change params.yaml as a participant would in an editor: ``train={"alpha": 0.1}``."""
        path = self.pipeline / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for section, values in sections.items():
            if isinstance(values, dict):
                params[section] |= values
            else:
                params[section] = values
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def client(self):
        return mlflow.MlflowClient(sqlite_uri(self.root / "mlflow.db"))

    def runs(self):
        """The pipeline's runs, oldest first (none before its experiment exists)."""
        experiment = self.client().get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        order = ["attributes.start_time ASC"]
        return self.client().search_runs([experiment.experiment_id], order_by=order)

    def metrics(self):
        return json.loads((self.pipeline / "metrics.json").read_text())

    def card(self):
        return json.loads((self.pipeline / "model" / "model_card.json").read_text())


def ran_stages(output):
    """The stages that a ``dvc repro`` ran, from its ``Running stage 'x':`` lines."""
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, empty_store_template):
    """A workshop copy after its first ``dvc repro``, with the runs it logged and its time."""
    require_dvc()
    workshop = Workshop(tmp_path_factory.mktemp("dvc") / "mlflow-workshop", empty_store_template)
    started = time.monotonic()
    result = workshop.dvc("repro")
    seconds = time.monotonic() - started
    return workshop, result, seconds, workshop.runs()


# %%
# dvc repro
# ---------


def test_repro_logs_one_run_with_params_metrics_tags_and_a_version(reproduced):
    workshop, result, seconds, runs = reproduced
    assert ran_stages(result.stdout) == ["prepare", "train", "evaluate"]
    # The issue asks for 30 s on two idle cores (17.7-17.9 s measured, README); a busy
    # machine doubles the wall-clock time, so only three times that fails the test.
    assert seconds < 90, f"a full dvc repro took {seconds:.1f} s"
    [run] = runs
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "repro_a0.5_l0.5"
    assert run.data.params == {"alpha": "0.5", "l1_ratio": "0.5", "test_size": "0.25", "seed": "42"}
    # The evaluate stage's scores, in MLflow as in metrics.json (dvc metrics show).
    metrics = workshop.metrics()
    assert set(metrics) == {"rmse", "r2", "mae"}
    assert run.data.metrics == pytest.approx(metrics)
    assert 0.6 < metrics["rmse"] < 0.8 and 0.05 < metrics["r2"] < 0.3  # alpha 0.5 is a lot
    head = workshop.git("rev-parse", "HEAD").stdout.strip()
    tags = run.data.tags
    assert {"dvc_stage": "train", "git_commit": head, "model_type": "ElasticNet"}.items() <= (
        tags.items()
    )
    assert "dvc_exp_name" not in tags  # dvc repro is no experiment
    # The model, registered; the card, the project's own record, names both.
    [version] = workshop.client().search_model_versions(f"name = '{MODEL}'")
    assert (int(version.version), version.run_id) == (1, run.info.run_id)
    card = workshop.card()
    assert card["mlflow_run_id"] == run.info.run_id
    assert card["mlflow_model_uri"] == f"models:/{MODEL}/1"
    assert (workshop.pipeline / "model" / "model.skops").is_file()
    # Everything MLflow wrote is in the workshop's root, ignored by git.
    artifacts = workshop.root / "mlruns" / EXPERIMENT
    assert (artifacts / run.info.run_id / "artifacts" / "held_out_rows.json").is_file()
    assert not list(workshop.pipeline.glob("**/mlruns")) + list(workshop.pipeline.glob("**/*.db"))
    status = workshop.git("status", "--porcelain", "--ignored").stdout
    assert "!! mlflow.db" in status and "!! mlruns/" in status
    assert "Traceback" not in result.stdout + result.stderr
    print(f"dvc repro: {seconds:.1f} s")


def test_no_change_repro_logs_no_run_and_a_param_change_reruns_what_it_touches(reproduced):
    workshop, *_ = reproduced
    before = len(workshop.runs())
    started = time.monotonic()
    again = workshop.dvc("repro")
    seconds = time.monotonic() - started
    assert ran_stages(again.stdout) == []
    assert "didn't change, skipping" in again.stdout
    assert len(workshop.runs()) == before
    print(f"no-change dvc repro: {seconds:.1f} s")

    workshop.set_params(train={"alpha": 0.2})
    changed = workshop.dvc("repro")
    assert ran_stages(changed.stdout) == ["train", "evaluate"]  # prepare did not change
    *_, run = workshop.runs()
    assert len(workshop.runs()) == before + 1
    assert run.data.params["alpha"] == "0.2"
    assert run.data.metrics == pytest.approx(workshop.metrics())
    versions = workshop.client().search_model_versions(f"name = '{MODEL}'")
    assert max(int(v.version) for v in versions) == before + 1


def test_served_model_answers(reproduced, tmp_path):
    """serve_model.py serves the registered version, and predicts what the saved model does."""
    workshop, *_, runs = reproduced
    port = free_port()
    uri = f"models:/{MODEL}/1"
    command = [sys.executable, "serve_model.py", "--model-uri", uri, "--port", str(port)]
    with BackgroundProcess(command, tmp_path / "serve.log", workshop.env, workshop.root) as server:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/ping", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()}")
        test_rows = workshop.pipeline / "prepared" / "test.csv"
        import pandas as pd

        wines = pd.read_csv(test_rows).head(3)
        body = {"dataframe_split": wines.drop(columns="quality").to_dict(orient="split")}
        del body["dataframe_split"]["index"]
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=30)
        assert response.status_code == 200, response.text
    with mlflow_store(workshop):
        model = mlflow.sklearn.load_model(uri)
    expected = model.predict(wines.drop(columns="quality"))
    assert response.json()["predictions"] == pytest.approx(list(expected))
    assert runs[0].info.run_id in server.log()  # "... logged by run <id>"


class mlflow_store:
    """Inside the block, MLflow in this process reads the workshop copy's store."""

    def __init__(self, workshop):
        self.uri = sqlite_uri(workshop.root / "mlflow.db")

    def __enter__(self):
        self.previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.uri)

    def __exit__(self, *exc):
        mlflow.set_tracking_uri(self.previous)


# %%
# dvc exp run, in the workspace, in a temporary copy and from the queue
# ---------------------------------------------------------------------


def test_experiments_log_runs_into_the_root_store_and_agree_on_the_best(reproduced):
    workshop, *_ = reproduced
    workshop.git("add", "dvc_pipeline")  # the baseline: dvc.lock and metrics.json too
    workshop.git("commit", "--quiet", "--message", "Baseline of the wine pipeline")
    before = {run.info.run_id for run in workshop.runs()}

    workspace = workshop.dvc("exp", "run", "--name", "alpha-0.1", "-S", "train.alpha=0.1")
    temporary = workshop.dvc(
        "exp", "run", "--temp", "--name", "alpha-0.02", "-S", "train.alpha=0.02"
    )
    assert "Traceback" not in workspace.stderr + temporary.stderr

    new = [run for run in workshop.runs() if run.info.run_id not in before]
    assert [run.data.tags.get("dvc_exp_name") for run in new] == ["alpha-0.1", "alpha-0.02"]
    assert [run.info.run_name for run in new] == ["alpha-0.1", "alpha-0.02"]
    assert [run.data.params["alpha"] for run in new] == ["0.1", "0.02"]
    baseline = workshop.git("rev-parse", "HEAD").stdout.strip()
    assert {run.data.tags["git_commit"] for run in new} == {baseline}
    assert all(run.info.status == "FINISHED" and run.data.metrics for run in new)
    # The temporary copy is gone; its run and its artifacts are in the root store.
    assert not list((workshop.pipeline / ".dvc" / "tmp" / "exps").glob("tmp*"))
    held_out = f"{new[1].info.run_id}/artifacts/held_out_rows.json"
    assert (workshop.root / "mlruns" / EXPERIMENT / held_out).is_file()

    # dvc exp show and compare_runs.py name the same best experiment.
    shown = json.loads(workshop.dvc("exp", "show", "--json").stdout)
    experiments = {
        exp["name"]: exp["data"]["metrics"]["metrics.json"]["data"]["rmse"]
        for row in shown
        for experiment in row.get("experiments") or []
        for exp in experiment["revs"]
    }
    assert {"alpha-0.1", "alpha-0.02"} <= set(experiments)
    best_in_dvc = min(experiments, key=experiments.get)
    compared = workshop.python("compare_runs.py", "--experiment", EXPERIMENT)
    best_line = next(line for line in compared.stdout.splitlines() if line.startswith("Best run"))
    assert best_line.startswith(f"Best run by metrics.rmse ASC: {best_in_dvc} ")
    assert f"rmse = {experiments[best_in_dvc]:.3f}" in best_line

    # A queued experiment runs in a temporary copy too, in a worker DVC starts.
    workshop.dvc("exp", "run", "--queue", "--name", "alpha-0.05", "-S", "train.alpha=0.05")
    workshop.dvc("queue", "start")
    try:
        status = wait_for_queue(workshop)
    finally:
        workshop.dvc("queue", "stop", check=False)
    assert re.search(r"alpha-0\.05 .* Success", status), status
    [queued] = [run for run in workshop.runs() if run.info.run_id not in before][2:]
    assert queued.data.tags["dvc_exp_name"] == "alpha-0.05"
    assert queued.info.status == "FINISHED"


def wait_for_queue(workshop, timeout=180):
    """``dvc queue status`` once no experiment is queued or running any more."""
    deadline = time.monotonic() + timeout
    while True:
        status = workshop.dvc("queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        assert time.monotonic() < deadline, f"the queue did not finish:\n{status}"
        time.sleep(1)


# %%
# Tracking off, and errors
# ------------------------


def test_with_tracking_off_no_run_appears_and_metrics_are_still_written(tmp_path):
    require_dvc()
    workshop = Workshop(tmp_path / "mlflow-workshop")  # no store: nothing may make one
    workshop.set_params(enable_mlflow=False)
    result = workshop.dvc("repro")
    assert ran_stages(result.stdout) == ["prepare", "train", "evaluate"]
    assert set(workshop.metrics()) == {"rmse", "r2", "mae"}
    assert (workshop.pipeline / "model" / "model.skops").is_file()
    assert "mlflow_run_id" not in workshop.card()
    assert not (workshop.root / "mlflow.db").exists()
    assert not (workshop.root / "mlruns").exists()


@pytest.mark.parametrize(
    ("params", "stage", "message"),
    [
        ({"train": {"alpha": -1}}, "train", "train.alpha must be a number above 0, got -1."),
        (
            {"prepare": {"test_size": "half"}},
            "prepare",
            "prepare.test_size must be a number from 0.05 to 0.95, got 'half'.",
        ),
        ({"enable_mlflow": "yes please"}, "train", "enable_mlflow must be true or false"),
    ],
)
def test_a_bad_param_stops_its_stage_with_one_sentence(
    tmp_path, empty_store_template, params, stage, message
):
    require_dvc()
    workshop = Workshop(tmp_path / "mlflow-workshop", empty_store_template)
    workshop.set_params(**params)
    result = workshop.dvc("repro", check=False)
    assert result.returncode != 0
    assert f"params.yaml: {message}" in result.stderr
    assert f"failed to reproduce '{stage}'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert workshop.runs() == []  # nothing logged, so nothing left RUNNING


def test_a_missing_data_file_stops_the_pipeline_with_one_sentence(tmp_path):
    require_dvc()
    workshop = Workshop(tmp_path / "mlflow-workshop")
    data = workshop.root / "data" / "winequality-red.csv"
    data.unlink()
    result = workshop.dvc("repro", check=False)
    assert result.returncode != 0
    assert "winequality-red.csv" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Each stage on its own says what is missing, in one sentence and with exit code 1.
    training_rows = workshop.pipeline / "prepared" / "train.csv"
    for script, missing in [("prepare.py", data), ("train.py", training_rows)]:
        alone = workshop.python(f"dvc_pipeline/{script}", check=False)
        assert alone.returncode == 1
        [sentence] = alone.stderr.strip().splitlines()
        assert sentence.startswith(f"There is no file {missing}")
    assert not (workshop.root / "mlflow.db").exists()


# %%
# The runs in the MLflow UI: the README's picture
# -----------------------------------------------


def test_the_pipelines_runs_appear_in_the_ui(reproduced, tmp_path):
    """The README's ``mlflow ui`` over the copy's store, in headless Chromium (see test_ui.py)."""
    from test_ui import expect, participant_browser, require_browser, screenshot, ui_command

    import plumbing

    require_browser()
    workshop, *_ = reproduced
    runs = workshop.runs()
    experiment_id = runs[0].info.experiment_id
    port = free_port()
    command = ui_command(port)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ui.log"
    with BackgroundProcess(command, log, workshop.env, workshop.root) as server:
        try:
            wait_for_http(f"{url}/health", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()[-3000:]}")
        with participant_browser(url) as context:
            page = context.new_page()
            page.goto(f"{url}/#/experiments/{experiment_id}{plumbing.UI_VIEW}")
            for run in runs:  # each named after its DVC experiment
                link = page.get_by_role("link", name=run.info.run_name, exact=True)
                expect(link.first).to_be_visible()
            # The chart view: one bar chart per metric, a bar per run. Its
            # switch is an unlabelled radio button, found by its value.
            chart_view = page.locator("input[name=runs-view-mode][value=CHART]")
            chart_view.locator("xpath=../..").click()
            for metric in ("rmse", "r2", "mae"):
                expect(page.get_by_text(metric, exact=True).first).to_be_visible()
            screenshot(page, "dvc_pipeline_runs", height=660)


# %%
# The README's before/after diff is the real change
# -------------------------------------------------


def readme_diffs():
    """The ```diff blocks of the README's DVC chapter, as one patch."""
    readme = (REPO_ROOT / "README.md").read_text()
    chapter = readme[readme.index("## MLflow in an existing DVC pipeline") :]
    chapter = chapter[: chapter.index("\n## ", 1)]
    return "".join(re.findall(r"^```diff\n(.*?)^```", chapter, flags=re.M | re.S))


def test_the_readme_diff_undone_gives_the_pipeline_before_mlflow(tmp_path):
    """Undoing the README's diff leaves a pipeline that runs and writes its metrics, MLflow-free."""
    require_dvc()
    patch = readme_diffs()
    files = re.findall(r"^\+\+\+ b/(\S+)", patch, flags=re.M)
    assert files == [f"dvc_pipeline/{name}" for name in WORKSHOP_DIFFED]
    workshop = Workshop(tmp_path / "mlflow-workshop")
    (tmp_path / "mlflow.patch").write_text(patch)
    workshop.git("apply", "--reverse", str(tmp_path / "mlflow.patch"))
    for name in ("train.py", "evaluate.py"):
        assert "mlflow" not in (workshop.pipeline / name).read_text()
    result = workshop.dvc("repro")
    assert ran_stages(result.stdout) == ["prepare", "train", "evaluate"]
    assert set(workshop.metrics()) == {"rmse", "r2", "mae"}
    assert not (workshop.root / "mlflow.db").exists()


WORKSHOP_DIFFED = ["params.yaml", "dvc.yaml", "train.py", "evaluate.py"]
