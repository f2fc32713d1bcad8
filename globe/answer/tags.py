"""GLOBE's tags: the strict format test and the regions (<think>, <answer>) of any text."""

from __future__ import annotations

import re

# The strict format: the R1-style tag regex GLOBE's format reward uses, on the whole string.
FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
_JOIN_RE = re.compile(r"</think>\s*<answer>")
_TAG_RE = re.compile(r"<(/?)(think|answer)>", re.IGNORECASE)


def format_ok(text: str) -> bool:
    """`FORMAT_RE.fullmatch(text) is not None`, without its lazy scans over a long <think>.

    Stripped of outer whitespace the text must be "<think>" A "</think>" ws "<answer>" B
    "</answer>" for any A and B, i.e. start and end with those tags and join them somewhere.
    """
    s = text.strip()
    return s.startswith("<think>") and s.endswith("</answer>") and _JOIN_RE.search(s, 7, len(s) - 9) is not None


def regions(text: str) -> tuple[str | None, str | None, str]:
    """(think, answer_text, region to read the place from).

    think: from the first <think> to the next </think> (or <answer>, or the end);
    answer: from the first <answer> to the next </answer> (or the end). The region is the answer,
    else the text after the last </think>, else the whole text without tags.
    """
    tags = [(m.start(), m.end(), bool(m.group(1)), m.group(2).lower()) for m in _TAG_RE.finditer(text)]

    def span(name: str, stops: tuple[tuple[bool, str], ...]) -> str | None:
        for i, (_, end, closing, tag) in enumerate(tags):
            if tag == name and not closing:
                stop = next((t[0] for t in tags[i + 1:] if (t[2], t[3]) in stops), len(text))
                return text[end:stop].strip()
        return None

    think = span("think", ((True, "think"), (False, "answer")))
    answer = span("answer", ((True, "answer"),))
    if answer:
        return think, answer, answer
    last_close = max((t[1] for t in tags if t[2] and t[3] == "think"), default=-1)
    if last_close >= 0:
        after = text[last_close:].strip()
        if after and not any(t[0] >= last_close for t in tags):
            return think, answer, after
    return think, answer, _TAG_RE.sub(" ", text).strip() if tags else text.strip()
