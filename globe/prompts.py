"""The prompts every stage shares: the policy/teacher instruction and the localizability judge.

The geolocation prompt follows the GLOBE paper: reason about visible cues inside `<think>`, then
answer `country:` and `city:` inside `<answer>`. We add optional `lat:`/`lon:` lines, which the
shared parser reads when present (the paper names coordinate prediction as future work).
"""

from __future__ import annotations

GEO_SYSTEM = "You are a geolocation expert. You locate photos by reasoning about the visual cues they show."

GEO_PROMPT = (
    "Where was this photo taken? First think about the visible cues (landmarks, architecture, "
    "vegetation, climate, signs, flags, vehicles) inside <think> </think>. Then give your final answer "
    "inside <answer> </answer> exactly as:\n"
    "country: <country name>\ncity: <city name>\nlat: <latitude>\nlon: <longitude>\n"
    "The lat and lon lines are optional."
)

LOCALIZABILITY_PROMPT = (
    "Can the location of this photo be determined from its visual content? "
    "Consider whether it shows distinctive cues (landmarks, signs, architecture, landscape). "
    "Answer with a single word: yes or no."
)


def localizability_prompt(reasoning: str | None = None) -> str:
    """The judge prompt, optionally conditioned on a reasoning trace (the reward model's input)."""
    if not reasoning:
        return LOCALIZABILITY_PROMPT
    return f"Reasoning: {reasoning.strip()}\n\n{LOCALIZABILITY_PROMPT}"
