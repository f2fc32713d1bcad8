"""Import geotagged photos into a dataset directory (records.jsonl + images/).

Sources: a benchmark CSV plus an image folder, or a folder of photos with EXIF GPS. The CSV layouts
differ only in column names, so columns are found by name, case-insensitively:

    IM2GPS3K   IMG_ID,AUTHOR,LAT,LON,...            (CRLF line ends)
    YFCC4K     0,IMG_ID,2,3,...,LON,LAT,...         (the header is mostly column numbers)
    MP16       IMG_ID,...,LAT,LON[,city,country...] (IMG_ID may be a relative path)
    OSV-5M     id,latitude,longitude,country,city,...  (images are <id>.jpg)

Country and city always come from `globe.geo.reverse_batch` (recorded as
`label_source="reverse-geocoded"`), so every dataset is labelled by the same offline gazetteer;
labels a CSV carries are kept in `meta["provided"]`.

Each image is normalised once by `globe.images.open_image` (EXIF orientation applied, RGB, long side
capped, the same pixels serving and eval see) and saved as JPEG, so
training, evaluation and serving never meet a sideways or 50-megapixel photo. A bad row is skipped
with a reason: missing or invalid coordinates, missing, unreadable, truncated or unsupported image,
an image over the pixel budget (a decompression bomb), or a name that resolves outside `--images`
("outside the images folder": `../x.jpg`, `/etc/shadow`, a symlink out; refused without opening it). Progress is appended to
`records.partial.jsonl`, so an interrupted import resumes; `records.jsonl` is written atomically at
the end, in source order, and the partial file removed.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from globe.data.columns import LAT_COLUMNS, LON_COLUMNS, CoordinateError, coordinate, find_column
from globe.data.records import IMAGES_DIR, JsonlAppender, Record, atomic_write_bytes, dump, write_records
from globe.images import MAX_SIDE, MAX_SOURCE_PIXELS
from globe.paths import OUTSIDE, OutsideFolder, inside

PARTIAL_FILE = "records.partial.jsonl"
REPORT_FILE = "import_report.json"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
ID_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # tried, in order, for a CSV id without an extension

MAX_ID_CHARS = 1024  # an image id (a relative path at most); longer ones are skipped as "invalid id"
MAX_SHOWN = 200  # characters of an id or a value quoted in the report
ID_COLUMNS = ("img_id", "image_id", "id", "image", "filename", "file", "photo_id")
LABEL_COLUMNS = ("country", "city", "region", "state")


class IngestError(ValueError):
    """The input as a whole cannot be imported (not a bad row: those are skipped and reported)."""


class RowError(Exception):
    """One row is skipped; `category` groups the report, the message says what exactly."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category = category


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    resumed: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def skip(self, row: int, ident: str, err: RowError) -> None:
        self.skipped[err.category] += 1
        if len(self.examples) < 100:
            self.examples.append({"row": row, "id": _shown(ident), "reason": _shown(str(err), 500)})

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "resumed": self.resumed,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "examples": self.examples[:10],
        }


@dataclass
class Row:
    index: int  # 1-based data row (CSV line number minus the header)
    ident: str
    image: Path | None
    lat: float | None
    lon: float | None
    provided: dict[str, str] = field(default_factory=dict)
    error: RowError | None = None


# ----------------------------------------------------------------------------- reading sources


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return find_column(header, names)


def _coordinate(raw: str | None, what: str, limit: float) -> float:
    try:
        return coordinate(raw, what, limit)
    except CoordinateError as exc:
        raise RowError(exc.category, str(exc)) from None


def _checked_pair(lat_raw: str | None, lon_raw: str | None) -> tuple[float, float]:
    lat = _coordinate(lat_raw, "lat", 90.0)
    lon = _coordinate(lon_raw, "lon", 180.0)
    if lat == 0.0 and lon == 0.0:  # "null island" is how many exporters write a missing GPS fix
        raise RowError("missing coordinates", "lat=0, lon=0 (no GPS fix)")
    return lat, lon


def image_names(ident: str) -> list[str]:
    """The file names a CSV id may stand for: the id itself as a relative path, then, when it has
    no extension (OSV-5M ids), the id with each of `ID_SUFFIXES`. The importer and the pipeline's
    S3 stager (`globe.data.source`) look photos up by this one rule."""
    return [ident] if Path(ident).suffix else [ident, *(ident + suffix for suffix in ID_SUFFIXES)]


def _find_image(images_dir: Path, ident: str) -> Path | None:
    """The image file an id names, inside `images_dir` (symlinks followed, never out of it).

    A name that resolves outside is a RowError("outside the images folder") whether or not the
    outside file exists: the report must not tell an attacker which files exist. A name the file
    system cannot resolve (a symlink loop, a component too long) is a RowError too.
    """
    for name in image_names(ident):
        try:
            p = inside(images_dir, name)
            if p.is_file():
                return p
        except OutsideFolder as exc:
            raise RowError(OUTSIDE, str(exc)) from None
        except (OSError, RuntimeError, ValueError) as exc:  # RuntimeError: Python 3.11's "Symlink loop from ..."
            raise RowError("unreadable image", f"cannot resolve {_shown(name)}: {type(exc).__name__}: {_shown(str(exc))}") from None
    return None


def _shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` fit for a report line: invalid UTF-8 shown as \\x escapes, control characters escaped, cut."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in safe[: limit + 1])
    return safe if len(safe) <= limit else safe[:limit] + "..."


def _check_ident(ident: str) -> None:
    if any("\udc80" <= c <= "\udcff" for c in ident):  # undecodable bytes (see _open_text)
        raise RowError("invalid text", "the row is not valid UTF-8")
    if len(ident) > MAX_ID_CHARS:
        raise RowError("invalid id", f"the image id has {len(ident)} characters, above the limit of {MAX_ID_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in ident):
        raise RowError("invalid id", "the image id holds a control character (a NUL byte, a newline, ...)")


def _open_text(csv_path: Path):
    """The CSV as text: UTF-8 (a BOM is dropped), or UTF-16 when it starts with a UTF-16 BOM.
    Bytes that are not valid UTF-8 become lone surrogates, so only the rows holding them are skipped."""
    with open(csv_path, "rb") as fh:
        head = fh.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return open(csv_path, newline="", encoding="utf-16", errors="surrogateescape")
    return open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape")


def _csv_records(reader) -> Iterator[tuple[int, list[str] | None, RowError | None]]:
    """(data row number, cells or None, error or None): a record the csv module refuses (a cell
    over 128 KiB, a broken quote) is reported and reading goes on with the next line."""
    n = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            n += 1
            yield n, None, RowError("unreadable row", f"CSV line {reader.line_num}: {exc}")
            continue
        except UnicodeDecodeError as exc:  # UTF-16 with an odd byte count
            n += 1
            yield n, None, RowError("invalid text", f"CSV line {reader.line_num}: {exc.reason}")
            return
        if not values or not any(v.strip() for v in values):
            continue
        n += 1
        yield n, values, None


def read_csv_rows(csv_path: Path, images_dir: Path) -> Iterator[Row]:
    """Rows of any supported CSV layout; rows with bad coordinates, ids or text carry their error."""
    if not csv_path.is_file():
        raise IngestError(f"{csv_path}: no such CSV file")
    try:
        fh = _open_text(csv_path)
    except OSError as exc:
        raise IngestError(f"{csv_path}: cannot read the CSV ({exc.strerror or exc})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise IngestError(f"{csv_path}: the header row cannot be read ({exc})") from None
        if not header:
            raise IngestError(f"{csv_path}: empty file, expected a header row")
        cols = {k: _column(header, names) for k, names in (("id", ID_COLUMNS), ("lat", LAT_COLUMNS), ("lon", LON_COLUMNS))}
        missing = [k for k, v in cols.items() if v is None]
        if missing:
            raise IngestError(
                f"{csv_path}: no {'/'.join(missing)} column; expected IMG_ID/id, LAT/latitude, LON/longitude "
                f"(IM2GPS3K, YFCC4K, MP16 or OSV-5M layout, UTF-8 or UTF-16 with a BOM), found header {_shown(str(header[:12]), 300)}"
            )
        labels = {name: i for name, i in ((name, _column(header, (name,))) for name in LABEL_COLUMNS) if i is not None}
        for n, values, error in _csv_records(reader):
            if values is None:
                yield Row(n, f"row{n}", None, None, None, error=error)
                continue
            get = lambda i: values[i] if i < len(values) else None  # noqa: E731
            ident = (get(cols["id"]) or "").strip()
            row = Row(n, ident or f"row{n}", None, None, None)
            try:
                row.provided = {k: _shown(v, 200) for k, i in labels.items() if (v := (get(i) or "").strip())}
                if not ident:
                    raise RowError("missing id", "the image id column is empty")
                _check_ident(ident)
                row.lat, row.lon = _checked_pair(get(cols["lat"]), get(cols["lon"]))
                row.image = _find_image(images_dir, ident)
                if row.image is None:
                    raise RowError("missing image", f"{_shown(str(images_dir / ident))} not found")
            except RowError as exc:
                row.error = exc
            yield row


def _dms(value, ref) -> float:
    d, m, s = (float(x) for x in value)
    out = d + m / 60.0 + s / 3600.0
    return -out if str(ref).strip().upper() in ("S", "W") else out


def exif_gps(path: Path) -> tuple[float, float]:
    """(lat, lon) from a photo's EXIF GPS block, or RowError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            gps = im.getexif().get_ifd(0x8825)
    except (UnidentifiedImageError, OSError) as exc:
        raise RowError("unreadable image", f"{exc}") from None
    if not gps or 2 not in gps or 4 not in gps:
        raise RowError("missing coordinates", "no EXIF GPS position")
    try:
        lat, lon = _dms(gps[2], gps.get(1, "N")), _dms(gps[4], gps.get(3, "E"))
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise RowError("invalid coordinates", f"EXIF GPS unreadable: {exc}") from None
    return _checked_pair(str(lat), str(lon))


def read_exif_rows(images_dir: Path) -> Iterator[Row]:
    files = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    for n, path in enumerate(files, 1):
        ident = path.relative_to(images_dir).with_suffix("").as_posix()
        row = Row(n, ident, path, None, None)
        try:
            try:
                inside(images_dir, path.relative_to(images_dir))  # a symlink out of the folder
            except OutsideFolder as exc:
                raise RowError(OUTSIDE, str(exc)) from None
            row.lat, row.lon = exif_gps(path)
        except RowError as exc:
            row.error = exc
        yield row


# ----------------------------------------------------------------------------- images


def normalise_image(path: Path | None, max_side: int, max_pixels: int = MAX_SOURCE_PIXELS) -> bytes:
    """JPEG bytes of the image as every model sees it (`globe.images.open_image`), or RowError saying why not."""
    from globe.images import ImageError, ImageLimits, open_image

    if path is None:
        raise RowError("missing image", "no image file")
    try:
        im = open_image(path, where=path.name, limits=ImageLimits(max_pixels=max_pixels, max_side=max_side))
    except ImageError as exc:
        raise RowError(exc.category, str(exc)) from None
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _file_name(ident: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._@-]+", "_", Path(ident).with_suffix("").as_posix()).strip("._") or "img"
    name, k = f"{stem}.jpg", 1
    while name in taken:
        k += 1
        name = f"{stem}-{k}.jpg"
    taken.add(name)
    return name


# ----------------------------------------------------------------------------- the import


def import_dataset(
    out_dir: str | Path,
    images_dir: str | Path,
    csv_path: str | Path | None = None,
    max_side: int = MAX_SIDE,
    split: str = "test",
    limit: int | None = None,
    max_pixels: int = MAX_SOURCE_PIXELS,
    progress: bool = True,
) -> ImportReport:
    """Import a CSV + image folder (or EXIF-GPS photos) into `out_dir`; see the module docstring."""
    import hashlib

    from tqdm import tqdm

    from globe import geo

    out, images_dir = Path(out_dir), Path(images_dir)
    if not images_dir.is_dir():
        raise IngestError(f"{images_dir}: no such image folder")
    if max_side < 28:
        raise IngestError(f"--max-side {max_side} is too small (at least 28 px)")
    source = read_csv_rows(Path(csv_path), images_dir) if csv_path else read_exif_rows(images_dir)
    rows: list[Row] = []
    for row in source:
        if limit is not None and len(rows) >= limit:
            break
        rows.append(row)
    report = ImportReport(rows=len(rows))
    seen: set[str] = set()
    for row in rows:
        if row.error is None and row.ident in seen:
            row.error = RowError("duplicate id", f"{row.ident} appears more than once")
        seen.add(row.ident)
    good = [r for r in rows if r.error is None]
    places = geo.reverse_batch([r.lat for r in good], [r.lon for r in good])
    place_of = {r.ident: p for r, p in zip(good, places)}

    partial = out / PARTIAL_FILE
    taken: set[str] = set()
    names = {r.ident: _file_name(r.ident, taken) for r in good}
    with JsonlAppender(partial) as app:
        report.resumed = len(app.done & set(place_of))
        for row in tqdm(rows, desc="import", unit="img", disable=not progress):
            if row.error is None and row.ident not in app.done:
                try:
                    jpeg = normalise_image(row.image, max_side, max_pixels)
                except RowError as exc:
                    row.error = exc
                else:
                    rel = f"{IMAGES_DIR}/{names[row.ident]}"
                    atomic_write_bytes(out / rel, jpeg, durable=False)
                    place = place_of[row.ident]
                    meta = {"source_image": str(row.image), "row": row.index, "geocoded_place": place.to_dict()}
                    if row.provided:
                        meta["provided"] = row.provided
                    app.append(
                        Record(
                            id=row.ident,
                            image=rel,
                            image_sha256=hashlib.sha256(jpeg).hexdigest(),
                            lat=row.lat,
                            lon=row.lon,
                            country_code=place.country_code,
                            country=place.country,
                            city=place.city,
                            label_source="reverse-geocoded",
                            split=split,
                            meta=meta,
                        )
                    )
            if row.error is not None:
                report.skip(row.index, row.ident, row.error)
    from globe.data.records import iter_records

    by_id = {r.id: r for r in iter_records(partial)}
    order = [by_id[r.ident] for r in rows if r.ident in by_id and r.error is None]
    report.imported = len(order)
    write_records(out, order)
    atomic_write_bytes(out / REPORT_FILE, dump(report.summary() | {"examples": report.examples}).encode())
    partial.unlink()
    return report
