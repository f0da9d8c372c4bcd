"""BENCHMARKS.md's tables from run.py's measurements: only the text between
``<!-- tables:NAME -->`` and ``<!-- /tables:NAME -->`` changes, NAME a function in
SECTIONS. Seconds, latencies in ms; a *timing* is one result of hyperfine's JSON:

    scripts       [{lesson, packages, modules, cold, warm, floor, full_floor, baseline}], five
                  timings (cold None if --quick or in an earlier lesson's store, baseline
                  None if it has none)
    step_metrics  {store: {method: {points, median}}, server_startup}
    compare_runs  {runs, compare, floor, full_floor, packages, modules}, three timings
    serving       [{model, startup, one_row, ping}], the last two {p50, p99, requests}

A lesson's *import floor* is ``python -c`` with the lesson's own module-level imports of
packages; ``packages`` names them. Its *full import floor* (``full_floor``) imports every
module a run of the lesson loads, ``modules`` of them, the packages' lazy imports included:
the targets are measured against it.
"""

FLOOR_RATIO = 1.1  # a lesson's warm wall time, at most this multiple of its full import floor
STEP_SECONDS = 1.0  # for all step-metric points, with log_batch
SERVING_MS = 15.0  # p50 of one-row requests to the sweep's champion
STORES = ("SQLite", "tracking server")
STEP_METHODS = {
    "log_batch": "`MlflowClient.log_batch`, 1,000 points per call",
    "log_metric": "one `mlflow.log_metric` call per value",
}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def seconds(timing):
    if timing is None:  # not measured
        return "–"
    return f"{timing['median']:.2f} s ({timing['min']:.2f}–{timing['max']:.2f})"


def ratio(timing, to):
    return timing["median"] / to["median"]


def machine(results):
    m = results["machine"]
    packages = ", ".join(f"{name} {number}" for name, number in m["packages"].items())
    kind = "a --quick run (tiny sizes: not the targets')" if m["quick"] else "a full run"
    spark = "" if m["spark"] else "; the Spark lessons not timed (no Java or no pyspark)"
    return (
        f"- {m['cpu']}, {m['cores']} cores; Python {m['python']}; {packages}\n"
        f"- {m['date']}, {kind} of {m['minutes']:.1f} minutes; load average (1, 5, 15 min)"
        f" before {m['load_before']}, after {m['load_after']}{spark}"
    )


def targets(results):
    compare = results["compare_runs"]
    timed = [(f"`{row['lesson']}`", row["warm"], row["full_floor"]) for row in results["scripts"]]
    over = f"`compare_runs.py` over {compare['runs']:,} runs"
    timed.append((over, compare["compare"], compare["full_floor"]))
    rows = []  # (target, measured, met)
    for lesson, warm, floor in timed:
        target = f"{lesson} ≤ {FLOOR_RATIO}× its full import floor (warm)"
        rows.append((target, f"{ratio(warm, floor):.2f}×", ratio(warm, floor) <= FLOOR_RATIO))
    for store in STORES:
        batch = results["step_metrics"][store]["log_batch"]
        target = f"{batch['points']:,} step points < {STEP_SECONDS:g} s, {store}"
        rows.append((target, f"{batch['median']:.2f} s", batch["median"] < STEP_SECONDS))
    p50 = results["serving"][0]["one_row"]["p50"]
    rows.append((f"Serving p50 < {SERVING_MS:g} ms for one row", f"{p50:.1f} ms", p50 < SERVING_MS))
    rows = [(target, measured, "yes" if met else "**no**") for target, measured, met in rows]
    return table(["Target", "Measured", "Met"], rows)


def scripts(results):
    rows, floors = [], []
    for row in results["scripts"]:
        timings = [seconds(row[state]) for state in ("cold", "warm", "floor", "full_floor")]
        by_floor = f"{ratio(row['warm'], row['full_floor']):.2f}×"
        by_baseline = f"{ratio(row['warm'], row['baseline']):.2f}×" if row["baseline"] else "–"
        cells = [f"`{row['warm']['command']}`", *timings, by_floor, seconds(row["baseline"])]
        rows.append((*cells, by_baseline))
        packages = ", ".join(row["packages"])
        floors.append(f"- `{row['lesson']}`: {packages}; all it loads: {row['modules']:,} modules")
    header = ["Command", "cold (new store)", "warm", "import floor", "full import floor"]
    header += ["warm / full floor", "baseline, warm", "warm / baseline"]
    first = results["scripts"][0]
    cold = len(first["cold"]["times"]) if first["cold"] else 0
    runs = f"{len(first['warm']['times'])} runs, cold {cold}"
    note = f"Median (min–max) of {runs}. The packages of each import floor:"
    return table(header, rows) + f"\n\n{note}\n\n" + "\n".join(floors)


def steps(results):
    """The slow method stops early: its time for all points (≈) comes from the rate it reached."""
    measured, rows = results["step_metrics"], []
    for method, label in STEP_METHODS.items():
        cells = [label]
        for store in STORES:
            result, all_points = measured[store][method], measured[store]["log_batch"]["points"]
            rate = result["points"] / result["median"]
            sign = "≈ " if result["points"] < all_points else ""
            cells += [f"{sign}{all_points / rate:.2f} s", f"{rate:,.0f}"]
        rows.append(cells)
    header = ["Method", "SQLite", "points/s", "tracking server", "points/s"]
    ready = f"The tracking server was ready {measured['server_startup']:.1f} s after its start."
    return table(header, rows) + f"\n\n{ready}"


def compare(results):
    measured = results["compare_runs"]
    rows = [(f"`{measured[k]['command']}`", seconds(measured[k])) for k in ("compare", "floor")]
    modules = f"importing the {measured['modules']:,} modules compare_runs.py loads"
    rows.append((modules, seconds(measured["full_floor"])))
    made = f"{measured['runs']:,} runs made by `benchmarks/fill_store.py`"
    times = f"{ratio(measured['compare'], measured['full_floor']):.2f}×"
    text = f"The store holds {made}; {times} the full floor."
    return table(["Command", "wall time"], rows) + f"\n\n{text}"


def serving(results):
    rows = []
    for served in results["serving"]:
        one_row, ping = served["one_row"], served["ping"]
        latency = [f"{one_row['p50']:.1f} ms", f"{one_row['p99']:.1f} ms", f"{ping['p50']:.1f} ms"]
        rows.append((served["model"], f"{served['startup']:.1f} s", *latency))
    header = ["Model served by `mlflow models serve`", "ready after", "p50, one row", "p99"]
    requests = results["serving"][0]["one_row"]["requests"]
    note = f"\n\n{requests} timed requests of each kind, after 20 untimed."
    return table([*header, "p50, `GET /ping`"], rows) + note


SECTIONS = [machine, targets, scripts, steps, compare, serving]  # each fills its namesake


def render(text, results):
    """``text`` with each section's tables made anew from ``results``."""
    for make in SECTIONS:
        start, end = f"<!-- tables:{make.__name__} -->", f"<!-- /tables:{make.__name__} -->"
        before, found, rest = text.partition(start)
        if not found or end not in rest:
            raise SystemExit(f"The report lacks the markers {start} ... {end}.")
        text = before + f"{start}\n{make(results)}\n{end}" + rest.partition(end)[2]
    return text
