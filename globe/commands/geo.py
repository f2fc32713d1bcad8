"""`globe geo`: offline reverse geocoding and geocoding, printed as JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from globe.commands.common import fail, print_json

geo_app = typer.Typer(help="Offline geography (GeoNames gazetteer): reverse geocode and geocode, JSON out.",
                      no_args_is_help=True)


# ignore_unknown_options lets negative coordinates through as arguments: `reverse -33.87 151.21`.
@geo_app.command("reverse", context_settings={"ignore_unknown_options": True})
def reverse_cmd(
    lat: Annotated[float, typer.Argument(help="latitude in degrees, -90..90")],
    lon: Annotated[float, typer.Argument(help="longitude in degrees, -180..180")],
    nearest: Annotated[
        bool, typer.Option("--nearest", help="plain nearest place, even a city's neighbourhood")
    ] = False,
) -> None:
    """The place LAT LON lies in (a city's reach grows with its size), e.g. `globe geo reverse -33.87 151.21`."""
    from globe.geo import reverse

    try:
        place = reverse(lat, lon, nearest=nearest)
    except ValueError as exc:
        fail(str(exc))
    print_json(place.to_dict())


@geo_app.command("geocode")
def geocode_cmd(
    text: Annotated[
        str, typer.Argument(help='place text, e.g. "Paris, Texas" or "Bayon Temple, Angkor Thom, Cambodia"')
    ],
    country: Annotated[
        str | None, typer.Option("--country", help="country name or ISO code to resolve ambiguity")
    ] = None,
) -> None:
    """Place for a place text (address, landmark, city, region, country), and how it was found.

    `resolution` is city, landmark (a place named inside a longer name), feature (a Natural Earth
    peak, waterfall, island, cape or US national park), admin1 (a region's centre),
    capital-fallback or centroid-fallback; `matched` the words that decided it."""
    from globe.geo import resolve

    found = resolve(text, country)
    if found is None:
        fail(f"no place found for {text!r}" + (f" in {country!r}" if country else "") +
             " (and no region or country to fall back to)", code=1)
    print_json({**found.place.to_dict(), "resolution": found.how, "matched": found.matched})


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(geo_app, name="geo")
