"""BENCHMARKS.md's tables from run.py's measurements: only the text between
``<!-- tables:NAME -->`` and ``<!-- /tables:NAME -->`` changes, NAME a function in
SECTIONS. Seconds, latencies in ms; a *timing* is one result of hyperfine's JSON:

    scripts       [{lesson, cold, warm, baseline}], three timings (cold None if --quick)
    step_metrics  {store: {method: {points, median}}, server_startup}
    compare_runs  {runs, compare, floor}, the last two timings
    serving       [{model, startup, one_row, ping}], the last two {p50, p99, requests}
"""

RATIO = 0.6  # a lesson's warm wall time, at most this share of its baseline's
STEP_SECONDS = 1.0  # for all step-metric points, with log_batch
COMPARE_SECONDS = 2.0  # compare_runs.py, whole process
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
    if timing is None:  # not measured (--quick)
        return "–"
    return f"{timing['median']:.2f} s ({timing['min']:.2f}–{timing['max']:.2f})"


def machine(results):
    m = results["machine"]
    packages = ", ".join(f"{name} {number}" for name, number in m["packages"].items())
    kind = "a --quick run (tiny sizes: not the targets')" if m["quick"] else "a full run"
    return (
        f"- {m['cpu']}, {m['cores']} cores; Python {m['python']}; {packages}\n"
        f"- {m['date']}, {kind} of {m['minutes']:.1f} minutes; load average (1, 5, 15 min)"
        f" before {m['load_before']}, after {m['load_after']}"
    )


def targets(results):
    rows = []  # (target, measured, met)
    for row in results["scripts"]:
        ratio = row["warm"]["median"] / row["baseline"]["median"]
        target = f"`{row['lesson']}` ≤ {RATIO}× its baseline (warm)"
        rows.append((target, f"{ratio:.2f}×", ratio <= RATIO))
    for store in STORES:
        batch = results["step_metrics"][store]["log_batch"]
        target = f"{batch['points']:,} step points < {STEP_SECONDS:g} s, {store}"
        rows.append((target, f"{batch['median']:.2f} s", batch["median"] < STEP_SECONDS))
    runs, median = results["compare_runs"]["runs"], results["compare_runs"]["compare"]["median"]
    target = f"`compare_runs.py` over {runs:,} runs < {COMPARE_SECONDS:g} s"
    rows.append((target, f"{median:.2f} s", median < COMPARE_SECONDS))
    p50 = results["serving"][0]["one_row"]["p50"]
    rows.append((f"Serving p50 < {SERVING_MS:g} ms for one row", f"{p50:.1f} ms", p50 < SERVING_MS))
    rows = [(target, measured, "yes" if met else "**no**") for target, measured, met in rows]
    return table(["Target", "Measured", "Met"], rows)


def scripts(results):
    rows = []
    for row in results["scripts"]:
        timings = [seconds(row[state]) for state in ("cold", "warm", "baseline")]
        ratio = row["warm"]["median"] / row["baseline"]["median"]
        rows.append((f"`{row['warm']['command']}`", *timings, f"{ratio:.2f}×"))
    header = ["Command", "cold (new store)", "warm", "baseline, warm", "warm / baseline"]
    first = results["scripts"][0]
    cold = len(first["cold"]["times"]) if first["cold"] else 0
    runs = f"{len(first['warm']['times'])} runs, cold {cold}"
    return table(header, rows) + f"\n\nMedian (min–max) of {runs}."


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
    made = f"{measured['runs']:,} runs made by `benchmarks/fill_store.py`"
    return table(["Command", "wall time"], rows) + f"\n\nThe store holds {made}."


def serving(results):
    rows = []
    for served in results["serving"]:
        one_row, ping = served["one_row"], served["ping"]
        latency = [f"{one_row['p50']:.1f} ms", f"{one_row['p99']:.1f} ms", f"{ping['p50']:.1f} ms"]
        rows.append((served["model"], f"{served['startup']:.1f} s", *latency))
    header = ["Model served by `serve_model.py`", "ready after", "p50, one row", "p99"]
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
