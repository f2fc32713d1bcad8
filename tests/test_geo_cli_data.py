"""`globe geo` commands, the gazetteer's disk cache, and the bundled Natural Earth GeoJSON."""

from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

from globe.cli import app
from globe.geo import land_geojson_path
from globe.geo.gazetteer import Gazetteer, _read_cache, _write_cache, load

runner = CliRunner()


def test_cli_reverse_prints_json():
    result = runner.invoke(app, ["geo", "reverse", "48.8566", "2.3522"])
    assert result.exit_code == 0, result.output
    place = json.loads(result.stdout)
    assert (place["city"], place["country_code"], place["approximate"]) == ("Paris", "FR", None)
    assert set(place) == {"city", "admin1", "country_code", "country", "lat", "lon", "population", "approximate"}


def test_cli_reverse_negative_and_bad_coordinates():
    ok = runner.invoke(app, ["geo", "reverse", "-33.8688", "151.2093"])  # negative without "--"
    assert ok.exit_code == 0 and json.loads(ok.stdout)["city"] == "Sydney"
    bad = runner.invoke(app, ["geo", "reverse", "91", "0"])
    assert bad.exit_code == 2 and "invalid coordinate" in bad.stderr
    hood = runner.invoke(app, ["geo", "reverse", "-23.5505", "-46.6333", "--nearest"])
    assert json.loads(hood.stdout)["city"] != "São Paulo"  # the neighbourhood GeoNames lists there


def test_cli_geocode():
    result = runner.invoke(app, ["geo", "geocode", "Paris, Texas"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["admin1"] == "Texas" and json.loads(result.stdout)["resolution"] == "city"
    fallback = runner.invoke(app, ["geo", "geocode", "Qqqq", "--country", "Kenya"])
    assert json.loads(fallback.stdout)["approximate"] == "capital"
    assert json.loads(fallback.stdout)["resolution"] == "capital-fallback"
    missing = runner.invoke(app, ["geo", "geocode", "Qqqq Zzzz"])
    assert missing.exit_code == 1 and "no place found" in missing.stderr


def test_cache_round_trip_and_corrupt_file(tmp_path, caplog):
    g = load()
    path = tmp_path / "sub" / "gaz.marshal"
    _write_cache(path, g)
    assert not list(path.parent.glob("*.tmp"))  # atomic: no temporary left behind
    back = _read_cache(path)
    assert isinstance(back, Gazetteer) and len(back) == len(g)
    assert isinstance(back.index, bytes)  # name indexes stay undecoded until geocoding needs them
    assert back.by_name == g.by_name and back.by_alt == g.by_alt and back.by_admin1 == g.by_admin1
    assert (back.lat == g.lat).all() and (back.city_of == g.city_of).all() and back.name == g.name
    path.write_bytes(path.read_bytes()[:1000])  # truncated by a crash or a full disk
    with caplog.at_level(logging.WARNING):
        assert _read_cache(path) is None
    assert "unreadable cache file" in caplog.text
    assert _read_cache(tmp_path / "absent.marshal") is None


def test_cache_in_unwritable_place_is_a_warning_not_an_error(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        _write_cache(blocker / "gaz.marshal", load())
    assert "cannot write cache file" in caplog.text


def test_natural_earth_geojson():
    data = json.loads(land_geojson_path().read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection" and len(data["features"]) >= 170
    by_a2 = {f["properties"]["iso_a2"]: f for f in data["features"] if f["properties"]["iso_a2"]}
    for code in ("FR", "NO", "XK", "US", "CN", "BR", "AU", "ZA"):
        assert code in by_a2, code
    assert all(len(k) == 2 for k in by_a2)
    continents = {f["properties"]["continent"] for f in data["features"]}
    assert {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"} <= continents
    for f in data["features"]:
        geom = f["geometry"]
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for poly in polys:
            for ring in poly:
                assert ring[0] == ring[-1] and len(ring) >= 4
                assert all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in ring)
    assert len(by_a2["ZA"]["geometry"]["coordinates"]) == 2  # South Africa with Lesotho as a hole
    fr = by_a2["FR"]["properties"]
    assert 42 < fr["centroid_lat"] < 51 and -5 < fr["centroid_lon"] < 8  # metropolitan France


def test_disk_cache_keys_and_stale_files(tmp_path, monkeypatch):
    import os
    import time

    from globe.geo import diskcache

    monkeypatch.setenv("GLOBE_CACHE_DIR", str(tmp_path / "c"))
    src, code = tmp_path / "src.txt", tmp_path / "code.py"
    src.write_text("a")
    code.write_text("x = 1")
    first = diskcache.cache_file("thing", [src], [code])
    assert first.parent == tmp_path / "c" and first.name.startswith("thing-")
    assert diskcache.cache_file("thing", [src], [code]) == first  # stable
    code.write_text("x = 2")  # new code -> new file
    second = diskcache.cache_file("thing", [src], [code])
    assert second != first
    diskcache.write(first, {"k": (1, 2)})
    assert diskcache.read(first) == {"k": (1, 2)}
    old = time.time() - 40 * 86400
    os.utime(first, (old, old))
    diskcache.write(second, [1])  # writing a new version drops ones unused for 30 days ...
    assert not first.exists() and diskcache.read(second) == [1]
    third = tmp_path / "c" / "thing-0000.marshal"
    diskcache.write(third, [2])  # ... but not recently used ones
    assert second.exists()
