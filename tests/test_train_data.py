"""Records -> the rows each trainer sees (no model needed)."""

from __future__ import annotations

from collections import Counter

from globe.data import read_records
from globe.prompts import GEO_PROMPT, GEO_SYSTEM
from globe.train.datasets import grpo_dataset, reward_model_dataset, sft_dataset


def test_sft_rows_are_the_serving_prompt_and_the_reference_completion(geoscenes_data):
    records = [r for r in read_records(geoscenes_data) if r.split == "train"]
    rows = sft_dataset(geoscenes_data)
    assert len(rows) == sum(1 for r in records if r.localizable and r.reasoning)
    row = rows[0]
    assert row["prompt"] == [{"role": "system", "content": GEO_SYSTEM}, {"role": "user", "content": GEO_PROMPT}]
    target = row["completion"][0]["content"]
    assert target.startswith("<think>") and "<answer>country: " in target and target.endswith("</answer>")
    assert row["image"].mode == "RGB"  # decoded lazily from the dataset's images/


def test_reward_model_rows_are_balanced_and_include_confident_negatives(geoscenes_data):
    records = [r for r in read_records(geoscenes_data) if r.split == "train"]
    rows = reward_model_dataset(geoscenes_data, answers=(" yes", " no"))
    answers = Counter(r["completion"][0]["content"] for r in rows.select_columns(["completion"]))
    assert answers[" yes"] == answers[" no"] == sum(1 for r in records if r.localizable)
    no_prompts = {r["prompt"][0]["content"] for r in rows.select_columns(["prompt", "completion"])
                  if r["completion"][0]["content"] == " no"}
    # a "no" shown with a reasoning that names a flag: the judge has to look at the pixels
    assert any("flag band" in p for p in no_prompts)


def test_grpo_rows_carry_the_reward_columns(geoscenes_data):
    rows = grpo_dataset(geoscenes_data)
    assert {"prompt", "image", "country", "country_code", "city", "lat", "lon", "entities"} <= set(rows.column_names)
    train_localizable = [r for r in read_records(geoscenes_data) if r.split == "train" and r.localizable]
    assert len(rows) == len(train_localizable)
    assert rows[0]["entities"] == train_localizable[0].entities and rows[0]["country"] == train_localizable[0].country
