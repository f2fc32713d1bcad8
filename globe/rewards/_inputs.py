"""What every reward function needs: completion text, parsed answers and dataset columns.

TRL calls each reward function with `completions` (strings, or chat lists such as
`[{"role": "assistant", "content": "..."}]` whose content may itself be a list of typed parts)
and every dataset column as a keyword list, one item per completion. Several reward functions
parse the same completions in one GRPO step, so each completion is parsed once (`parsed`).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from globe.answer import Answer, parse
from globe.scorer import as_float  # noqa: F401  (re-exported: the reward functions' name for it)


def completion_text(completion: Any) -> str:
    """The assistant text of one completion, whatever shape TRL passed it in."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        turns = [c for c in completion if isinstance(c, dict)]
        assistant = [c for c in turns if c.get("role", "assistant") == "assistant"] or turns
        return "".join(_content_text(c.get("content")) for c in assistant)
    return "" if completion is None else str(completion)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": "..."}]
        return "".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


_RECENT: dict[int, Answer] = {}
_RECENT_MAX = 8192


def parsed(text: str) -> Answer:
    """`globe.answer.parse`, remembered for the step: accuracy, format, grounding, geodesic and
    localizability all read the same completions.

    TRL hands every reward function the same string objects, so the memo is keyed by identity:
    the Answer keeps the string (`raw`), so its id cannot be reused while it is remembered, and no
    long completion is hashed just to find its parse. The Answer is shared: treat it as read-only.
    """
    hit = _RECENT.get(id(text))
    if hit is not None and hit.raw is text:
        return hit
    answer = parse(text)
    if answer.raw is text:  # always, for str input
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.clear()
        _RECENT[id(text)] = answer
    return answer


parsed.cache_clear = _RECENT.clear  # type: ignore[attr-defined]


def answers(completions: Sequence[Any]) -> list[Answer]:
    return [parsed(completion_text(c)) for c in completions]


def column(kwargs: dict[str, Any], name: str, n: int, reward: str) -> list[Any]:
    """Dataset column `name`, one value per completion; a clear error when it is missing."""
    if name not in kwargs or kwargs[name] is None:
        given = ", ".join(sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric"))) or "none"
        raise KeyError(f"the {reward} reward needs a dataset column {name!r} (columns given: {given})")
    values = kwargs[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        values = [values] * n
    if len(values) != n:
        raise ValueError(f"the {reward} reward got {len(values)} values of column {name!r} for {n} completions")
    return list(values)


def as_list(value: Any) -> list[str]:
    """An entities cell as a list of strings: a list, a JSON list in a string, one string, or None."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = None
            if isinstance(loaded, list):
                return [str(v) for v in loaded if v is not None and str(v).strip()]
        return [text] if text else []
    try:
        return [str(v) for v in value if v is not None and str(v).strip()]
    except TypeError:
        return [str(value)]


def labelled(completions: Sequence[Any], kwargs: dict[str, Any], reward: str) -> list[tuple[Answer, str, str | None] | None]:
    """Per completion, (its parsed answer, the true country, the true city or None), or None when
    the sample has no ground-truth country: the rewards that score against the labels return None
    there (TRL leaves it out) rather than 0. Needs the `country` column; `city` is optional."""
    n = len(completions)
    countries = column(kwargs, "country", n, reward)
    cities = column(kwargs, "city", n, reward) if kwargs.get("city") is not None else [None] * n
    return [None if not country else
            (parsed(c if type(c) is str else completion_text(c)), str(country), None if city is None else str(city))
            for c, country, city in zip(completions, countries, cities)]
