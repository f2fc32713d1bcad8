"""Request decoding and validation: every bad input is a BadInput (HTTP 400) that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from _serve_helpers import b64, bomb_png, png_bytes
from globe.serve.inputs import BadInput, InputLimits, check_url, load_image, parse_v1, parse_v2

LIMITS = InputLimits(max_image_pixels=1_000_000, max_image_bytes=2_000_000, max_instances=4, url_allowlist=("https://img.example.com/geo/",),
                     max_samples=8)


def test_v1_valid_instances_decode_to_rgb_images():
    refs = parse_v1({"instances": [{"image_b64": b64(png_bytes())}, {"image_b64": "data:image/png;base64," + b64(png_bytes(30, 30)), "id": "b"}]}, LIMITS)
    assert [r.id for r in refs] == ["", "b"]
    img = load_image(refs[0].data, refs[0].where, LIMITS)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert img.getpixel((5, 5)) == (10, 120, 200)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ([], "expected a JSON object"),
        ({"inputs": []}, "missing field 'instances'"),
        ({"instances": {"image_b64": "x"}}, "instances: expected a list"),
        ({"instances": []}, "empty"),
        ({"instances": ["abc"]}, "instances[0]: expected an object"),
        ({"instances": [{"img": "abc"}]}, "unknown field(s) ['img']"),
        ({"instances": [{}]}, "expected exactly one of"),
        ({"instances": [{"image_b64": 123}]}, "instances[0].image_b64: expected a base64 string, got int"),
        ({"instances": [{"image_b64": "not base64 !!"}]}, "instances[0].image_b64: invalid base64"),
        ({"instances": [{"image_b64": ""}]}, "empty string"),
        ({"instances": [{"image_b64": b64(b"x")}] * 5}, "5 images in one request, above the limit of 4"),
        ({"instances": [{"image_b64": b64(b"x"), "image_url": "https://img.example.com/geo/a.png"}]}, "exactly one of"),
    ],
)
def test_v1_bad_requests_name_the_problem(body, fragment):
    with pytest.raises(BadInput) as err:
        parse_v1(body, LIMITS)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty image"),
        (b"GIF89a but not really an image at all", "not an image"),
        (png_bytes()[:-30], "truncated or corrupt"),
        (bomb_png(1500, 1500), "1500x1500 = 2250000 pixels, above the limit of 1000000"),
        (bomb_png(20_000, 20_000), "decompression bomb"),  # PIL's own guard fires while reading the header
        (bomb_png(1000, 2), "aspect ratio"),
        (b"\x00" * 2_000_001, "above the limit of 2000000"),
    ],
)
def test_load_image_refuses_bad_images(data, fragment):
    with pytest.raises(BadInput) as err:
        load_image(data, "instances[0].image_b64", LIMITS)
    assert fragment in str(err.value) and "instances[0].image_b64" in str(err.value)


def test_tiny_images_are_upscaled_not_refused():
    img = load_image(png_bytes(10, 20), "x", LIMITS)
    assert min(img.size) == 28 and img.size == (28, 56)


def test_v2_accepts_base64_strings_and_raw_bytes():
    raw = png_bytes(40, 40)
    as_text = InferInput("image", [2], "BYTES", [b64(raw), b64(png_bytes(32, 32))])
    refs = parse_v2(InferRequest("globe", [as_text]), LIMITS)
    assert [r.data for r in refs] == [raw, png_bytes(32, 32)]
    as_bytes = InferInput("image", [1], "BYTES")
    as_bytes.set_data_from_numpy(np.array([raw], dtype=np.object_), binary_data=True)  # gRPC / binary extension form
    assert [r.data for r in parse_v2(InferRequest("globe", [as_bytes]), LIMITS)] == [raw]


@pytest.mark.parametrize(
    "inp, fragment",
    [
        (InferInput("pixels", [1], "BYTES", ["x"]), "missing input named 'image'"),
        (InferInput("image", [3], "FP32", [1.0, 2.0, 3.0]), "datatype 'FP32' is not supported; expected 'BYTES'"),
        (InferInput("image", [1], "BYTES", [17]), "expected a base64 string or bytes, got int"),
        (InferInput("image", [1], "BYTES", ["%%%"]), "invalid base64"),
    ],
)
def test_v2_bad_requests_name_the_problem(inp, fragment):
    with pytest.raises(BadInput) as err:
        parse_v2(InferRequest("globe", [inp]), LIMITS)
    assert fragment in str(err.value)


def test_samples_are_read_per_v1_instance_and_per_v2_request():
    refs = parse_v1({"instances": [{"image_b64": b64(png_bytes()), "samples": 8}, {"image_b64": b64(png_bytes())}]}, LIMITS)
    assert [r.samples for r in refs] == [8, 1]
    inp = InferInput("image", [2], "BYTES", [b64(png_bytes()), b64(png_bytes())])
    assert [r.samples for r in parse_v2(InferRequest("globe", [inp], parameters={"samples": 4}), LIMITS)] == [4, 4]
    assert [r.samples for r in parse_v2(InferRequest("globe", [inp]), LIMITS)] == [1, 1]
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter

    grpc = InferRequest("globe", [inp], parameters={"samples": InferParameter(int64_param=3)})  # as gRPC delivers it
    assert [r.samples for r in parse_v2(grpc, LIMITS)] == [3, 3]


@pytest.mark.parametrize("value, fragment", [
    (9, "9 samples is outside 1..8 (this server's serve.max_samples)"),
    (0, "0 samples is outside 1..8"),
    (-2, "outside 1..8"),
    ("4", "expected an integer number of samples (1 to 8), got a string"),
    (2.0, "got float"),
    (True, "got a boolean"),
    (None, "got null"),
])
def test_bad_samples_name_the_field_and_the_bound(value, fragment):
    with pytest.raises(BadInput) as err:
        parse_v1({"instances": [{"image_b64": b64(png_bytes()), "samples": value}]}, LIMITS)
    assert "instances[0].samples" in str(err.value) and fragment in str(err.value)
    inp = InferInput("image", [1], "BYTES", [b64(png_bytes())])
    with pytest.raises(BadInput) as err:
        parse_v2(InferRequest("globe", [inp], parameters={"samples": value}), LIMITS)
    assert "parameters.samples" in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://img.example.com.evil.net/geo/a.png",  # prefix trick on the host
        "https://img.example.com/other/a.png",  # outside the allowed path
        "http://img.example.com/geo/a.png",  # scheme downgrade
        "https://img.example.com:8443/geo/a.png",  # other port
        "https://img.example.com@169.254.169.254/geo/a.png",  # userinfo trick
        "file:///etc/passwd",
    ],
)
def test_url_allowlist_refuses_everything_not_listed(url):
    with pytest.raises(BadInput):
        check_url(url, LIMITS.url_allowlist, "instances[0].image_url")


def test_url_allowlist_accepts_listed_prefix_and_empty_list_disables_urls():
    assert check_url("https://IMG.example.com/geo/x/y.jpg", LIMITS.url_allowlist, "u") == "https://img.example.com/geo/x/y.jpg"
    with pytest.raises(BadInput, match="image URLs are disabled"):
        check_url("https://img.example.com/geo/a.png", (), "u")


@pytest.mark.parametrize(
    "url, normal",
    [
        ("HTTPS://Img.Example.COM:443/geo/a.png", "https://img.example.com/geo/a.png"),
        ("https://img.example.com/geo/./x/../a.png#frag", "https://img.example.com/geo/a.png"),
        ("https://img.example.com/geo/%61%7e.png?q=%2a", "https://img.example.com/geo/a~.png?q=%2A"),
        ("https://img.example.com/geo/caf\u00e9.png", "https://img.example.com/geo/caf%C3%A9.png"),
        ("http://[::1]:8080/geo/a.png", "http://[::1]:8080/geo/a.png"),
    ],
)
def test_urls_are_normalised_before_the_allowlist_check(url, normal):
    from globe.serve.inputs import normalise_url

    assert normalise_url(url, "u") == normal


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("https://img.example.com/geo/../other/a.png", "not on this server's allowlist"),
        ("https://img.example.com/geo/%2e%2e/other/a.png", "encodes '.' as %2E"),
        ("https://img.example.com/geo%2fa.png", "encodes '/' as %2F"),
        ("https://img.example.com/geo/..%5Ca.png", "encodes '\\\\' as %5C"),
        ("https://img.example.com/geo\\..\\a.png", "backslashes"),
        ("https://img.example.com/geography/a.png", "not on this server's allowlist"),  # /geo/ is a folder, not a prefix
        ("https://img_example.com/geo/a.png", "not a plain DNS name"),
        ("https://img.example.com/geo/a b.png", "spaces are not accepted"),
    ],
)
def test_allowlist_escapes_are_refused(url, fragment):
    with pytest.raises(BadInput) as err:
        check_url(url, LIMITS.url_allowlist, "instances[0].image_url")
    assert fragment in str(err.value)


def test_v2_shapes_must_match_the_data_and_unknown_inputs_are_refused():
    image = InferInput("image", [2, 2], "BYTES", [b64(png_bytes())])
    with pytest.raises(BadInput, match=r"inputs\['image'\]: shape \[2, 2\] holds 4 element\(s\), but the data has 1"):
        parse_v2(InferRequest("globe", [image]), LIMITS)
    good = InferInput("image", [1], "BYTES", [b64(png_bytes())])
    with pytest.raises(BadInput, match=r"inputs\['mask'\]: unknown input"):
        parse_v2(InferRequest("globe", [good, InferInput("mask", [2], "FP32", [1.0, 2.0])]), LIMITS)
    raw = InferInput("image", [1], "BYTES")
    raw._raw_data = b"\x09\x00\x00\x00abc"  # a length prefix promising more bytes than follow
    with pytest.raises(BadInput, match="malformed BYTES tensor"):
        parse_v2(InferRequest("globe", [raw]), LIMITS)
