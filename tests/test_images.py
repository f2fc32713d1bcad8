"""globe.images: one opener, so serving, `globe predict`, import, distill, rewards and eval see the same pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from globe.images import MAX_SIDE, ImageError, ImageLimits, PixelBudget, open_image, open_ref


def sideways_jpeg(w: int, h: int) -> bytes:
    """A photo stored landscape with an EXIF 'rotate 90° CW' tag: upright it is h x w."""
    img = Image.new("RGB", (w, h), (200, 40, 40))
    img.paste((20, 40, 220), (0, 0, w // 4, h))  # a blue band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, exif=exif)
    return buf.getvalue()


def test_every_path_sees_identical_upright_pixels(tmp_path):
    from globe.data.records import Record, load_image as record_image, write_records
    from globe.evaluate.runner import _load_batch
    from globe.evaluate.benchmarks import Sample
    from globe.rewards.localizability import _image as judge_image
    from globe.serve.inputs import InputLimits, load_image as serve_image

    data = sideways_jpeg(1600, 1200)
    (tmp_path / "images").mkdir()
    path = tmp_path / "images" / "p.jpg"
    path.write_bytes(data)
    write_records(tmp_path, [Record(id="p", image="images/p.jpg", image_sha256="0" * 64, lat=1, lon=1)])
    seen = {
        "serve / globe predict": serve_image(data, "instances[0].image_b64", InputLimits()),
        "opener": open_image(path),
        "records (distill, verify, train)": record_image(tmp_path, Record(id="p", image="images/p.jpg", image_sha256="0" * 64, lat=1, lon=1)),
        "eval": _load_batch([Sample(id="p", image=str(path), lat=1, lon=1)])[0][0],
        "judge": judge_image(str(path)),
    }
    reference = seen["opener"]
    assert reference.mode == "RGB" and reference.size == (768, MAX_SIDE)  # upright (portrait) and reduced
    assert reference.getpixel((380, 20))[2] > 150  # the blue band is now on top
    for where, img in seen.items():
        assert (img.mode, img.size, img.tobytes()) == (reference.mode, reference.size, reference.tobytes()), where
    # with a model input size (`LocalEngine.input_size`), the harness and serving decode straight to it
    fit = lambda w, h: (w // 3, h // 3)  # noqa: E731
    fitted = {
        "serve / globe predict": serve_image(data, "instances[0].image_b64", InputLimits(), fit=fit),
        "opener": open_image(path, fit=fit),
        "eval": _load_batch([Sample(id="p", image=str(path), lat=1, lon=1)], fit)[0][0],
    }
    reference = fitted["opener"]
    assert reference.size == (256, 341) and reference.getpixel((128, 6))[2] > 150
    for where, img in fitted.items():
        assert (img.size, img.tobytes()) == (reference.size, reference.tobytes()), where


def test_large_images_decode_straight_to_the_target_size():
    buf = io.BytesIO()
    Image.new("RGB", (2400, 1800), (10, 120, 30)).save(buf, format="JPEG")
    img = open_image(buf.getvalue(), limits=ImageLimits(max_side=512))
    assert img.size == (512, 384) and img.mode == "RGB"
    small = io.BytesIO()
    Image.new("P", (64, 48), 3).save(small, format="PNG")
    assert open_image(small.getvalue()).size == (64, 48)  # never enlarged beyond the source (except below MIN_SIDE)


def test_budget_and_header_checks_refuse_before_decoding(tmp_path):
    from _serve_helpers import bomb_png

    budget = PixelBudget(5_000_000, "serve.max_request_pixels")
    open_image(_png(2000, 2000), "a", budget=budget)  # 4 MP of 5
    with pytest.raises(ImageError, match=r"b: this request's images add up to more than 5000000 pixels \(serve.max_request_pixels\)") as err:
        open_image(_png(2000, 2000), "b", budget=budget)
    assert err.value.category == "over budget"
    with pytest.raises(ImageError, match=r"c: image is 9000x8000 = 72000000 pixels, above the limit of 64000000") as err:
        open_image(bomb_png(9000, 8000), "c")
    assert err.value.category == "decompression bomb"
    buf = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buf, format="PPM")
    with pytest.raises(ImageError, match="PPM images are not accepted") as err:
        open_image(buf.getvalue(), "d")
    assert err.value.category == "unsupported format"
    with pytest.raises(ImageError, match="missing.png not found"):
        open_ref(tmp_path / "missing.png")


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def test_s3_images_open_through_the_one_s3_client_with_the_same_pixels(s3_server, tmp_path, monkeypatch):
    """Eval, distill and training read `s3://` images via `globe.s3.client` (also the served
    weights' downloader): same pixels as the local file; changed credentials are not cached."""
    from globe import s3

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.make_bucket("photos")
    data = sideways_jpeg(1600, 1200)
    s3_server.client().put_object(Bucket=bucket, Key="eval/p.jpg", Body=data)
    (tmp_path / "p.jpg").write_bytes(data)
    remote, local = open_ref(f"s3://{bucket}/eval/p.jpg"), open_ref(tmp_path / "p.jpg")
    assert remote.size == (768, MAX_SIDE) and (remote.size, remote.tobytes()) == (local.size, local.tobytes())
    assert s3.client() is s3.client()  # built once per configuration
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ImageError, match=rf"cannot read s3://{bucket}/eval/p.jpg") as err:
        open_ref(f"s3://{bucket}/eval/p.jpg")
    assert err.value.category == "missing image"
    with pytest.raises(ImageError, match="refusing an ambiguous key"):
        open_ref(f"s3://{bucket}/eval/../p.jpg")


def test_a_progressive_jpeg_scan_bomb_is_refused_before_decoding(tmp_path):
    """Issue 26: 140 KB of empty scans over a 6000x6600 frame took ~10-30 s of CPU to decode, on
    every path (the pixel limits do not see it: the cost is in the scans)."""
    import time

    from _serve_helpers import scan_bomb_jpeg

    bomb = scan_bomb_jpeg(6000, 6600, 10_000)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb)
    for source in (bomb, path):
        started = time.process_time()
        with pytest.raises(ImageError, match="more than 100 scans") as exc:
            open_image(source, "photo")
        assert exc.value.category == "decompression bomb" and time.process_time() - started < 0.5
    with pytest.raises(ImageError, match="more than 100 scans"):
        open_ref(path)
    with pytest.raises(ImageError, match="decode-work limit"):  # few scans, but each over 40 MP
        open_image(scan_bomb_jpeg(6000, 6600, 60), "photo")
    progressive = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 90, 160)).save(progressive, format="JPEG", progressive=True)
    assert open_image(progressive.getvalue()).size == (640, 480)  # a real progressive JPEG (~10 scans) still opens
