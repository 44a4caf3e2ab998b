"""Drift detection: a reference and a current window of 1M rows x 10 numeric features, our
summaries (``reference_summary`` + ``summarise`` + ``compare``, numpy) against Evidently
0.7.23's ``Report([DataDriftPreset()])`` on pandas DataFrames, as its users run it.

Evidently, pandas and scipy are never requirements of the runtime or of the project's venv:
they live in a venv of their own, ``build/bench`` (``make bench-peers``). Each side runs in
a fresh subprocess of ``python -m bench.drift``: ours under the interpreter running the
bench (the project's venv), Evidently under ``build/bench/bin/python``; both are the same
CPython and numpy, and both get the same arrays from one ``.npz`` file (Evidently as
DataFrames built before the clock starts).

Rows
    - speed: seconds from the data in memory to per-feature verdicts, best of ``runs``;
      ratio = Evidently's / ours.
    - memory: the working memory each side needs beyond its inputs. After a warm-up run on
      a slice (imports, lazily built validators) and with the inputs loaded, the worker
      resets its peak RSS (``/proc/self/clear_refs``, 5), runs, and reports VmHWM (the peak
      since the reset) minus the VmRSS it had before; ru_maxrss could not be reset and
      would count the loading of the inputs. ratio = ours / Evidently's.
    - verdicts: a suite of shifts (no shift, small and large mean shifts, variance changes,
      a skewed feature, a 0/1 flag; categorical: none, mild and strong reweighting, a new
      category) as columns of one reference and one current dataset: our per-feature alarm
      against Evidently's per-column drift test (include_tests=True), and the two dataset
      verdicts.
      ratio = agreeing / total.
    - KS: on the suite's numeric columns, |our KS - scipy.stats.ks_2samp| / our stated
      errorBound, at most 1 by the bound's proof (``modelops.domain.drift_stats``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / "build" / "bench" / "bin" / "python"
PEER_VERSION = "0.7.23"
MAKE_TARGET = "bench-peers"
SUITE_ROWS = 200_000
WARM_UP_ROWS = 2_000
# Suite columns: numeric ones drawn from a family with (reference, current) parameters...
NUMERIC_SHIFTS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "num_no_shift": ("normal", (0, 1), (0, 1)),
    "num_mean_plus_0_03_sd": ("normal", (0, 1), (0.03, 1)),
    "num_mean_plus_0_5_sd": ("normal", (0, 1), (0.5, 1)),
    "num_mean_minus_0_2_sd": ("normal", (0, 1), (-0.2, 1)),
    "num_variance_x2": ("normal", (0, 1), (0, 2**0.5)),
    "num_variance_x1_1": ("normal", (0, 1), (0, 1.1**0.5)),
    "num_lognormal_no_shift": ("lognormal", (0, 1), (0, 1)),
    "num_lognormal_mu_plus_0_3": ("lognormal", (0, 1), (0.3, 1)),
    "num_flag_half_to_0_55": ("flag", (0.5, 0), (0.55, 0)),
    "num_flag_half_to_0_8": ("flag", (0.5, 0), (0.8, 0)),
}
# ...and category weights (reference, current) for categorical ones.
CATEGORIES = np.array(["a", "b", "c", "d", "e"])
CATEGORY_SHIFTS: dict[str, tuple[list[float], list[float]]] = {
    "cat_no_shift": ([4, 3, 2, 1, 0], [4, 3, 2, 1, 0]),
    "cat_mild_reweighting": ([4, 3, 2, 1, 0], [4, 3, 2.2, 1.1, 0]),
    "cat_strong_reweighting": ([4, 3, 2, 1, 0], [1, 2, 3, 4, 0]),
    "cat_new_category": ([4, 3, 2, 1, 0], [4, 3, 2, 1, 2.5]),
}

Arrays = dict[str, npt.NDArray[Any]]


# --- the parent: data, workers, rows --------------------------------------------------------


def _write_data(directory: Path, rows: int, features: int) -> tuple[Arrays, Arrays]:
    """timed.npz: reference N(0, 1) and current feature i shifted by 0.04·i standard
    deviations, as (features, rows) arrays; suite.npz: the verdict suite's columns, also
    returned (reference, current) for our side."""
    rng = np.random.default_rng(11)
    np.savez(
        directory / "timed.npz",
        reference=rng.standard_normal((features, rows)),
        current=rng.standard_normal((features, rows)) + 0.04 * np.arange(features)[:, None],
    )
    suite_rows = min(rows, SUITE_ROWS)
    reference: Arrays = {}
    current: Arrays = {}
    draw: dict[str, Callable[[float, float, int], npt.NDArray[np.float64]]] = {
        "normal": rng.normal,
        "lognormal": rng.lognormal,
        "flag": lambda p, _, n: (rng.random(n) < p).astype(np.float64),  # 0/1 with P(1) = p
    }
    for name, (family, before, after) in NUMERIC_SHIFTS.items():
        reference[name] = draw[family](*before, suite_rows)
        current[name] = draw[family](*after, suite_rows)
    for name, weights in CATEGORY_SHIFTS.items():
        reference[name], current[name] = (
            rng.choice(CATEGORIES, size=suite_rows, p=np.asarray(w) / sum(w)) for w in weights
        )
    columns: dict[str, Any] = {
        **{f"reference.{k}": v for k, v in reference.items()},
        **{f"current.{k}": v for k, v in current.items()},
    }
    np.savez(directory / "suite.npz", **columns)
    return reference, current


def _worker(python: Path, mode: str, directory: Path, runs: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "modelops"), str(ROOT)]),
    }
    subprocess.run(
        [str(python), "-m", "bench.drift", mode, str(directory), str(runs)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads((directory / f"{mode}.json").read_text())
    return result


def _require_peer() -> None:
    probe = (
        "from importlib.metadata import version; "
        "print(version('evidently')); version('pandas'); version('scipy')"
    )
    found = (
        subprocess.run([str(PEER_PYTHON), "-c", probe], check=False, capture_output=True, text=True)
        if PEER_PYTHON.exists()
        else None
    )
    if found is None or found.returncode != 0 or found.stdout.strip() != PEER_VERSION:
        raise RuntimeError(
            f"the drift bench needs Evidently {PEER_VERSION}, pandas and scipy in "
            f"{PEER_PYTHON.parent.parent}: run `make {MAKE_TARGET}` first"
        )


def run(rows: int = 1_000_000, features: int = 10, runs: int = 1) -> list[dict[str, object]]:
    from modelops.domain.drift_stats import (
        compare,
        default_constraints,
        reference_summary,
        summarise,
    )

    _require_peer()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-drift-") as tmp:
        directory = Path(tmp)
        reference, current = _write_data(directory, rows, features)
        ours = _worker(Path(sys.executable), "ours", directory, runs)
        peer = _worker(PEER_PYTHON, "evidently", directory, runs)

    baseline = reference_summary(reference, categorical=list(CATEGORY_SHIFTS))
    report = compare(baseline, summarise(current, baseline), default_constraints(baseline))
    verdicts = {f.feature: f.status == "alarm" for f in report.features}
    verdicts["dataset"] = report.datasetDrift
    disagreeing = sorted(k for k, drifted in verdicts.items() if drifted != peer["drift"][k])
    ks_errors = {
        f.feature: (abs(f.ks.statistic - peer["ks"][f.feature]), f.ks.errorBound)
        for f in report.features
        if f.ks is not None and f.ks.errorBound is not None
    }
    size = f"{rows // 1000}k + {rows // 1000}k rows x {features} numeric features"
    suite = f"{min(rows, SUITE_ROWS) // 1000}k rows"
    evidently = f"Evidently {PEER_VERSION} DataDriftPreset, pandas"
    return [
        {
            "benchmark": f"drift: {size}, seconds",
            "peer": evidently,
            "ours_s": round(ours["seconds"], 3),
            "peer_s": round(peer["seconds"], 2),
            "ratio": round(peer["seconds"] / ours["seconds"], 1),
            "target": ">= 20",
        },
        {
            "benchmark": f"drift: {size}, peak memory beyond the inputs",
            "peer": evidently,
            "ours_MiB": round(ours["peak_kib"] / 1024, 1),
            "peer_MiB": round(peer["peak_kib"] / 1024, 1),
            "inputs_MiB": round(2 * rows * features * 8 / 1024**2, 1),
            "ratio": round(ours["peak_kib"] / peer["peak_kib"], 3),
            "target": "<= 0.2",
        },
        {
            "benchmark": f"drift: verdicts, {len(verdicts) - 1} features + dataset, {suite}",
            "peer": evidently,
            "agreeing": len(verdicts) - len(disagreeing),
            "total": len(verdicts),
            "disagreeing": disagreeing,
            "ratio": round((len(verdicts) - len(disagreeing)) / len(verdicts), 3),
            "target": ">= 1",
        },
        {
            "benchmark": f"drift: KS from summaries, {len(ks_errors)} shifts, {suite}",
            "peer": "scipy.stats.ks_2samp on the rows",
            "max_abs_error": round(max(error for error, _ in ks_errors.values()), 6),
            "max_error_bound": round(max(bound for _, bound in ks_errors.values()), 6),
            "ratio": round(max(error / bound for error, bound in ks_errors.values()), 3),
            "target": "<= 1",
        },
    ]


# --- the workers (each in a subprocess of its own) ------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(runs: int, once: Callable[[], object]) -> dict[str, float]:
    """Best-of-``runs`` seconds and the peak RSS above the RSS before them (module
    docstring). RSS grows by 4 KiB pages: a run that needed no new page counts one."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "peak_kib": max(_status_kib("VmHWM") - before, 4)}


def _ours(directory: Path, runs: int) -> dict[str, Any]:
    from modelops.domain.drift_stats import (
        compare,
        default_constraints,
        reference_summary,
        summarise,
    )

    data = _load(directory / "timed.npz")

    def once(rows: slice) -> object:
        reference = {f"f{i}": column[rows] for i, column in enumerate(data["reference"])}
        current = {f"f{i}": column[rows] for i, column in enumerate(data["current"])}
        baseline = reference_summary(reference)
        report = compare(baseline, summarise(current, baseline), default_constraints(baseline))
        return {f.feature: f.status == "alarm" for f in report.features}

    once(slice(WARM_UP_ROWS))
    return _measure(runs, lambda: once(slice(None)))


def _evidently(directory: Path, runs: int) -> dict[str, Any]:
    """Timed and measured on timed.npz; then, unmeasured, the suite on suite.npz."""
    return {**_evidently_timed(directory, runs), **_evidently_suite(directory)}


def _evidently_timed(directory: Path, runs: int) -> dict[str, Any]:
    timed = _load(directory / "timed.npz")
    reference, current = (
        _frame({f"f{i}": column for i, column in enumerate(timed[side])})
        for side in ("reference", "current")
    )
    _evidently_report(reference.head(WARM_UP_ROWS), current.head(WARM_UP_ROWS), []).dict()
    return _measure(runs, lambda: _evidently_report(reference, current, []).dict())


def _evidently_suite(directory: Path) -> dict[str, Any]:
    """Evidently's drift test per column and for the dataset, and scipy's KS statistics on
    the numeric columns."""
    from scipy import stats  # type: ignore[import-untyped]

    suite = _load(directory / "suite.npz")
    reference, current = (
        _frame({k.split(".", 1)[1]: v for k, v in suite.items() if k.startswith(f"{side}.")})
        for side in ("reference", "current")
    )
    report = _evidently_report(reference, current, list(CATEGORY_SHIFTS), include_tests=True)
    drift = {}
    for test in report.dict()["tests"]:  # ValueDrift per column, DriftedColumnsCount overall
        params = test["metric_config"]["params"]
        column = params["column"] if params["type"].endswith(":ValueDrift") else "dataset"
        drift[column] = test["status"].value == "FAIL"
    ks = {
        name: float(stats.ks_2samp(reference[name], current[name]).statistic)
        for name in NUMERIC_SHIFTS
    }
    return {"drift": drift, "ks": ks}


def _evidently_report(
    reference: Any, current: Any, categorical: list[str], include_tests: bool = False
) -> Any:
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-not-found]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    numeric = [c for c in reference.columns if c not in categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    return Report([DataDriftPreset()], include_tests=include_tests).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def _frame(columns: Arrays) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    return pd.DataFrame(columns)


def _load(path: Path) -> Arrays:
    with np.load(path) as loaded:
        return {key: loaded[key] for key in loaded.files}


if __name__ == "__main__":
    if len(sys.argv) == 4:
        mode, directory, runs = sys.argv[1:]
        worker = {"ours": _ours, "evidently": _evidently}[mode]
        (Path(directory) / f"{mode}.json").write_text(
            json.dumps(worker(Path(directory), int(runs)))
        )
    else:
        for row in run():
            print(row)
