"""`globe eval calibrate`: fit a consensus run's confidence on a labelled dev split.

Apart from `globe.evaluate.calibration` (the measures `finalize` writes into every consensus
run's metrics) because fitting reads a whole run directory (`globe.evaluate.runner`'s files),
while the harness imports the measures: one direction each, no import circle.
"""

from __future__ import annotations

import json
from pathlib import Path


def fit_run(run_dir: Path):
    """A `globe.consensus.Calibration` fitted on a consensus run's rows: agreement -> within 25 km.

    Fit it on a labelled dev split that is not reported, then set `eval.calibration` /
    `serve.calibration` to the file; fitting on the test set would make its ECE meaningless.
    """
    from globe.consensus import Calibration, CalibrationError
    from globe.evaluate.calibration import hits
    from globe.evaluate.runner import PREDICTIONS, RUN_INFO, PredictionLog

    run_dir = Path(run_dir)
    info_path, pred = run_dir / RUN_INFO, run_dir / PREDICTIONS
    if not info_path.is_file() or not pred.is_file():
        raise CalibrationError(f"{run_dir}: not an evaluation run (needs {RUN_INFO} and {PREDICTIONS})")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    rows = [r for r in PredictionLog(pred).rows.values() if not r.get("error")]
    if int(info.get("samples", 1)) < 2 or not rows or any(r.get("agreement") is None for r in rows):
        raise CalibrationError(f"{run_dir}: not a consensus run (run it with --samples N > 1 on a labelled dev split)")
    return Calibration.fit([r["agreement"] for r in rows], hits(rows), samples=int(info["samples"]),
                           temperature=float(info["temperature"]), source=f"{run_dir} ({info.get('model')}, {info.get('benchmark')})")
