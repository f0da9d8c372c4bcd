"""serve_model.py: a real scoring server answering the README's request, and clear errors."""

import json
import os
import shlex
import shutil
import signal
import socket
import sys
import time

import mlflow
import pandas as pd
import pytest
import requests
from conftest import REPO_ROOT, BackgroundProcess, free_port, run_script, wait_for_http

import plumbing
import serve_model
import train_iris_sweep


def readme_request_body():
    """The request body of the README's serving section, exactly as printed there:
    the ``-d`` argument of its ``curl -X POST ... dataframe_split`` command."""
    readme = (REPO_ROOT / "README.md").read_text()
    [command] = [
        line
        for line in readme.splitlines()
        if line.startswith("curl -X POST") and "dataframe_split" in line
    ]
    words = shlex.split(command)
    return words[words.index("-d") + 1]


# Three flowers from scikit-learn's iris data (rows 0, 50 and 100), one per species.
README_REQUEST_BODY = readme_request_body()
SPECIES = ["setosa", "versicolor", "virginica"]


def sklearn_predictions(body):
    """What the champion, loaded as a scikit-learn model, predicts for a request body."""
    rows = json.loads(body)["dataframe_split"]
    features = pd.DataFrame(rows["data"], columns=rows["columns"])
    model = mlflow.sklearn.load_model("models:/iris_classifier@champion")
    return list(model.predict(features))


def start_server(tmp_path, name="server"):
    """serve_model.py in the background with a PATH that lacks the virtual environment:
    the script must find mlflow and uvicorn next to its own Python."""
    port = free_port()
    server = BackgroundProcess(
        [sys.executable, "serve_model.py", "--port", str(port)],
        tmp_path / f"{name}.log",
        env={"PATH": os.defpath},
        cwd=REPO_ROOT,
    )
    return server, port


def test_serves_the_champion_over_http(tracking_store, tmp_path):
    train_iris_sweep.main(["--grid", "10:2"])
    server, port = start_server(tmp_path)
    url = f"http://127.0.0.1:{port}"
    with server:
        try:
            wait_for_http(f"{url}/ping", server.process)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{server.log()}")
        printed_curl = server.wait_for_line("curl -X POST")
        assert "Stop the server with Ctrl+C." in server.log()
        assert f"Serving at {url} (ready after " in server.log()
        assert f"  curl {url}/ping\n  curl {url}/version\n" in server.log()

        assert requests.get(f"{url}/health", timeout=10).status_code == 200
        assert requests.get(f"{url}/version", timeout=10).text == "3.17.2"

        headers = {"Content-Type": "application/json"}
        response = requests.post(
            f"{url}/invocations", data=README_REQUEST_BODY, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": SPECIES}
        assert sklearn_predictions(README_REQUEST_BODY) == SPECIES

        # The request the script prints (the model's input example) works too,
        # and the server predicts what the scikit-learn model does.
        printed_body = shlex.split(printed_curl)[-1]
        response = requests.post(
            f"{url}/invocations", data=printed_body, headers=headers, timeout=30
        )
        assert response.json() == {"predictions": sklearn_predictions(printed_body)}

        # Bodies that MLflow rejects, each with a message saying why.
        for bad_body, message in [
            ('{"data": [[5.1, 3.5, 1.4, 0.2]]}', "scoring protocol has changed"),
            ('{"dataframe_split": {"columns": ', "valid JSON"),
            ('{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', "Model is missing inputs"),
        ]:
            response = requests.post(
                f"{url}/invocations", data=bad_body, headers=headers, timeout=30
            )
            assert response.status_code == 400, bad_body
            assert message in response.json()["message"], response.text

        # Ctrl+C in the terminal reaches the whole process group.
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(timeout=30) == 0, server.log()
    log = server.log()
    assert "Server stopped." in log
    assert "Traceback" not in log, log
    assert_port_comes_free(port)  # nothing left listening: it can start again


def test_sigterm_to_the_script_alone_stops_the_server(tracking_store, tmp_path):
    """A process manager's SIGTERM reaches only the script; it stops the server too."""
    train_iris_sweep.main(["--grid", "3:2"])
    server, port = start_server(tmp_path, "sigterm")
    with server:
        server.wait_for_line("Stop the server with Ctrl+C.", timeout=120)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0, server.log()
    assert "Server stopped." in server.log()
    assert "Traceback" not in server.log(), server.log()
    assert_port_comes_free(port)


def something_listens_on(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def assert_port_comes_free(port, timeout=20):
    deadline = time.monotonic() + timeout
    while something_listens_on(port):
        assert time.monotonic() < deadline, f"something still listens on port {port}"
        time.sleep(0.25)


def test_missing_champion_says_to_run_the_sweep(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--port", str(free_port())])
    message = str(exit_info.value.code)
    assert "models:/iris_classifier@champion" in message
    assert "python train_iris_sweep.py" in message


def test_a_champion_whose_files_are_gone_is_named_so(tracking_store, tmp_path):
    train_iris_sweep.main(["--grid", "3:2"])
    shutil.rmtree(tmp_path / "mlruns")  # the artifact store of the test's store
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--port", str(free_port())])
    assert exit_info.value.code == (
        "Could not find the model models:/iris_classifier@champion: No such artifact: 'MLmodel' "
        "(its files are missing from the artifact store)."
    )


@pytest.mark.parametrize(
    ("model_uri", "reason"),
    [
        ("models:/iris_classifier@challenger", "Registered Model with name=iris_classifier not"),
        ("models:/iris_classifier/7", "not found"),
        ("models:/m-0123456789abcdef", "Logged model with ID 'm-0123456789abcdef' not found"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "not found"),
    ],
)
def test_unknown_model_is_one_sentence(tracking_store, model_uri, reason):
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--model-uri", model_uri, "--port", str(free_port())])
    message = str(exit_info.value.code)
    assert message.startswith(f"Could not find the model {model_uri}: ")
    assert reason in message
    assert "\n" not in message
    assert "train_iris_sweep.py" not in message  # that hint is for the default model only


@pytest.mark.parametrize("model_uri", ["no/such/folder", "file:///tmp/model", "models:/"])
def test_bad_uri_form_exits_2(capsys, model_uri):
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--model-uri", model_uri])
    assert exit_info.value.code == 2
    assert "expected models:/<model_id>, runs:/<run_id>/model" in capsys.readouterr().err


def test_unknown_alias_exits_1_without_traceback(tracking_store):
    result = run_script(
        "serve_model.py",
        "--model-uri",
        "models:/iris_classifier@challenger",
        "--port",
        str(free_port()),
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Could not find the model")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_sentence(tracking_store):
    with socket.socket() as other_server:
        other_server.bind(("127.0.0.1", 0))
        other_server.listen()
        port = other_server.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            serve_model.main(["--port", str(port)])
    message = str(exit_info.value.code)
    assert f"Port {port} on 127.0.0.1 is already in use" in message
    assert "--port" in message


def test_missing_mlflow_command_says_to_activate_the_venv(tracking_store, tmp_path, monkeypatch):
    monkeypatch.setattr(plumbing.next_steps, "SCRIPTS_DIR", tmp_path)  # no mlflow next to Python
    monkeypatch.setenv("PATH", str(tmp_path))  # nor on PATH
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--port", str(free_port())])
    message = str(exit_info.value.code)
    assert "activate the workshop's virtual environment" in message
    assert "pip install -r requirements.txt" in message


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_bad_port_exits_2(capsys, port):
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err
    assert "Traceback" not in err


def test_readme_body_is_the_three_species():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    body = json.loads(README_REQUEST_BODY)["dataframe_split"]
    assert body["columns"] == list(iris.data.columns)
    assert body["data"] == iris.data.iloc[[0, 50, 100]].values.tolist()
    assert list(iris.target_names[iris.target.iloc[[0, 50, 100]]]) == SPECIES


def test_a_tracking_uri_of_no_known_form_is_one_sentence(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://bar")
    with pytest.raises(SystemExit) as exit_info:
        serve_model.main(["--port", str(free_port())])
    assert exit_info.value.code.startswith("MLFLOW_TRACKING_URI=foo://bar is not a tracking store")
