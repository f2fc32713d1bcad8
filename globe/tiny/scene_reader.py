"""The scene-reader teacher: an Engine that reads GeoScenes cues from the pixels.

In the tiny world no large VLM is available to act as a teacher, so this engine plays one. It
decodes each cue the way a person with the world's legend would: the median colour of each flag
stripe, of the sky and of the ground, matched to the nearest legend colour, and the landmark by
overlap with each silhouette template over the possible horizontal shifts. From the cues it writes
a reasoning that names them and a GLOBE-format answer.

To give the verification filters real work, it misreads a share `noise` of the cues (a reasoning
that names a cue the image does not show). Like real LVLMs, it can also leave the decisive cue out
of an otherwise right reasoning (`omit_landmark`: the landmark sentence, which is what names the
city, is skipped while the answer still names it): the grounding filter cannot see an omission,
so SFT inherits it, and the paper's grounding reward exists to pay it back. A misread or an
omission is a pure function of (teacher name, image content, cue), so a rerun, or a resumed
distillation, gets exactly the same answer, and two teachers with different names err on
different samples.

Where leaves hide most of a flag stripe, the stripe's median colour is the leaves'. For a share
`closer_look` of those photos (the same photos for every teacher) it reads the colour where the
leaves end, and its reasoning first says which stripe they hide. Without such traces, SFT never
shows the student how to read these photos, and its reasoning about them reads two countries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from globe.tiny.geoscenes import FLAG_BOTTOM, FOLIAGE, GROUND_TOP, MAX_SHIFT, describe, landmark_mask
from globe.tiny.world import CLIMATES, FLAG_COLOURS, LANDMARKS, World, build_world
from globe.engines.base import JudgeResult, Request, Result, Sampling

MAX_COLOUR_DISTANCE = 60.0  # RGB distance beyond which a region matches no legend colour
MIN_LANDMARK_IOU = 0.5
LEAFY_SHARE = 0.3  # a stripe whose pixels are this much leaves is read past them (the renderer covers 50-90%)


@dataclass(frozen=True)
class Cues:
    """What was read from one image; None fields were not recognised."""

    palette: tuple[str, str, str] | None
    landmark: str | None
    climate: str | None
    ground: str | None
    # a closer look at a flag with leaves over most of one stripe: that stripe (0 = top) and the
    # palette read from what shows where the leaves end; None when no stripe is mostly leaves
    leafy_stripe: int | None = None
    palette_past_leaves: tuple[str, str, str] | None = None

    @property
    def localizable(self) -> bool:
        return None not in (self.palette, self.landmark, self.climate, self.ground)


def _nearest(colour: np.ndarray, legend: dict[str, tuple[int, int, int]]) -> str | None:
    names = list(legend)
    d = np.linalg.norm(np.asarray([legend[n] for n in names], dtype=np.float32) - colour, axis=1)
    k = int(np.argmin(d))
    return names[k] if d[k] <= MAX_COLOUR_DISTANCE else None


def _past_leaves(stripes: list[np.ndarray], medians: list[str | None]) -> tuple[int | None, tuple[str, str, str] | None]:
    """(the stripe mostly hidden by leaves, the palette read from the pixels that are not leaves).

    Each pixel is matched to the nearest legend or foliage colour; the first stripe that is at
    least `LEAFY_SHARE` leaves takes the most common legend colour of the rest, the others keep
    their median colour (`medians`). A closer look than the median, which reads the leaves
    themselves when they cover more than half of a stripe.
    """
    names = list(FLAG_COLOURS)
    legend = np.asarray([FLAG_COLOURS[n] for n in names] + list(FOLIAGE), dtype=np.float32)
    for k, pixels in enumerate(stripes):
        nearest = np.linalg.norm(pixels[:, None, :] - legend[None], axis=2).argmin(axis=1)
        is_leaf = nearest >= len(names)
        if is_leaf.mean() >= LEAFY_SHARE and (~is_leaf).any():
            palette = [*medians[:k], names[int(np.bincount(nearest[~is_leaf]).argmax())], *medians[k + 1:]]
            return (k, tuple(palette)) if None not in palette else (None, None)
    return None, None


class _Templates:
    """Landmark masks for one image size, at every pixel shift the generator can produce."""

    _cache: dict[int, "_Templates"] = {}

    def __init__(self, size: int):
        max_px = int(np.ceil(MAX_SHIFT * size)) + 1
        self.masks = {
            shape: [landmark_mask(shape, size, dx / size) for dx in range(-max_px, max_px + 1)] for shape in LANDMARKS
        }

    @classmethod
    def get(cls, size: int) -> "_Templates":
        if size not in cls._cache:
            cls._cache[size] = cls(size)
        return cls._cache[size]


def read_cues(pixels: np.ndarray) -> Cues:
    """Decode the cues of a square RGB uint8 array (a GeoScenes image) without any noise."""
    size = pixels.shape[0]
    img = pixels.astype(np.float32)
    rows = (np.arange(size) + 0.5) / size
    cols = rows
    stripe_h = FLAG_BOTTOM / 3
    stripes = [img[(rows >= k * stripe_h + 0.02) & (rows < (k + 1) * stripe_h - 0.02)].reshape(-1, 3) for k in range(3)]
    palette = [_nearest(np.median(pixels, axis=0), FLAG_COLOURS) for pixels in stripes]
    leafy_stripe, palette_past_leaves = _past_leaves(stripes, palette)
    side = np.abs(cols - 0.5) > 0.3
    sky_rows = (rows > FLAG_BOTTOM + 0.03) & (rows < GROUND_TOP - 0.03)
    sky = np.median(img[sky_rows][:, side].reshape(-1, 3), axis=0)
    ground = np.median(img[rows > GROUND_TOP + 0.03].reshape(-1, 3), axis=0)
    climate = _nearest(sky, {c.band: c.sky for c in CLIMATES})
    ground_name = _nearest(ground, {c.ground_name: c.ground for c in CLIMATES})
    # the silhouette: dark pixels above the ground line
    dark = (img.mean(axis=2) < 100) & (rows[:, None] < GROUND_TOP) & (rows[:, None] > FLAG_BOTTOM)
    best, best_iou = None, 0.0
    for shape, masks in _Templates.get(size).masks.items():
        for m in masks:
            iou = float((m & dark).sum()) / max(1.0, float((m | dark).sum()))
            if iou > best_iou:
                best, best_iou = shape, iou
    return Cues(
        palette=tuple(palette) if None not in palette else None,
        landmark=best if best_iou >= MIN_LANDMARK_IOU else None,
        climate=climate,
        ground=ground_name,
        leafy_stripe=leafy_stripe,
        palette_past_leaves=palette_past_leaves,
    )


_CUE_CACHE: dict[str, Cues] = {}  # pixel hash -> noiseless cues (decoding is pure)


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SceneReaderEngine:
    """An Engine over GeoScenes images; see the module docstring."""

    def __init__(
        self, name: str = "scene-reader", noise: float = 0.0, world: World | str | Path | None = None,
        city_bias: float = 0.0, omit_landmark: float = 0.0, closer_look: float = 0.0,
    ):
        for label, value in (("noise", noise), ("city_bias", city_bias), ("omit_landmark", omit_landmark),
                             ("closer_look", closer_look)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"scene-reader {name}: {label} must lie in [0, 1], got {value}")
        self.name = name
        self.noise = noise
        self.city_bias = city_bias
        self.omit_landmark = omit_landmark
        self.closer_look = closer_look
        if isinstance(world, (str, Path)):
            world = World.load(world)
        self._world = world

    @property
    def world(self) -> World:
        if self._world is None:  # the built-in tiny world, built on first use (reads the gazetteer)
            self._world = build_world()
        return self._world

    def _misread(self, key: str, cue: str, value, options: Sequence):
        """With probability `noise`, swap `value` for another option, chosen from the same hash."""
        if value is None or self.noise <= 0.0 or _unit(self.name, key, cue) >= self.noise:
            return value
        others = [o for o in options if o != value]
        return others[int(_unit(self.name, key, cue, "pick") * len(others))] if others else value

    def read(self, image) -> tuple[Cues, str]:
        """The (possibly misread) cues of a PIL image, and the content key that fixes the misreads."""
        image = image.convert("RGB")
        if image.width != image.height:  # not a GeoScenes frame (those are square): read it as one
            side = min(image.width, image.height, 224)
            image = image.resize((side, side))
        pixels = np.asarray(image)
        key = hashlib.sha256(pixels.tobytes()).hexdigest()
        cues = _CUE_CACHE.get(key)
        if cues is None:  # generate and judge, of every teacher, look at the same image
            cues = _CUE_CACHE[key] = read_cues(pixels)
            while len(_CUE_CACHE) > 4096:
                _CUE_CACHE.pop(next(iter(_CUE_CACHE)), None)
        looks_closer = cues.leafy_stripe is not None and _unit(key, "closer-look") < self.closer_look
        # keyed by the image alone, like the popularity prior: every teacher reads past the same leaves
        cues = replace(cues, palette=cues.palette_past_leaves) if looks_closer else replace(cues, leafy_stripe=None)
        if not cues.localizable:
            return cues, key
        palettes = [c.palette for c in self.world.countries]
        return (
            Cues(
                palette=self._misread(key, "flag", cues.palette, palettes),
                landmark=self._misread(key, "landmark", cues.landmark, LANDMARKS),
                climate=self._misread(key, "sky", cues.climate, [c.band for c in CLIMATES]),
                ground=self._misread(key, "ground", cues.ground, [c.ground_name for c in CLIMATES]),
                leafy_stripe=cues.leafy_stripe,
            ),
            key,
        )

    def answer(self, image) -> str:
        """A GLOBE-format completion for one image."""
        from globe.answer import format_answer

        cues, key = self.read(image)
        country = self.world.by_palette(cues.palette) if cues.localizable else None
        if country is None:
            think = (
                "The image shows no flag, landmark or landscape that points to a place"
                if not cues.localizable
                else f"The {'-'.join(cues.palette)} colours match no flag I know"
            )
            fallback = self.world.countries[0]
            return format_answer(think + "; this is a guess.", fallback.name, fallback.cities[0].name)
        city = next((c for c in country.cities if c.landmark == cues.landmark), country.cities[0])
        if self.city_bias > 0 and _unit(key, "city-bias") < self.city_bias:
            # the popularity prior of real LVLMs: the cues are read right, the conclusion is the
            # country's best-known city. Keyed by the image alone, so every teacher shares it.
            city = country.cities[0]
        skipped = self.omit_landmark > 0 and _unit(self.name, key, "omit") < self.omit_landmark
        think = describe(cues.palette, None if skipped else cues.landmark, cues.climate, cues.ground, country.name,
                         city.name, cues.leafy_stripe)
        return format_answer(think, country.name, city.name, city.lat, city.lon)

    def generate(self, requests: Sequence[Request], sampling: Sampling | None = None) -> list[Result]:
        out = []
        for req in requests:
            if req.image is None:
                out.append(Result(error="scene-reader needs an image"))
                continue
            try:
                out.append(Result(text=self.answer(req.image)))
            except Exception as exc:  # one unreadable image must not sink the batch
                out.append(Result(error=f"{type(exc).__name__}: {exc}"))
        return out

    def judge(self, requests: Sequence[Request], choices: tuple[str, str] = ("yes", "no")) -> list[JudgeResult]:
        """P(yes) that the image is localizable: confident when all cues were read, misjudged at `noise`."""
        out = []
        for req in requests:
            if req.image is None:
                out.append(JudgeResult(error="scene-reader needs an image"))
                continue
            cues, key = self.read(req.image)
            yes = cues.localizable
            if self.noise > 0 and _unit(self.name, key, "judge") < self.noise / 2:
                yes = not yes
            out.append(JudgeResult(p_yes=0.95 if yes else 0.05))
        return out


def scene_reader_engine(spec: dict) -> SceneReaderEngine:
    """Kind "scene-reader" (`globe.engines.kinds`):
    `make_engine({"kind": "scene-reader", "name": ..., "noise": 0.1, "world": "data/world.json"})`."""
    return SceneReaderEngine(
        name=spec.get("name") or spec.get("model") or "scene-reader", noise=float(spec.get("noise", 0.0)), world=spec.get("world"),
        city_bias=float(spec.get("city_bias", 0.0)), omit_landmark=float(spec.get("omit_landmark", 0.0)),
        closer_look=float(spec.get("closer_look", 0.0)),
    )
