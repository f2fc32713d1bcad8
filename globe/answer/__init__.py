"""The one answer parser: rewards, verification, evaluation and serving all read model text here.

GLOBE's policy writes `<think>…</think><answer>country: X\ncity: Y</answer>` (we add optional
`lat:`/`lon:` lines). Teachers, baselines and half-trained policies write everything else, so
`parse` reads, in this order, and takes each field from the first reader that finds it:

1. the answer region: `<answer>…</answer>`, or what follows an unclosed `<answer>`, or the text
   after `</think>`, or the whole text when there are no tags at all;
2. JSON in that region (```json fences or a bare object; Nominatim-style `address`, `coordinates`
   as a dict, a list or a string);
3. `key: value` lines (`country:`, `**Country:** France`, `Latitude: 48.85 / Longitude: 2.35`,
   `48.8566° N, 2.3522° E`, `location: Paris, France`);
4. free text ("…most likely taken in Hanoi, Vietnam, Asia."): the concluding sentence is found,
   capitalised word runs in it are offered to `globe.geo.normalize_country`, and the run just
   before the country in a "City, Country" chain is the city. Continents and regions are never
   countries or cities, because `normalize_country` returns None for them and a small list of
   region words rules them out as cities.

`parse` never raises: a reward function that throws kills a GRPO run at step 9,000. The strict
GLOBE format is judged separately (`format_ok`) so that a well-placed answer in a broken format can
still be scored by evaluation while the format reward stays strict.

Modules: `result` (Answer), `tags`, `strict` (the fast reader for GLOBE's own format),
`structured` (lines, JSON), `coordinates`, `places` (free text), `values`, `reader` (parse).
"""

from globe.answer.coordinates import parse_coordinates
from globe.answer.reader import parse
from globe.answer.result import Answer, format_answer
from globe.answer.tags import FORMAT_RE, format_ok

__all__ = ["FORMAT_RE", "Answer", "format_answer", "format_ok", "parse", "parse_coordinates"]
