"""The red-wine data, ``data/winequality-red.csv``, read and checked.

Cortez et al., Decision Support Systems, 2009 (UCI, CC BY 4.0; data/README.md).
UCI's own copy is semicolon-separated, ours comma-separated: both are read.
"""

import csv
import io
from pathlib import Path

from plumbing.servers import fetch
from plumbing.stopping import first_line
from plumbing.store import REPO_ROOT

DOWNLOAD_SECONDS = 60
MIN_ROWS = 40  # a 5 % or a 95 % hold-out still leaves 2 rows on each side

WINE_CSV = REPO_ROOT / "data" / "winequality-red.csv"
WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
WINE_TARGET = "quality"


def load_wine_data(source=WINE_CSV):
    """The red-wine table (all columns float) from a file or an http(s) URL.

    Stops with one sentence when it cannot be read or is not this data set.
    """
    import pandas as pd

    hint = "pass the red-wine CSV with --data"
    local = not str(source).startswith(("http://", "https://"))
    if local and Path(source).exists() and not Path(source).is_file():  # /dev/zero, a folder
        raise SystemExit(f"{source} is not a file; {hint}.")
    try:
        # A download must be whole within DOWNLOAD_SECONDS (pandas alone would wait for ever).
        text = source if local else io.BytesIO(fetch(source, DOWNLOAD_SECONDS))
        table = pd.read_csv(text, sep=None, engine="python", encoding="utf-8-sig")
    except FileNotFoundError:
        raise SystemExit(f"There is no file {source}; {hint}.") from None
    except (OSError, ValueError, csv.Error) as error:  # offline, not text, not a CSV, empty
        reason = first_line(error)
        raise SystemExit(f"Could not read {source} as a CSV file ({reason}); {hint}.") from None
    table.columns = table.columns.str.strip()
    missing = [name for name in [*WINE_FEATURES, WINE_TARGET] if name not in table.columns]
    if missing:
        raise SystemExit(
            f"{source} is not the red-wine quality data: it has no column {missing[0]!r}; {hint}."
        )
    wine = table[[*WINE_FEATURES, WINE_TARGET]].apply(pd.to_numeric, errors="coerce")
    bad_rows = wine.index[(wine.isna() | wine.abs().eq(float("inf"))).any(axis=1)]
    if len(bad_rows):
        line = bad_rows[0] + 2  # 1-based, after the header line
        raise SystemExit(f"{source} has a missing, non-numeric or infinite value on line {line}.")
    if len(wine) < MIN_ROWS:
        rows = f"only {len(wine)}" if len(wine) else "a header but no"
        raise SystemExit(f"{source} has {rows} rows, and the lessons need {MIN_ROWS}; {hint}.")
    # Float throughout, the target too: a regression predicts fractional scores.
    return wine.astype(float)
