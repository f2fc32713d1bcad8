"""The GeoScenes "tiny world": which countries exist, how each one looks, which cities it has.

A tiny VLM (~190k parameters) sees 112x112 pixels, i.e. a 4x4 grid of merged 28-px vision tokens.
Cues must therefore be big, flat and few:
- a flag band of three horizontal stripes in the country's colours (a distinct palette per country),
- a landmark silhouette per city (six shapes; the three cities of a country get three different
  shapes, and every shape is used by several countries, so a shape alone never names a country),
- sky and ground colours by climate band, derived from the city's latitude.

The world is data: `build_world` derives it deterministically from a country list and the
gazetteer, and `World.save`/`World.load` keep it next to a dataset (`world.json`), so the
scene-reader teacher decodes a dataset with exactly the table that drew it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

WORLD_FILE = "world.json"

# flag stripe colours: far apart in RGB so that noise and brightness jitter never cross over
FLAG_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 40),
    "white": (245, 245, 245),
    "blue": (30, 60, 170),
    "green": (20, 140, 70),
    "yellow": (250, 205, 20),
    "black": (20, 20, 20),
    "orange": (250, 140, 30),
}

# the built-in tiny world: 12 countries over six continents and all four climate bands,
# palettes loosely after the real flags and pairwise distinct
DEFAULT_PALETTES: dict[str, tuple[str, str, str]] = {
    "FR": ("blue", "white", "red"),
    "IT": ("green", "white", "red"),
    "DE": ("black", "red", "yellow"),
    "JP": ("white", "red", "white"),
    "BR": ("green", "yellow", "blue"),
    "US": ("red", "white", "blue"),
    "EG": ("red", "white", "black"),
    "IN": ("orange", "white", "green"),
    "AU": ("blue", "yellow", "green"),
    "RU": ("white", "blue", "red"),
    "KE": ("black", "red", "green"),
    "CA": ("red", "white", "red"),
}
DEFAULT_COUNTRIES: tuple[str, ...] = tuple(DEFAULT_PALETTES)

LANDMARKS: tuple[str, ...] = ("tower", "dome", "pyramid", "arch", "spire", "twin-tower")


@dataclass(frozen=True)
class Climate:
    band: str  # "tropical" ...; the sky entity is f"{band} sky"
    max_abs_lat: float
    sky: tuple[int, int, int]
    ground_name: str  # the ground entity is f"{ground_name} ground"
    ground: tuple[int, int, int]


CLIMATES: tuple[Climate, ...] = (
    Climate("tropical", 23.5, (60, 175, 240), "lush", (30, 115, 45)),
    Climate("subtropical", 35.0, (215, 210, 185), "sandy", (215, 185, 120)),
    Climate("temperate", 55.0, (120, 160, 215), "grassy", (135, 175, 90)),
    Climate("polar", 90.0, (165, 170, 185), "snowy", (240, 242, 246)),
)


def climate_of(lat: float) -> Climate:
    for c in CLIMATES:
        if abs(lat) < c.max_abs_lat:
            return c
    return CLIMATES[-1]


def climate_by_band(band: str) -> Climate:
    for c in CLIMATES:
        if c.band == band:
            return c
    raise KeyError(band)


@dataclass(frozen=True)
class City:
    name: str
    admin1: str
    lat: float
    lon: float
    population: int
    landmark: str


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    palette: tuple[str, str, str]
    cities: tuple[City, ...]

    @property
    def flag_entity(self) -> str:
        return flag_entity(self.palette)


def flag_entity(palette: tuple[str, ...]) -> str:
    return "-".join(palette) + " flag band"


@dataclass
class World:
    countries: list[Country] = field(default_factory=list)

    def by_code(self, code: str) -> Country:
        for c in self.countries:
            if c.code == code:
                return c
        raise KeyError(code)

    def by_palette(self, palette: tuple[str, ...]) -> Country | None:
        for c in self.countries:
            if c.palette == tuple(palette):
                return c
        return None

    def to_json(self) -> str:
        return json.dumps({"countries": [asdict(c) for c in self.countries]}, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "World":
        raw = json.loads(text)
        countries = [
            Country(
                code=c["code"],
                name=c["name"],
                palette=tuple(c["palette"]),
                cities=tuple(City(**city) for city in c["cities"]),
            )
            for c in raw["countries"]
        ]
        return cls(countries)

    def save(self, dataset_dir: str | Path) -> Path:
        from globe.io import atomic_write_bytes

        path = Path(dataset_dir) / WORLD_FILE
        atomic_write_bytes(path, self.to_json().encode("utf-8"))
        return path

    @classmethod
    def load(cls, dataset_dir: str | Path) -> "World":
        path = Path(dataset_dir)
        path = path / WORLD_FILE if path.is_dir() else path
        return cls.from_json(path.read_text(encoding="utf-8"))


def _derived_palette(code: str, taken: set[tuple[str, str, str]]) -> tuple[str, str, str]:
    """A stable palette for a country outside the default table: hashed, then the first free one."""
    names = list(FLAG_COLOURS)
    combos = [(a, b, c) for a in names for b in names for c in names if a != b and b != c]
    start = int.from_bytes(hashlib.sha256(code.encode()).digest()[:4], "big") % len(combos)
    for k in range(len(combos)):
        cand = combos[(start + k) % len(combos)]
        if cand not in taken:
            return cand
    raise ValueError(f"no free flag palette left for {code}: at most {len(combos)} countries")


def build_world(countries: list[str] | tuple[str, ...] | None = None, cities_per_country: int = 3) -> World:
    """Derive the world from ISO codes (None = the built-in 12) and the gazetteer's largest cities."""
    from globe import geo

    codes = [c.strip().upper() for c in (countries or DEFAULT_COUNTRIES)]
    if not 1 <= cities_per_country <= len(LANDMARKS):
        raise ValueError(f"cities_per_country must lie in 1..{len(LANDMARKS)} (one landmark shape per city)")
    if len(set(codes)) != len(codes):
        raise ValueError(f"synth.countries has duplicates: {codes}")
    for code in codes:
        if geo.normalize_country(code) != code:
            raise ValueError(f"synth.countries: {code!r} is not an ISO 3166 alpha-2 country code")
    by_country: dict[str, list] = {code: [] for code in codes}
    for place in geo.cities(min_population=50_000):
        if place.country_code in by_country:
            by_country[place.country_code].append(place)
    taken = {DEFAULT_PALETTES[c] for c in codes if c in DEFAULT_PALETTES}
    out: list[Country] = []
    for k, code in enumerate(codes):
        places = sorted(by_country[code], key=lambda p: (-p.population, p.city))
        chosen, seen = [], set()
        for p in places:
            if p.city.lower() in seen:
                continue
            seen.add(p.city.lower())
            chosen.append(p)
            if len(chosen) == cities_per_country:
                break
        if not chosen:
            raise ValueError(f"synth.countries: the gazetteer has no city of 50k+ people in {code}")
        palette = DEFAULT_PALETTES.get(code)
        if palette is None:
            palette = _derived_palette(code, taken)
            taken.add(palette)
        cities = tuple(
            City(
                name=p.city,
                admin1=p.admin1,
                lat=round(float(p.lat), 5),
                lon=round(float(p.lon), 5),
                population=int(p.population),
                # k, k+1, k+2 (mod 6): distinct within a country, every shape shared across countries
                landmark=LANDMARKS[(k + j) % len(LANDMARKS)],
            )
            for j, p in enumerate(chosen)
        )
        out.append(Country(code=code, name=geo.country_name(code), palette=palette, cities=cities))
    return World(out)
