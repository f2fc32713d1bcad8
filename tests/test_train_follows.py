"""The probe of whether the answer reads the reasoning (globe.train.follows): its cases on GeoScenes
and on real reasonings, its counts with the real tiny model, and the SFT gate's plan checks. The
gate inside the real trainer is in test_train_tiny.py."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from globe.answer import parse
from globe.answer.conclusion import reasoning_conclusion
from globe.scorer import city_match
from globe.train.follows import Follows, answer_follows, dev_cases, probe_cases


def test_dev_cases_force_a_reasoning_for_another_city_of_the_same_country_on_test_images(geoscenes_data):
    cases = dev_cases(geoscenes_data)
    assert cases
    for case in cases:
        assert case.forced.endswith("<answer>") and hasattr(case.image, "size")  # a loaded image, read once
        think = parse(case.forced + "</answer>").think
        concluded = reasoning_conclusion(think)
        assert city_match(concluded.city, case.wanted[0], case.wanted[1], True, True)
        assert case.wanted[1] == case.own[1] and not city_match(case.wanted[0], case.own[0], case.own[1], True, True)
    assert len(cases) <= sum(1 for line in (geoscenes_data / "records.jsonl").open() if '"test"' in line)


def test_world_scope_cases_force_a_city_of_another_country_after_the_flag(geoscenes_data):
    """The incoherent reasoning a misread landmark gives: the flag's country kept, the city moved abroad."""
    cases = dev_cases(geoscenes_data, scope="world")
    assert cases
    for case in cases:
        think = parse(case.forced + "</answer>").think
        assert reasoning_conclusion(think).country == case.wanted[1] != case.own[1]
        assert f"the colours of {case.own[1]}" in think


def test_real_reasonings_become_probe_cases(shared_data):
    with open(shared_data / "reasoning_outputs" / "geocomp_geocot.csv", encoding="utf-8-sig", newline="") as f:
        thinks = [row["output"] for row in csv.DictReader(f)]
    cases = probe_cases([(None, think) for think in thinks], thinks, seed=0)
    assert len(cases) >= 100  # most conclude a city another city of their country can replace
    for case in cases:
        assert not city_match(case.wanted[0], case.own[0], case.own[1], True, True)
        concluded = reasoning_conclusion(parse(case.forced + "</answer>").think)
        assert city_match(concluded.city, case.wanted[0], case.wanted[1], True, True)  # the forced reasoning argues for it


def test_a_gate_without_test_images_to_probe_is_a_clear_error(geoscenes_data, tmp_path):
    from globe.train.datasets import TrainDataError

    data = tmp_path / "ds"
    shutil.copytree(geoscenes_data, data)
    rows = [json.loads(line) for line in (data / "records.jsonl").read_text().splitlines() if line.strip()]
    (data / "records.jsonl").write_text("".join(json.dumps(dict(r, split="train")) + "\n" for r in rows))
    with pytest.raises(TrainDataError, match=r"records\.jsonl.*test-split"):
        dev_cases(data)


def test_the_probe_counts_every_case_once_and_gives_the_model_back_as_it_came(geoscenes_data, tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cases = dev_cases(geoscenes_data)[:6]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).train()
    result = answer_follows(model, processor, cases)
    assert result.tried == 6 and result.follows + result.own_city + result.other == pytest.approx(1.0)
    assert model.training
    assert answer_follows(model.eval(), processor, cases) == result and not model.training  # greedy: reproducible
    assert answer_follows(model, processor, []).tried == 0


def test_the_gate_reaches_the_plan_and_refuses_what_cannot_probe(tmp_path):
    from pydantic import ValidationError

    from globe.config import Params
    from globe.train.plan import TrainConfigError, check, dry_run, make_plan

    def plan(**sft):
        return make_plan("sft", Params.model_validate({"sft": sft}), tmp_path, model="m")

    gated = plan(counterfactual_traces=0.5, max_steps=3000, follows_target=0.8, follows_every=300, follows_min_steps=1200)
    check(gated)
    assert gated.follows_gate == {"target": 0.8, "every": 300, "min_steps": 1200, "decay_steps": 300}
    assert dry_run(gated)["follows_gate"] == gated.follows_gate and not gated.warnings
    assert plan().follows_gate is None and dry_run(plan())["follows_gate"] is None  # the paper's SFT
    with pytest.raises(TrainConfigError, match="first probe would come at step 1300.*max_steps 1200"):
        check(plan(counterfactual_traces=0.5, max_steps=1200, follows_target=0.8, follows_every=100,
                   follows_min_steps=1250))
    with pytest.raises(TrainConfigError, match="max_steps as its ceiling"):
        check(plan(counterfactual_traces=0.5, max_steps=-1, follows_target=0.8))
    lonely = plan(max_steps=600, follows_target=0.8)
    check(lonely)
    assert any("without counterfactual traces" in w for w in lonely.warnings)
    with pytest.raises(ValidationError, match="follows_target"):
        Params.model_validate({"sft": {"follows_target": 1.2}})


def test_a_met_gate_decays_the_learning_rate_to_zero_then_stops():
    """The decay takes over a real transformers schedule from where it stands, survives the
    scheduler's checkpoint round trip, and the gate stops the run when it reaches 0."""
    import torch
    from transformers import TrainerControl, TrainerState, get_linear_schedule_with_warmup

    from globe.train.follows import FollowsGate, decay_to_zero

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, 100)
    for _ in range(40):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.6)
    assert decay_to_zero(scheduler, 40, 4)
    lrs = []
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == pytest.approx([0.45, 0.3, 0.15, 0.0, 0.0])
    restored = get_linear_schedule_with_warmup(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 0, 100)
    decay_to_zero(restored, 0, 1)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.lr_lambdas[0](42) == pytest.approx(0.3)
    assert not decay_to_zero(object(), 40, 4)  # not a LambdaLR: the gate stops at once instead

    gate = FollowsGate(None, [], target=0.8, every=10, decay_steps=4)
    gate.met_at = 40
    for step, stops in ((41, False), (43, False), (44, True)):
        control = TrainerControl()
        gate.on_step_end(None, TrainerState(global_step=step), control, model=object())
        assert control.should_training_stop is stops and gate.history == []  # no probe while decaying


def test_follows_is_a_plain_record():
    assert Follows(4, 0.5, 0.25, 0.25).as_dict() == {"tried": 4, "follows": 0.5, "own_city": 0.25, "other": 0.25}
