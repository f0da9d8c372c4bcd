"""train_iris_sweep.py: the sweep's runs, the registered versions and the champion alias."""

import signal
import time

import mlflow
import pytest
from conftest import REPO_ROOT, all_runs, new_store, start_script, using_store, wait_for_row_count

import train_iris_sweep

MODEL = "iris_classifier"
# Held-out accuracies with the fixed split and seed 42: 2:2 and 3:1 tie at 0.933,
# 5:4 scores 0.911, a single stump (1:1) 0.556. The tie exercises the champion rule.
SMALL_GRID = "2:2,3:1,5:4,1:1"
SMALL_GRID_RUN_NAMES = ["rf_n2_d2", "rf_n3_d1", "rf_n5_d4", "rf_n1_d1"]


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory, empty_store_template):
    """One sweep shared by the tests that only read it: a sweep takes seconds."""
    folder, uri = new_store(tmp_path_factory, empty_store_template, "iris_sweep")
    with using_store(uri, folder):
        result = train_iris_sweep.main(["--grid", SMALL_GRID])
    return {"uri": uri, "folder": folder, **result}


@pytest.fixture
def sweep(sweep_store):
    """Point this test, and the scripts it calls, at the shared sweep's store."""
    with using_store(sweep_store["uri"], sweep_store["folder"]):
        yield sweep_store


@pytest.fixture
def sweep_client(sweep):
    return mlflow.MlflowClient(sweep["uri"])


def child_runs(client, result):
    parent_id = result["parent_run_id"]
    return [run for run in all_runs(client) if run.data.tags.get("mlflow.parentRunId") == parent_id]


def test_each_configuration_is_a_child_run_of_the_sweep(sweep, sweep_client):
    parent = sweep_client.get_run(sweep["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("sweep_")
    assert "mlflow.parentRunId" not in parent.data.tags
    assert sweep_client.get_experiment(parent.info.experiment_id).name == "iris_classification"
    assert parent.data.params["grid"] == SMALL_GRID
    assert parent.data.params["test_size"] == "0.3"
    assert parent.data.params["split_seed"] == "42"

    children = child_runs(sweep_client, sweep)
    assert sorted(run.info.run_name for run in children) == [
        "rf_n1_d1",
        "rf_n2_d2",
        "rf_n3_d1",
        "rf_n5_d4",
    ]
    assert len(all_runs(sweep_client)) == 5  # the parent and its four children, nothing else
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.info.experiment_id == parent.info.experiment_id
        n_estimators, max_depth = run.info.run_name[4:].split("_d")
        assert run.data.params == {
            "n_estimators": n_estimators,
            "max_depth": max_depth,
            "seed": "42",
        }
        assert set(run.data.metrics) == {"accuracy", "f1_score", "precision", "recall"}
        for value in run.data.metrics.values():
            assert 0.3 <= value <= 1.0
        assert run.data.tags["model_type"] == "RandomForestClassifier"
        assert run.data.tags["dataset"] == "sklearn iris"
        names = {item.dataset.name: item.dataset for item in run.inputs.dataset_inputs}
        assert set(names) == {"iris_training", "iris_evaluation"}
        assert all("archive.ics.uci.edu" in dataset.source for dataset in names.values())
        held_out = mlflow.load_table("held_out_rows.json", run_ids=[run.info.run_id])
        assert len(held_out) == 45 and set(held_out["species"]) == {
            "setosa",
            "versicolor",
            "virginica",
        }
    best = max(run.data.metrics["accuracy"] for run in children)
    assert parent.data.metrics["best_accuracy"] == best
    # Forests of a few shallow trees still sort iris well; one stump cannot.
    assert best >= 0.9


def test_every_run_registers_a_version_with_tags(sweep, sweep_client):
    versions = sweep_client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    runs_by_id = {run.info.run_id: run for run in child_runs(sweep_client, sweep)}
    for version in versions:
        run = runs_by_id[version.run_id]  # each version points back at its run
        assert version.tags == {
            "accuracy": f"{run.data.metrics['accuracy']:.4f}",
            "n_estimators": run.data.params["n_estimators"],
            "max_depth": run.data.params["max_depth"],
            "run_name": run.info.run_name,
        }
        assert version.current_stage == "None"  # aliases, not the deprecated stages
    registered = sweep_client.get_registered_model(MODEL)
    assert "champion" in registered.description


def test_champion_is_the_best_version_by_the_stated_rule(sweep, sweep_client):
    versions = sweep_client.search_model_versions(f"name = '{MODEL}'")
    champion = sweep_client.get_model_version_by_alias(MODEL, "champion")
    # The rule: highest accuracy; on a tie, the older version.
    expected = min(versions, key=lambda v: (-float(v.tags["accuracy"]), int(v.version)))
    assert str(champion.version) == str(expected.version) == sweep["champion"][1]
    # 2:2 (version 1) and 3:1 (version 2) tie on accuracy: the older one wins.
    assert champion.tags["run_name"] == "rf_n2_d2"
    assert [r["tags"]["run_name"] for r in sweep["runs"]] == SMALL_GRID_RUN_NAMES
    assert sweep["champion"][0] is None


def test_champion_loads_and_predicts_species(sweep):
    info = mlflow.models.get_model_info("models:/iris_classifier@champion")
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.signature.inputs.input_names() == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    from sklearn.datasets import load_iris

    features = load_iris(as_frame=True).data.iloc[[0, 60, 120]]
    predictions = mlflow.pyfunc.load_model("models:/iris_classifier@champion").predict(features)
    assert list(predictions) == ["setosa", "versicolor", "virginica"]


def test_compare_runs_ranks_the_sweep_by_the_champion_rule(sweep, capsys):
    """compare_runs.py's best run is the champion's run: ties go to the older run there too."""
    import compare_runs

    result = compare_runs.main(["--experiment", "iris_classification"])
    out = capsys.readouterr().out
    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion")
    assert result["best_run"].info.run_id == champion.run_id
    assert [run.info.run_name for run in result["ranked"]] == [
        "rf_n2_d2",
        "rf_n3_d1",
        "rf_n5_d4",
        "rf_n1_d1",
    ]
    assert "Not ranked, no metric 'accuracy': sweep_" in out


def test_alias_moves_for_a_better_sweep_and_stays_otherwise(tracking_store, client):
    first = train_iris_sweep.main(["--grid", "1:1"])
    assert first["champion"] == (None, "1")

    better = train_iris_sweep.main(["--grid", "2:2"])
    assert better["champion"] == ("1", "2")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"

    # A worse forest and an equally accurate one: neither takes the alias.
    worse = train_iris_sweep.main(["--grid", "1:1,3:2"])
    assert [r["version"] for r in worse["runs"]] == ["3", "4"]
    assert worse["runs"][1]["metrics"]["accuracy"] == better["runs"][0]["metrics"]["accuracy"]
    assert worse["champion"] == ("2", "2")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == {
        "champion": "2"
    }


def test_prints_each_run_the_best_and_champion_uri(tracking_store, capsys):
    result = train_iris_sweep.main(["--grid", "3:1,2:2"])
    out = capsys.readouterr().out
    assert "  rf_n3_d1       accuracy 0.933  -> version 1\n" in out
    assert "  rf_n2_d2       accuracy 0.933  -> version 2\n" in out
    assert "\nBest of this sweep: rf_n3_d1, version 1\n" in out  # the first of a tie
    assert "The champion is now version 1." in out
    assert "Champion URI: models:/iris_classifier@champion" in out
    assert f"/runs/{result['parent_run_id']}" in out


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("abc", "pairs like 50:3,100:5"),
        ("50", "pairs like 50:3,100:5"),
        ("50:3,", "pairs like 50:3,100:5"),
        ("50:3.5", "pairs like 50:3,100:5"),
        ("50:-1", "pairs like 50:3,100:5"),
        ("0:3", "pairs like 50:3,100:5"),
        ("50:0", "pairs like 50:3,100:5"),
        ("50:3,50:3", "twice"),
        ("10:99999999999999999999", "pairs like 50:3,100:5"),
    ],
)
def test_bad_grid_exits_2_before_any_run(tracking_store, client, capsys, grid, message):
    with pytest.raises(SystemExit) as exit_info:
        train_iris_sweep.main(["--grid", grid])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--grid" in err and message in err
    assert "Traceback" not in err
    assert all_runs(client) == []
    assert client.search_registered_models() == []


@pytest.mark.parametrize(
    ("signum", "said", "versions"),
    [(signal.SIGINT, "Ctrl+C", 3), (signal.SIGTERM, "SIGTERM", 2)],
    ids=["ctrl-c-after-version-3", "sigterm-after-version-2"],
)
def test_an_interrupt_leaves_nothing_running(
    tracking_store, client, tmp_path, signum, said, versions
):
    """No run RUNNING, no model PENDING, no version without its tags, no wait, no traceback."""
    script = str(REPO_ROOT / "train_iris_sweep.py")
    process = start_script(script, "--grid", "2:2,3:2,4:2,5:2,6:2,7:2,8:2", cwd=tmp_path)
    wait_for_row_count(tmp_path / "mlflow.db", "model_versions", versions, process)
    process.send_signal(signum)
    stopped = time.monotonic()
    out, err = process.communicate(timeout=60)
    # A store call under way gets up to 7 s; nothing waits on a locked store (was 20 s).
    assert time.monotonic() - stopped < 15
    assert process.returncode == -signum, err  # a shell shows exit status 128 + signal
    assert "Traceback" not in err
    runs = all_runs(client)
    assert {run.info.status for run in runs} == {"FINISHED", "FAILED"}
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FAILED"
    assert err.strip().splitlines()[-1].startswith(f"Stopped by {said}: run")
    assert parent.info.run_id in err.strip().splitlines()[-1]
    models = client.search_logged_models([parent.info.experiment_id])
    assert "PENDING" not in {model.status.name for model in models}
    registered = client.search_model_versions(f"name = '{MODEL}'")
    assert len(registered) >= versions
    for version in registered:
        assert set(version.tags) == {"accuracy", "n_estimators", "max_depth", "run_name"}
