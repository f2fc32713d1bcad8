"""LocalEngine on the tiny model: batching, ordering, seeding, failure isolation, yes/no judging."""

from __future__ import annotations

import io

import pytest
from _model_helpers import solid

from globe.engines import LocalEngine, Request, Sampling, make_engine
from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (90, 90, 90)]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return LocalEngine(tiny_model_dir, device="auto", batch_size=2, seed=0)


def _truncated_png():
    from PIL import Image

    buf = io.BytesIO()
    solid((1, 2, 3), (80, 80)).save(buf, format="PNG")
    return Image.open(io.BytesIO(buf.getvalue()[:60]))  # opens lazily, fails on first pixel read


def _requests(n=len(COLORS)):
    return [Request(image=solid(c, (40 + 20 * i, 60)), prompt=GEO_PROMPT, system=GEO_SYSTEM, id=f"r{i}") for i, c in enumerate(COLORS[:n])]


def test_batched_greedy_equals_one_by_one(engine, tiny_model_dir):
    """Left padding is right: a request's greedy text does not depend on its batch-mates."""
    reqs = _requests() + [Request(image=None, prompt="text only, no image")]
    greedy = Sampling(max_new_tokens=12, temperature=0.0)
    batched = engine.generate(reqs, greedy)
    single = LocalEngine.from_model(engine.model, engine.processor, batch_size=1).generate(reqs, greedy)
    assert all(r.ok for r in batched)
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(0 < r.usage["completion_tokens"] <= 12 and r.usage["prompt_tokens"] > 10 for r in batched)


def test_sampling_is_seeded_and_leaves_global_rng_alone(engine):
    import torch

    reqs = _requests(3)
    hot = Sampling(max_new_tokens=10, temperature=1.0)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = [r.text for r in engine.generate(reqs, hot)]
    assert torch.equal(torch.rand(1), before)  # the engine forked the RNG
    assert a == [r.text for r in engine.generate(reqs, hot)]
    c = [r.text for r in engine.generate(reqs, Sampling(max_new_tokens=10, temperature=1.0, seed=7))]
    assert c != a


def test_n_samples_per_request_come_back_request_major_from_one_generate(engine, monkeypatch):
    """Sampling.n draws every prompt's n samples in the same `generate` call (num_return_sequences)."""
    from globe.engines import generate_samples

    reqs = _requests(3)
    greedy = [r.text for r in engine.generate(reqs, Sampling(max_new_tokens=10))]
    calls = []
    real = engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: calls.append(kw.get("num_return_sequences", 1)) or real(**kw))
    # near-zero temperature samples the greedy text: each group must hold its own request's text
    cold = generate_samples(engine, reqs, Sampling(max_new_tokens=10, temperature=1e-4, n=4))
    assert [[r.text for r in g] for g in cold] == [[t] * 4 for t in greedy]
    assert calls == [4, 4]  # batch_size 2 prompts (8 sequences), then the third prompt
    hot = engine.generate(reqs, Sampling(max_new_tokens=10, temperature=1.5, seed=1, n=4))
    assert len(hot) == 12 and all(r.ok for r in hot)
    assert len({r.text for r in hot[:4]}) > 1  # independent draws, not copies
    again = engine.generate(reqs, Sampling(max_new_tokens=10, temperature=1.5, seed=1, n=4))
    assert [r.text for r in hot] == [r.text for r in again]  # seeded
    calls.clear()
    copies = engine.generate(reqs[:1], Sampling(max_new_tokens=10, n=3))  # greedy n: one decode, n copies
    assert [r.text for r in copies] == [greedy[0]] * 3 and calls == [1]


def test_bad_requests_become_errors_in_place_and_stream(engine):
    reqs = _requests(2)
    reqs.insert(1, Request(image=_truncated_png(), prompt="x", id="broken"))
    reqs.append(Request(image="not an image", prompt="x"))
    reqs.append(Request(image=solid((9, 9, 9), (2000, 5)), prompt="x", id="sliver"))
    seen = []
    results = engine.generate(reqs, Sampling(max_new_tokens=4), on_result=lambda i, r: seen.append(i))
    assert [r.ok for r in results] == [True, False, True, False, False]
    assert "broken" in results[1].error and "truncated" in results[1].error
    assert "PIL.Image" in results[3].error
    assert "aspect ratio" in results[4].error
    assert sorted(seen) == list(range(len(reqs)))


def test_a_batch_that_fails_is_retried_one_by_one(engine):
    """An error raised inside the batched call costs only the request that caused it."""
    calls = []
    real = engine._generate_batch

    def flaky(chunk, sampling, seed):
        calls.append(len(chunk))
        if any(req.id == "poison" for _, req, _ in chunk):
            raise RuntimeError("boom")
        return real(chunk, sampling, seed)

    engine._generate_batch = flaky
    try:
        reqs = _requests(2)
        reqs[1].id = "poison"
        results = engine.generate(reqs, Sampling(max_new_tokens=3))
    finally:
        del engine._generate_batch
    assert calls == [2, 1, 1]
    assert results[0].ok and not results[1].ok and "RuntimeError: boom" in results[1].error


def test_judge_is_a_normalised_first_token_probability(engine):
    import torch

    reqs = [Request(image=r.image, prompt=localizability_prompt("a red flag")) for r in _requests(3)]
    yes = engine.judge(reqs)
    no = engine.judge(reqs, choices=("no", "yes"))
    assert all(j.ok and j.source == "logits" and 0.0 < j.p_yes < 1.0 for j in yes)
    assert [j.p_yes for j in yes] == [j.p_yes for j in engine.judge(reqs)]  # deterministic
    for a, b in zip(yes, no):
        assert a.p_yes + b.p_yes == pytest.approx(1.0, abs=1e-6)

    # The same number by hand from the full next-token distribution of a single forward pass.
    tok = engine.tokenizer
    yes_ids = {tok.convert_tokens_to_ids(t) for t in ("yes", "Ġyes", "Yes", "ĠYes")}
    no_ids = {tok.convert_tokens_to_ids(t) for t in ("no", "Ġno", "No", "ĠNo")}
    assert tok.unk_token_id not in yes_ids | no_ids
    inputs = engine._inputs([(0, reqs[0], reqs[0].image)])
    with torch.inference_mode():
        probs = engine.model(**inputs).logits[0, -1].softmax(-1)
    p_yes, p_no = probs[list(yes_ids)].sum(), probs[list(no_ids)].sum()
    assert yes[0].p_yes == pytest.approx(float(p_yes / (p_yes + p_no)), rel=1e-4)


def test_judge_records_bad_images(engine):
    out = engine.judge([Request(image=_truncated_png(), prompt="?"), Request(image=None, prompt="?")])
    assert not out[0].ok and "truncated" in out[0].error
    assert out[1].ok


def test_make_engine_builds_local_from_teacher_config(tiny_model_dir):
    from globe.config import TeacherConfig

    eng = make_engine(TeacherConfig(name="t1", kind="local", model=str(tiny_model_dir)), batch_size=3)
    assert isinstance(eng, LocalEngine) and eng.name == "t1" and eng.batch_size == 3
    with pytest.raises(ValueError, match="needs `model`"):
        make_engine({"kind": "local", "name": "t2"})


def test_cli_generate_and_judge(tiny_model_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from globe.cli import app

    solid((200, 30, 30), (120, 90)).save(tmp_path / "red.png")
    runner = CliRunner()
    args = ["model", "generate", "--model", str(tiny_model_dir), "--image", str(tmp_path / "red.png")]
    out = runner.invoke(app, [*args, "--max-new-tokens", "4"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout[out.stdout.index("{") :])
    assert body["error"] is None and 1 <= body["usage"]["completion_tokens"] <= 4
    out = runner.invoke(app, [*args, "--judge"])
    body = json.loads(out.stdout[out.stdout.index("{") :])
    assert out.exit_code == 0 and 0 < body["p_yes"] < 1 and body["source"] == "logits"


def test_an_image_resized_to_input_size_is_what_the_processor_makes_of_the_full_photo(engine, shared_data):
    """The harness's loader resizes (and decodes JPEGs at reduced scale) to `input_size`: the model
    must see the same patch grid and, pixel for pixel, nearly what the processor makes of the photo."""
    import numpy as np

    from globe.images import open_ref

    photos = sorted((shared_data / "im2gps3k_sample" / "images").glob("*.jpg"))[:6]
    proc = engine.processor.image_processor
    full = [open_ref(p) for p in photos]
    fitted = [open_ref(p, fit=engine.input_size) for p in photos]
    assert all(f.size == engine.input_size(*img.size) and f.width < img.width / 4 for f, img in zip(fitted, full))
    a, b = proc(images=full, return_tensors="pt"), proc(images=fitted, return_tensors="pt")
    assert a["image_grid_thw"].tolist() == b["image_grid_thw"].tolist()
    levels = np.abs(a["pixel_values"].numpy() - b["pixel_values"].numpy()) * np.mean(proc.image_std) * 255
    # of 255; JPEG's own noise is larger. Decoding at 2x the target (DRAFT_MARGIN) halves it: ~1.1 / 9
    assert levels.mean() < 1.5 and np.quantile(levels, 0.99) < 12
    assert engine.input_size(10_000, 10) is None  # an aspect ratio the processor refuses: left to checked_image
