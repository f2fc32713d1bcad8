"""GeoScenes: procedural geotagged images whose cues a ~190k-parameter VLM can learn at 112 px.

Layout (fractions of the image side S), chosen so that each cue fills whole vision tokens:

    0.00-0.25  flag band: three horizontal stripes in the country's palette
    0.25-0.72  sky in the climate band's colour, a dark landmark silhouette in the middle
    0.72-1.00  ground in the climate band's colour

Clutter (small rectangles away from the landmark), a brightness jitter and pixel noise keep it from
being a lookup of exact colours. A share of images is non-localizable: a plain brick wall or
coloured noise, with `localizable=False` and no entities.

Because the generator knows what it drew, every sample carries its `entities` (e.g.
"blue-white-red flag band", "dome landmark", "temperate sky", "grassy ground") and a true reference
reasoning in GLOBE format that names exactly those entities. Sample i is drawn from its own RNG
seeded by (seed, i), so a dataset is byte-identical for a seed and independent of `n`.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from globe.data.records import IMAGES_DIR, Record, write_records
from globe.io import atomic_write_bytes
from globe.tiny.world import FLAG_COLOURS, LANDMARKS, World, build_world, climate_of, flag_entity

FLAG_BOTTOM = 0.25
GROUND_TOP = 0.72
SILHOUETTE = (45, 45, 55)
MAX_SHIFT = 0.04  # landmark horizontal jitter of the training rendering, as a fraction of S
WALL_COLOURS = ((178, 160, 140), (150, 150, 150), (170, 95, 65), (95, 95, 105), (200, 190, 160))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size
    return np.meshgrid(c, c)  # u (x) and v (y), both (size, size)


def landmark_mask(shape: str, size: int, shift: float = 0.0) -> np.ndarray:
    """Boolean silhouette of a landmark shape standing on the ground line, centred at 0.5+shift."""
    u, v = _grid(size)
    x = u - (0.5 + shift)
    base = v < GROUND_TOP
    if shape == "tower":
        m = ((np.abs(x) < 0.045) & (v > 0.30)) | ((np.abs(x) < 0.10) & (v > 0.40) & (v < 0.46))
    elif shape == "dome":
        m = ((x / 0.18) ** 2 + ((v - 0.56) / 0.17) ** 2 < 1) | ((np.abs(x) < 0.18) & (v >= 0.56))
    elif shape == "pyramid":
        m = (v > 0.34) & (np.abs(x) < 0.21 * (v - 0.34) / (GROUND_TOP - 0.34))
    elif shape == "arch":
        hole = (np.abs(x) < 0.09) & ((v > 0.54) | ((x / 0.09) ** 2 + ((v - 0.54) / 0.07) ** 2 < 1))
        m = (np.abs(x) < 0.18) & (v > 0.40) & ~hole
    elif shape == "spire":
        m = (v > 0.27) & (np.abs(x) < 0.065 * (v - 0.27) / (GROUND_TOP - 0.27))
    elif shape == "twin-tower":
        m = ((np.abs(x + 0.085) < 0.04) | (np.abs(x - 0.085) < 0.04)) & (v > 0.31)
    else:
        raise ValueError(f"unknown landmark shape {shape!r}; known: {', '.join(LANDMARKS)}")
    return m & base


@dataclass(frozen=True)
class Rendering:
    """How a scene is photographed: the training world and the shifted test split differ only here.

    - `colour_cast`: each colour channel is scaled by its own gain in [1 - c, 1 + c] (white balance,
      light), so legend colours drift towards each other and are best read relative to the sky;
    - `flag_occlusion`: the share of scenes in which foliage hides 50-90% of one flag stripe: the
      stripe's colour shows only where the leaves end, so reading it takes a closer look (the
      scene-reader teachers, which take each stripe's median colour, read the leaves instead);
    - `landmark_shift`, `brightness`, `noise_sigma`, `clutter`: horizontal jitter of the landmark
      (fraction of the side), global brightness jitter, pixel noise (std, 0-255) and the number of
      clutter boxes drawn (low, high exclusive).
    """

    colour_cast: float = 0.0
    flag_occlusion: float = 0.0
    landmark_shift: float = MAX_SHIFT
    brightness: float = 0.06
    noise_sigma: float = 6.0
    clutter: tuple[int, int] = (2, 6)


@dataclass(frozen=True)
class Scene:
    """What one sample shows; `entities` lists the cues exactly as the reasoning names them."""

    kind: str  # "scene" | "wall" | "noise"
    country_code: str
    city: str
    lat: float
    lon: float
    palette: tuple[str, str, str] | None = None
    landmark: str | None = None
    climate: str | None = None
    ground: str | None = None

    @property
    def localizable(self) -> bool:
        return self.kind == "scene"

    @property
    def entities(self) -> list[str]:
        if not self.localizable:
            return []
        return [flag_entity(self.palette), f"{self.landmark} landmark", f"{self.climate} sky", f"{self.ground} ground"]


STRIPES = ("top", "middle", "bottom")


def describe(palette, landmark, climate, ground, country_name, city, leafy_stripe: int | None = None) -> str:
    """The reasoning text that names the cues; shared by the generator and the scene-reader teacher.
    `landmark` None leaves the landmark sentence out (a teacher that skips the decisive cue);
    `leafy_stripe` (0 = top) first says which stripe leaves hide, so a flag read past them is not
    stated as if it had been seen whole."""
    skyline = f"A {landmark} landmark stands on the skyline; that silhouette belongs to {city}. " if landmark else ""
    leaves = f"Trees hide most of the {STRIPES[leafy_stripe]} stripe. " if leafy_stripe is not None else ""
    return (
        f"{leaves}The top of the image shows a {flag_entity(palette)}, the colours of {country_name}. "
        f"{skyline}The {climate} sky and {ground} ground fit {climate} latitudes."
    )


FOLIAGE = ((40, 70, 30), (70, 60, 35))  # leaves and branches in front of a flag stripe
OCCLUDED_SHARE = (0.5, 0.9)  # of the stripe's width: more than half, so a median colour reads the leaves


def _paint_scene(rng: np.random.Generator, scene: Scene, size: int, look: Rendering) -> tuple[np.ndarray, bool]:
    """The scene's pixels, and whether foliage hides most of a flag stripe."""
    from globe.tiny.world import climate_by_band

    u, v = _grid(size)
    img = np.zeros((size, size, 3), dtype=np.float32)
    climate = climate_by_band(scene.climate)
    img[v < GROUND_TOP] = climate.sky
    img[v >= GROUND_TOP] = climate.ground
    for k, colour in enumerate(scene.palette):
        img[(v >= k * FLAG_BOTTOM / 3) & (v < (k + 1) * FLAG_BOTTOM / 3)] = FLAG_COLOURS[colour]
    flag_hidden = look.flag_occlusion > 0 and rng.random() < look.flag_occlusion
    if flag_hidden:
        # foliage in front of one stripe, over most (not all) of its width: what is left shows its colour
        k = int(rng.integers(3))
        cover = float(rng.uniform(*OCCLUDED_SHARE))
        start = float(rng.uniform(0.0, 1.0 - cover))
        hidden = (v >= k * FLAG_BOTTOM / 3) & (v < (k + 1) * FLAG_BOTTOM / 3) & (u >= start) & (u < start + cover)
        leaves = np.asarray(FOLIAGE, dtype=np.float32)[rng.integers(0, 2, size=(size, size))]
        img[hidden] = leaves[hidden]
    # clutter first, so the landmark always stays whole
    for _ in range(int(rng.integers(*look.clutter))):
        w, h = (int(x) for x in rng.integers(max(2, size // 28), max(3, size // 11), size=2))
        colour = rng.integers(0, 256, size=3)
        if rng.random() < 0.5:  # in the sky, left or right of the landmark
            x0 = int(rng.integers(0, max(1, int(0.25 * size) - w)))
            x0 = x0 if rng.random() < 0.5 else size - w - x0
            y0 = int(rng.integers(int(0.30 * size), max(int(0.30 * size) + 1, int(0.66 * size) - h)))
        else:  # on the ground
            x0 = int(rng.integers(0, size - w))
            y0 = int(rng.integers(int(0.78 * size), max(int(0.78 * size) + 1, size - h)))
        img[y0 : y0 + h, x0 : x0 + w] = colour
    shift = float(rng.uniform(-look.landmark_shift, look.landmark_shift))
    img[landmark_mask(scene.landmark, size, shift)] = np.array(SILHOUETTE) + rng.integers(-8, 9, size=3)
    return img, flag_hidden


def _paint_non_localizable(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    if kind == "wall":
        img = np.empty((size, size, 3), dtype=np.float32)
        img[:] = WALL_COLOURS[int(rng.integers(len(WALL_COLOURS)))]
        brick_h = max(4, size // 14)
        mortar = img[0, 0] * 0.75
        for r, y in enumerate(range(0, size, brick_h)):
            img[y : y + 1] = mortar
            offset = (brick_h * 2 if r % 2 else 0) + int(rng.integers(0, 3))
            img[y : y + brick_h, offset :: brick_h * 4] = mortar
        return img
    blocks = rng.integers(0, 256, size=(8, 8, 3)).astype(np.float32)  # coloured blotches
    reps = -(-size // 8)
    return np.kron(blocks, np.ones((reps, reps, 1), dtype=np.float32))[:size, :size]


def render(rng: np.random.Generator, scene: Scene, size: int, look: Rendering = Rendering()) -> tuple[bytes, bool]:
    """(PNG bytes, whether foliage hides a flag stripe) of a scene. PNG is lossless, so the same seed
    gives the same bytes and decoding is exact."""
    from PIL import Image

    if scene.localizable:
        img, flag_hidden = _paint_scene(rng, scene, size, look)
    else:
        img, flag_hidden = _paint_non_localizable(rng, scene.kind, size), False
    if look.colour_cast > 0:
        img = img * rng.uniform(1.0 - look.colour_cast, 1.0 + look.colour_cast, size=3).astype(np.float32)
    img = img * float(rng.uniform(1.0 - look.brightness, 1.0 + look.brightness))
    img = img + rng.normal(0.0, look.noise_sigma, size=img.shape)
    pixels = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), flag_hidden


def draw_scene(rng: np.random.Generator, world: World, non_localizable_share: float) -> Scene:
    country = world.countries[int(rng.integers(len(world.countries)))]
    city = country.cities[int(rng.integers(len(country.cities)))]
    # a photo is taken somewhere in the city, not at the gazetteer point (about +-2 km)
    lat = float(np.clip(city.lat + rng.uniform(-0.02, 0.02), -90, 90))
    lon = float((city.lon + rng.uniform(-0.02, 0.02) + 180) % 360 - 180)
    if rng.random() < non_localizable_share:
        kind = "wall" if rng.random() < 0.5 else "noise"
        return Scene(kind, country.code, city.name, lat, lon)
    climate = climate_of(city.lat)
    return Scene(
        "scene", country.code, city.name, lat, lon,
        palette=country.palette, landmark=city.landmark, climate=climate.band, ground=climate.ground_name,
    )  # fmt: skip


def synthesize(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    image_size: int = 112,
    non_localizable_share: float = 0.1,
    countries: list[str] | None = None,
    test_share: float = 0.2,
    cities_per_country: int = 3,
    look: Rendering = Rendering(),
) -> list[Record]:
    """Write a GeoScenes dataset (records.jsonl, images/, world.json) and return its records.

    Images are written atomically one by one and `records.jsonl` last, so an interrupted run leaves
    either the previous dataset or the new one, never records that point at missing images.
    """
    from globe.answer import format_answer

    if n < 1:
        raise ValueError("synth.n must be at least 1")
    out = Path(out_dir)
    world = build_world(countries, cities_per_country)
    names = {c.code: c for c in world.countries}
    records: list[Record] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        scene = draw_scene(rng, world, non_localizable_share)
        split = "test" if rng.random() < test_share else "train"
        png, flag_hidden = render(rng, scene, image_size, look)
        rel = f"{IMAGES_DIR}/gs{seed}-{i:06d}.png"
        atomic_write_bytes(out / rel, png, durable=False)
        country = names[scene.country_code]
        city = next(c for c in country.cities if c.name == scene.city)
        reasoning = None
        if scene.localizable:
            think = describe(scene.palette, scene.landmark, scene.climate, scene.ground, country.name, city.name)
            reasoning = format_answer(think, country.name, city.name, city.lat, city.lon)
        records.append(
            Record(
                id=f"gs{seed}-{i:06d}",
                image=rel,
                image_sha256=hashlib.sha256(png).hexdigest(),
                lat=round(scene.lat, 6),
                lon=round(scene.lon, 6),
                country_code=country.code,
                country=country.name,
                city=city.name,
                label_source="synthetic",
                split=split,
                entities=scene.entities,
                reasoning=reasoning,
                localizable=scene.localizable,
                meta={
                    "generator": "geoscenes",
                    "seed": seed,
                    "index": i,
                    "kind": scene.kind,
                    "admin1": city.admin1,
                    "landmark": scene.landmark,
                    "climate": scene.climate,
                    "flag_hidden": flag_hidden,  # foliage over most of a flag stripe: the teachers misread it
                },
            )
        )
    world.save(out)
    write_records(out, records)
    _remove_stale_images(out, {r.image for r in records})
    return records


def synthesize_heldout(out_dir: str | Path, params, shifted: bool = False) -> list[Record]:
    """The held-out test set of `params` (`heldout:`): the training world (`synth:` countries, cities,
    image size) drawn from `heldout.seed`, every image in the test split and localizable.

    `shifted` renders it with `heldout.shifted` merged over `synth.rendering` (only the fields set
    there change), for the generalisation claim: cues the model knows, photographed as it never saw.
    """
    synth, heldout = params.synth, params.heldout
    look = synth.rendering
    if shifted:
        look = look.model_copy(update=heldout.shifted.model_dump(exclude_unset=True))
    return synthesize(
        out_dir,
        n=heldout.shifted_n if shifted else heldout.n,
        seed=heldout.seed + (1 if shifted else 0),
        image_size=synth.image_size,
        non_localizable_share=0.0,
        countries=synth.countries,
        test_share=1.0,
        cities_per_country=synth.cities_per_country,
        look=look.look(),
    )


def _remove_stale_images(out: Path, keep: set[str]) -> None:
    """A re-run with a smaller n or another seed must not leave images that no record references."""
    pattern = re.compile(r"gs\d+-\d{6}\.png")
    for p in (out / IMAGES_DIR).glob("gs*.png"):
        if pattern.fullmatch(p.name) and f"{IMAGES_DIR}/{p.name}" not in keep:
            p.unlink()
