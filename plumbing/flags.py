"""Flag types: argparse ``type=`` functions that turn a bad value into one
sentence and exit code 2 before any run starts."""

import argparse
import os
import re
from pathlib import Path


def argument_parser(doc):
    """A parser described by the lesson's first docstring line; its --help shows defaults."""
    return argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def _number(convert, text):
    try:
        return convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _checked(convert, accept, requirement):
    """A flag type: ``convert`` the text, then refuse it unless ``accept(value)``."""

    def flag_type(text):
        value = _number(convert, text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return flag_type


INF = float("inf")
# scikit-learn keeps counts and depths in C integers: 2**31 - 1 at most.
positive_int = _checked(int, lambda v: 1 <= v < 2**31, "a whole number of at least 1, below 2**31")
# scikit-learn and NumPy take seeds from 0 to 2**32 - 1.
seed = _checked(int, lambda v: 0 <= v < 2**32, "a whole number from 0 to 4294967295")
# Above 1, a network's steps are so long that its weights can overflow to infinity.
learning_rate = _checked(float, lambda v: 0 < v <= 1, "a number above 0, at most 1")
non_negative_number = _checked(float, lambda v: 0 <= v < INF, "a number of at least 0")
closed_fraction = _checked(float, lambda v: 0 <= v <= 1, "between 0 and 1 (inclusive)")
# A share of rows to hold out: both parts must keep enough rows to learn and to score.
holdout_fraction = _checked(float, lambda v: 0.05 <= v <= 0.95, "between 0.05 and 0.95")
port_number = _checked(int, lambda v: 1 <= v <= 65535, "a port number from 1 to 65535")


def grid(text):
    """``"50:3,100:5"`` -> ``[(50, 3), (100, 5)]``: pairs of whole numbers of at least 1."""
    pairs = []
    for pair in text.split(","):
        first, colon, second = pair.strip().partition(":")
        numbers = colon and first.isdigit() and second.isdigit()
        if not (numbers and all(0 < int(number) < 2**31 for number in (first, second))):
            raise argparse.ArgumentTypeError(f"expected pairs like 50:3,100:5, got {pair!r}")
        if (int(first), int(second)) in pairs:
            raise argparse.ArgumentTypeError(f"lists {pair.strip()!r} twice")
        pairs.append((int(first), int(second)))
    return pairs


SPARK_MAX_DEPTH = 30


def spark_grid(text):
    """A ``grid`` for Spark, whose trees are at most 30 deep."""
    pairs = grid(text)
    if too_deep := [f"{n}:{d}" for n, d in pairs if d > SPARK_MAX_DEPTH]:
        raise argparse.ArgumentTypeError(f"Spark's trees are at most 30 deep, got {too_deep[0]}")
    return pairs


def new_file(text):
    """A file to write: not a folder, in a folder that exists and may be written."""
    path = Path(text).resolve()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a folder")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: its folder does not exist")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: you may not write there")
    return text


def new_png(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"the chart is a PNG file: end {text} in .png")
    return new_file(text)


URI_FORMS = (
    "models:/<model_id>, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>"
)


MODEL_URI = re.compile(r"models:/[^/@]+(/[^/@]+|@[^/@]+)?|runs:/[^/@]+/[^@]+")


def model_uri(text):
    if not MODEL_URI.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected {URI_FORMS}, got {text!r}")
    return text


SPARK_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]*)\])?|yarn|(spark|k8s)://\S+")


def spark_master(text):
    """A --master flag: local[*] (a thread per core), local[N], spark://host:port, yarn, k8s://..."""
    if not SPARK_MASTER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected local[*], local[N], spark://host:port, yarn or k8s://..., got {text!r}"
        )
    return text
