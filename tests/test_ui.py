"""The MLflow UI in a real browser: the pages the README shows, and its pictures.

One store per module, filled by the lessons' own ``main``; the README's
``mlflow ui`` command serves it; headless Chromium (Debian's package, driven by
Playwright) opens the pages and checks what a participant sees, found by role
and text rather than by CSS class.

A normal run changes no files. To retake the README's pictures in docs/images/:

    UPDATE_SCREENSHOTS=1 pytest tests/test_ui.py

That fills the store in /home/you/mlflow-workshop (replaced each time), the
README's example folder, so that the paths the pictures show are the README's.
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import (
    REPO_ROOT,
    BackgroundProcess,
    copy_lesson,
    free_port,
    load_lesson,
    require,
    wait_for_http,
)

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the tests skip (fail in CI) with a reason, in require_browser
    expect = sync_playwright = None

UI_COMMAND = (
    "mlflow --env-file ui.env ui --workers 1 --backend-store-uri sqlite:///mlflow.db"
    " --host 127.0.0.1 --port 5000"
)
# Debian's package: Playwright's own browser download does not work here.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000  # a chart's first render can be slow on a busy CI machine
SCREENSHOTS = REPO_ROOT / "docs" / "images"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS", "") not in ("", "0")
README_FOLDER = Path("/home/you/mlflow-workshop")  # the folder the README's examples use
PARTICIPANT = "you"  # the user name the pictures show ("Created by", the owner tag)

# What fills the store: the README's lesson commands before its pictures, in its
# order (so the experiment ids are the README's), as each lesson's flags per run.
# The second runs of demo.py and of the curves lesson change no picture: left out.
LESSONS = {
    "demo.py": [[]],
    "train_wine_elasticnet.py": [
        [],
        ["--alpha", "0.1", "--l1-ratio", "0.2"],
        ["--alpha", "1"],
        ["--alpha", "0.1"],
        ["--alpha", "0.01"],
    ],
    # The second sweep's small forest beats the first sweep's best: the champion moves.
    "train_iris_sweep.py": [[], ["--grid", "3:1,5:2"]],
    "track_training_curves.py": [[]],
}
EXPERIMENTS = {
    "demo.py": "demo-mlflow-artifacts",
    "train_wine_elasticnet.py": "wine-quality-elasticnet",
    "train_iris_sweep.py": "iris_classification",
    "track_training_curves.py": "digits-training-curves",
}


def require_browser():
    require(CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    require(sync_playwright is not None, "no Playwright: pip install -r requirements-dev.txt")


class Workshop:
    """The participant's folder: the lessons, their store, and the UI serving it."""

    def __init__(self, folder, url, server):
        self.folder = folder
        self.url = url
        self.server = server  # the BackgroundProcess running the README's command
        self.client = mlflow.MlflowClient("sqlite:///" + (folder / "mlflow.db").as_posix())
        self.printed = {}  # what each lesson's runs printed, by lesson

    def runs(self, lesson):
        experiment = self.client.get_experiment_by_name(EXPERIMENTS[lesson])
        return self.client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time ASC"]
        )

    def fill(self, monkeypatch):
        """Each lesson's ``main`` with each of its flags, as ``python <lesson> <flags>``
        run in the folder: its store beside it, the user "you", the lesson the run's
        source."""
        monkeypatch.chdir(self.folder)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # what getpass.getuser() reads
            monkeypatch.setenv(name, PARTICIPANT)
        for lesson, runs in LESSONS.items():
            monkeypatch.setattr(sys, "argv", [lesson])  # MLflow names the run's source from it
            # An absolute path: load_lesson imports the copy, whose store is beside it.
            module = load_lesson(self.folder / lesson)
            for argv in runs:
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    module.main(argv)
                self.printed.setdefault(lesson, []).append(printed.getvalue())


@pytest.fixture(scope="module")
def workshop(tmp_path_factory, empty_store_template):
    """The README's ``mlflow ui`` on a free port, from a folder whose store the
    lessons filled. The UI starts while the lessons run: together that takes
    less time than one after the other."""
    require_browser()  # before filling a store for nothing
    assert UI_COMMAND in (REPO_ROOT / "README.md").read_text(), "the README's UI command"
    folder = tmp_path_factory.mktemp("ui") / "mlflow-workshop"
    if UPDATE_SCREENSHOTS:
        folder = README_FOLDER
        shutil.rmtree(folder, ignore_errors=True)
    for lesson in LESSONS:
        copy_lesson(lesson, folder, with_data=lesson == "train_wine_elasticnet.py")
    copy_lesson("compare_runs.py", folder)
    copy_lesson("ui.env", folder)
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    port = free_port()
    command = UI_COMMAND.replace("mlflow", f"{sys.executable} -m mlflow", 1).split()
    command[-1] = str(port)
    with BackgroundProcess(command, folder / "ui.log", cwd=folder) as server:
        workshop = Workshop(folder, f"http://127.0.0.1:{port}", server)
        with pytest.MonkeyPatch.context() as monkeypatch:
            workshop.fill(monkeypatch)
        try:
            wait_for_http(f"{workshop.url}/health", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()[-3000:]}")
        yield workshop


@pytest.fixture(scope="module")
def browser(workshop):
    """One headless Chromium for the module; each context in it is a fresh profile."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        expect.set_options(timeout=TIMEOUT_MS)
        yield browser
        browser.close()


def new_profile(browser):
    """A fresh browser profile that can reach 127.0.0.1 only: nothing leaves the machine."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/).*"), lambda route: route.abort())
    return context


@pytest.fixture(scope="module")
def participant(browser, workshop):
    """A profile set up as a participant leaves it after the first visit: the UI
    opens in its GenAI view with the MLflow Assistant open; they click "Model
    training" and close the assistant once, and the UI remembers both."""
    context = new_profile(browser)
    page = context.new_page()
    page.goto(f"{workshop.url}/#/experiments")
    page.get_by_role("button", name="Model training").click()
    assistant = page.get_by_role("textbox", name="Ask a question...")
    expect(assistant).to_be_visible()
    page.get_by_role("button", name="Close").click()
    expect(assistant).to_be_hidden()
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(participant):
    page = participant.new_page()
    # The registry greets a first visitor with a dialog about its new UI, over
    # the page; whenever it shows up, take the offer as a participant would.
    page.add_locator_handler(
        page.get_by_role("dialog", name=re.compile("new Model Registry UI")),
        lambda dialog: dialog.get_by_role("button", name="Try it now").click(),
    )
    yield page
    page.close()


def screenshot(page, name, height=None):
    """With UPDATE_SCREENSHOTS, the top ``height`` pixels (default: all) of the
    page as docs/images/<name>.png; without it, nothing: a test run changes no files."""
    if not UPDATE_SCREENSHOTS:
        return
    from PIL import Image

    viewport = page.viewport_size
    page.mouse.move(0, viewport["height"] - 1)  # no hover highlight in the picture
    clip = {"x": 0, "y": 0, "width": viewport["width"], "height": height or viewport["height"]}
    png = Image.open(io.BytesIO(page.screenshot(clip=clip, animations="disabled")))
    # A 256-colour palette keeps a UI screenshot at a fraction of its size.
    png.convert("RGB").quantize(256).save(SCREENSHOTS / f"{name}.png", optimize=True)


def expect_visible(*locators):
    for locator in locators:
        expect(locator).to_be_visible()


# %%
# The UI command
# --------------


def test_the_ui_command_starts_no_job_workers_and_prints_no_warning(workshop):
    """ui.env and --workers 1: the command and one web worker, no job consumers
    (the plain ``mlflow ui`` starts 15 processes), and no warning in its output."""
    require(shutil.which("ps"), "no ps to list the server's processes")
    session = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-s", str(workshop.server.process.pid)],
        capture_output=True,
        text=True,
        check=True,
    )
    commands = session.stdout.splitlines()
    assert len(commands) == 2, commands
    assert "uvicorn" in commands[1] and "--workers 1" in commands[1], commands
    log = workshop.server.log()
    assert "Loaded environment variables from: ui.env" in log, log
    assert "warning" not in log.lower() and "Traceback" not in log, log


def test_the_printed_link_opens_the_run_in_model_training_on_a_first_visit(browser, workshop):
    """demo.py's ``See it:`` link, in a fresh profile, opens the run in the Model
    training view: its sidebar lists the Model registry, not the GenAI view's Judges."""
    [printed] = workshop.printed["demo.py"]
    [link] = re.findall(r"^See it: +(\S+)$", printed, re.MULTILINE)
    assert link.startswith("http://127.0.0.1:5000/#/experiments/1/runs/"), link
    context = new_profile(browser)
    page = context.new_page()
    page.goto(link.replace("http://127.0.0.1:5000", workshop.url))
    expect(page.get_by_role("heading", name="random_forest_breast_cancer")).to_be_visible()
    sidebar = page.get_by_role("complementary")
    expect(sidebar.get_by_role("link", name="Model registry", exact=True)).to_be_visible()
    expect(sidebar.get_by_role("link", name="Judges", exact=True)).to_have_count(0)
    context.close()


# %%
# Lesson 1: one run
# -----------------


def test_the_experiments_page_lists_every_lesson(page, workshop):
    page.goto(f"{workshop.url}/#/experiments")
    names = [page.get_by_role("link", name=name, exact=True) for name in EXPERIMENTS.values()]
    expect_visible(*names)
    screenshot(page, "experiments", height=420)


def test_the_run_overview_shows_params_metrics_tags_and_datasets(page, workshop):
    [run] = workshop.runs("demo.py")
    assert run.data.params == {
        "n_estimators": "100",
        "max_depth": "8",
        "test_size": "0.25",
        "seed": "42",
    }
    page.goto(f"{workshop.url}/#/experiments")
    page.get_by_role("link", name="demo-mlflow-artifacts", exact=True).click()
    page.get_by_role("link", name="random_forest_breast_cancer").click()
    expect(page.get_by_role("heading", name="random_forest_breast_cancer")).to_be_visible()
    expect_visible(
        *[
            page.get_by_role("row", name=f"{param} {value}", exact=True)
            for param, value in run.data.params.items()
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
    # About this run: made by "you", from demo.py, as a participant's run is.
    assert run.data.tags["mlflow.user"] == PARTICIPANT
    assert run.data.tags["mlflow.source.name"] == "demo.py"
    expect_visible(
        page.get_by_role("link", name=PARTICIPANT, exact=True),
        page.get_by_text("demo.py", exact=True),
    )
    training = page.get_by_role("button", name=re.compile(r"^breast_cancer_training \("))
    expect(training.get_by_role("status")).to_have_text("training", ignore_case=True)
    screenshot(page, "run_overview")
    # Behind "+1", the held-out rows it was scored on.
    plus_one = page.get_by_role("status").filter(has_text=re.compile(r"^\+1$"))
    page.get_by_role("button").filter(has=plus_one).click()
    more = page.get_by_role("dialog", name="More items")
    evaluation = more.get_by_role("button", name=re.compile(r"^breast_cancer_evaluation \("))
    expect(evaluation.get_by_role("status")).to_have_text("evaluation", ignore_case=True)


def test_the_run_artifacts_show_the_plots_and_the_report(page, workshop):
    [run] = workshop.runs("demo.py")
    page.goto(f"{workshop.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
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


def test_the_logged_model_shows_its_files(page, workshop):
    [run] = workshop.runs("demo.py")
    [model] = workshop.client.search_logged_models([run.info.experiment_id])
    page.goto(f"{workshop.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    logged_models = page.get_by_role("grid").filter(has_text="Model name")
    logged_models.get_by_role("link", name="model", exact=True).click()
    expect(page).to_have_url(re.compile(f"/models/{model.model_id}$"))
    expect(page.get_by_role("heading", name="model", exact=True)).to_be_visible()
    # The model is a folder: the serialized forest and MLflow's description of it.
    page.get_by_role("main").get_by_role("link", name="Artifacts", exact=True).click()
    files = page.get_by_role("main").get_by_role("list")
    for name in ("MLmodel", "model.skops", "requirements.txt", "input_example.json"):
        expect(files.get_by_text(name, exact=True)).to_be_visible()
    files.get_by_text("MLmodel", exact=True).click()
    expect(page.get_by_text("serialization_format: skops")).to_be_visible()
    screenshot(page, "logged_model")


# %%
# Lesson 2: comparing the wine runs
# ---------------------------------


def test_the_wine_runs_compare_rmse_against_alpha(page, workshop):
    runs = workshop.runs("train_wine_elasticnet.py")
    settings = [(run.data.params["alpha"], run.data.params["l1_ratio"]) for run in runs]
    assert settings == [
        ("0.5", "0.5"),
        ("0.1", "0.2"),
        ("1.0", "0.5"),
        ("0.1", "0.5"),
        ("0.01", "0.5"),
    ]
    page.goto(f"{workshop.url}/#/experiments")
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
    names = " ".join(run.info.run_name for run in reversed(runs))
    alphas = " ".join(run.data.params["alpha"] for run in reversed(runs))
    l1_ratios = " ".join(run.data.params["l1_ratio"] for run in reversed(runs))
    expect_visible(
        page.get_by_role("row", name=f"Run Name: {names}", exact=True),
        page.get_by_role("row", name=f"alpha {alphas}", exact=True),
        page.get_by_role("row", name=f"l1_ratio {l1_ratios}", exact=True),
        page.get_by_role("link", name="rmse", exact=True),
    )
    screenshot(page, "compare_runs")


def test_compare_runs_draws_rmse_against_each_param(workshop, monkeypatch, tmp_path):
    """The same comparison from code: compare_runs.py --plot, one panel per param
    that differs (alpha and l1_ratio), the best run in orange."""
    monkeypatch.chdir(workshop.folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    chart = tmp_path / "wine_runs.png"
    compared = load_lesson(workshop.folder / "compare_runs.py").main(["--plot", str(chart)])
    best = compared["best_run"].data.params
    assert (best["alpha"], best["l1_ratio"]) == ("0.01", "0.5")
    from PIL import Image

    with Image.open(chart) as png:
        assert (png.format, png.size) == ("PNG", (900, 400))
    if UPDATE_SCREENSHOTS:
        shutil.copyfile(chart, SCREENSHOTS / "compare_runs_chart.png")


# %%
# Lesson 3: the sweep and the registry
# ------------------------------------


def test_the_registered_model_shows_its_versions_and_the_champion(page, workshop):
    versions = workshop.client.search_model_versions("name = 'iris_classifier'")
    champion = workshop.client.get_model_version_by_alias("iris_classifier", "champion")
    assert len(versions) == 6 and champion.tags["run_name"] == "rf_n3_d1", champion
    # Tall enough for the six versions, whichever fonts wrap the tags (the pencil can
    # take a line of its own).
    page.set_viewport_size({**VIEWPORT, "height": 1300})
    page.goto(f"{workshop.url}/#/experiments")
    page.get_by_role("link", name="Model registry").click()
    page.get_by_role("link", name="iris_classifier", exact=True).click()
    expect(page.get_by_role("heading", name="iris_classifier")).to_be_visible()
    rows = {
        int(version.version): page.get_by_role("row").filter(
            has=page.get_by_role("link", name=f"Version {version.version}", exact=True)
        )
        for version in versions
    }
    for version in versions:  # each with the tags the sweep gave it
        expect(rows[int(version.version)]).to_contain_text(version.tags["run_name"])
    expect(rows[int(champion.version)].get_by_role("status", name="champion")).to_be_visible()
    expect(page.get_by_role("status", name="champion")).to_have_count(1)
    expect(rows[1]).to_be_in_viewport(ratio=1)  # the picture shows every version
    screenshot(page, "registered_model")


# %%
# Lesson 4: step metrics
# ----------------------


def test_the_training_curves_are_drawn_over_the_epochs(page, workshop):
    [run] = workshop.runs("track_training_curves.py")
    page.goto(f"{workshop.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    expect(page.get_by_role("heading", name="mlp_digits_curves")).to_be_visible()
    page.get_by_role("tab", name="Model metrics").click()
    # The search box takes a regular expression: just the two loss curves.
    page.get_by_placeholder("Search metric charts").fill("^(train|val)_loss$")
    expect_visible(
        page.get_by_role("heading", name="train_loss", exact=True),
        page.get_by_role("heading", name="val_loss", exact=True),
    )
    # A line over steps (epochs), not a single bar: each chart's x axis is "Step".
    expect(page.get_by_role("img").filter(has_text=re.compile(r"^Step$"))).to_have_count(2)
    screenshot(page, "training_curves", height=630)
