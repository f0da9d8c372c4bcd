"""The MLflow UI in a real browser: every view the README sends people to is there.

One ``mlflow ui`` serves a store that the workshop scripts themselves filled;
headless Chromium opens its pages and checks what a person would see (text,
links, table rows, charts), by role and label rather than by CSS class.

The same tests take the README's pictures. Regenerate them with

    UPDATE_SCREENSHOTS=1 pytest tests/test_ui.py

which overwrites ``docs/images/*.png``; it fills the store in /home/you/mlflow-workshop,
the README's example folder, so that the paths in the pictures match the text.
"""

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import (
    REPO_ROOT,
    WINE_CSV,
    BackgroundProcess,
    children_of,
    free_port,
    require,
    run_script,
    sqlite_uri,
    wait_for_http,
)
from test_readme import README, code_blocks

import plumbing

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the tests skip (fail in CI) with a reason, below
    expect = sync_playwright = None

# Debian's package: Playwright's own browser download is not needed.
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = REPO_ROOT / "docs" / "images"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS", "") not in ("", "0")
README_FOLDER = Path("/home/you/mlflow-workshop")  # where the README's examples live
TIMEOUT_MS = 30_000  # first renders of a chart can be slow on a busy CI machine
# Neither the scripts nor the server may phone home from a test.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

# What each lesson puts into the store: its experiment and the flags of each run.
# The wine and iris runs are those the README's own commands make before the
# pictures of them; the other lessons run once with their defaults, as the
# README first runs them. The user name, demo.py's default owner and MLflow's
# "Created by", is the README's "you", not CI's root.
PARTICIPANT = "you"


def readme_runs(script, picture):
    """The runs of ``script`` that the README's bash lines before ``picture`` start, as argv lists.

    bash reads the lines (loops, variables, quotes) as a participant's shell
    does, with ``python`` a function that prints its arguments instead of
    running them; the fixture then runs each one.
    """
    before, reference, _ = README.read_text().partition(f"(docs/images/{picture})")
    assert reference, f"README.md shows no docs/images/{picture}"
    lines = [line for block in code_blocks("bash", before) for line in block]
    lines = [line for line in lines if f"python {script}" in line]
    echo = 'python() { "$PYTHON" -c "import json, sys; print(json.dumps(sys.argv[1:]))" "$@"; }'
    shell = subprocess.run(
        ["bash", "-c", "\n".join([echo, *lines])],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    runs = [json.loads(line) for line in shell.stdout.splitlines()]
    assert runs and all(argv[0] == script for argv in runs), (lines, runs)
    return [argv[1:] for argv in runs]


LESSONS = {
    "demo.py": ("demo-mlflow-artifacts", [[]]),
    "train_wine_elasticnet.py": (
        "wine-quality-elasticnet",
        readme_runs("train_wine_elasticnet.py", "compare_runs.png"),
    ),
    "train_iris_sweep.py": (
        "iris_classification",
        readme_runs("train_iris_sweep.py", "registered_model.png"),
    ),
    "track_training_curves.py": ("digits-training-curves", [[]]),
}

# Runs the lessons one after the other in one child process (one MLflow import),
# each exactly as ``python <script> <flags>`` would, so that the UI shows the
# script's name as the run's source.
FILL_STORE = """
import json, runpy, sys
for script, argv in json.loads(sys.argv[1]):
    sys.argv = [script, *argv]
    runpy.run_path(script, run_name="__main__")
"""


def lesson_available(script):
    return (REPO_ROOT / script).is_file()


def need(script):
    """Skip (fail in CI) a check whose lesson could not fill the store."""
    require(lesson_available(script), f"{script} could not run: not found")


def require_browser():
    require(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    require(sync_playwright is not None, "no Playwright: pip install -r requirements-dev.txt")


def ui_command(port, store_uri=None):
    """The README's ``mlflow ui`` command, with this environment's MLflow, on ``port``."""
    command = shlex.split(plumbing.UI_COMMAND)  # mlflow --env-file ui.env ui ... --port 5000
    command[0:1] = [sys.executable, "-m", "mlflow"]
    command[command.index("--port") + 1] = str(port)
    if store_uri:
        command[command.index("--backend-store-uri") + 1] = store_uri
    return command


@contextlib.contextmanager
def participant_browser(ui_url, viewport=VIEWPORT, first_visit=False):
    """A headless Chromium context set up as a workshop participant leaves it.

    On the first visit the UI opens in its GenAI view with an assistant panel;
    a participant switches to "Model training" and closes the panel once, and
    the UI remembers both in the browser's local storage (not with
    ``first_visit``: a fresh profile). Only 127.0.0.1 is reachable: nothing
    leaves the machine.
    """
    require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport, locale="en-US", timezone_id="UTC")
            context.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/).*"), lambda r: r.abort())
            if first_visit:
                yield context
                return
            page = context.new_page()
            page.goto(f"{ui_url}/#/experiments")
            page.get_by_role("button", name="Model training").click()
            assistant_close = page.get_by_role("button", name="Close")
            if assistant_close.is_visible():
                assistant_close.click()
            page.close()
            yield context
        finally:
            browser.close()


class UI:
    """The running UI and what the store holds, for the tests to look up ids."""

    def __init__(self, url, tracking_uri, folder, server):
        self.url = url
        self.client = mlflow.MlflowClient(tracking_uri)
        self.folder = folder  # the workshop copy whose store the UI serves
        self.server = server  # the BackgroundProcess running the README's command

    def experiment(self, name):
        return self.client.get_experiment_by_name(name)

    def runs(self, experiment_name):
        experiment_id = self.experiment(experiment_name).experiment_id
        return self.client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory, empty_store_template):
    """The README's ``mlflow ui`` command on a free port, over a store the lessons filled.

    The scripts run from a copy of the repository with no MLFLOW_TRACKING_URI,
    so runs and artifacts land where a participant's do (``mlflow.db`` and
    ``mlruns/<experiment>/``). The server boots while the scripts run: together
    that takes less time than one after the other.
    """
    require_browser()  # before a minute of filling the store for nothing
    workshop = tmp_path_factory.mktemp("ui") / "mlflow-workshop"
    if UPDATE_SCREENSHOTS:  # the pictures show artifact paths: the README's folder, not pytest's
        workshop = README_FOLDER
        shutil.rmtree(workshop, ignore_errors=True)
    workshop.mkdir(parents=True)
    for path in [*REPO_ROOT.glob("*.py"), REPO_ROOT / "ui.env"]:
        shutil.copy(path, workshop)
    # The wine lesson reads its shipped data from data/ next to the scripts.
    shutil.copytree(WINE_CSV.parent, workshop / WINE_CSV.parent.name)
    shutil.copytree(REPO_ROOT / "plumbing", workshop / "plumbing")
    shutil.copyfile(empty_store_template, workshop / "mlflow.db")
    env = {**NO_TELEMETRY, "MLFLOW_TRACKING_URI": ""}
    env |= {name: PARTICIPANT for name in ("LOGNAME", "USER", "LNAME", "USERNAME")}
    port = free_port()
    command = ui_command(port)
    with BackgroundProcess(command, workshop / "ui.log", env=env, cwd=workshop) as server:
        lessons = [
            (script, argv)
            for script, (_, runs) in LESSONS.items()
            if lesson_available(script)
            for argv in runs
        ]
        fill = subprocess.run(
            [sys.executable, "-c", FILL_STORE, json.dumps(lessons)],
            cwd=workshop,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert fill.returncode == 0, f"the lesson scripts failed:\n{fill.stderr[-3000:]}"
        try:
            wait_for_http(f"http://127.0.0.1:{port}/health", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()[-3000:]}")
        yield UI(f"http://127.0.0.1:{port}", sqlite_uri(workshop / "mlflow.db"), workshop, server)


@pytest.fixture(scope="module")
def browser_context(mlflow_ui):
    """One headless Chromium for all the tests."""
    with participant_browser(mlflow_ui.url) as context:
        yield context


@pytest.fixture
def page(browser_context, mlflow_ui):
    page = browser_context.new_page()
    # The registry greets a first visitor with a dialog about its new UI, over
    # the page; whenever it shows up, take the offer as a participant would.
    page.add_locator_handler(
        page.get_by_role("dialog", name=re.compile("new Model Registry UI")),
        lambda dialog: dialog.get_by_role("button", name="Try it now").click(),
    )
    yield page
    page.close()


def screenshot(page, name, height=None):
    """Save the top ``height`` pixels (default: all) of the page as docs/images/<name>.png.

    Only when UPDATE_SCREENSHOTS is set: a normal test run changes no files.
    """
    if not UPDATE_SCREENSHOTS:
        return
    from PIL import Image

    viewport = page.viewport_size
    height = height or viewport["height"]
    page.mouse.move(0, viewport["height"] - 1)  # no hover highlight in the picture
    page.wait_for_timeout(500)  # let chart animations settle
    clip = {"x": 0, "y": 0, "width": viewport["width"], "height": height}
    png = Image.open(io.BytesIO(page.screenshot(clip=clip)))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A 256-colour palette keeps a UI screenshot at a fraction of its size.
    png.convert("RGB").quantize(256).save(SCREENSHOTS / f"{name}.png", optimize=True)


def expect_visible(*locators):
    for locator in locators:
        expect(locator).to_be_visible()


# %%
# Tests
# -----


def test_the_readme_command_starts_two_processes_and_prints_no_warning(mlflow_ui):
    """ui.env and --workers 1: one web worker and no job consumers (the plain `mlflow ui`
    started 15 processes), and MLflow's Starlette warning hidden."""
    if sys.platform != "linux":
        pytest.skip("counts processes through /proc")
    processes, unseen = [], [mlflow_ui.server.process.pid]
    while unseen:
        processes.append(pid := unseen.pop())
        unseen += children_of(pid)
    assert len(processes) == 2
    log = mlflow_ui.server.log()
    assert "Warning" not in log and "Traceback" not in log, log


def test_a_printed_link_opens_model_training_on_a_first_visit(mlflow_ui):
    """The link a lesson prints, in a fresh browser profile: the run in the Model training
    view (its breadcrumb says Runs; the GenAI view says Evaluations and lists Judges)."""
    [run] = mlflow_ui.runs("demo-mlflow-artifacts")
    link = plumbing.where_to_look(run)[-1].split("then open ")[1]
    with participant_browser(mlflow_ui.url, first_visit=True) as context:
        page = context.new_page()
        page.goto(link.replace(plumbing.next_steps.UI_URL, mlflow_ui.url))
        expect(page.get_by_role("link", name="Runs", exact=True).first).to_be_visible()
        expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_visible()
        assert page.get_by_text("Judges", exact=True).count() == 0
        assert page.get_by_role("link", name="Evaluations", exact=True).count() == 0


def test_experiments_list_shows_every_workshop_experiment(page, mlflow_ui):
    page.goto(f"{mlflow_ui.url}/#/experiments")
    available = [name for script, (name, _) in LESSONS.items() if lesson_available(script)]
    expect_visible(*[page.get_by_role("link", name=name, exact=True) for name in available])
    screenshot(page, "experiments", height=420)
    for script in LESSONS:  # and none is missing
        need(script)


def test_run_page_shows_params_metrics_and_tags(page, mlflow_ui):
    [run] = mlflow_ui.runs("demo-mlflow-artifacts")
    params = run.data.params  # the lesson's defaults, as recorded
    assert set(params) == {"n_estimators", "max_depth", "test_size", "seed"}
    page.goto(f"{mlflow_ui.url}/#/experiments")
    page.get_by_role("link", name="demo-mlflow-artifacts", exact=True).click()
    page.get_by_role("link", name="random_forest_breast_cancer").click()
    expect(page.get_by_role("heading", name="random_forest_breast_cancer")).to_be_visible()
    expect_visible(
        *[
            page.get_by_role("row", name=f"{param} {value}", exact=True)
            for param, value in params.items()
        ],
        *[
            page.get_by_role("row", name=re.compile(rf"^{metric} [01](\.\d+)? model$"))
            for metric in ("accuracy", "roc_auc", "precision", "recall", "f1_score")
        ],
    )
    for tag, value in {
        "model_type": "RandomForestClassifier",
        "dataset": "sklearn breast_cancer",
        "owner": PARTICIPANT,  # demo.py's default: the user name
    }.items():
        expect(page.get_by_role("status", name=tag, exact=True)).to_contain_text(value)
    # The rows it learnt from, and (behind "+1") the held-out rows it was scored on.
    training = page.get_by_role("button", name=re.compile(r"^breast_cancer_training \("))
    expect(training.get_by_role("status")).to_have_text("training", ignore_case=True)
    plus_one = page.get_by_role("status").filter(has_text=re.compile(r"^\+1$"))
    page.get_by_role("button").filter(has=plus_one).click()
    more = page.get_by_role("dialog", name="More items")
    evaluation = more.get_by_role("button", name=re.compile(r"^breast_cancer_evaluation \("))
    expect(evaluation.get_by_role("status")).to_have_text("evaluation", ignore_case=True)
    page.keyboard.press("Escape")
    expect(more).to_be_hidden()
    page.evaluate("document.activeElement.blur()")  # no focus ring on "+1" in the picture
    screenshot(page, "run_overview")


def test_run_artifacts_include_the_plots_and_the_report(page, mlflow_ui):
    [run] = mlflow_ui.runs("demo-mlflow-artifacts")
    page.goto(f"{mlflow_ui.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.get_by_role("tab", name="Artifacts").click()
    artifacts = page.get_by_role("main").get_by_role("list")
    artifacts.get_by_text("plots", exact=True).click()
    for plot in ("confusion_matrix.png", "roc_curve.png", "feature_importance.png"):
        expect(artifacts.get_by_text(plot, exact=True)).to_be_visible()
    expect(artifacts.get_by_text("held_out_rows.json", exact=True)).to_be_visible()
    artifacts.get_by_text("classification_report.txt", exact=True).click()
    expect(page.get_by_text("macro avg")).to_be_visible()
    artifacts.get_by_text("roc_curve.png", exact=True).click()
    image = page.get_by_role("img", name="plots/roc_curve.png")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 100")
    screenshot(page, "run_artifacts")


def test_logged_model_is_reachable_from_its_run(page, mlflow_ui):
    [run] = mlflow_ui.runs("demo-mlflow-artifacts")
    [model] = mlflow_ui.client.search_logged_models([run.info.experiment_id])
    page.goto(f"{mlflow_ui.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    logged_models = page.get_by_role("grid").filter(has_text="Model name")
    logged_models.get_by_role("link", name="model", exact=True).click()
    expect(page).to_have_url(re.compile(f"/models/{model.model_id}$"))
    expect(page.get_by_text(model.model_id)).to_be_visible()
    expect(page.get_by_role("heading", name="model", exact=True)).to_be_visible()
    # The model is a folder: the serialized forest and MLflow's description of it.
    page.get_by_role("main").get_by_role("link", name="Artifacts", exact=True).click()
    files = page.get_by_role("main").get_by_role("list")
    for name in ("MLmodel", "model.skops", "requirements.txt", "input_example.json"):
        expect(files.get_by_text(name, exact=True)).to_be_visible()
    files.get_by_text("MLmodel", exact=True).click()
    expect(page.get_by_text("serialization_format: skops")).to_be_visible()
    screenshot(page, "logged_model")


def test_wine_runs_compare_alpha_against_rmse(page, mlflow_ui):
    need("train_wine_elasticnet.py")
    _, readme_wine_runs = LESSONS["train_wine_elasticnet.py"]
    # One store for both wine pictures: the README may start no wine run between them.
    assert readme_runs("train_wine_elasticnet.py", "compare_runs_chart.png") == readme_wine_runs
    runs = mlflow_ui.runs("wine-quality-elasticnet")
    assert len(runs) == len(readme_wine_runs)
    page.goto(f"{mlflow_ui.url}/#/experiments")
    page.get_by_role("link", name="wine-quality-elasticnet", exact=True).click()
    expect(page.get_by_text(f"{len(runs)} matching runs")).to_be_visible()
    page.get_by_role("checkbox", name="Select all runs").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_text(f"Comparing {len(runs)} Runs")).to_be_visible()
    page.get_by_role("tab", name="Scatter Plot").click()
    page.get_by_role("combobox", name="X-axis:").click()
    page.get_by_role("option", name="alpha", exact=True).click()
    page.get_by_role("combobox", name="Y-axis:").click()
    page.get_by_role("option", name="rmse", exact=True).click()
    chart = page.get_by_role("tabpanel", name="Scatter Plot").get_by_role("img")
    expect(chart.filter(has_text="alpha").filter(has_text="rmse")).to_be_visible()
    # Below the chart, the values behind it, one column per run, newest first as in the table.
    alphas = " ".join(run.data.params["alpha"] for run in reversed(runs))
    expect_visible(
        page.get_by_role("row", name=f"alpha {alphas}", exact=True),
        page.get_by_role("link", name="rmse", exact=True),
    )
    screenshot(page, "compare_runs")


def test_training_curves_appear_as_a_chart(page, mlflow_ui):
    need("track_training_curves.py")
    run = next(
        r
        for r in mlflow_ui.runs("digits-training-curves")
        if r.info.run_name == "mlp_digits_curves"
    )
    page.goto(f"{mlflow_ui.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.get_by_role("tab", name="Model metrics").click()
    # The search box takes a regular expression: just the two loss curves.
    page.get_by_placeholder("Search metric charts").fill("^(train|val)_loss$")
    expect_visible(
        page.get_by_role("heading", name="train_loss", exact=True),
        page.get_by_role("heading", name="val_loss", exact=True),
    )
    # A line chart over steps (epochs), not a single bar: its x axis is "Step".
    expect(page.get_by_role("img").filter(has_text=re.compile(r"^Step$"))).to_have_count(2)
    screenshot(page, "training_curves", height=630)


def test_registered_model_lists_versions_and_champion_alias(page, mlflow_ui):
    need("train_iris_sweep.py")
    versions = mlflow_ui.client.search_model_versions("name = 'iris_classifier'")
    champion = mlflow_ui.client.get_model_version_by_alias("iris_classifier", "champion")
    # Tall enough for the ten versions of the README's three sweeps, the champion among them.
    page.set_viewport_size({**VIEWPORT, "height": 1800})
    page.goto(f"{mlflow_ui.url}/#/experiments")
    page.get_by_role("link", name="Model registry").click()
    page.get_by_role("link", name="iris_classifier", exact=True).click()
    expect(page.get_by_role("heading", name="iris_classifier")).to_be_visible()
    for version in versions:
        expect(
            page.get_by_role("link", name=f"Version {version.version}", exact=True)
        ).to_be_visible()
    champion_row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Version {champion.version}", exact=True)
    )
    expect(champion_row.get_by_role("status", name="champion")).to_be_visible()
    oldest = page.get_by_role("row").filter(
        has=page.get_by_role("link", name="Version 1", exact=True)
    )
    expect(oldest).to_be_in_viewport(ratio=1)  # the picture shows every version
    screenshot(page, "registered_model")


def test_compare_runs_draws_the_chart_the_readme_shows(mlflow_ui, tmp_path):
    """The comparison without the UI: compare_runs.py --plot over the same wine runs.

    They vary alpha and l1_ratio: one panel each, 900 pixels wide.
    """
    need("train_wine_elasticnet.py")
    chart = tmp_path / "wine_runs.png"
    result = run_script(
        "compare_runs.py",
        "--plot",
        str(chart),
        cwd=mlflow_ui.folder,
        env={**NO_TELEMETRY, "MLFLOW_TRACKING_URI": ""},
    )
    assert result.returncode == 0, result.stderr
    from PIL import Image

    with Image.open(chart) as png:
        assert png.format == "PNG" and png.width == 900, (png.format, png.size)
    assert "alpha" in result.stdout and "rmse" in result.stdout
    if UPDATE_SCREENSHOTS:
        shutil.copyfile(chart, SCREENSHOTS / "compare_runs_chart.png")
