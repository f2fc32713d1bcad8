"""The demo page: a photo in, the reasoning, the answer, its alternatives and a map out.

Served by the predictor itself (`globe serve`, the KServe pod's `python -m globe.serve`), at
`/demo`, with `/demo/world.svg` for its map; a browser that opens `/` is sent there (a request
that does not ask for HTML, such as a liveness probe, still gets KServe's `/` answer).
`serve.demo: false` registers none of it (404). docs/serve.md, "Demo page".

Why it is safe to serve next to the API: the page is static, built once when the server starts,
and asks the same public endpoint every client uses (`POST /v1/models/NAME:predict`, V1
`image_b64` or `image_url`), so every limit and check of "Limits and security" applies unchanged
and the page shows the server's own 4xx message when one fires. Everything it needs comes from
the predictor's answer document: the cues its reasoning names (`named_cues`), the place it
concludes and whether that supports the answer (`reasoning_place`, `consistent`), the consensus
candidates and confidence. The page does no language processing; it only marks the phrases the
server listed.

Why no library: a form, a fetch, a few DOM nodes and markers on an equirectangular map are a
hundred lines of vanilla JS; a framework or map library would be a dependency to vendor (no CDN:
the page must work offline and on a cluster without egress) for nothing the page uses. The land
is `globe.geo.maps.land_svg` (the Natural Earth outlines the evaluation report draws), markers go
where `globe.geo.maps.project` puts them. A Content-Security-Policy with the hashes of the inline
script and style lets the page load nothing but itself, its map and the photo being sent.

The page says plainly when the served model is a toy (`model_facts`): a model of fewer than
`TOY_PARAMETERS` parameters is the tiny world's miniature, trained at most on synthetic scenes,
and its answers on a real photo mean nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib.resources import files
from typing import Any

DEMO_PATH = "/demo"
MAP_PATH = "/demo/world.svg"
TOY_PARAMETERS = 50_000_000  # the tiny Qwen2.5-VL has 221k; any VLM that reads real photos has billions
DEFAULT_SAMPLES = 4  # the page's initial `samples` (capped by serve.max_samples): enough to show alternatives


def model_facts(model: Any) -> dict[str, Any]:
    """What the page says about the served model: its name, engine, size and whether it is a toy.

    The size is counted on the weights in memory (engine `local`); behind `engine: openai` the
    weights are elsewhere and the size is unknown (`parameters`, `tiny`: None)."""
    engine = getattr(model, "_engine", None)
    weights = getattr(engine, "model", None)
    parameters = None
    if weights is not None and hasattr(weights, "parameters"):
        parameters = int(sum(p.numel() for p in weights.parameters()))  # shared (tied) tensors once
    return {"name": model.name, "engine": model.cfg.engine, "parameters": parameters,
            "tiny": None if parameters is None else parameters < TOY_PARAMETERS}


def _notice(facts: dict[str, Any]) -> str:
    if facts["tiny"]:
        return ('<p class="notice" role="note"><strong>This is the tiny demo model</strong> '
                f'({facts["parameters"]:,} parameters): the real architecture shrunk to run on a laptop CPU, '
                'trained at most on GeoScenes, a synthetic world of painted scenes. It has never learned from a '
                'real photo, so its answers on real photos are not geolocation: they show how the page and the '
                'API work, nothing more.</p>')
    return ""


def _model_line(facts: dict[str, Any]) -> str:
    size = f", {facts['parameters']:,} parameters" if facts["parameters"] is not None else ""
    return f"model <code>{html.escape(facts['name'])}</code> (engine <code>{html.escape(facts['engine'])}</code>{size})"


def _url_block(allowlist: list[str]) -> str:
    if not allowlist:
        return '<p class="hint">Image URLs are off on this server (<code>serve.url_allowlist</code> is empty).</p>'
    allowed = ", ".join(f"<code>{html.escape(a)}</code>" for a in allowlist)
    return ('<p><label for="url">or an image URL</label> <input type="url" id="url" name="url" '
            f'inputmode="url" autocomplete="off" aria-describedby="url-hint"></p><p class="hint" id="url-hint">'
            f'The server fetches only URLs under: {allowed}.</p>')


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_page(model: Any) -> tuple[str, str]:
    """The page (HTML) and its Content-Security-Policy, for a loaded `GlobeModel`."""
    cfg, facts = model.cfg, model_facts(model)
    template = (files("globe.serve") / "demo.html").read_text(encoding="utf-8")
    config = {"predict": f"./v1/models/{model.name}:predict", "max_samples": cfg.max_samples,
              "urls": bool(cfg.url_allowlist)}
    data = json.dumps(config).replace("<", "\\u003c")
    samples = min(DEFAULT_SAMPLES, cfg.max_samples)
    page = (template.replace("{{NOTICE}}", _notice(facts)).replace("{{URL}}", _url_block(cfg.url_allowlist))
            .replace("{{MODEL}}", _model_line(facts)).replace("{{MAX_SAMPLES}}", str(cfg.max_samples))
            .replace("{{SAMPLES}}", str(samples)).replace("{{CONFIG}}", data))
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    csp = ("default-src 'none'; " f"script-src {' '.join(map(_hash, scripts))}; style-src {' '.join(map(_hash, styles))}; "
           "img-src 'self' blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
    return page, csp


def install_demo(app: Any, model: Any) -> bool:
    """Add the page and its map to KServe's FastAPI `app` when `serve.demo` is on; False when off.
    Call after `model.load()` (a registered model's settings may turn it off) and before the
    request guard is added, so that the guard wraps the `/` redirect too."""
    if not model.cfg.demo:
        return False
    from fastapi.responses import HTMLResponse, Response

    from globe.geo.maps import land_svg

    page, csp = render_page(model)
    svg = land_svg()
    common = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}

    async def demo_page() -> HTMLResponse:
        return HTMLResponse(page, headers={**common, "content-security-policy": csp, "cache-control": "no-cache"})

    async def world_map() -> Response:
        return Response(svg, media_type="image/svg+xml",
                        headers={**common, "content-security-policy": "default-src 'none'",
                                 "cache-control": "public, max-age=86400"})  # fmt: skip

    app.add_api_route(DEMO_PATH, demo_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(MAP_PATH, world_map, methods=["GET"], include_in_schema=False)
    app.add_middleware(BrowserRootRedirect)
    return True


class BrowserRootRedirect:
    """ASGI middleware: `GET /` from a browser (its Accept names text/html) is a 303 to the demo
    page; anything else (kubelet and curl send `*/*`) reaches KServe's liveness answer unchanged."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            accept = dict(scope.get("headers") or []).get(b"accept", b"")
            if b"text/html" in accept:
                # relative, so the page is found behind a path-prefixing proxy too
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", DEMO_PATH.lstrip("/").encode()), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)
