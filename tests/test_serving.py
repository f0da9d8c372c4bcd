"""The README's serving section: MLflow's own ``mlflow models serve`` command, and the
curl line and Python snippet that ask it for predictions, run as printed."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from conftest import REPO_ROOT, BackgroundProcess, free_port, load_lesson, sqlite_uri, wait_for_http

README = (REPO_ROOT / "README.md").read_text()
SECTION = README.split("## Serve the champion over HTTP", 1)[1].split("\n## ", 1)[0]
README_PORT = "5001"
SPECIES = ["setosa", "versicolor", "virginica"]


def block_lines(language):
    """The lines of the section's fenced ``language`` blocks."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", SECTION, flags=re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


[SERVE_COMMAND] = [line for line in block_lines("bash") if line.startswith("mlflow models serve")]
[CURL_COMMAND] = [line for line in block_lines("bash") if line.startswith("curl")]
[PYTHON_SNIPPET] = re.findall(r"^```python\n(.*?)^```", SECTION, flags=re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The README's serve command, on a free port, over a store that lesson 3 filled
    with a one-forest sweep (the champion): the server's URL."""
    folder = tmp_path_factory.mktemp("serving")
    uri = sqlite_uri(folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        load_lesson("train_iris_sweep.py").main(["--grid", "3:1"])
    port = free_port()
    command = SERVE_COMMAND.replace(f"--port {README_PORT}", f"--port {port}")
    assert command != SERVE_COMMAND, "the README's serve command names its port"
    # The environment's own mlflow command, as in an activated virtual environment.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {"MLFLOW_TRACKING_URI": uri, "PATH": path}
    server = BackgroundProcess(
        ["bash", "-c", f"exec {command}"], folder / "server.log", env=env, cwd=folder
    )
    with server:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/ping", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{command}: {error}\n{server.log()}")
        yield {"url": url, "port": port, "uri": uri, "server": server}


def test_the_readme_command_serves_the_champion_with_the_flags_it_names(served):
    assert SERVE_COMMAND == (
        'mlflow models serve -m "models:/iris_classifier@champion" --env-manager local'
        " --host 127.0.0.1 --port 5001"
    )
    assert "Uvicorn running on " + served["url"] in served["server"].log()
    assert "WARNING" not in served["server"].log()
    assert requests.get(f"{served['url']}/version", timeout=10).text == mlflow.__version__


def test_the_readme_curl_line_gets_one_species_per_flower(served):
    command = CURL_COMMAND.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{served['port']}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"predictions": SPECIES}
    # The champion itself, asked directly, agrees with the server.
    rows = json.loads(shlex.split(CURL_COMMAND)[-1])["dataframe_split"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", served["uri"])
        model = mlflow.sklearn.load_model("models:/iris_classifier@champion")
    assert list(model.predict(pd.DataFrame(rows["data"], columns=rows["columns"]))) == SPECIES


def test_the_readme_python_snippet_prints_what_its_comment_says(served):
    code = PYTHON_SNIPPET.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{served['port']}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shown = PYTHON_SNIPPET.strip().splitlines()[-1].partition("  # ")[2]
    assert result.stdout.strip() == shown == str(SPECIES)


def test_what_the_readme_says_the_server_accepts(served):
    """dataframe_records and a dict of columns in ``inputs`` work; a bare list of rows,
    and MLflow 1's ``data`` body, get a 400 with the reason the README gives."""
    url = f"{served['url']}/invocations"
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    flower = [5.1, 3.5, 1.4, 0.2]
    records = {"dataframe_records": [dict(zip(columns, flower, strict=True))]}
    inputs = {"inputs": {column: [value] for column, value in zip(columns, flower, strict=True)}}
    for body in (records, inputs):
        response = requests.post(url, json=body, timeout=30)
        assert response.json() == {"predictions": ["setosa"]}, body
    bare = requests.post(url, json={"inputs": [flower]}, timeout=30)
    assert bare.status_code == 400 and "Model is missing inputs" in bare.text
    for old_body in ({"data": [flower]}, {"columns": columns, "data": [flower]}):
        old = requests.post(url, json=old_body, timeout=30)
        assert old.status_code == 400 and "changed in MLflow version 2.0" in old.text
    for sentence in ("`dataframe_records`", "`inputs`", "`Model is missing inputs`", "`400`"):
        assert sentence in SECTION
