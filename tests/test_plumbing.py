"""plumbing.py: the flag types and the wine data reader that every lesson relies on."""

import argparse
import http.server
import threading

import numpy as np
import pandas as pd
import pytest
from conftest import WINE_CSV, free_port

import plumbing

COLUMNS = [*plumbing.WINE_FEATURES, plumbing.WINE_TARGET]


def synthetic_wine(rows=60, seed=0):
    """Made-up wines with the real columns and plausible ranges; quality follows alcohol."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "fixed acidity": rng.uniform(4.6, 15.9, rows).round(1),
            "volatile acidity": rng.uniform(0.12, 1.58, rows).round(3),
            "citric acid": rng.uniform(0, 1, rows).round(2),
            "residual sugar": rng.uniform(0.9, 15.5, rows).round(1),
            "chlorides": rng.uniform(0.012, 0.611, rows).round(3),
            "free sulfur dioxide": rng.integers(1, 72, rows),
            "total sulfur dioxide": rng.integers(6, 289, rows),
            "density": rng.uniform(0.990, 1.004, rows).round(4),
            "pH": rng.uniform(2.74, 4.01, rows).round(2),
            "sulphates": rng.uniform(0.33, 2.0, rows).round(2),
            "alcohol": rng.uniform(8.4, 14.9, rows).round(1),
        }
    )
    quality = 5.5 + 0.6 * (table["alcohol"] - 11.5) - 1.5 * (table["volatile acidity"] - 0.85)
    table["quality"] = (quality + rng.normal(0, 0.3, rows)).round().clip(3, 8).astype(int)
    return table


def write_csv(table, path, sep):
    """Comma form like data/, or UCI's semicolon form with a quoted header."""
    if sep == ";":
        table.to_csv(path, sep=";", index=False, quoting=1, float_format="%g")
        # UCI quotes the header only; unquote the numbers again.
        lines = path.read_text().splitlines()
        body = [line.replace('"', "") for line in lines[1:]]
        path.write_text("\n".join([lines[0], *body]) + "\n")
    else:
        table.to_csv(path, index=False)
    return path


class WineServer:
    """Serves ``body`` at any path on 127.0.0.1 and counts the requests."""

    def __init__(self, body, status=200):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/winequality-red.csv"

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# %%
# The wine data


def test_the_shipped_file_is_the_real_data():
    wine = plumbing.load_wine_data()
    assert wine.shape == (1599, 12)
    assert list(wine.columns) == COLUMNS
    assert (wine.dtypes == "float64").all()
    assert wine["quality"].between(3, 8).all()
    assert (plumbing.REPO_ROOT / "data" / "README.md").read_text().count("CC BY 4.0") == 1
    assert WINE_CSV == plumbing.WINE_CSV


@pytest.mark.parametrize("sep", [",", ";"])
def test_reads_comma_and_semicolon_files(tmp_path, sep):
    table = synthetic_wine()
    wine = plumbing.load_wine_data(write_csv(table, tmp_path / "wine.csv", sep))
    assert list(wine.columns) == COLUMNS
    pd.testing.assert_frame_equal(wine, table.astype(float))


def test_extra_columns_are_ignored(tmp_path):
    table = synthetic_wine().assign(colour="red")
    wine = plumbing.load_wine_data(write_csv(table, tmp_path / "wine.csv", ","))
    assert list(wine.columns) == COLUMNS


BAD_FILES = {
    "missing columns": (
        "fixed acidity,alcohol,quality\n7.4,9.4,5\n",
        "no column 'volatile acidity'",
    ),
    "non-numeric": ("alcohol", "missing, non-numeric or infinite value on line 4"),
    "infinite": ("inf", "missing, non-numeric or infinite value on line 4"),
    "empty": ("", "as a CSV file"),
    "header only": (",".join(COLUMNS) + "\n", "a header but no rows"),
    "not text": (b"\x89PNG\r\n\x1a\n\xff\xfe", "as a CSV file"),
    "ragged rows": (
        ",".join(COLUMNS) + "\n" + "1," * 11 + "5\n" + "1," * 13 + "5\n",
        "as a CSV file",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_file_that_is_not_the_wine_data_is_one_sentence(tmp_path, case):
    content, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    if content in ("alcohol", "inf"):
        table = synthetic_wine().astype({"alcohol": object})
        table.loc[2, "alcohol"] = "twelve" if content == "alcohol" else "inf"
        write_csv(table, path, ",")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(path)
    sentence = str(exit_info.value.code)
    assert message in sentence and str(path) in sentence
    assert "\n" not in sentence


def test_a_url_that_answers_404_is_one_sentence():
    with WineServer(b"Not Found", status=404) as server, pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(server.url)
    assert str(exit_info.value.code).startswith(f"Could not read {server.url} as a CSV file (")
    assert "404" in str(exit_info.value.code)


def test_a_closed_port_is_one_sentence():
    url = f"http://127.0.0.1:{free_port()}/winequality-red.csv"
    with pytest.raises(SystemExit) as exit_info:
        plumbing.load_wine_data(url)
    assert str(exit_info.value.code).startswith(f"Could not read {url} as a CSV file (")


# %%
# Flag types


@pytest.mark.parametrize(
    ("flag_type", "text", "value"),
    [
        (plumbing.positive_int, "3", 3),
        (plumbing.seed, "0", 0),
        (plumbing.seed, "4294967295", 4294967295),
        (plumbing.positive_number, "0.01", 0.01),
        (plumbing.non_negative_number, "0", 0.0),
        (plumbing.closed_fraction, "1", 1.0),
        (plumbing.holdout_fraction, "0.3", 0.3),
        (plumbing.port_number, "5001", 5001),
        (plumbing.grid, "10:2, 50:3", [(10, 2), (50, 3)]),
        (
            plumbing.model_uri,
            "models:/iris_classifier@champion",
            "models:/iris_classifier@champion",
        ),
    ],
)
def test_flag_types_accept_good_values(flag_type, text, value):
    assert flag_type(text) == value


@pytest.mark.parametrize(
    ("flag_type", "text"),
    [
        (plumbing.positive_int, "0"),
        (plumbing.positive_int, "1.5"),
        (plumbing.seed, "4294967296"),
        (plumbing.positive_number, "nan"),
        (plumbing.non_negative_number, "-inf"),
        (plumbing.closed_fraction, "1.01"),
        (plumbing.holdout_fraction, "0.999"),
        (plumbing.port_number, "70000"),
        (plumbing.grid, "10:0"),
        (plumbing.grid, "10:2,10:2"),
        (plumbing.grid, "ten:2"),
        (plumbing.model_uri, "iris_classifier"),
    ],
)
def test_flag_types_refuse_bad_values_in_one_sentence(flag_type, text):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        flag_type(text)
    assert text.strip() in str(error.value) or "twice" in str(error.value)
