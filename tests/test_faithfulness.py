"""Does the reasoning support the answer (globe.faithfulness, globe.answer.conclusion): the metric on
real model text (GeoCoT's reasonings), on GeoScenes rows with known cues, the reward, and the
served answer's flag."""

from __future__ import annotations

import csv
import re

import pytest

from globe.answer import format_answer, parse
from globe.answer.conclusion import reasoning_coherent, reasoning_conclusion
from globe.tiny.geoscenes import describe
from globe.evaluate.metrics import compute_metrics, score_rows
from globe.faithfulness import cue_grounding, judge
from globe.geo import resolve
from globe.geo.text import fold
from globe.rewards import accuracy_reward, coherence_reward, consistency_reward, supported_accuracy_reward

HAMBURG = {"lat": 53.5507, "lon": 9.9930, "country": "Germany", "city": "Hamburg"}
CUES = ["black-red-gold flag band", "arch landmark", "temperate sky", "grassy ground"]


def _think(city: str, landmark: str = "arch", palette=("black", "red", "gold")) -> str:
    return describe(palette, landmark, "temperate", "grassy", "Germany", city)


def _geocot_rows(shared_data) -> list[dict]:
    path = shared_data / "reasoning_outputs" / "geocomp_geocot.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# "…most likely taken in Kampala, Uganda, Africa." -> the city and country the sentence names
_FINAL = re.compile(r"\b(?:in|near|from|likely)\s+([A-Z][\w'.-]*(?:\s+[A-Za-z][\w'.-]*){0,3}?),\s+([A-Z][\w' .-]+?),\s+(?:in\s+)?"
                    r"(?:the continent of\s+)?(?:Africa|Asia|Europe|Oceania|North America|South America)\.\s*$")


def test_the_conclusion_of_real_reasonings_is_the_city_and_country_their_last_sentence_names(shared_data):
    rows = _geocot_rows(shared_data)
    checked = agreed = 0
    for row in rows:
        m = _FINAL.search(row["output"])
        if not m:
            continue
        want, country = m.group(1).strip(), m.group(2).strip()
        found = resolve(want, country)
        if found is None or found.how != "city" or fold(found.place.city) != fold(want):
            continue  # a region ("Patagonia, Argentina"): a country-level claim, not a city
        checked += 1
        c = reasoning_conclusion(row["output"])
        agreed += c is not None and c.level == "city" and fold(c.city) == fold(want)
    assert checked >= 45, checked  # 89 of the 494 end "… in Name, Country, Continent."; 52 name a city
    assert agreed / checked >= 0.95, (agreed, checked)
    concluded = sum(reasoning_conclusion(r["output"]) is not None for r in rows)
    assert concluded / len(rows) >= 0.9, concluded  # 494 reasonings that conclude a place


def test_a_real_reasoning_supports_its_own_place_and_not_another_countrys(shared_data):
    rows = [r for r in _geocot_rows(shared_data) if (c := reasoning_conclusion(r["output"])) and c.level == "city"]
    assert len(rows) >= 100
    supported = contradicted = 0
    for i, row in enumerate(rows):
        mine = reasoning_conclusion(row["output"])
        other = next(reasoning_conclusion(r["output"]) for r in rows[i + 1:] + rows[:i]
                     if reasoning_conclusion(r["output"]).country_code != mine.country_code)
        own = parse(f"<think>{row['output']}</think><answer>country: {mine.country}\ncity: {mine.city}</answer>")
        wrong = parse(f"<think>{row['output']}</think><answer>country: {other.country}\ncity: {other.city}</answer>")
        supported += judge(own).consistent is True
        contradicted += judge(wrong).consistent is False
    assert supported == len(rows)
    assert contradicted == len(rows)


# A real tiny-policy completion (GRPO, held-out GeoScenes): the flag read as India's, the landmark
# as a Russian city's, and the answer following the flag.
TWO_COUNTRIES = ("The top of the image shows a white-blue-red flag band, the colours of India. A spire landmark stands on "
                 "the skyline; that silhouette belongs to Novosibirsk. The subtropical sky and sandy ground fit subtropical "
                 "latitudes.")


def test_a_reasoning_whose_cues_point_to_two_countries_is_incoherent_and_unpaid():
    assert reasoning_coherent(TWO_COUNTRIES) is False
    assert reasoning_coherent(_think("Hamburg")) is True  # flag and landmark in one country
    assert reasoning_coherent(_think("Hamburg").replace("Germany", "France")) is False
    assert reasoning_coherent("Birch trees and wooden houses; this looks like Finland.") is True  # a country, no city
    assert reasoning_coherent("No cue here names a place.") is None
    completions = [format_answer(t, "Germany", "Hamburg") for t in (_think("Hamburg"), TWO_COUNTRIES, "No place.")]
    assert coherence_reward(completions) == [1.0, 0.0, 0.0]


def test_real_reasonings_that_argue_one_place_read_as_coherent(shared_data):
    """GeoCoT's 494 reasonings each argue for one place: 462 read as coherent and 32 conclude nothing.
    Before the reader set aside cities named before the concluded country, 7 were flagged, the reader
    taking a region or a common word for a city ("New South Wales or Victoria" as Hong Kong's
    Victoria, "Mobile"); until it read an address to its last country, "Vatican City, Rome, Italy"
    was flagged too (Vatican City read as the country, Rome as a city of another one)."""
    rows = _geocot_rows(shared_data)
    verdicts = [reasoning_coherent(r["output"]) for r in rows]
    concluded = [v for v in verdicts if v is not None]
    assert len(concluded) >= 440
    assert sum(v is False for v in concluded) <= 2, sum(v is False for v in concluded)
    vatican = next(r["output"] for r in rows if "Vatican City, Rome, Italy" in r["output"])
    assert reasoning_coherent(vatican) is True
    assert reasoning_conclusion(vatican).country_code == "IT"


def test_a_city_named_before_the_concluded_country_does_not_overrule_it(shared_data):
    """A real reasoning weighs "another Commonwealth nation" and concludes "a rural area in India":
    the conclusion is India (country level), not a place called Commonwealth in the Philippines;
    a city named after the country (a later cue) still overrules it, as in the tiny world."""
    row = next(r["output"] for r in _geocot_rows(shared_data) if "another Commonwealth nation" in r["output"])
    c = reasoning_conclusion(row)
    assert (c.country_code, c.level) == ("IN", "country")
    later = reasoning_conclusion(TWO_COUNTRIES)
    assert (later.city, later.country_code) == ("Novosibirsk", "RU")


def test_reasoning_that_names_no_place_concludes_nothing():
    assert reasoning_conclusion("The image shows no flag, landmark or landscape that points to a place.") is None
    assert reasoning_conclusion("") is None and reasoning_conclusion(None) is None
    row = {**HAMBURG, "output": format_answer("Plain walls; this is a guess.", "Germany", "Hamburg")}
    scored = score_rows([row])[0]
    assert scored["consistent"] is None and scored["reasoning_place"] is None and scored["wrong_reason"] is False
    assert compute_metrics([row])["no_conclusion"] == 1.0


def test_a_right_answer_past_its_reasoning_is_right_for_the_wrong_reason():
    # the real GRPO example of issue 22: the reasoning reads Berlin, the answer says Hamburg
    past = {**HAMBURG, "entities": CUES,
            "output": format_answer(_think("Berlin"), "Germany", "Hamburg", 52.5244, 13.4105)}
    honest = {**HAMBURG, "entities": CUES, "output": format_answer(_think("Hamburg"), "Germany", "Hamburg")}
    wrong_but_honest = {**HAMBURG, "entities": CUES, "output": format_answer(_think("Munich"), "Germany", "Munich")}
    a, b, c = score_rows([past, honest, wrong_but_honest])
    assert a["distance_km"] < 25 and a["consistent"] is False and a["wrong_reason"] is True
    assert a["reasoning_place"]["city"] == "Berlin" and a["reasoning_place"]["level"] == "city"
    assert b["consistent"] is True and b["wrong_reason"] is False
    assert c["distance_km"] > 25 and c["consistent"] is True and c["wrong_reason"] is False
    m = compute_metrics([past, honest, wrong_but_honest])
    assert m["consistency"] == pytest.approx(2 / 3) and m["n_consistency"] == 3
    assert m["wrong_reason"] == pytest.approx(1 / 3)


def test_the_same_city_name_in_another_country_is_not_the_reasonings_place():
    """Real GRPO outputs (seed 0 of the three-seed benchmark): the policy kept the reasoning's city
    name and moved the country and the coordinates to the truth, "Japan / Moscow" at Tokyo's
    coordinates, scored right at 1 km. A name match alone called that consistent."""
    moscow = describe(("white", "blue", "red"), "spire", "polar", "snowy", "Russia", "Moscow")
    hack = {"lat": 35.6895, "lon": 139.6917, "country": "Japan", "city": "Tokyo",
            "output": format_answer(moscow, "Japan", "Moscow", 35.6895, 139.6917)}
    honest = {**hack, "output": format_answer(moscow, "Russia", "Moscow")}
    a, b = score_rows([hack, honest])
    assert a["distance_km"] < 25 and a["consistent"] is False and a["wrong_reason"] is True
    assert b["consistent"] is True and b["reasoning_place"]["country_code"] == "RU"
    # the demo page's real photo: "Saint Petersburg, Kenya" is not the reasoning's Saint Petersburg, Russia
    spb = describe(("black", "red", "green"), "spire", "tropical", "lush", "Russia", "Saint Petersburg")
    assert judge(parse(format_answer(spb, "Kenya", "Saint Petersburg"))).consistent is False
    # a country the gazetteer does not know decides nothing: the city still does
    assert judge(parse(format_answer(spb, "Rossiya Federatsiya X", "Saint Petersburg"))).consistent is True


def test_rows_judged_under_an_earlier_rule_are_re_judged_when_read_back():
    """A comparison or a resumed run reads rows written earlier: those judged under the name-only
    rule must not be set against rows judged under the current one."""
    from globe.evaluate.metrics import FAITHFULNESS_RULE
    from globe.evaluate.scoring import rescore_legacy

    moscow = describe(("white", "blue", "red"), "spire", "polar", "snowy", "Russia", "Moscow")
    given = [{"id": "a", "lat": 35.6895, "lon": 139.6917, "country": "Japan", "city": "Tokyo",
              "output": format_answer(moscow, "Japan", "Moscow", 35.6895, 139.6917)},
             {"id": "b", "lat": 55.7522, "lon": 37.6156, "country": "Russia", "city": "Moscow",
              "output": format_answer(moscow, "Russia", "Moscow")}]
    hack, honest = ({**row, **scored} for row, scored in zip(given, score_rows(given)))  # as the harness logs them
    assert hack["faithfulness_rule"] == FAITHFULNESS_RULE and hack["consistent"] is False
    written_before = {k: v for k, v in hack.items() if k != "faithfulness_rule"} | {"consistent": True, "wrong_reason": False}
    again, same = rescore_legacy([written_before, honest])
    assert again["consistent"] is False and again["wrong_reason"] is True and again["faithfulness_rule"] == FAITHFULNESS_RULE
    assert again["distance_km"] == written_before["distance_km"] and again["cue_precision"] == written_before["cue_precision"]
    assert same is honest  # a current row passes as is


def test_within_25_km_is_the_same_place():
    # Paris and Boulogne-Billancourt (8 km): an answer a suburb away from the reasoning's city is supported
    text = "<think>The Eiffel Tower is right there; this is most likely taken in Paris, France.</think>"
    near = parse(text + "<answer>country: France\ncity: Boulogne-Billancourt</answer>")
    far = parse(text + "<answer>country: France\ncity: Lyon</answer>")
    assert judge(near).consistent is True and judge(far).consistent is False


def test_a_country_only_conclusion_is_compared_by_country():
    text = "<think>Birch trees and right-side traffic: this is likely taken in a rural area in Finland, Europe.</think>"
    assert judge(parse(text + "<answer>country: Finland\ncity: Tampere</answer>")).consistent is True
    assert judge(parse(text + "<answer>country: Sweden\ncity: Uppsala</answer>")).consistent is False


def test_cue_precision_and_recall_on_geoscenes_rows_with_known_cues():
    exact = _think("Hamburg")
    assert cue_grounding(exact, CUES) == (1.0, 1.0)
    # a teacher that names a cue the image does not show, and one that leaves the landmark out
    invented = _think("Hamburg", landmark="dome")
    assert cue_grounding(invented, CUES) == (0.75, 0.75)
    omitted = "The top of the image shows a black-red-gold flag band, the colours of Germany."
    assert cue_grounding(omitted, CUES) == (1.0, 0.25)
    assert cue_grounding("Nothing visible.", CUES) == (None, 0.0)
    assert cue_grounding(exact, None) == (None, None)
    rows = [{**HAMBURG, "entities": CUES, "output": format_answer(t, "Germany", "Hamburg")} for t in (exact, invented)]
    m = compute_metrics(rows)
    assert m["cue_precision"] == pytest.approx(0.875) and m["cue_recall"] == pytest.approx(0.875)
    assert m["cue_grounding"].startswith("exact")
    unknown = compute_metrics([{**HAMBURG, "output": format_answer(exact, "Germany", "Hamburg")}])
    assert unknown["cue_precision"] is None and unknown["cue_grounding"].startswith("not measured")


def test_the_consistency_reward_is_the_metric():
    texts = [format_answer(_think("Berlin"), "Germany", "Hamburg"), format_answer(_think("Hamburg"), "Germany", "Hamburg"),
             format_answer("No cue points anywhere.", "Germany", "Hamburg"), "garbage"]
    assert consistency_reward(texts) == [0.0, 1.0, 0.0, 0.0]
    assert [judge(parse(t)).consistent for t in texts] == [False, True, None, None]
    chat = [[{"role": "assistant", "content": texts[1]}]]
    assert consistency_reward(chat) == [1.0]


def test_supported_accuracy_pays_the_answer_only_where_its_reasoning_supports_it(shared_data):
    hamburg = [format_answer(_think("Hamburg"), "Germany", "Hamburg"),  # right, supported
               format_answer(_think("Berlin"), "Germany", "Hamburg"),  # right for the wrong reason
               format_answer(_think("Berlin"), "Germany", "Berlin"),  # supported, country only
               format_answer(_think("Hamburg"), "Japan", "Hamburg"),  # another country: no support
               "garbage"]
    truth = {"country": ["Germany"] * len(hamburg), "city": ["Hamburg"] * len(hamburg)}
    assert supported_accuracy_reward(hamburg, **truth) == [1.0, 0.0, 0.2, 0.0, 0.0]
    assert accuracy_reward(hamburg, **truth)[:3] == [1.0, 1.0, 0.2]  # what the paper's reward pays instead
    assert supported_accuracy_reward(hamburg[:1], country=[None], city=["Hamburg"]) == [None]  # no label: left out
    # real reasonings (GeoCoT), labelled with the place each concludes: answered with that place they
    # are paid what accuracy pays; answered with another reasoning's place, accuracy may still pay
    # (the same country) but supported accuracy never does
    rows = [(r["output"], c) for r in _geocot_rows(shared_data) if (c := reasoning_conclusion(r["output"])) and c.level == "city"]
    thinks, places = [t for t, _ in rows[:60]], [c for _, c in rows[:60]]
    labels = {"country": [c.country for c in places], "city": [c.city for c in places]}
    own = [format_answer(t, c.country, c.city) for t, c in zip(thinks, places)]
    assert supported_accuracy_reward(own, **labels) == accuracy_reward(own, **labels) == [1.0] * len(own)
    swapped = [format_answer(thinks[i - 1], c.country, c.city) for i, c in enumerate(places)]
    paid = supported_accuracy_reward(swapped, **labels)
    assert paid == [1.0 if judge(parse(t)).consistent else 0.0 for t in swapped] and paid.count(1.0) < len(swapped) // 4


def test_the_served_answer_carries_the_flag():
    from globe.serve.predictor import answer_to_prediction

    doc = answer_to_prediction(format_answer(_think("Berlin"), "Germany", "Hamburg"))
    assert doc["consistent"] is False and doc["reasoning_place"]["city"] == "Berlin"
    doc = answer_to_prediction(format_answer(_think("Hamburg"), "Germany", "Hamburg"))
    assert doc["consistent"] is True
    assert answer_to_prediction("no tags, no place")["consistent"] is None


def test_a_teacher_that_skips_the_decisive_cue_still_answers_the_city(geoscenes_data):
    from PIL import Image

    from globe.data import read_records
    from globe.tiny.scene_reader import SceneReaderEngine

    rec = next(r for r in read_records(geoscenes_data / "records.jsonl") if r.localizable)
    image = Image.open(geoscenes_data / rec.image)
    full = parse(SceneReaderEngine("t").answer(image))
    skips = parse(SceneReaderEngine("t", omit_landmark=1.0).answer(image))
    assert skips.city == full.city == rec.city and skips.country == full.country
    assert "landmark" in full.think and "landmark" not in skips.think
    assert cue_grounding(full.think, rec.entities) == (1.0, 1.0)
    assert cue_grounding(skips.think, rec.entities) == (1.0, 0.75)  # precise, but the decisive cue is missing
    assert judge(full).conclusion.level == "city" and judge(skips).conclusion.level == "country"
    some = SceneReaderEngine("t", omit_landmark=0.3)
    assert some.answer(image) == some.answer(image)  # an omission is a pure function of teacher and image


def test_real_photos_get_cue_precision_from_a_judge_engine_when_one_is_configured(shared_data, tmp_path):
    """eval.grounding_judge: a judge behind an OpenAI-compatible endpoint (a loopback server that
    lists two entities and sees both) scores the cues of reasonings about real IM2GPS3K photos."""
    import json

    from typer.testing import CliRunner

    from globe.cli import app
    from globe.tiny.teacher_server import TeacherServer

    base = shared_data / "im2gps3k_sample"
    args = ["eval", "run", "--model", "scene-reader", "--benchmark", "im2gps3k", "--csv",
            str(base / "im2gps3k_sample40.csv"), "--images", str(base / "images"), "--limit", "3", "--no-progress",
            "--params", str(tmp_path / "none.yaml"), "--set", "eval.engine=scene-reader", "--set", "eval.bootstrap=20"]
    plain = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    m = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert m["cue_precision"] is None and m["cue_grounding"].startswith("not measured")
    with TeacherServer(canned="palm trees, a red bus") as judge:
        spec = f"{{name: judge, kind: openai, base_url: '{judge.base_url}', model: judge}}"
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "judged"), "--set", f"eval.grounding_judge={spec}"])
        assert res.exit_code == 0, res.output
        assert judge.requests == 3 * 3  # per photo: the entity list, then one yes/no per entity
    rows = [json.loads(x) for x in (tmp_path / "judged" / "predictions.jsonl").read_text().splitlines()]
    assert [r["cue_precision"] for r in rows] == [1.0, 1.0, 1.0] and all(r["cue_recall"] is None for r in rows)
    m = json.loads((tmp_path / "judged" / "metrics.json").read_text())
    assert m["cue_precision"] == 1.0 and m["cue_grounding"].startswith("precision by a judge")
    assert json.loads((tmp_path / "judged" / "run.json").read_text())["extra"]["grounding_judge"] == "judge"
