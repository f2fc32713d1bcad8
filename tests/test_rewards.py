"""globe.rewards: TRL-signature rewards, the released accuracy rule, counted judge failures."""

from __future__ import annotations

import functools
import json
import math
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from globe.answer import format_answer
from globe.config import REWARD_NAMES, RewardsGroup, load_params
from globe.engines.base import JudgeResult, Request
from globe.rewards import (
    RewardFailure,
    accuracy_reward,
    build_reward_funcs,
    format_reward,
    geodesic_reward,
    grounding_reward,
    make_localizability_reward,
    string_match,
)
from globe.rewards.accuracy import score

# TRL passes these alongside the dataset columns; every reward must accept and ignore them.
TRL_EXTRAS = {"prompts": ["p"], "completion_ids": [[1]], "trainer_state": None, "log_extra": print}


def globe(country, city, think="cues", lat=None, lon=None):
    return format_answer(think, country, city, lat, lon)


def chat(text):
    return [{"role": "assistant", "content": text}]


def released_rule(pred_country, pred_city, country, city):
    """The released rule written out independently: containment + length ratio >= 0.7, ignoring case."""
    def match(a, b):
        a, b = (a or "").strip().lower(), (b or "").strip().lower()
        return bool(a and b) and (a in b or b in a) and min(len(a), len(b)) / max(len(a), len(b)) >= 0.7

    return 0.0 if not match(pred_country, country) else (1.0 if match(pred_city, city) else 0.2)


# --- accuracy


def test_accuracy_released_values_and_aliases():
    completions = [
        globe("France", "Paris"),          # both
        globe("France", "Lyon"),           # country only
        globe("Spain", "Paris"),           # city without country counts for nothing
        globe("USA", "New York"),          # alias: the released rule would give 0
        chat(globe("United Kingdom", "London")),  # chat-format completion
        "no answer at all",
    ]
    rewards = accuracy_reward(
        completions,
        country=["France", "France", "France", "United States", "UK", "Japan"],
        city=["Paris", "Paris", "Paris", "New York", "London", "Tokyo"],
        **TRL_EXTRAS,
    )
    assert rewards == [1.0, 0.2, 0.0, 1.0, 1.0, 0.0]
    assert score("USA", "New York", "United States", "New York", aliases=False) == 0.0


def test_accuracy_length_ratio_boundary():
    assert string_match("Nairobi", "nairobi ke")  # 7/10 = 0.7: inclusive
    assert not string_match("Nairobi", "Nairobi Ken")  # 7/11 = 0.64
    assert not string_match("Paris", "Paris 15e")  # 5/9
    assert not string_match("York", "New York")  # 4/8
    assert not string_match("", "Paris") and not string_match(None, "Paris")


def test_accuracy_aliases_fold_city_names_and_ask_the_gazetteer_as_evaluation_does():
    assert score("Switzerland", "Zurich", "Switzerland", "Zürich") == 1.0
    assert score("Switzerland", "Zurich", "Switzerland", "Zürich", aliases=False) == 0.2
    assert score("Ukraine", "Kiev", "Ukraine", "Kyiv") == 0.2  # without the gazetteer: two names
    assert score("Ukraine", "Kiev", "Ukraine", "Kyiv", gazetteer=True) == 1.0
    assert score("Ukraine", "Odesa", "Ukraine", "Kyiv", gazetteer=True) == 0.2
    # the training reward scores the pair as evaluation's city_acc does
    assert accuracy_reward([globe("Ukraine", "Kiev")], country=["Ukraine"], city=["Kyiv"]) == [1.0]


def test_accuracy_missing_ground_truth_and_columns():
    assert accuracy_reward([globe("France", "Paris")], country=[None], city=[None]) == [None]
    assert accuracy_reward([globe("France", "Paris")], country=["France"]) == [0.2]  # no city column
    with pytest.raises(KeyError, match="accuracy reward needs a dataset column 'country'"):
        accuracy_reward([globe("France", "Paris")], city=["Paris"])


_PLACES = ["France", "france", "United States", "USA", "U.S.", "Paris", "Paris 15e", "New York",
           "New York City", "York", "Kyiv", "Kiev", "Germany", "Deutschland", "", "Korea", "South Korea"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_PLACES), st.sampled_from(_PLACES), st.sampled_from(_PLACES[:-1]), st.sampled_from(_PLACES))
def test_accuracy_string_rule_is_the_released_rule_and_aliases_only_add(pc, pcity, country, city):
    strict = score(pc or None, pcity or None, country, city or None, aliases=False)
    assert strict == released_rule(pc, pcity, country, city)
    assert score(pc or None, pcity or None, country, city or None, aliases=True) >= strict


# --- format and grounding


def test_format_reward_is_strict():
    ok = globe("France", "Paris")
    assert format_reward([ok, chat(ok), "  " + ok + "\n", ok[:-9], "Paris, France", "<answer>x</answer>"]) == [
        1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_grounding_share_of_entities_in_think():
    think = "A RED FLAG with a yellow star, and a pagoda roof."
    completions = [globe("China", "Beijing", think=think)] * 4 + ["no tags: red flag, pagoda"]
    rewards = grounding_reward(
        completions,
        entities=[["red flag", "pagoda", "tram", "palm tree"], '["yellow star"]', None, [], ["red flag"]],
    )
    assert rewards == [0.5, 1.0, 0.0, 0.0, 0.0]
    with pytest.raises(KeyError, match="'entities'"):
        grounding_reward(completions)


# --- geodesic


def test_geodesic_is_exp_of_great_circle_error():
    km_per_degree = 6371.0 * math.pi / 180  # on the equator, 1 degree of longitude
    rewards = geodesic_reward(
        [globe("X", "Y", lat=0.0, lon=1.0), globe("X", "Y", lat=0.0, lon=0.0), "nothing", globe("A", "B", lat=1, lon=1)],
        lat=[0.0, 0.0, 0.0, None], lon=[0.0, 0.0, 0.0, None], scale_km=100.0,
    )
    assert rewards[0] == pytest.approx(math.exp(-km_per_degree / 100.0), rel=1e-9)
    assert rewards[1:] == [1.0, 0.0, None]


def test_geodesic_geocodes_named_places_when_no_coordinates():
    paris = (48.8566, 2.3522)
    near, capital, far = geodesic_reward(
        [globe("France", "Paris"), globe("France", "Atlantis"), globe("Japan", "Tokyo")],
        lat=[paris[0]] * 3, lon=[paris[1]] * 3,
    )
    assert near > 0.99 and capital > 0.99  # an unknown French city falls back to the capital
    assert far < 1e-4


# --- localizability


class ScriptedJudge:
    """An Engine that answers from the prompt: p_yes from the reasoning, errors where told to."""

    name = "scripted"

    def __init__(self, fail_every=0, raise_error=False):
        self.fail_every, self.raise_error = fail_every, raise_error
        self.seen: list[Request] = []

    def generate(self, requests, sampling):  # pragma: no cover - not used by the reward
        raise NotImplementedError

    def judge(self, requests, choices=("yes", "no")):
        if self.raise_error:
            raise ConnectionError("judge server unreachable")
        out = []
        for r in requests:
            self.seen.append(r)
            if self.fail_every and len(self.seen) % self.fail_every == 0:
                out.append(JudgeResult(error="timeout"))
            else:
                out.append(JudgeResult(p_yes=0.9 if "famous" in r.prompt else 0.1))
        return out


def test_localizability_scores_p_yes_and_passes_image_and_reasoning(tmp_path):
    path = tmp_path / "img.png"
    Image.new("RGB", (64, 48), "red").save(path)  # above globe.images.MIN_SIDE, so opened as is
    judge = ScriptedJudge()
    reward = make_localizability_reward(judge, max_failure_share=0.5, min_calls=4)
    assert reward.__name__ == "localizability"
    rewards = reward([globe("F", "P", think="A famous landmark."), chat(globe("F", "P", think="A wall."))],
                     image=[str(path), Image.new("RGB", (4, 4))], **TRL_EXTRAS)
    assert rewards == [0.9, 0.1]
    assert isinstance(judge.seen[0].image, Image.Image) and judge.seen[0].image.size == (64, 48)
    assert "A famous landmark." in judge.seen[0].prompt and "yes or no" in judge.seen[0].prompt
    assert (reward.calls, reward.failures, reward.failure_share) == (2, 0, 0.0)


def test_localizability_counts_failures_as_none_then_aborts():
    logged = []
    reward = make_localizability_reward(ScriptedJudge(fail_every=3), max_failure_share=0.3, min_calls=12)
    batch = [globe("F", "P", think=f"famous {i}") for i in range(6)]
    first = reward(batch, image=[None] * 6, log_metric=lambda k, v: logged.append((k, v)))
    assert first == [0.9, 0.9, None, 0.9, 0.9, None]  # never a silent 0
    assert (reward.calls, reward.failures) == (6, 2)
    assert logged == [("localizability/judge_failure_share", pytest.approx(2 / 6))]
    with pytest.raises(RewardFailure, match=r"failed 4 of 12 calls \(33.3% > max_failure_share 30.0%\).*timeout"):
        reward([globe("F", "P", think=f"famous {i}") for i in range(6, 12)], image=[None] * 6)


def test_localizability_judges_each_distinct_pair_once_and_remembers_it():
    judge = ScriptedJudge()
    reward = make_localizability_reward(judge)
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    group = [globe("F", "P", think="famous")] * 3 + [globe("F", "P", think="a wall")]
    assert reward(group + group, image=[red] * 4 + [blue] * 4) == [0.9, 0.9, 0.9, 0.1] * 2
    assert len(judge.seen) == 4  # 2 reasonings x 2 images; the duplicates of a group are not re-judged
    assert reward(group, image=[Image.new("RGB", (8, 8), "red")] * 4) == [0.9, 0.9, 0.9, 0.1]
    assert len(judge.seen) == 4  # the same pixels and reasoning a step later: remembered
    assert reward.metrics()["judge_forward_requests"] == 4.0 and reward.calls == 12


def test_localizability_judge_exception_is_counted():
    reward = make_localizability_reward(ScriptedJudge(raise_error=True), max_failure_share=1.0)
    assert reward(["a", "b"], image=None) == [None, None]
    assert reward.failures == 2 and "ConnectionError" in reward.last_error
    assert reward.metrics() == {"judge_calls": 2.0, "judge_failures": 2.0, "judge_failure_share": 1.0,
                                "judge_forward_requests": 2.0}


class _JudgeHandler(BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible judge: P(yes)=0.8 for "famous" reasoning, HTTP 500 for "broken"."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if b"broken" in body:
            self.send_response(500)
            self.end_headers()
            return
        p = 0.8 if b"famous" in body else 0.3
        top = [{"token": "yes", "logprob": math.log(p)}, {"token": "no", "logprob": math.log(1 - p)}]
        reply = {"choices": [{"message": {"role": "assistant", "content": "yes"},
                              "logprobs": {"content": [{"token": "yes", "logprob": math.log(p), "top_logprobs": top}]}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_localizability_over_a_real_http_judge_counts_server_errors():
    from globe.engines.openai_compat import OpenAIEngine

    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = OpenAIEngine(f"http://127.0.0.1:{server.server_port}/v1", "judge", api_key="x", retries=0, timeout_s=10)
        reward = make_localizability_reward(judge, max_failure_share=0.4, min_calls=4)
        thoughts = ["A famous tower.", "Plain road.", "broken", "A famous bridge."]
        rewards = reward([globe("F", "P", think=t) for t in thoughts], image=[Image.new("RGB", (8, 8))] * 4)
        assert rewards[0] == pytest.approx(0.8) and rewards[1] == pytest.approx(0.3)
        assert rewards[2] is None and rewards[3] == pytest.approx(0.8)
        assert (reward.calls, reward.failures) == (4, 1) and "500" in reward.last_error
        with pytest.raises(RewardFailure, match="failed 3 of 6 calls"):
            reward([globe("F", "P", think="broken")] * 2, image=[None, None])
    finally:
        server.shutdown()
        server.server_close()


# --- params -> reward funcs


def test_build_reward_funcs_from_params():
    params = load_params(None)
    funcs, weights = build_reward_funcs(params.rewards, judge=ScriptedJudge())
    names = [getattr(f.func if isinstance(f, functools.partial) else f, "__name__") for f in funcs]
    assert names == list(params.rewards.weights) == ["accuracy", "localizability", "grounding", "format"]
    assert weights == [1.0, 0.5, 0.2, 1.0]
    pickle.dumps([f for f in funcs if f.__name__ != "localizability"])  # plain rewards stay picklable


def test_every_reward_name_builds_the_function_of_that_name():
    funcs, _ = build_reward_funcs({"weights": dict.fromkeys(REWARD_NAMES, 1.0)}, judge=ScriptedJudge())
    assert [f.__name__ for f in funcs] == list(REWARD_NAMES)


def test_build_reward_funcs_geodesic_scale_and_errors():
    group = RewardsGroup(weights={"geodesic": 0.5, "format": 1.0}, geodesic_scale_km=100.0)
    (geodesic, fmt), weights = build_reward_funcs(group)
    assert geodesic.__name__ == "geodesic" and fmt.__name__ == "format" and weights == [0.5, 1.0]
    assert geodesic([globe("X", "Y", lat=0, lon=1)], lat=[0], lon=[0])[0] == pytest.approx(math.exp(-1.11195), rel=1e-4)
    with pytest.raises(ValueError, match="unknown reward 'acuracy'"):
        build_reward_funcs({"weights": {"acuracy": 1.0}})
    with pytest.raises(ValueError, match="no judge was given"):
        build_reward_funcs({"weights": {"localizability": 0.5}})


@pytest.mark.parametrize("module", ["globe.rewards.accuracy", "globe.rewards.format", "globe.rewards.grounding",
                                    "globe.rewards.geodesic", "globe.rewards.localizability", "globe.rewards.recipe",
                                    "globe.rewards.coherence", "globe.answer.conclusion"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_the_training_rewards_score_a_pair_as_evaluation_does():
    """The rewards keep their cheap path (the strict reader, caches), but place and match an answer
    with the one scorer: the geodesic reward's point is evaluation's stated-protocol point, and the
    accuracy reward is `globe.scorer.score` without the gazetteer lookup."""
    import math

    from globe.evaluate.metrics import score_rows
    from globe.rewards import accuracy_reward, geodesic_reward
    from globe.scorer import score

    texts = ["<think>.</think><answer>country: France\ncity: Paris</answer>",
             "<think>.</think><answer>country: France\ncity: Paris\nlat: 10.0\nlon: 20.0</answer>",
             "<think>.</think><answer>country: USA\ncity: Charleston, SC</answer>",
             "<think>.</think><answer>country: Japan\ncity: Atlantis</answer>", "no idea"]
    truth = (48.8566, 2.3522)
    rewards = geodesic_reward(texts, lat=[truth[0]] * len(texts), lon=[truth[1]] * len(texts), scale_km=750.0)
    rows = score_rows([{"id": i, "lat": truth[0], "lon": truth[1], "output": t} for i, t in enumerate(texts)])
    for reward, row in zip(rewards, rows):
        km = row["stated"]["distance_km"]
        assert reward == pytest.approx(0.0 if math.isinf(km) else math.exp(-km / 750.0))
    acc = accuracy_reward(texts, country=["France"] * len(texts), city=["Paris"] * len(texts))
    assert acc == [score(r["pred_country"], r["pred_city"], "France", "Paris") for r in rows]
