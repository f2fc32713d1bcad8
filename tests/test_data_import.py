"""`globe data import` on the real IM2GPS3K/YFCC4K files, EXIF GPS photos, and every kind of bad row."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from globe import geo
from globe.cli import app
from globe.data.ingest import PARTIAL_FILE, IngestError, import_dataset
from globe.data.records import read_records


def test_real_im2gps3k_sample(shared_data, tmp_path):
    sample = shared_data / "im2gps3k_sample"
    res = CliRunner().invoke(app, ["data", "import", "--csv", str(sample / "im2gps3k_sample40.csv"),
                                   "--images", str(sample / "images"), "--out", str(tmp_path / "ds"),
                                   "--max-side", "512"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["imported"] == 40 and summary["skipped"] == 0
    records = read_records(tmp_path / "ds")
    assert [r.id for r in records][:2] == [
        "104132709_97b998c989_41_19355699@N00.jpg",
        "1055596489_76a46df552_1047_52057668@N00.jpg",
    ]
    places = geo.reverse_batch([r.lat for r in records], [r.lon for r in records])
    for r, p in zip(records, places):
        assert (r.country_code, r.city, r.label_source) == (p.country_code, p.city, "reverse-geocoded")
        data = (tmp_path / "ds" / r.image).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.image_sha256
        with Image.open(tmp_path / "ds" / r.image) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= 512
    assert records[0].country_code == "AU"  # -33.86, 151.21: Sydney harbour
    assert not (tmp_path / "ds" / PARTIAL_FILE).exists()


def test_benchmark_csvs(shared_data, tmp_path):
    bench = shared_data / "benchmarks"
    # the full IM2GPS3K ground truth against the 40-photo folder: 2,957 rows have no image here
    rep = import_dataset(tmp_path / "im", shared_data / "im2gps3k_sample" / "images",
                         bench / "im2gps3k_places365.csv", max_side=64, progress=False)  # fmt: skip
    assert (rep.rows, rep.imported, dict(rep.skipped)) == (2997, 40, {"missing image": 2957})
    # YFCC4K: IMG_ID, LON, LAT among numbered columns
    imgs = tmp_path / "yfcc_imgs"
    imgs.mkdir()
    for name in ("10201275523.jpg", "7289030198.jpg"):
        Image.new("RGB", (300, 200), "navy").save(imgs / name)
    rep = import_dataset(tmp_path / "yf", imgs, bench / "yfcc4k_places365.csv", limit=10, progress=False)
    assert (rep.rows, rep.imported, dict(rep.skipped)) == (10, 2, {"missing image": 8})
    first = read_records(tmp_path / "yf")[0]
    assert (first.lat, first.lon, first.country_code) == (43.649708, -79.365637, "CA")


def _bomb(path):
    Image.new("1", (9000, 8000)).save(path)  # 72 MP that compress to a few kB


def test_bad_rows_are_skipped_with_reasons(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (64, 32), "red").save(imgs / "good.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (80, 40), "blue").save(imgs / "rotated.jpg", exif=exif)
    whole = (imgs / "good.jpg").read_bytes()
    (imgs / "trunc.jpg").write_bytes(whole[: len(whole) // 2])
    (imgs / "text.jpg").write_text("not an image")
    Image.new("RGB", (20, 20)).save(imgs / "pixmap.ppm")
    _bomb(imgs / "bomb.png")
    (imgs / "nogps.jpg").write_bytes(whole)
    rows = [
        "id,latitude,longitude,country,city",  # OSV-5M layout: ids without extension
        "good,48.8566,2.3522,France,Paris",
        "rotated,35.68,139.76,,",
        "nolat,,2.0,,",
        "farlat,95.0,2.0,,",
        "badlon,10.0,east,,",
        "null,0,0,,",
        "absent,10.0,10.0,,",
        "trunc,10.0,10.0,,",
        "text,10.0,10.0,,",
        "pixmap.ppm,10.0,10.0,,",
        "bomb,10.0,10.0,,",
        "good,1.0,1.0,,",
    ]
    (tmp_path / "osv.csv").write_text("\r\n".join(rows) + "\r\n")
    rep = import_dataset(tmp_path / "ds", imgs, tmp_path / "osv.csv", progress=False)
    assert rep.imported == 2
    assert dict(rep.skipped) == {
        "missing coordinates": 2,
        "invalid coordinates": 2,
        "missing image": 1,
        "truncated image": 1,
        "unreadable image": 1,
        "unsupported format": 1,
        "decompression bomb": 1,
        "duplicate id": 1,
    }
    reasons = {e["id"]: e["reason"] for e in rep.examples}
    assert "95.0" in reasons["farlat"] and "9000x8000" in reasons["bomb"] and "PPM" in reasons["pixmap.ppm"]
    good, rotated = read_records(tmp_path / "ds")
    assert good.meta["provided"] == {"country": "France", "city": "Paris"} and good.country_code == "FR"
    with Image.open(tmp_path / "ds" / rotated.image) as im:
        assert im.size == (40, 80)  # EXIF orientation applied once, tag gone
    report = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert report["skipped"] == 10 and len(report["examples"]) == 10


def test_exif_folder_and_resume(tmp_path):
    imgs = tmp_path / "photos"
    (imgs / "trip").mkdir(parents=True)
    for name, ref, lat, lon in (("a", ("S", "W"), (33, 52, 4.0), (151, 12, 36.0)), ("trip/b", ("N", "E"), (48, 51, 24.0), (2, 21, 7.0))):  # fmt: skip
        exif = Image.Exif()
        exif[0x8825] = {1: ref[0], 2: lat, 3: ref[1], 4: lon}
        Image.new("RGB", (50, 50), "green").save(imgs / f"{name}.jpg", exif=exif)
    Image.new("RGB", (50, 50)).save(imgs / "c.jpg")
    rep = import_dataset(tmp_path / "ds", imgs, progress=False)
    assert (rep.imported, dict(rep.skipped)) == (2, {"missing coordinates": 1})
    a, b = read_records(tmp_path / "ds")
    assert a.id == "a" and a.lat == pytest.approx(-33.8678, abs=1e-4) and a.lon == pytest.approx(-151.21, abs=1e-4)
    assert b.id == "trip/b" and b.country_code == "FR"
    # an import killed after one record (and mid-way through the next line) resumes from there
    final = (tmp_path / "ds" / "records.jsonl").read_text().splitlines()
    (tmp_path / "ds" / PARTIAL_FILE).write_text(final[0] + "\n" + final[1][:30])
    (tmp_path / "ds" / "records.jsonl").unlink()
    rep = import_dataset(tmp_path / "ds", imgs, progress=False)
    assert (rep.resumed, rep.imported) == (1, 2)
    assert [r.id for r in read_records(tmp_path / "ds")] == ["a", "trip/b"]


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("name,x,y\nfoo,1,2\n")
    with pytest.raises(IngestError, match=r"x\.csv: no id/lat/lon column"):
        import_dataset(tmp_path / "ds", tmp_path, tmp_path / "x.csv", progress=False)
    res = CliRunner().invoke(app, ["data", "import", "--csv", str(tmp_path / "x.csv"), "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2 and "no such image folder" in res.output
    shutil.rmtree(tmp_path / "ds", ignore_errors=True)


def test_names_outside_the_images_folder_are_skipped_without_being_opened(tmp_path):
    """`../x`, absolute paths and symlinks out of --images are refused by name, whether or not the
    target exists (the report must not tell an attacker which files exist); links inside are fine."""
    imgs, outside = tmp_path / "images", tmp_path / "outside"
    (imgs / "sub").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (40, 30), "red").save(outside / "s.jpg")
    Image.new("RGB", (40, 30), "blue").save(imgs / "sub" / "in.jpg")
    (imgs / "link_out.jpg").symlink_to(outside / "s.jpg")
    (imgs / "dir_out").symlink_to(outside, target_is_directory=True)
    (imgs / "link_in.jpg").symlink_to(imgs / "sub" / "in.jpg")
    names = ["../outside/s.jpg", "../outside/missing.jpg", "/etc/shadow", str(outside / "s.jpg"), "link_out.jpg",
             "dir_out/s.jpg", "sub/../../outside/s.jpg"]  # fmt: skip
    rows = ["IMG_ID,LAT,LON", *(f"{n},48.8,2.3" for n in names), "link_in.jpg,48.8,2.3", "sub/in.jpg,48.8,2.3"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    rep = import_dataset(tmp_path / "out", imgs, tmp_path / "t.csv", progress=False)
    assert dict(rep.skipped) == {"outside the images folder": len(names)}
    assert [r.id for r in read_records(tmp_path / "out")] == ["link_in.jpg", "sub/in.jpg"]
    for r in read_records(tmp_path / "out"):
        with Image.open(tmp_path / "out" / r.image) as im:
            assert im.convert("RGB").getpixel((5, 5))[2] > 200  # blue, from inside; never the red outside photo
    # EXIF mode: a symlink out of the folder is skipped the same way
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48, 51, 24.0), 3: "E", 4: (2, 21, 7.0)}
    Image.new("RGB", (50, 50), "green").save(outside / "gps.jpg", exif=exif)
    (imgs / "gps_link.jpg").symlink_to(outside / "gps.jpg")
    rep = import_dataset(tmp_path / "exif", imgs, progress=False)
    assert rep.imported == 0 and rep.skipped["outside the images folder"] >= 2  # gps_link.jpg, link_out.jpg


def test_rows_that_used_to_abort_the_import_are_skipped_with_a_reason(tmp_path):
    """Issue 26, through the real `globe` executable: each of these rows aborted the whole import
    with a traceback (exit 1), or became a wrong label (`1_0` read as 10.0, Arabic-Indic digits)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _serve_helpers import scan_bomb_jpeg

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (64, 32), "red").save(imgs / "good.jpg")
    Image.new("RGB", (64, 32), "green").save(imgs / "good2.jpg")
    (imgs / "bomb.jpg").write_bytes(scan_bomb_jpeg(2000, 1900, 10_000))
    os.symlink("loop.jpg", imgs / "loop.jpg")  # a link to itself
    rows = [
        b"IMG_ID,LAT,LON,city",
        b"good.jpg,48.8566,2.3522,Paris",
        b"nul\x00.jpg,10.0,10.0,",
        b"big.jpg,10.0,10.0," + b"c" * (130 * 1024),  # a cell over the csv module's 128 KiB
        b"bad\xff\xfeutf8.jpg,10.0,10.0,",
        b"x" * 5000 + b".jpg,10.0,10.0,",
        b"loop.jpg,10.0,10.0,",
        b"coords1.jpg,1_0,10.0,",
        "coords2.jpg,٤٨.٨٥,2.0,".encode(),  # Arabic-Indic digits
        b"bomb.jpg,10.0,10.0,",
        b"good2.jpg,-33.5,151.2,Sydney",
    ]
    (tmp_path / "in.csv").write_bytes(b"\n".join(rows) + b"\n")
    (tmp_path / "utf16.csv").write_text("IMG_ID,LAT,LON\ngood.jpg,48.8566,2.3522\n", encoding="utf-16")
    globe = str(Path(sys.executable).with_name("globe"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([globe, "data", "import", "--out", str(tmp_path / "ds"), "--images", str(imgs), "--csv", str(tmp_path / "in.csv")],
                         capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["imported"] == 2 and summary["skipped"] == 8, summary
    assert summary["skipped_by_reason"] == {"invalid id": 2, "invalid text": 1, "unreadable row": 1, "unreadable image": 1,
                                            "invalid coordinates": 2, "decompression bomb": 1}, summary  # fmt: skip
    report = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    reasons = [e["reason"] for e in report["examples"]]
    assert any("field larger than field limit" in r for r in reasons) and any("Symlink loop" in r or "loop" in r for r in reasons)
    assert any("'1_0' is not a plain decimal" in r for r in reasons) and any("more than 100 scans" in r for r in reasons)
    assert all(len(e["id"]) <= 203 for e in report["examples"])
    assert [(r.id, r.lat) for r in read_records(tmp_path / "ds")] == [("good.jpg", 48.8566), ("good2.jpg", -33.5)]
    utf16 = subprocess.run([globe, "data", "import", "--out", str(tmp_path / "ds16"), "--images", str(imgs), "--csv", str(tmp_path / "utf16.csv")],
                           capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert utf16.returncode == 0 and json.loads(utf16.stdout)["imported"] == 1, utf16.stderr[-3000:]
