"""Stage 1 of the wine pipeline: split the red-wine data into training and test rows.

The pipeline (dvc.yaml: prepare -> train -> evaluate) predicts the quality
score (3 to 8) that tasters gave 1,599 red wines from eleven lab measurements.
MLflow changed nothing in this stage (README.md in this folder). DVC runs it
when the data, this script or the ``prepare`` params change. From this folder:

    dvc repro

It writes ``prepared/train.csv`` and ``prepared/test.csv``.
"""

# %%
# Settings, from params.yaml
# --------------------------
# DVC records the params a stage declares in dvc.yaml and reruns the stage
# when they change; the stage reads them itself. A bad value stops it here
# with one sentence, before anything is written.
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
DATA = HERE.parent / "data" / "winequality-red.csv"  # the workshop's data, a DVC dependency
OUTPUT = HERE / "prepared"


def refuse(name, requirement, value):
    raise SystemExit(f"params.yaml: {name} must be {requirement}, got {value!r}.")


def read_params():
    params = (yaml.safe_load((HERE / "params.yaml").read_text()) or {}).get("prepare") or {}
    test_size, seed = params.get("test_size"), params.get("seed")
    # Both parts must keep enough wines to learn from and to score on.
    if type(test_size) not in (int, float) or not 0.05 <= test_size <= 0.95:
        refuse("prepare.test_size", "a number from 0.05 to 0.95", test_size)
    if type(seed) is not int or not 0 <= seed < 2**32:  # the seeds NumPy takes
        refuse("prepare.seed", "a whole number from 0 to 4294967295", seed)
    return params


# %%
# The data, checked
# -----------------
# The workshop ships the data in data/ (see data/README.md for its source and
# licence); a missing or different file gets one sentence, not a traceback.
import pandas as pd

TARGET = "quality"


def read_wine():
    if not DATA.is_file():
        raise SystemExit(f"There is no file {DATA}: the pipeline reads the workshop's wine data.")
    try:
        wine = pd.read_csv(DATA).astype(float)  # a regression predicts fractional scores
    except ValueError as error:  # empty, not a CSV file, or a value that is not a number
        raise SystemExit(f"Could not read {DATA} as a CSV file: {error}.") from None
    if TARGET not in wine.columns:
        raise SystemExit(f"{DATA} is not the red-wine data: it has no column {TARGET!r}.")
    return wine


# %%
# The split
# ---------
# A fixed seed makes the split the same on every computer and in every
# experiment, so that test scores can be compared. The stage takes no flags:
# its settings are in params.yaml, where DVC sees them.
import argparse

from sklearn.model_selection import train_test_split


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    params = read_params()
    wine = read_wine()
    training, test = train_test_split(
        wine, test_size=params["test_size"], random_state=params["seed"]
    )
    OUTPUT.mkdir(exist_ok=True)
    training.to_csv(OUTPUT / "train.csv", index=False)
    test.to_csv(OUTPUT / "test.csv", index=False)
    print(f"prepare: {len(training)} training and {len(test)} test wines in prepared/")
    return training, test


# %%
# Run the stage
# -------------
# Ctrl+C raises KeyboardInterrupt, and SIGTERM (``kill``) is made to raise it
# too: one line, and the exit code a shell expects (130 or 143). DVC then
# reports the stage as failed, and runs it again next time.
import signal
import sys


def interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)
    try:
        main([] if "ipykernel" in sys.modules else None)
    except KeyboardInterrupt as stop:
        signum = stop.args[0] if stop.args else signal.SIGINT
        name = "Ctrl+C" if signum == signal.SIGINT else "SIGTERM"
        print(f"Stopped by {name}.", file=sys.stderr)
        sys.exit(128 + signum)
