"""GeoScenes: deterministic bytes, true entities and reasoning, cues readable from the pixels."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from globe.answer import parse
from globe.tiny.geoscenes import synthesize
from globe.data.records import read_records
from globe.tiny.scene_reader import SceneReaderEngine, read_cues
from globe.tiny.world import World
from globe.engines.base import Request, Sampling


def _tree(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_prefix_stable(tmp_path):
    a = synthesize(tmp_path / "a", n=12, seed=3)
    synthesize(tmp_path / "b", n=12, seed=3)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    # sample i does not depend on n, and another seed draws other images
    short = synthesize(tmp_path / "c", n=5, seed=3)
    assert [r.image_sha256 for r in short] == [r.image_sha256 for r in a[:5]]
    other = synthesize(tmp_path / "d", n=5, seed=4)
    assert not {r.image_sha256 for r in other} & {r.image_sha256 for r in a}
    # a smaller rerun into the same dir leaves no orphan images
    synthesize(tmp_path / "a", n=4, seed=3)
    assert len(list((tmp_path / "a" / "images").iterdir())) == 4


def test_records_are_true(geoscenes_data):
    records = read_records(geoscenes_data)
    world = World.load(geoscenes_data)
    assert len(records) == 96
    assert {r.split for r in records} == {"train", "test"}
    non_loc = [r for r in records if not r.localizable]
    assert 4 <= len(non_loc) <= 30 and all(r.entities == [] and r.reasoning is None for r in non_loc)
    for r in records:
        path = geoscenes_data / r.image
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r.image_sha256
        country = world.by_code(r.country_code)
        city = next(c for c in country.cities if c.name == r.city)
        assert abs(r.lat - city.lat) <= 0.021 and r.label_source == "synthetic"
        with Image.open(path) as im:
            assert im.size == (112, 112) and im.mode == "RGB"
        if r.localizable:
            ans = parse(r.reasoning)
            assert ans.format_ok and (ans.country, ans.city) == (r.country, r.city)
            assert abs(ans.lat - city.lat) < 1e-3 and abs(ans.lon - city.lon) < 1e-3
            assert len(r.entities) == 4 and all(e in ans.think for e in r.entities)
            assert r.entities[0] == country.flag_entity and r.entities[1] == f"{city.landmark} landmark"


def test_scene_reader_decodes_the_pixels(geoscenes_data):
    records = read_records(geoscenes_data)
    clean = SceneReaderEngine("clean", noise=0.0, world=geoscenes_data)
    for r in records:
        with Image.open(geoscenes_data / r.image) as im:
            cues = read_cues(np.asarray(im.convert("RGB")))
            assert cues.localizable == r.localizable
            if r.localizable:
                drawn = [f"{'-'.join(cues.palette)} flag band", f"{cues.landmark} landmark",
                         f"{cues.climate} sky", f"{cues.ground} ground"]  # fmt: skip
                assert drawn == r.entities
    reqs = [Request(image=Image.open(geoscenes_data / r.image), prompt="where?") for r in records]
    out = clean.generate(reqs, Sampling())
    for r, res in zip(records, out):
        if r.localizable:
            assert res.text == r.reasoning  # a noiseless reader writes the reference reasoning
    p = [j.p_yes for j in clean.judge(reqs)]
    assert [x > 0.5 for x in p] == [bool(r.localizable) for r in records]

    noisy = SceneReaderEngine("noisy", noise=0.3, world=geoscenes_data)
    first = [x.text for x in noisy.generate(reqs, Sampling())]
    assert first == [x.text for x in noisy.generate(reqs, Sampling())]  # misreads are deterministic
    loc = [(r, t) for r, t in zip(records, first) if r.localizable]
    wrong = sum(t != r.reasoning for r, t in loc)
    # four cues, each misread with p=0.3: P(at least one) = 0.76
    assert 0.55 * len(loc) <= wrong <= 0.95 * len(loc)


def test_cli_synth(tmp_path):
    from globe.cli import app

    res = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "s"), "--n", "6", "--seed", "1",
                                   "--params", str(tmp_path / "none.yaml"), "--set", "synth.countries=[FR, JP]"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["records"] == 6 and summary["countries"] <= 2
    assert {r.country_code for r in read_records(tmp_path / "s")} <= {"FR", "JP"}
    bad = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--params", str(tmp_path / "n.yaml"),
                                   "--set", "synth.countries=[XX]"])  # fmt: skip
    assert bad.exit_code == 2 and "XX" in bad.output


def test_occluded_flags_keep_their_colours_only_where_the_leaves_end(tmp_path):
    from globe.tiny.geoscenes import FLAG_BOTTOM, Rendering
    from globe.tiny.world import FLAG_COLOURS

    look = Rendering(flag_occlusion=1.0)
    records = synthesize(tmp_path / "a", n=24, seed=5, non_localizable_share=0.0, look=look)
    synthesize(tmp_path / "b", n=24, seed=5, non_localizable_share=0.0, look=look)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # still the same bytes for a seed
    assert all(r.meta["flag_hidden"] for r in records)  # the record says so (evaluation's `by_condition`)
    clear = synthesize(tmp_path / "c", n=4, seed=5, non_localizable_share=0.0)
    assert not any(r.meta["flag_hidden"] for r in clear)
    world = World.load(tmp_path / "a")
    unread = 0
    for r in records:
        pixels = np.asarray(Image.open(tmp_path / "a" / r.image).convert("RGB")).astype(float)
        unread += read_cues(pixels.astype(np.uint8)).palette != world.by_code(r.country_code).palette
        stripe_h = int(112 * FLAG_BOTTOM / 3)
        for k, colour in enumerate(world.by_code(r.country_code).palette):  # every stripe still shows its colour
            rows = pixels[k * stripe_h + 2:(k + 1) * stripe_h - 2].reshape(-1, 3)
            near = np.linalg.norm(rows - np.asarray(FLAG_COLOURS[colour]), axis=1) < 40
            assert near.mean() > 0.05, (r.id, k)
    assert unread >= 0.9 * len(records)  # the teachers' median colour reads the leaves: no trace for these


def test_a_closer_look_reads_the_flag_where_the_leaves_end_and_says_so(tmp_path):
    from globe.config import TeacherConfig
    from globe.data.grounding_check import SceneCueGrounding
    from globe.engines import make_engine
    from globe.tiny.geoscenes import Rendering

    records = synthesize(tmp_path / "a", n=24, seed=5, non_localizable_share=0.0, look=Rendering(flag_occlusion=1.0))
    clear = synthesize(tmp_path / "c", n=12, seed=5, non_localizable_share=0.0)
    world = World.load(tmp_path / "a")
    images = [Image.open(tmp_path / "a" / r.image) for r in records]
    cues = [read_cues(np.asarray(im.convert("RGB"))) for im in images]
    assert all(c.leafy_stripe is not None for c in cues)
    read_right = [c.palette_past_leaves == world.by_code(r.country_code).palette for c, r in zip(cues, records)]
    assert sum(read_right) >= 0.9 * len(records)
    for r in clear:  # a flag in full view is not mistaken for leaves
        assert read_cues(np.asarray(Image.open(tmp_path / "c" / r.image).convert("RGB"))).leafy_stripe is None

    def answers(**teacher):  # through the config, as `globe data distill` builds its teachers
        engine = make_engine(TeacherConfig(kind="scene-reader", **teacher), world=str(tmp_path / "a"))
        return [parse(engine.answer(im)) for im in images]

    closer = answers(name="a", closer_look=1.0)
    right = [a for a, r in zip(closer, records) if a.country == r.country]
    assert len(right) >= 0.9 * len(records)
    for a, r in zip(closer, records):  # the reasoning first says which stripe the leaves hide
        assert a.think.startswith(("Trees hide most of the top stripe. ", "Trees hide most of the middle stripe. ",
                                   "Trees hide most of the bottom stripe. "))
        if a.country == r.country:  # and names only what the image shows: verification keeps it
            assert SceneCueGrounding().check(r, a.think).share == 1.0
    median = answers(name="a")
    assert sum(a.country == r.country for a, r in zip(median, records)) <= 0.1 * len(records)
    assert not any("Trees" in a.think for a in median)
    half_a, half_b = answers(name="a", closer_look=0.5), answers(name="b", closer_look=0.5)
    noted = ["Trees" in a.think for a in half_a]
    assert noted == ["Trees" in b.think for b in half_b]  # the same photos for every teacher
    assert 0.2 * len(records) <= sum(noted) <= 0.8 * len(records)


def test_teachers_share_a_popularity_prior_that_keeps_the_cues_right(geoscenes_data):
    records = [r for r in read_records(geoscenes_data) if r.localizable]
    world = World.load(geoscenes_data)
    reqs = [Request(image=Image.open(geoscenes_data / r.image), prompt="where?") for r in records]
    a = SceneReaderEngine("a", city_bias=0.5, world=geoscenes_data).generate(reqs, Sampling())
    b = SceneReaderEngine("b", city_bias=0.5, world=geoscenes_data).generate(reqs, Sampling())
    biased = []
    for r, x, y in zip(records, a, b):
        first = world.by_code(r.country_code).cities[0].name
        pa, pb = parse(x.text), parse(y.text)
        assert pa.city == pb.city  # one prior, shared by every teacher
        assert f"{r.meta['landmark']} landmark" in pa.think  # the cue is read right...
        if r.city != first:
            biased.append(pa.city == first)  # ...the conclusion is the best-known city
    assert 0.25 <= sum(biased) / len(biased) <= 0.75


def test_the_heldout_sets_come_from_an_unseen_seed_all_localizable(tmp_path):
    import pytest

    from globe.config import ConfigError, load_params
    from globe.tiny.geoscenes import synthesize_heldout

    params = load_params(None, overrides=["heldout.n=10", "heldout.shifted_n=10", "heldout.shifted.noise_sigma=20"])
    inside = synthesize_heldout(tmp_path / "in", params)
    shifted = synthesize_heldout(tmp_path / "shifted", params, shifted=True)
    train_ids = {r.id for r in synthesize(tmp_path / "train", n=10, seed=params.synth.seed)}
    for records in (inside, shifted):
        assert len(records) == 10 and all(r.split == "test" and r.localizable for r in records)
        assert not {r.id for r in records} & train_ids
    assert {r.image_sha256 for r in inside}.isdisjoint({r.image_sha256 for r in shifted})
    with pytest.raises(ConfigError, match="must differ from synth.seed"):
        load_params(None, overrides=["heldout.seed=0"])
