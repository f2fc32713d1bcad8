"""A reference teacher for real photos, on loopback: an OpenAI-compatible endpoint that knows the
ground truth of the benchmark photos it may be shown.

The tiny world's scene reader cannot read a real photo and no VLM runs here, so distillation of
imported photos needs a stand-in for a strong teacher (Qwen2.5-VL-72B behind vLLM in production).
This one recognises each photo of a benchmark CSV by a 16x16 grey thumbnail (robust to the
importer's re-encoding and resizing, and to the engine's own), answers its ground-truth place in
GLOBE's format, and judges localizability from the benchmark's own Places365 scene probability
(IM2GPS3K's `Prob_indoor`), so indoor photos are judged not localizable, as a teacher would.
It only plays the teacher: the pipeline under test (import, distill over HTTP, verify, train,
evaluate, register) is the real one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from globe.tiny.teacher_server import TeacherServer
from globe.engines.base import JudgeResult


def _signature(image: Image.Image) -> np.ndarray:
    grey = ImageOps.exif_transpose(image).convert("L").resize((16, 16), Image.Resampling.BILINEAR)
    v = np.asarray(grey, dtype=np.float32).ravel()
    return (v - v.mean()) / (v.std() + 1e-6)


class PhotoOracle:
    """The `reader` a TeacherServer asks: `answer(image)` and `judge(requests)`."""

    def __init__(self, csv_path: Path, images: Path):
        from globe import geo

        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.DictReader(fh) if (images / r["IMG_ID"]).is_file()]
        places = geo.reverse_batch([float(r["LAT"]) for r in rows], [float(r["LON"]) for r in rows])
        self.rows = [r | {"place": p} for r, p in zip(rows, places)]
        self.signatures = np.stack([_signature(Image.open(images / r["IMG_ID"])) for r in rows])

    def _row(self, image: Image.Image) -> dict:
        return self.rows[int(np.argmin(((self.signatures - _signature(image)) ** 2).sum(axis=1)))]

    def answer(self, image: Image.Image) -> str:
        from globe.answer import format_answer

        row = self._row(image)
        place = row["place"]
        think = (f"The street furniture, the signs and the architecture are typical of {place.country}; "
                 f"the skyline and the layout of the streets point to {place.city}")
        return format_answer(think, place.country, place.city, float(row["LAT"]), float(row["LON"]))

    def judge(self, requests) -> list[JudgeResult]:
        out = []
        for req in requests:
            indoor = float(self._row(req.image).get("Prob_indoor") or 0.0)
            out.append(JudgeResult(p_yes=0.1 if indoor > 0.5 else 0.9, source="logprobs"))
        return out


def photo_teacher(csv_path: Path, images: Path) -> TeacherServer:
    """A started-on-enter TeacherServer on 127.0.0.1 answering as `PhotoOracle`."""
    server = TeacherServer(canned="")  # no scene reader: the oracle below answers instead
    server.canned = None
    server.reader = PhotoOracle(csv_path, images)
    return server
