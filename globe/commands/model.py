"""`globe model`: build the tiny offline VLM, inspect a checkpoint, try an engine on one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import fail, print_json
from globe.engines.base import MAX_NEW_TOKENS

model_app = typer.Typer(help="The tiny offline VLM and the engines: init-tiny, info, generate.", no_args_is_help=True)


@model_app.command("init-tiny")
def init_tiny(
    out: Annotated[Path, typer.Option("--out", help="directory to write the model and processor to")],
    seed: Annotated[int, typer.Option("--seed", help="weight initialisation seed (same seed, same bytes)")] = 0,
) -> None:
    """Build the tiny Qwen2.5-VL-architecture model offline and save it with save_pretrained."""
    from globe.tiny.model import build_tiny, describe

    try:
        path = build_tiny(out, seed=seed)
    except FileExistsError as exc:
        fail(str(exc))
    print_json(describe(path))


@model_app.command("info")
def info(model: Annotated[Path, typer.Argument(help="model directory")]) -> None:
    """Architecture, parameter count, size on disk and processor classes of a model directory."""
    from globe.tiny.model import describe

    try:
        print_json(describe(model))
    except (OSError, ValueError) as exc:
        fail(f"{model}: {exc}")


@model_app.command("generate")
def generate(
    image: Annotated[Path | None, typer.Option("--image", help="image file (omit for text only)")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="local model directory, or the served model name with --base-url")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. http://vllm:8000/v1; omit for local")
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="user prompt (default: GLOBE's geolocation prompt)")] = None,
    judge: Annotated[bool, typer.Option("--judge", help="ask the localizability question and print P(yes)")] = False,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = MAX_NEW_TOKENS,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ... (local only)")] = "auto",
) -> None:
    """Run one request through LocalEngine (--model DIR) or OpenAIEngine (--base-url URL --model NAME)."""
    from PIL import Image

    from globe.engines import LocalEngine, OpenAIEngine, Request, Sampling
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

    if base_url is None and model is None:
        fail("give --model DIR (local) or --base-url URL --model NAME (OpenAI-compatible endpoint)")
    try:
        img = Image.open(image) if image is not None else None
    except OSError as exc:
        fail(f"{image}: cannot open image: {exc}")
    try:
        if base_url is not None:
            engine = OpenAIEngine(base_url, model, timeout_s=120)
        else:
            engine = LocalEngine(model, device=device, batch_size=1, seed=seed)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    if judge:
        verdict = engine.judge([Request(image=img, prompt=prompt or localizability_prompt())])[0]
        error = verdict.error
        print_json({"p_yes": verdict.p_yes, "source": verdict.source, "error": error})
    else:
        req = Request(image=img, prompt=prompt or GEO_PROMPT, system=GEO_SYSTEM)
        out = engine.generate([req], Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))[0]
        error = out.error
        print_json({"text": out.text, "error": error, "latency_s": round(out.latency_s, 3), "usage": out.usage})
    if error is not None:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(model_app, name="model")
