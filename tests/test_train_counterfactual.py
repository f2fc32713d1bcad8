"""Counterfactual SFT traces (globe.train.counterfactual): the rewrite on real reasonings and on
GeoScenes traces, the dataset's flag, the collator that restricts their loss to the answer, and
the setting's way from params.yaml to the trainer."""

from __future__ import annotations

import csv
import doctest

import pytest

import globe.train.counterfactual as counterfactual
from globe.answer import parse
from globe.answer.conclusion import reasoning_conclusion
from globe.faithfulness import judge
from globe.geo.text import fold
from globe.scorer import city_match
from globe.train.counterfactual import Place, Rewriter, answered_places, counterfactual_rows
from globe.train.counterfactual import counterfactual_trace
from globe.train.datasets import sft_dataset


def test_docstring_examples():
    result = doctest.testmod(counterfactual)
    assert result.attempted > 0 and result.failed == 0


def _geocot_thinks(shared_data) -> list[str]:
    with open(shared_data / "reasoning_outputs" / "geocomp_geocot.csv", encoding="utf-8-sig", newline="") as f:
        return [row["output"] for row in csv.DictReader(f)]


def test_real_reasonings_are_rewritten_to_argue_for_another_city_of_their_country_and_the_answer_follows(shared_data):
    thinks = _geocot_thinks(shared_data)
    pool = answered_places(thinks)
    rewritten = 0
    for think in thinks:
        before = reasoning_conclusion(think)
        if before is None or before.level != "city":
            continue
        other = next((p for p in pool.get(before.country_code, []) if fold(p.city) != fold(before.city)), None)
        trace = counterfactual_trace(think, other) if other else None
        if trace is None:
            continue
        rewritten += 1
        answer = parse(trace)
        after = reasoning_conclusion(answer.think)
        assert city_match(other.city, after.city, after.country, True, True)  # the scorer's same-city rule
        assert after.country_code == before.country_code
        assert answer.city == other.city and answer.has_coordinates
        assert judge(answer).consistent is True  # the metric's own judge: the answer follows the reasoning
        assert f" {before.city} " not in f" {answer.think} "
    assert rewritten >= 40, rewritten  # real reasonings of countries the set answers twice or more


def test_real_reasonings_are_rewritten_to_argue_for_a_city_abroad_with_world_scope(shared_data):
    thinks = _geocot_thinks(shared_data)
    rewrite = Rewriter(answered_places(thinks), seed=0, scope="world")
    rewritten = 0
    for think in thinks:
        trace = rewrite(think)
        if trace is None:
            continue
        rewritten += 1
        before, answer = reasoning_conclusion(think), parse(trace)
        after = reasoning_conclusion(answer.think)
        assert after.country_code != before.country_code and city_match(answer.city, after.city, after.country, True, True)
        assert judge(answer).consistent is True  # the metric's own judge: the answer follows the reasoning
    # 132 of 494 (scope "country": 149): 337 conclude no city, and in 24 the reader still concludes
    # their own country after the rewrite (they name it elsewhere), so those are left out, not forced
    assert rewritten >= 100, rewritten


def test_a_trace_is_not_rewritten_into_another_country_or_its_own_city():
    think = "A tower; that silhouette belongs to Berlin. Grassy ground."
    assert counterfactual_trace(think, Place("Paris", "France", "FR")) is None
    assert counterfactual_trace(think, Place("Berlin", "Germany", "DE")) is None
    assert counterfactual_trace("No landmark, no flag: a guess.", Place("Hamburg", "Germany", "DE")) is None


def _thinks(data) -> list[str]:
    return [parse(row["completion"][0]["content"]).think for row in sft_dataset(data)]


def test_the_share_of_rows_is_drawn_once_each_and_reproducibly(geoscenes_data):
    thinks = _thinks(geoscenes_data)
    drawn = counterfactual_rows(thinks, 0.5, seed=3)
    assert len(set(drawn)) == len(drawn) and abs(len(drawn) - round(0.5 * len(thinks))) <= 2
    assert drawn == counterfactual_rows(thinks, 0.5, seed=3)
    assert drawn != counterfactual_rows(thinks, 0.5, seed=4)
    assert counterfactual_rows(thinks, 0.0, seed=3) == []


def test_each_rewrite_draws_a_city_again_so_an_image_cannot_be_memorised(geoscenes_data):
    thinks = _thinks(geoscenes_data)
    rewrite = Rewriter(answered_places(thinks), seed=0)
    think = next(t for t in thinks if len(rewrite.others(t)) >= 2)
    cities = {parse(rewrite(think)).city for _ in range(30)}
    assert len(cities) >= 2 and reasoning_conclusion(think).city not in cities
    first, second = Rewriter(answered_places(thinks), seed=5), Rewriter(answered_places(thinks), seed=5)
    assert [first(think) for _ in range(5)] == [second(think) for _ in range(5)]  # seeded: a run is reproducible


def test_sft_rows_carry_the_answer_only_flag_only_with_counterfactual_traces(geoscenes_data):
    plain = sft_dataset(geoscenes_data)
    assert "answer_only" not in plain.column_names
    mixed = sft_dataset(geoscenes_data, counterfactual=0.25, seed=0)
    flags = mixed["answer_only"]
    assert flags[: len(plain)] == [False] * len(plain) and all(flags[len(plain):])
    assert len(mixed) - len(plain) == pytest.approx(0.25 * len(plain), abs=2)
    assert all(c in plain["completion"] for c in mixed["completion"][len(plain):])  # repeats: the collator rewrites them


def test_the_collator_rewrites_flagged_rows_and_trains_only_their_answer(geoscenes_data, tiny_model_dir):
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from globe.train.sft import counterfactual_collator

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    dataset = sft_dataset(geoscenes_data, counterfactual=0.25, seed=0)
    plain, drill = dataset[0], dataset[len(dataset) - 1]
    assert drill["answer_only"] and not plain["answer_only"]
    base = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)  # as SFTTrainer builds it
    collate = counterfactual_collator(base, processor, dataset, seed=0)
    batch = collate([dict(plain), dict(drill)])
    tok = processor.tokenizer

    def trained_text(i: int) -> str:
        labels = batch["labels"][i]
        return tok.decode(labels[labels != -100])

    assert "belongs to" in trained_text(0) and "</answer>" in trained_text(0)  # the whole completion
    drill_text = trained_text(1)
    assert drill_text.startswith("<answer>") and "belongs to" not in drill_text
    shown = tok.decode(batch["input_ids"][1][batch["attention_mask"][1] == 1])
    reference = parse(drill["completion"][0]["content"])
    answered = parse(drill_text)
    assert answered.city != reference.city  # rewritten: the answer names another city ...
    assert reasoning_conclusion(shown.split("<think>")[-1].split("</think>")[0]).city == answered.city  # ... the one the reasoning shown argues for
    first_trained = int((batch["labels"][0] != -100).nonzero()[0])
    short = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True, max_length=first_trained + 5)
    with pytest.raises(ValueError, match="lost its <answer> tag to truncation"):  # never a silently empty row
        counterfactual_collator(short, processor, dataset, seed=0)([dict(drill)])
    unreadable = dict(drill, completion=[{"role": "assistant", "content": "<think>No place can be read.</think>"}])
    with pytest.raises(ValueError, match="cannot be rewritten"):
        collate([unreadable])


def test_the_setting_reaches_the_plan_and_is_bounded(tmp_path):
    from pydantic import ValidationError

    from globe.config import Params
    from globe.train.plan import dry_run, make_plan

    plan = make_plan("sft", Params.model_validate({"sft": {"counterfactual_traces": 0.25}}), tmp_path, model="m")
    assert plan.counterfactual_traces == 0.25 and plan.args["remove_unused_columns"] is False
    assert dry_run(plan)["counterfactual_traces"] == 0.25
    paper = make_plan("sft", Params(), tmp_path, model="m")
    assert paper.counterfactual_traces == 0.0 and "remove_unused_columns" not in paper.args
    with pytest.raises(ValidationError, match="counterfactual_traces"):
        Params.model_validate({"sft": {"counterfactual_traces": 1.5}})


def test_world_scope_rewrites_the_city_into_another_country_and_leaves_the_flag(geoscenes_data):
    """Scope "world" makes the incoherent reasoning a misread landmark gives (the flag reads one
    country, the silhouette a city of another) and an answer that follows its city."""
    from globe.answer.conclusion import reasoning_coherent
    from globe.faithfulness import judge

    thinks = _thinks(geoscenes_data)
    rewrite = Rewriter(answered_places(thinks), seed=0, scope="world")
    checked = 0
    for think in thinks[:40]:
        before = reasoning_conclusion(think)
        trace = rewrite(think)
        if trace is None:
            continue
        checked += 1
        answer = parse(trace)
        after = reasoning_conclusion(answer.think)
        assert after.country_code != before.country_code and answer.city == after.city
        assert think.split(" that silhouette")[0] == answer.think.split(" that silhouette")[0]  # the flag as it was
        assert reasoning_coherent(think) and not reasoning_coherent(answer.think)
        assert judge(answer).consistent is True  # the metric's own judge: the answer follows the reasoning
    assert checked >= 30, checked
    own = reasoning_conclusion(thinks[0])
    sibling = next(p for p in answered_places(thinks)[own.country_code] if p.city != own.city)
    assert counterfactual_trace(thinks[0], sibling, scope="world") is None  # never the same country


def test_the_scope_reaches_the_plan_and_needs_traces(tmp_path):
    from pydantic import ValidationError

    from globe.config import Params
    from globe.train.plan import dry_run, make_plan

    world = Params.model_validate({"sft": {"counterfactual_traces": 0.25, "counterfactual_scope": "world"}})
    assert dry_run(make_plan("sft", world, tmp_path, model="m"))["counterfactual_scope"] == "world"
    assert dry_run(make_plan("sft", Params(), tmp_path, model="m"))["counterfactual_scope"] == "country"
    with pytest.raises(ValidationError, match="counterfactual_traces is 0"):  # accepted and ignored: refused
        Params.model_validate({"sft": {"counterfactual_scope": "world"}})
    with pytest.raises(ValidationError, match="counterfactual_scope"):
        Params.model_validate({"sft": {"counterfactual_traces": 0.25, "counterfactual_scope": "planet"}})
