"""Benchmark loaders: every evaluation set becomes one list of `Sample`s.

The paper evaluates on IM2GPS3K, YFCC4K, MP16-Reason-test and OSV-5M; the tiny world adds GeoScenes.
Their files disagree on almost everything (column names, where the images live, whether a country or
a city is given at all), so each loader maps its format onto the same small record and the harness
never looks at a format again. Where a benchmark carries coordinates only (IM2GPS3K, YFCC4K), the
country and city are derived offline by reverse geocoding and `label_source` says so, because city
and country accuracy on those sets rest on derived labels rather than on the benchmark's own.

Loaders check their input up front and fail with the file, the row and the field that is wrong:
a benchmark run can take hours, and a bad row discovered at image 2,500 is expensive.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from globe.data.columns import LAT_COLUMNS, LON_COLUMNS, CoordinateError, coordinate, find_column

BENCHMARKS = ("im2gps3k", "yfcc4k", "mp16", "osv5m", "geoscenes")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class BenchmarkError(ValueError):
    """A benchmark file that cannot be read; the message names the file, row and field."""


@dataclass(frozen=True)
class Sample:
    """One evaluation image and its ground truth.

    `image` is an absolute local path or an `s3://` URI. `label_source` says where country/city
    came from: "benchmark" (the file gave them), "reverse-geocoded" (derived from lat/lon) or the
    dataset's own record label.
    """

    id: str
    image: str
    lat: float
    lon: float
    country_code: str | None = None
    country: str | None = None
    city: str | None = None
    label_source: str = "benchmark"
    reasoning: str | None = None
    # The visual cues really in the image, when known exactly (GeoScenes: what the renderer drew);
    # None elsewhere. `globe.faithfulness.cue_grounding` scores the reasoning's cues against them.
    entities: tuple[str, ...] | None = None
    # What makes the photo harder, when known (GeoScenes: "flag hidden" where foliage covers most of
    # a flag stripe, the photos no teacher trace covers, else "clear"); None elsewhere. Evaluation
    # breaks every metric down by it (metrics.json `by_condition`).
    condition: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _coordinate(raw: object, name: str, where: str, lo: float, hi: float) -> float:
    """`globe.data.columns.coordinate` (the importer's check too), as a BenchmarkError naming the row."""
    try:
        return coordinate(raw, name, hi)
    except CoordinateError as exc:
        if exc.category == "invalid coordinates" and "is outside" in str(exc):
            raise BenchmarkError(f"{where}: field {name!r} must lie in [{lo:g}, {hi:g}], got {raw!r}") from None
        raise BenchmarkError(f"{where}: field {name!r} must be a plain decimal number, got {raw!r}") from None


def _pick(row: dict, names: Iterable[str]) -> str | None:
    """The first of `names` present (case-insensitive) in `row`, as its column name."""
    keys = list(row)
    i = find_column(keys, names)
    return None if i is None else keys[i]


LAT_KEYS, LON_KEYS = LAT_COLUMNS, LON_COLUMNS
ID_KEYS = ("id", "img_id", "image_id", "photo_id", "key")
IMAGE_KEYS = ("image", "image_path", "img_path", "img", "file", "filename", "path")


class ImageIndex:
    """Finds an image by file name or stem anywhere under a folder (flat or sharded layouts).

    OSV-5M ships its test images in numbered sub-folders, IM2GPS3K flat; indexing once by name and
    by stem handles both without a filesystem walk per sample.
    """

    def __init__(self, root: Path):
        if not root.is_dir():
            raise BenchmarkError(f"{root}: image folder not found")
        self.root = root
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                self.by_name.setdefault(path.name, path)
                self.by_stem.setdefault(path.stem, path)

    def find(self, ref: str) -> Path | None:
        direct = self.root / ref
        if direct.is_file():
            return direct
        name = Path(ref).name
        return self.by_name.get(name) or self.by_stem.get(Path(name).stem) or self.by_stem.get(name)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise BenchmarkError(f"{path}: CSV file not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise BenchmarkError(f"{path}: empty CSV (no header row)")
        return list(reader.fieldnames), list(reader)


def _derive_labels(samples: list[Sample]) -> list[Sample]:
    """Fill country/city by offline reverse geocoding (one vectorised call) where they are missing."""
    todo = [i for i, s in enumerate(samples) if not s.country_code]
    if not todo:
        return samples
    from globe.geo import reverse_batch

    places = reverse_batch([samples[i].lat for i in todo], [samples[i].lon for i in todo])
    out = list(samples)
    for i, place in zip(todo, places):
        s = samples[i]
        out[i] = replace(s, country_code=place.country_code, country=place.country, city=s.city or place.city,
                         label_source="reverse-geocoded")
    return out


def _csv_benchmark(
    csv_path: Path,
    images: Path,
    *,
    id_keys: tuple[str, ...],
    lat_keys: tuple[str, ...] = LAT_KEYS,
    lon_keys: tuple[str, ...] = LON_KEYS,
    extra: Callable[[dict], dict] | None = None,
    limit: int | None = None,
) -> list[Sample]:
    header, rows = _read_csv(csv_path)
    probe = dict.fromkeys(header)
    id_col, lat_col, lon_col = _pick(probe, id_keys), _pick(probe, lat_keys), _pick(probe, lon_keys)
    for col, keys in ((id_col, id_keys), (lat_col, lat_keys), (lon_col, lon_keys)):
        if col is None:
            raise BenchmarkError(f"{csv_path}: no column named any of {list(keys)} (header: {header[:12]})")
    index = ImageIndex(images)
    samples: list[Sample] = []
    missing: list[str] = []
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path}:{line}"
        ref = (row.get(id_col) or "").strip()
        if not ref:
            raise BenchmarkError(f"{where}: field {id_col!r} is empty")
        lat = _coordinate(row.get(lat_col), lat_col, where, -90, 90)
        lon = _coordinate(row.get(lon_col), lon_col, where, -180, 180)
        path = index.find(ref)
        if path is None:
            missing.append(ref)
            continue
        fields = extra(row) if extra else {}
        samples.append(Sample(id=ref, image=str(path.resolve()), lat=lat, lon=lon, **fields))
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise BenchmarkError(
            f"{csv_path}: none of the {len(rows)} rows has an image under {images} "
            f"(looked for e.g. {missing[:3]})"
        )
    return samples


def load_im2gps3k(csv_path: Path, images: Path, limit: int | None = None) -> list[Sample]:
    """IM2GPS3K: `IMG_ID,AUTHOR,LAT,LON,...`; rows whose photo is absent are skipped (subsets)."""
    return _derive_labels(_csv_benchmark(csv_path, images, id_keys=("IMG_ID",), limit=limit))


def load_yfcc4k(csv_path: Path, images: Path, limit: int | None = None) -> list[Sample]:
    """YFCC4K: YFCC100M metadata with numbered columns; only `IMG_ID`, `LAT`, `LON` are named."""
    return _derive_labels(_csv_benchmark(csv_path, images, id_keys=("IMG_ID",), limit=limit))


def _osv_extra(row: dict) -> dict:
    code = (row.get("country") or "").strip().upper()
    return {
        "country_code": code if len(code) == 2 and code.isalpha() else None,
        "city": (row.get("city") or "").strip() or None,
    }


def load_osv5m(csv_path: Path, images: Path, limit: int | None = None) -> list[Sample]:
    """OSV-5M: `id,latitude,longitude,thumb_original_url,country,...,city,...`; images `<id>.jpg`."""
    samples = _csv_benchmark(csv_path, images, id_keys=("id",), extra=_osv_extra, limit=limit)
    if any(s.country_code for s in samples):
        from globe.geo import country_name

        samples = [
            Sample(**{**s.to_dict(), "country": country_name(s.country_code)}) if s.country_code else s
            for s in samples
        ]
    return _derive_labels(samples)


def load_mp16_jsonl(path: Path, images: Path | None = None, limit: int | None = None) -> list[Sample]:
    """MP16-Reason-style JSONL: one object per line with an image reference and lat/lon.

    Key names vary between releases, so the usual spellings are accepted (`image`/`image_path`/
    `img`, `lat`/`latitude`, `lon`/`lng`/`longitude`); `country`, `city` and a reference
    `reasoning` are kept when present. Relative image paths resolve against `images`, else
    against the JSONL file's folder.
    """
    if not path.is_file():
        raise BenchmarkError(f"{path}: JSONL file not found")
    base = images or path.parent
    index: ImageIndex | None = None
    samples: list[Sample] = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{where}: expected a JSON object, got {type(row).__name__}")
            if row.get("split") not in (None, "test"):
                continue
            img_key, lat_key, lon_key = _pick(row, IMAGE_KEYS), _pick(row, LAT_KEYS), _pick(row, LON_KEYS)
            for key, names in ((img_key, IMAGE_KEYS), (lat_key, LAT_KEYS), (lon_key, LON_KEYS)):
                if key is None:
                    raise BenchmarkError(f"{where}: no field named any of {list(names)}")
            ref = str(row[img_key])
            if ref.startswith("s3://"):
                image = ref
            else:
                candidate = Path(ref) if Path(ref).is_absolute() else base / ref
                if not candidate.is_file():
                    index = index or ImageIndex(base)
                    found = index.find(ref)
                    if found is None:
                        raise BenchmarkError(f"{where}: image {ref!r} not found under {base}")
                    candidate = found
                image = str(candidate.resolve())
            id_key = _pick(row, ID_KEYS)
            code = row.get("country_code")
            samples.append(
                Sample(
                    id=str(row[id_key]) if id_key else Path(ref).stem,
                    image=image,
                    lat=_coordinate(row[lat_key], lat_key, where, -90, 90),
                    lon=_coordinate(row[lon_key], lon_key, where, -180, 180),
                    country_code=code or None,
                    country=row.get("country") or None,
                    city=row.get("city") or None,
                    label_source=str(row.get("label_source") or "benchmark"),
                    reasoning=row.get("reasoning") or None,
                )
            )
            if limit is not None and len(samples) >= limit:
                break
    if not samples:
        raise BenchmarkError(f"{path}: no test samples (empty file, or every row has another split)")
    if any(not s.country_code for s in samples):
        from globe.geo import normalize_country

        samples = [
            Sample(**{**s.to_dict(), "country_code": normalize_country(s.country)}) if s.country and not s.country_code else s
            for s in samples
        ]
    return _derive_labels(samples)


def geoscenes_condition(meta: dict) -> str | None:
    """"flag hidden" / "clear" for a GeoScenes record that says (datasets rendered before it did: None)."""
    if meta.get("generator") != "geoscenes" or "flag_hidden" not in meta:
        return None
    return "flag hidden" if meta["flag_hidden"] else "clear"


def load_geoscenes(dataset_dir: Path, limit: int | None = None, split: str = "test") -> list[Sample]:
    """A globe dataset directory (`records.jsonl` + `images/`), test split, via `globe.data`."""
    records_path = dataset_dir / "records.jsonl"
    if not records_path.is_file():
        raise BenchmarkError(f"{dataset_dir}: not a dataset directory (no records.jsonl)")
    from globe.data import read_records
    from globe.data.records import image_ref

    samples: list[Sample] = []
    for rec in read_records(records_path):
        if rec.split != split:
            continue
        image = image_ref(dataset_dir, rec)  # checked: stays inside the dataset dir (globe/paths.py)
        samples.append(
            Sample(
                id=rec.id, image=image, lat=rec.lat, lon=rec.lon, country_code=rec.country_code,
                country=rec.country, city=rec.city, label_source=str(rec.label_source or "dataset"),
                reasoning=rec.reasoning,
                entities=tuple(rec.entities) if rec.meta.get("generator") == "geoscenes" else None,
                condition=geoscenes_condition(rec.meta),
            )
        )
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise BenchmarkError(f"{records_path}: no records with split={split!r}")
    return samples


def load_benchmark(
    name: str,
    *,
    csv_path: Path | None = None,
    images: Path | None = None,
    path: Path | None = None,
    limit: int | None = None,
) -> list[Sample]:
    """Load benchmark `name` (one of BENCHMARKS) from its files; `path` is the JSONL or dataset dir."""
    key = name.lower().replace("-", "").replace("_", "")
    key = {"mp16reason": "mp16", "osv": "osv5m"}.get(key, key)
    if key not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    if limit is not None and limit < 1:
        raise BenchmarkError(f"--limit must be at least 1, got {limit}")
    if key in ("im2gps3k", "yfcc4k", "osv5m"):
        if csv_path is None or images is None:
            raise BenchmarkError(f"benchmark {name!r} needs --csv and --images")
        loader = {"im2gps3k": load_im2gps3k, "yfcc4k": load_yfcc4k, "osv5m": load_osv5m}[key]
        return loader(Path(csv_path), Path(images), limit=limit)
    if key == "mp16":
        if path is None:
            raise BenchmarkError("benchmark 'mp16' needs --data pointing at the JSONL file")
        return load_mp16_jsonl(Path(path), Path(images) if images else None, limit=limit)
    if path is None:
        raise BenchmarkError("benchmark 'geoscenes' needs --data pointing at a dataset directory")
    return load_geoscenes(Path(path), limit=limit)
