"""`Answer`, what a model said, and `format_answer`, GLOBE's format written out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)


class Answer:
    """What a model said. Every field may be None; `raw` is the text exactly as given.

    `source` says which reader found the place: "lines", "json", "free_text" or "none". `place` is
    the whole place the answer names when it says more than a city and a country ("Chelsea Market,
    New York City, USA", a JSON address with its state): the geocoder reads every component.
    `refused` names the fields whose written value was not a name (markup, a bare number, a country
    in `city:`; see `globe.answer.refuse`): they are None here and the answer is not `format_ok`.
    """

    think: str | None = None
    answer_text: str | None = None
    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    localizable: bool | None = None
    format_ok: bool = False
    raw: str = ""
    source: str = "none"
    place: str | None = None
    refused: tuple[str, ...] = ()

    @property
    def has_coordinates(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def has_place(self) -> bool:
        """True when there is anything to score: coordinates, a country or a city."""
        return self.has_coordinates or bool(self.country) or bool(self.city)


def format_answer(
    think: str, country: str | None, city: str | None, lat: float | None = None, lon: float | None = None
) -> str:
    """Write an answer in GLOBE's format (the inverse of `parse` for well-formed text).

    >>> format_answer("Eiffel Tower.", "France", "Paris", 48.8584, 2.2945)
    '<think>Eiffel Tower.</think>\\n<answer>country: France\\ncity: Paris\\nlat: 48.8584\\nlon: 2.2945</answer>'
    """
    lines = [f"country: {country or ''}".rstrip(), f"city: {city or ''}".rstrip()]
    if lat is not None and lon is not None:
        lines += [f"lat: {float(lat):.4f}", f"lon: {float(lon):.4f}"]
    return f"<think>{think.strip()}</think>\n<answer>" + "\n".join(lines) + "</answer>"
