"""Reward scoring throughput: `globe.rewards.accuracy_reward` against a plain released rule.

The plain implementation is GLOBE's released accuracy rule as a reward script would write it:
regexes pull `country:`/`city:` out of `<answer>`, then case-insensitive containment with a 0.7
length ratio; no aliases, no caches. Ours parses with the shared parser (which also reads broken
tags, markdown, JSON and free text), resolves country aliases (USA = United States) and folds
accents in city names. A second comparison adds the format and grounding rewards on each side:
the plain versions each read the text again; ours share one parse per completion.

Two mixes: "globe-format" is what a policy writes after the SFT warm start; "messy" has 10%
answers cut off before </answer> and 5% free text, which the plain rule scores 0 and ours reads.

Both score the same GRPO-shaped batches: `--steps` steps of `--prompts` prompts x `--generations`
completions, each completion a fresh string (new <think> text), so no parse is reused across
completions; the places repeat across steps as ground truths do in training. Each step is timed
in chunks of `--chunk` completions, each chunk `--repeat` times per function, and the fastest
time per chunk counts (the CPU may be shared); the figure is the median over steps. "1st step"
is ours on one step with every name cache empty.

    .venv/bin/python benchmarks/reward_throughput.py
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time

from globe.rewards import accuracy_reward, format_reward, grounding_reward
from globe.rewards._inputs import parsed

ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
COUNTRY_RE = re.compile(r"country:\s*(.*)", re.IGNORECASE)
CITY_RE = re.compile(r"city:\s*(.*)", re.IGNORECASE)


def plain_match(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b or (a not in b and b not in a):
        return False
    return min(len(a), len(b)) / max(len(a), len(b)) >= 0.7


def plain_accuracy_reward(completions, country, city, **kwargs):
    """The released rule, written the plain way."""
    rewards = []
    for text, gt_country, gt_city in zip(completions, country, city):
        m = ANSWER_RE.search(text)
        body = m.group(1) if m else text
        c, y = COUNTRY_RE.search(body), CITY_RE.search(body)
        pred_country, pred_city = (c.group(1) if c else ""), (y.group(1) if y else "")
        if not plain_match(pred_country, gt_country):
            rewards.append(0.0)
        else:
            rewards.append(1.0 if plain_match(pred_city, gt_city) else 0.2)
    return rewards


FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
ENTITIES = ["flag", "tram"]


def plain_text_rewards(completions, country, city, **kwargs):
    """The released accuracy, format and grounding rules, each reading the text itself."""
    accuracy = plain_accuracy_reward(completions, country, city)
    fmt = [1.0 if FORMAT_RE.fullmatch(text.strip()) else 0.0 for text in completions]
    grounding = []
    for text in completions:
        m = THINK_RE.search(text)
        think = m.group(1).lower() if m else ""
        grounding.append(sum(e in think for e in ENTITIES) / len(ENTITIES) if think else 0.0)
    return accuracy, fmt, grounding


def ours_text_rewards(completions, country, city, **kwargs):
    """Ours: the three rewards share one parse per completion."""
    entities = [ENTITIES] * len(completions)
    return (accuracy_reward(completions, country=country, city=city), format_reward(completions),
            grounding_reward(completions, entities=entities))


ALIASES = {"United States": "USA", "United Kingdom": "UK", "Germany": "Deutschland", "Netherlands": "Holland",
           "Czechia": "Czech Republic", "South Korea": "Republic of Korea", "Ivory Coast": "Côte d'Ivoire"}
WORDS = ("sign", "flag", "roof", "tram", "palm", "river", "church", "market", "bus", "mountain", "script",
         "pagoda", "bridge", "taxi", "road", "sand", "snow", "temple", "harbour", "tower")


RATIOS: dict[str, float] = {}  # accuracy-only plain/ours per mix, filled by run_mix
MIXES = {
    # (share in GLOBE's format, share cut off before </answer>); the rest is free text
    "globe-format": (1.0, 0.0),  # a policy after the SFT warm start
    "messy": (0.85, 0.10),       # early GRPO or an un-tuned model: truncations and free text
}


def make_step(rng: random.Random, places, prompts: int, generations: int, mix: str):
    """One GRPO step: completions (fresh strings) and the ground-truth columns, G per prompt."""
    formatted, truncated = MIXES[mix]
    completions, countries, cities = [], [], []
    for _ in range(prompts):
        place = rng.choice(places)
        for _ in range(generations):
            guess = place if rng.random() < 0.5 else rng.choice(places)
            name = ALIASES.get(guess.country, guess.country) if rng.random() < 0.3 else guess.country
            city = guess.city if rng.random() < 0.7 else rng.choice(places).city
            think = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120)))
            roll = rng.random()
            if roll < formatted:
                text = f"<think>{think}</think>\n<answer>country: {name}\ncity: {city}</answer>"
            elif roll < formatted + truncated:
                text = f"<think>{think}</think>\n<answer>country: {name}\ncity: {city}"
            else:
                text = f"{think}. The photo was most likely taken in {city}, {name}."
            completions.append(text)
            countries.append(place.country)
            cities.append(place.city)
    return completions, countries, cities


def timed(fn, step) -> tuple[float, list]:
    completions, countries, cities = step
    start = time.perf_counter()
    out = fn(completions, country=countries, city=cities)
    return time.perf_counter() - start, out


def fastest(fn, step, repeat: int, chunk: int) -> tuple[float, list]:
    """Time `fn` over the step in chunks, each `repeat` times; sum the fastest time per chunk.

    On a shared CPU a preemption costs milliseconds; short chunks and the minimum keep such
    bursts out of the figure for both implementations alike.
    """
    total, out = 0.0, []
    for i in range(0, len(step[0]), chunk):
        part = tuple(column[i:i + chunk] for column in step)
        best = float("inf")
        for _ in range(repeat):
            parsed.cache_clear()  # every completion is new in a real step
            t, result = timed(fn, part)
            best = min(best, t)
        total += best
        out += result
    return total, out


def clear_name_caches() -> None:
    """Forget every cached name comparison and parse (the geography tables stay loaded)."""
    from globe import scorer
    from globe.answer import strict, values

    for fn in (scorer.score, scorer.country_match, scorer.city_match, scorer._code, scorer._fold,
               strict._fast_value, strict._strict_tail, values.country_code, parsed):
        fn.cache_clear()


def run_mix(mix: str, args, places) -> None:
    rng = random.Random(args.seed)
    steps = [make_step(rng, places, args.prompts, args.generations, mix) for _ in range(args.steps)]
    per_step = args.prompts * args.generations
    clear_name_caches()
    first, _ = timed(accuracy_reward, steps[0])
    plain_t, ours_t, plain_all_t, ours_all_t = [], [], [], []
    differ = higher = 0
    for step in steps:
        t_plain, r_plain = fastest(plain_accuracy_reward, step, args.repeat, args.chunk)
        t_ours, r_ours = fastest(accuracy_reward, step, args.repeat, args.chunk)
        plain_t.append(t_plain)
        ours_t.append(t_ours)
        plain_all_t.append(fastest(plain_text_rewards, step, args.repeat, args.chunk)[0])
        ours_all_t.append(fastest(ours_text_rewards, step, args.repeat, args.chunk)[0])
        differ += sum(a != b for a, b in zip(r_plain, r_ours))
        higher += sum(b > a for a, b in zip(r_plain, r_ours))

    def us(seconds: float) -> str:
        return f"{1e6 * seconds / per_step:7.2f}"

    plain, ours = statistics.median(plain_t), statistics.median(ours_t)
    plain_all, ours_all = statistics.median(plain_all_t), statistics.median(ours_all_t)
    total = args.steps * per_step
    RATIOS[mix] = plain / ours
    print(f"{mix:13s} {us(plain)} {us(ours)} {plain / ours:6.2f}  | {us(plain_all)} {us(ours_all)} "
          f"{plain_all / ours_all:6.2f}  | {us(first)}  | {differ:4d}/{total} ({higher} higher)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--generations", type=int, default=16)
    ap.add_argument("--places", type=int, default=300, help="distinct ground-truth cities (most populous first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5, help="timings per chunk and function; the fastest counts")
    ap.add_argument("--chunk", type=int, default=32, help="completions per timed call")
    args = ap.parse_args()

    from globe.geo import cities, normalize_country

    normalize_country("France"), normalize_country("Atlantis")  # load country tables and translations first
    places = cities(min_population=200_000)[: args.places]
    print(f"{args.steps} GRPO-shaped steps x {args.prompts * args.generations} completions "
          f"({args.prompts} prompts x G={args.generations}), {len(places)} places, seed {args.seed}; "
          f"microseconds per completion, median step")
    print(f"{'':13s} {'accuracy only':^22s}  | {'accuracy+format+grounding':^22s}  | {'ours':>7s}  |")
    print(f"{'mix':13s} {'plain':>7s} {'ours':>7s} {'ratio':>6s}  | {'plain':>7s} {'ours':>7s} {'ratio':>6s}  | "
          f"{'1st step':>7s} | rewards that differ")
    for mix in MIXES:
        run_mix(mix, args, places)
    print("ratio = plain/ours: >= 1 means ours is at least as fast. '1st step' is ours on one step with every "
          "name cache empty. Rewards differ where ours resolves aliases (USA = United States), truncated "
          "tags and free text; ours is never lower.")
    met = RATIOS["globe-format"] >= 1.0
    print(f"target: at least as fast as the plain rule on GLOBE-format text: {RATIOS['globe-format']:.2f}x, "
          f"{'met' if met else 'MISSED'} (messy text is slower by design: it parses what the plain rule scores 0); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
