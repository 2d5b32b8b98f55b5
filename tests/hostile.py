"""Hostile text for the security tests: script in popups, formulas in spreadsheets.

:func:`build_hostile_store` ingests requests whose every text field holds a payload, into
a test city (the two squares of :func:`tests.conftest.write_squares`) whose boundary layer
has a hostile title, codes and names; the browser and export tests read it back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.ingest.pipeline import ingest
from geo.store.base import Store, open_store
from layers.profile import CityProfile, load_profile
from tests.conftest import utm_to_lonlat, write_squares

# folium's element names: a kind and 32 random hex digits ("map_4ec6224e71337ba7…")
_ELEMENT_ID = re.compile(r"_[0-9a-f]{32}")


def without_element_ids(page: str) -> str:
    """A map page without folium's random element names, which may hold any digits (one
    held "1337", an evaluated template's result, by chance)."""
    return _ELEMENT_ID.sub("_ID", page)

#: Markup that runs script when a browser parses it as HTML. Each payload sets
#: ``window.PWNED`` (and the first the page title): a test checks it stays unset.
HTML_PAYLOADS = (
    "<img src=x onerror=\"window.PWNED='img';document.title='PWNED'\">",
    "<svg onload=\"window.PWNED='svg'\"></svg>",
    "\"><img src=y onerror=\"window.PWNED='attr'\">",
    "</script><script>window.PWNED='script'</script>",
)

#: Cells a spreadsheet would run as a formula (OWASP's list), and one negative number as text.
FORMULAS = (
    '=HYPERLINK("http://evil.example","click")',
    "+1+1",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "-5",
)

#: Text jinja2 would evaluate (branca renders the map page from templates made of its
#: elements' output): shown as typed, never ``1337`` or ``TPLRAN``.
TEMPLATES = (
    "{{ 7*191 }}",
    "{% if true %}TPL{{ 'RAN' }}{% endif %}",
)

#: Every payload, for fields that should resist all three.
PAYLOADS = HTML_PAYLOADS + FORMULAS + TEMPLATES

END = datetime(2026, 6, 30, 12, tzinfo=UTC)

#: Canonical text fields that ingest stores as given (status and zipcode are normalized).
STORED_TEXT = ("service_request_id", "status_notes", "service_code", "service_name",
               "agency_responsible", "description", "address", "media_url", "source")


def hostile_profile(directory: Path) -> Path:
    """The squares test city with a hostile layer title, area codes and area names."""
    path = write_squares(directory)
    squares = gpd.read_file(directory / "squares.geojson")
    squares["code"] = [f"{HTML_PAYLOADS[0]}A", f"{FORMULAS[0]}B"]
    squares["label"] = [HTML_PAYLOADS[1], FORMULAS[3]]
    squares.to_file(directory / "squares.geojson", driver="GeoJSON")
    text = path.read_text(encoding="utf-8").replace(
        'id_field = "code"', f'id_field = "code"\ntitle = "{_toml(HTML_PAYLOADS[0])}"')
    path.write_text(text, encoding="utf-8")
    return path


def _toml(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def hostile_requests(n: int = 40, *, seed: int = 7) -> pd.DataFrame:
    """``n`` requests near one point of square A; every text field holds a payload."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lon, lat = utm_to_lonlat(500500 + rng.uniform(-25, 25), 4400500 + rng.uniform(-25, 25))
        pick = PAYLOADS[i % len(PAYLOADS)]
        rows.append({
            "service_request_id": f"{pick}#{i}",
            "requested_datetime": (END - timedelta(days=1 + i % 5)).isoformat(),
            "status": "open" if i % 3 else "closed",
            "status_notes": PAYLOADS[(i + 1) % len(PAYLOADS)],
            "service_code": FORMULAS[i % len(FORMULAS)],
            "service_name": HTML_PAYLOADS[i % 2] if i % 4 < 3 else FORMULAS[i % len(FORMULAS)],
            "agency_responsible": PAYLOADS[(i + 2) % len(PAYLOADS)],
            "description": PAYLOADS[(i + 3) % len(PAYLOADS)],
            "address": HTML_PAYLOADS[0] if i % 2 else PAYLOADS[i % len(PAYLOADS)],
            "lat": lat,
            "lon": lon,
            "media_url": "javascript:window.PWNED='url'",
            "source": PAYLOADS[(i + 4) % len(PAYLOADS)],
            PAYLOADS[0]: PAYLOADS[1],  # an unmapped column: kept in `extra`
        })
    return pd.DataFrame(rows)


def build_hostile_store(directory: Path, n: int = 40) -> tuple[Store, CityProfile]:
    """An embedded store of :func:`hostile_requests` in the hostile test city."""
    profile = load_profile(hostile_profile(directory))
    csv = directory / "hostile.csv"
    hostile_requests(n).to_csv(csv, index=False, lineterminator="\r\n")  # CR in values quoted
    store = open_store(directory / "store", profile)
    report = ingest(csv, store, now=END)
    assert report.result.inserted == n, report.result
    return store, profile
