"""`dvc repro` of the tiny world, the README's main job with params.yaml as it is, end to end in a
scratch copy of the project (started in the background with the session, tests/_main_job.py; this
test runs last): every stage runs, GRPO beats the SFT checkpoint it started from on the held-out
images (the paired-bootstrap interval above 0), the results are readable, the only new file beside
the ignored outputs is dvc.lock, a second `dvc repro` does nothing, and `dvc exp run -S` reruns
only what the changed parameter invalidates.

The margins come from four measured trainings (`benchmarks/grpo_learning.py` seeds 0-2 and this
job's seed 42; docs/train.md, "What the tiny world shows"). GRPO - SFT on acc_25km, the paper's
headline, was +26.7, +23.8, +32.7 and +20.0 pt (each interval ~ +-4.5 pt): asserting the interval
above 0 and at least +10 pt sits ~3 standard deviations of that spread below its lowest value. On country
accuracy the gain is smaller (+6.5, +5.5, +3.0, +1.8 pt, the last not significant): a weight that
moves by chance from one CPU to another would make "significant" a coin flip on this seed, so the
test asserts only that GRPO is not worse than SFT beyond 2 pt; the benchmark holds the
significance target over its seeds. With teachers that read half of the hidden flags
(`closer_look`, docs/train.md "A closer look") the same four gave +36.7, +29.5, +30.2 and +35.7 pt
acc_25km, country +0.2 to +1.3 pt (SFT already at 97.5-99.3%), consistency +0.0 to +1.5 pt; with
consistency weighed above accuracy (docs/train.md, "Consistency above accuracy") +34.2, +28.5,
+29.8 and +31.8 pt, country -0.3 to +0.8 pt, consistency +0.0 to +1.5 pt; with SFT's counterfactual
traces across countries (docs/train.md, "An answer for an incoherent reasoning") +27.0, +30.2,
+23.8, +30.8 and +30.5 pt on seeds 0-4 and +30.8 on this job's seed, country -0.3 to +1.8 pt,
consistency -0.2 to +3.5 pt.
"""

from __future__ import annotations

import json

import pytest
import yaml
from _main_job import run

STAGES = ["config", "data", "distill", "verify", "heldout", "base-model", "sft", "reward-model", "grpo", "evaluate", "register"]
MIN_ACC25_GAIN = 0.10  # GRPO - SFT acc_25km on the in-domain held-out set, interval above 0 (see above)
MAX_COUNTRY_LOSS = 0.02  # GRPO - SFT country_acc may not fall below -2 pt (see above)
# The reasoning keeps supporting the answer through GRPO (issue 22; docs/train.md, "Reasoning that
# supports its answer"). Measured on seed 42 (country-aware rule): GRPO with the paper's rewards
# alone -11.2 pt consistency [-16.7, -5.8] and 20.2% right for the wrong reason; the main job's
# recipe +6.0 pt [+2.2, +10.1] and 2.2%. The bounds sit between the two, with room for seeds.
MAX_CONSISTENCY_LOSS = 0.02  # GRPO - SFT consistency may not fall below -2 pt
MAX_WRONG_REASON = 0.06  # GRPO's share of right answers whose reasoning concludes elsewhere


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole main job: ~12 min on 2 idle cores, started with the session
def test_dvc_repro_learns_then_nothing_then_an_experiment(main_job):
    out, elapsed = main_job.wait()
    proj, env, dvc = main_job.proj, main_job.env, main_job.dvc
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, stage
    lock = yaml.safe_load((proj / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)

    # GRPO learned: better than its SFT start on the same held-out images, beyond chance
    metrics = json.loads((proj / "results/evaluate/metrics.json").read_text())
    inside = metrics["in_domain"]
    assert json.loads((proj / "results/evaluate/in_domain/grpo/metrics.json").read_text())["n"] == 400
    acc25, country = inside["grpo_vs_sft"]["acc_25km"], inside["grpo_vs_sft"]["country_acc"]
    assert acc25["lo"] > 0 and acc25["delta"] >= MIN_ACC25_GAIN, inside
    assert country["delta"] >= -MAX_COUNTRY_LOSS, inside
    assert inside["grpo_vs_sft"]["consistency"]["delta"] >= -MAX_CONSISTENCY_LOSS, inside
    assert inside["grpo"]["wrong_reason"] <= MAX_WRONG_REASON, inside
    assert inside["base"]["acc_25km"] < 0.05 < inside["sft"]["acc_25km"]  # untrained < SFT < GRPO
    assert set(metrics["shifted"]) >= {"base", "sft", "grpo", "grpo_vs_sft"}
    assert "grpo − sft" in (proj / "results/evaluate/summary.md").read_text()

    # readable results: each metrics file holds the headline figures only; plots render offline
    shown = json.loads(run([*dvc, "metrics", "show", "--json"], proj, env))
    files = next(iter(shown.values()))["data"]
    for path in ("results/evaluate/metrics.json", "results/grpo/metrics.json", "results/sft/metrics.json",
                 "results/verify/metrics.json"):
        assert _numbers(files[path]["data"]) <= 40, path
    run([*dvc, "plots", "show", "-o", str(proj.parent / "plots")], proj, env)
    assert (proj.parent / "plots" / "index.html").is_file()
    assert json.loads((proj / "results/register/registered.json").read_text())["version"] == "1"
    assert json.loads((proj / "results/register/promotion.json").read_text())["promoted"] is True  # clears the floor

    # a fresh repro changes nothing tracked: the project ships no dvc.lock (trained weights differ
    # from machine to machine, docs/orchestration.md), so the run's lock is the one new file, and
    # the user commits it as DVC intends
    assert run(["git", "status", "--porcelain"], proj, env).strip() == "?? dvc.lock"
    run(["git", "add", "dvc.lock"], proj, env)
    run(["git", "commit", "-qm", "tiny world: trained"], proj, env)

    again = run([*dvc, "repro"], proj, env)
    assert "Running stage" not in again and "up to date" in again.lower()

    exp = run([*dvc, "exp", "run", "-S", "register.min_improvement=0.5"], proj, env)
    assert "Running stage 'register'" in exp  # its resolved settings (results/config/register.yaml) changed
    assert "Running stage 'grpo'" not in exp and "Running stage 'data'" not in exp
    promotion = json.loads((proj / "results/register/promotion.json").read_text())
    assert promotion["promoted"] is False  # v2 equals v1's metric: not better by 0.5
    print(f"dvc repro of the tiny world: {elapsed:.0f} s (beside the rest of the suite)")


def _numbers(doc) -> int:
    if isinstance(doc, dict):
        return sum(_numbers(v) for v in doc.values())
    if isinstance(doc, list):
        return sum(_numbers(v) for v in doc)
    return int(isinstance(doc, (int, float)) and not isinstance(doc, bool))
