"""The workshop's plumbing: what every lesson needs that is not the lesson.

Not a lesson itself; the lessons ``import plumbing`` so that they can stay
about MLflow, and use the names below. Each part is a short module:

- ``flags``: argparse ``type=`` functions, one sentence and exit code 2 for a bad value.
- ``store``: where the runs go (``MLFLOW_TRACKING_URI``, else ``mlflow.db`` and
  ``mlruns/`` at the repository root), with ``servers`` (does the server answer,
  in time?) and ``sqlite_store`` (a local store opened under a lock).
- ``stopping``: Ctrl+C, SIGTERM and a full disk end in one line, no run left RUNNING.
- ``wine``: the red-wine data in ``data/``, read and checked.
- ``spark``: for the Spark lessons, pyspark and Java checked, a session on 127.0.0.1.
- ``next_steps``: the lines that say where to see a run, what exists, the chart, the CSV.
"""

from plumbing import stopping  # Ctrl+C, SIGTERM and failed writes: one line from here on
from plumbing.flags import (
    URI_FORMS,
    argument_parser,
    closed_fraction,
    grid,
    holdout_fraction,
    learning_rate,
    model_uri,
    new_file,
    new_png,
    non_negative_number,
    port_number,
    positive_int,
    seed,
    spark_grid,
    spark_master,
)
from plumbing.next_steps import (
    UI_COMMAND,
    UI_VIEW,
    check_port_free,
    differing_params,
    find_command,
    plot_params,
    print_summary,
    what_exists,
    where_to_look,
    write_csv,
)
from plumbing.spark import spark_session
from plumbing.store import REPO_ROOT, REQUIREMENTS, connect, unreachable_message, use_experiment
from plumbing.wine import WINE_CSV, WINE_FEATURES, WINE_TARGET, load_wine_data
