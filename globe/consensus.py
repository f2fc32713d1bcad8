"""Consensus geolocation: N sampled answers for one photo -> one answer, its alternatives, a confidence.

A model that is sure of a place names it in most of its sampled reasonings; one that guesses
scatters them. So we sample N reasonings, place each with the one scorer (the caller does that:
`globe.scorer.locate`), and vote on the globe:

1. **Points.** Sample i is a point (lat, lon) or None: unparseable, or naming no place the scorer
   can put on the map. Unplaced samples stay in N: they are votes for "I don't know".
2. **Clusters: densest ball first.** The located sample with the most located samples within
   `radius_km` of it (itself included) is a centre; those samples form a cluster and leave the
   pool; repeat until the pool is empty. Why not single-linkage agglomeration: it chains, so
   samples spread along a coast merge into one "cluster" far wider than the radius and its share
   overstates the agreement. Every member of a ball is within `radius_km` of its centre, so a
   cluster's share means "this many samples agree to within the radius", the same radius the
   metric uses (25 km: city level). The first ball is the largest, by construction.
3. **Ties** (two balls of equal size, or an 8-way split): the tighter one wins (smaller summed
   distance from the centre to its members), then the one holding the earliest sample. The vote
   is deterministic and independent of anything but the samples' order.
4. **Answer = the winning cluster's medoid**: the member with the smallest summed great-circle
   distance to the other members (a real sample, so it comes with its own country, city and
   reasoning; no averaged coordinates that no sample said). Ties: the earliest sample.
5. **Agreement = the winner's size / N**, in [0, 1]. Unplaced samples count in N, so a model that
   often fails to answer agrees less; with nothing located the answer is None and the agreement 0.
6. **Confidence = the agreement, calibrated.** Agreement is not yet a probability: a model whose
   errors are systematic (it confuses two cities' landmarks) agrees with itself on wrong answers
   too, and the tiny models' 8 samples agreed 20-30 points above their accuracy. A `Calibration`
   fitted on a labelled dev split (`globe eval calibrate`, never the test set) maps agreement to
   the share of answers within 25 km by isotonic regression; without one the confidence is the
   raw agreement.

All distances are `globe.geo.haversine_km` (never raw longitude differences), so the antimeridian
(179.9 E next to 179.9 W) and the poles (every longitude meets there) need no special case.
Cost: O(N^2) distances per photo, nothing for the N <= 64 a request may ask.

`consensus(texts)` does the whole job for raw model outputs: parse each with `globe.answer.parse`,
place it with `globe.scorer.locate` (evaluation votes under the headline "names" protocol, the
server under the "stated" one its answers use), vote, and describe every cluster as a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_RADIUS_KM = 25.0

Point = tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Cluster:
    """Samples that agree to within the radius: indices into the sample list, ascending."""

    members: tuple[int, ...]
    medoid: int  # the sample that answers for the cluster
    share: float  # len(members) / all samples (unplaced included)
    radius_km: float  # largest distance from the medoid to a member


@dataclass(frozen=True, slots=True)
class Vote:
    """The outcome over `n` samples: clusters best first, and the confidence in the first."""

    n: int
    clusters: tuple[Cluster, ...]

    @property
    def winner(self) -> Cluster | None:
        return self.clusters[0] if self.clusters else None

    @property
    def agreement(self) -> float:
        """The winner's share of all n samples; 0.0 when no sample was located."""
        return self.clusters[0].share if self.clusters else 0.0

    @property
    def n_unplaced(self) -> int:
        return self.n - sum(len(c.members) for c in self.clusters)


def distance_matrix(lats: Sequence[float], lons: Sequence[float]) -> np.ndarray:
    """Pairwise great-circle distances (km) between the points, as a symmetric k x k array."""
    from globe.geo import haversine_km

    lat, lon = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
    return np.asarray(haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]), dtype=float).reshape(len(lat), len(lat))


def vote(points: Sequence[Point], radius_km: float = DEFAULT_RADIUS_KM) -> Vote:
    """Cluster the samples' points by great-circle distance and rank the clusters (module doc).

    >>> v = vote([(48.85, 2.35), (48.86, 2.34), None, (41.9, 12.5)])
    >>> v.winner.members, v.winner.medoid, v.agreement, v.n_unplaced
    ((0, 1), 0, 0.5, 1)
    """
    if not radius_km > 0:
        raise ValueError(f"radius_km must be > 0, got {radius_km!r}")
    located = [i for i, p in enumerate(points) if p is not None]
    n = len(points)
    if not located:
        return Vote(n, ())
    d = distance_matrix([points[i][0] for i in located], [points[i][1] for i in located])  # type: ignore[index]
    near = d <= radius_km
    pool = np.ones(len(located), dtype=bool)
    clusters: list[Cluster] = []
    while pool.any():
        inside = near & pool[None, :] & pool[:, None]
        counts = inside.sum(axis=1)
        spread = np.where(inside, d, 0.0).sum(axis=1)
        # densest ball first; then the tighter; then the earliest sample (np.lexsort: last key first)
        order = np.lexsort((np.arange(len(located)), spread, -counts))
        centre = next(int(j) for j in order if pool[j])
        ball = np.flatnonzero(inside[centre])
        sums = d[np.ix_(ball, ball)].sum(axis=1)
        medoid = int(ball[int(np.argmin(sums))])  # argmin takes the first (earliest) on a tie
        clusters.append(Cluster(
            members=tuple(located[j] for j in ball),
            medoid=located[medoid],
            share=len(ball) / n,
            radius_km=float(d[medoid, ball].max()),
        ))
        pool[ball] = False
    return Vote(n, tuple(clusters))


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Calibration:
    """Agreement -> P(the answer is within 25 km), fitted on a labelled dev split.

    Isotonic regression (pool adjacent violators) of "within 25 km" on the agreement, so a higher
    agreement never means a lower confidence; between the fitted agreements it interpolates
    linearly, beyond them it holds the end values, and agreement 0 (no answer) is confidence 0.
    It holds for the `samples` and `temperature` it was fitted at: they change what an agreement
    means, so the harness refuses a mismatch and the server applies it only to that N.
    """

    points: tuple[tuple[float, float], ...]  # (agreement, confidence), agreement ascending
    samples: int
    temperature: float
    n: int = 0  # rows it was fitted on
    source: str = ""  # the run it was fitted on

    def __call__(self, agreement: float) -> float:
        if agreement <= 0:
            return 0.0
        xs, ys = zip(*self.points)
        return float(np.interp(agreement, xs, ys))

    @classmethod
    def fit(cls, agreement: Sequence[float], correct: Sequence[bool], samples: int, temperature: float,
            source: str = "") -> "Calibration":
        """Pool adjacent violators over the distinct agreements, weighted by their counts.

        >>> Calibration.fit([0.5, 0.5, 0.75, 0.75, 1.0, 1.0], [1, 0, 0, 0, 1, 1], samples=4, temperature=0.5).points
        ((0.5, 0.25), (0.75, 0.25), (1.0, 1.0))
        """
        x, y = np.asarray(agreement, dtype=float), np.asarray(correct, dtype=float)
        if not len(x):
            raise CalibrationError("no rows to fit a calibration on")
        blocks: list[list] = []  # [mean, weight, agreements]
        for v in np.unique(x):
            blocks.append([float(y[x == v].mean()), float((x == v).sum()), [float(v)]])
            while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
                (m2, w2, v2), (m1, w1, v1) = blocks.pop(), blocks.pop()
                blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, v1 + v2])
        points = tuple((v, round(m, 6)) for m, _, vs in blocks for v in vs)
        return cls(points, int(samples), float(temperature), n=len(x), source=source)

    def to_dict(self) -> dict[str, Any]:
        return {"points": [list(p) for p in self.points], "samples": self.samples, "temperature": self.temperature,
                "n": self.n, "source": self.source}

    @classmethod
    def from_dict(cls, data: Any, where: str = "calibration") -> "Calibration":
        if not isinstance(data, dict):
            raise CalibrationError(f"{where}: expected a JSON object written by `globe eval calibrate`")
        try:
            points = tuple((float(a), float(b)) for a, b in data["points"])
            samples, temperature = int(data["samples"]), float(data["temperature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{where}: needs points [[agreement, confidence], ...], samples and temperature ({exc!r})") from None
        if not points or any(not (0 <= a <= 1 and 0 <= b <= 1) for a, b in points):
            raise CalibrationError(f"{where}: points must be a non-empty list of pairs in [0, 1]")
        if any(a1 >= a2 or b1 > b2 for (a1, b1), (a2, b2) in zip(points, points[1:])):
            raise CalibrationError(f"{where}: points must rise: agreements strictly, confidences never falling")
        if samples < 2 or temperature <= 0:
            raise CalibrationError(f"{where}: samples must be >= 2 and temperature > 0, got {samples} and {temperature}")
        return cls(points, samples, temperature, n=int(data.get("n", 0)), source=str(data.get("source", "")))

    @classmethod
    def load(cls, path: str) -> "Calibration":
        import json
        from pathlib import Path

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"{path}: cannot read the calibration ({exc})") from None
        return cls.from_dict(data, str(path))

    def check(self, where: str, temperature: float, samples: int | None = None) -> "Calibration":
        """Refuse settings it was not fitted at: another temperature (or, when given, another N)
        changes what an agreement means. Returns self, for chaining after `load`."""
        if self.temperature != temperature or (samples is not None and self.samples != samples):
            asked = f"temperature {temperature:g}" + (f" with samples={samples}" if samples is not None else "")
            raise CalibrationError(f"{where} was fitted for samples={self.samples}, temperature={self.temperature:g}; "
                                   f"these settings sample at {asked}: fit one for them (`globe eval calibrate`)")
        return self

    def save(self, path) -> None:
        import json

        from globe.io import atomic_write_bytes

        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=2).encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Consensus:
    """`consensus(texts)`: the vote, the winning sample (None: nothing located), the candidates
    and the confidence (the agreement, mapped through a calibration when one is given).

    `candidates` are the clusters best first, each `{"lat", "lon", "country", "country_code",
    "city", "share", "votes", "sample", "reasoning"}` from its medoid sample (`sample` = its index).
    """

    vote: Vote
    winner: int | None
    candidates: tuple[dict[str, Any], ...]
    confidence: float
    calibrated: bool = False

    @property
    def agreement(self) -> float:
        return self.vote.agreement


def consensus(texts: Sequence[str | None], protocol: str | None = None, radius_km: float = DEFAULT_RADIUS_KM,
              calibration: Calibration | None = None) -> Consensus:
    r"""Parse and place every sampled text with the one parser and scorer, vote, describe the clusters.

    A None text (a failed generation) is an unplaced sample, like an answer that names no place.
    `calibration` (fitted for this many samples) turns the agreement into the confidence.

    >>> c = consensus(["<answer>country: France\ncity: Paris</answer>"] * 2 + ["no idea", None])
    >>> c.winner, c.confidence, [(x["city"], x["country_code"], x["share"]) for x in c.candidates]
    (0, 0.5, [('Paris', 'FR', 0.5)])
    """
    from globe import geo
    from globe.answer import parse
    from globe.scorer import HEADLINE_PROTOCOL, locate

    answers = [None if t is None else parse(t) for t in texts]
    places = [None if a is None else locate(a, protocol or HEADLINE_PROTOCOL) for a in answers]
    v = vote([(p.lat, p.lon) if p is not None and p.found else None for p in places], radius_km)  # type: ignore[misc]
    out = []
    for c in v.clusters:
        ans, where = answers[c.medoid], places[c.medoid]
        assert ans is not None and where is not None  # a cluster's medoid is a located sample
        code = (geo.normalize_country(ans.country) if ans.country else None) or where.country_code
        out.append({
            "lat": where.lat, "lon": where.lon,
            "country": geo.country_name(code) if code else ans.country, "country_code": code, "city": ans.city,
            "share": c.share, "votes": len(c.members), "sample": c.medoid, "reasoning": ans.think,
        })
    calibrated = calibration is not None and calibration.samples == len(texts)
    confidence = calibration(v.agreement) if calibrated else v.agreement  # type: ignore[misc]
    return Consensus(v, v.winner.medoid if v.winner else None, tuple(out), confidence, calibrated)
