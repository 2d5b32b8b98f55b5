"""A new source's configuration, checked: every problem found is reported at once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlparse

from geo.feeds import carto
from geo.ingest.mapping import ColumnMapping
from geo.store.sources import KINDS, SourceConfig
from hotspot311.errors import InputError, describe

_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_DATASET: Final = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}$")
_ENV: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Options each protocol understands, with the values allowed (``None``: a positive int).
OPTIONS: Final[dict[str, dict[str, tuple[str, ...] | None]]] = {
    "open311": {"window": ("requested", "updated"), "paging": ("yes", "no"),
                "window_days": None},
    "socrata": {},
    "carto": {},
    "file_url": {"format": ("auto", "phila", "open311", "geojson", "csv")},
}


def make_config(
    name: str,
    *,
    kind: str,
    url: str,
    dataset: str | None = None,
    table: str | None = None,
    jurisdiction: str | None = None,
    maps: Iterable[str] = (),
    sets: Iterable[str] = (),
    page_size: int = 1000,
    rate_limit: float = 5.0,
    token_env: str | None = None,
    options: Iterable[str] = (),
) -> SourceConfig:
    """Check the parts of a source and build its configuration.

    Parameters
    ----------
    name
        Letters, digits, ``_``, ``.``, ``-`` (up to 63).
    kind
        One of :data:`geo.store.sources.KINDS`.
    url
        ``http://`` or ``https://`` URL.
    dataset
        Socrata dataset id (``erm2-nwe9``), required for ``socrata``.
    table
        CARTO table name, required for ``carto``.
    jurisdiction
        Open311 ``jurisdiction_id``.
    maps, sets
        ``FIELD=COLUMN`` and ``FIELD=VALUE`` pairs (as ``ingest --map/--set``).
    page_size
        Rows per request (1 to 50,000).
    rate_limit
        Requests per second (more than 0).
    token_env
        Name of the environment variable holding the token (never the token).
    options
        ``KEY=VALUE`` protocol options (see :data:`OPTIONS`).

    Returns
    -------
    SourceConfig
        The checked configuration.

    Raises
    ------
    InputError
        Listing every problem: the parameter, the value and what is allowed.
    """
    problems: list[str] = []
    if not _NAME.match(name):
        problems.append(f"NAME: got {describe(name)}; allowed: letters, digits, _ . - "
                        "(starting with a letter or digit, at most 63)")
    if kind not in KINDS:
        problems.append(f"--kind: got {describe(kind)}; allowed: {', '.join(KINDS)}")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        problems.append(f"--url: got {describe(url)}; expected an http:// or https:// URL")
    if kind == "socrata" and (dataset is None or not _DATASET.match(dataset)):
        problems.append(f"--dataset: got {describe(dataset)}; a Socrata source needs its "
                        "dataset id, four and four letters or digits such as erm2-nwe9")
    if kind == "carto":
        try:
            carto.check_table(table)
        except InputError as err:
            problems.append(str(err))
    if not 1 <= page_size <= 50_000:
        problems.append(f"--page-size: got {page_size}; allowed: 1 to 50000")
    if not rate_limit > 0:
        problems.append(f"--rate-limit: got {rate_limit}; allowed: more than 0 requests/s")
    if token_env is not None and not _ENV.match(token_env):
        problems.append(f"--token-env: got {describe(token_env)}; expected the NAME of an "
                        "environment variable (letters, digits, _), not the token itself")
    opts = _options(kind, options, problems)
    try:
        mapping = ColumnMapping.from_pairs(maps, sets)
    except InputError as err:
        problems.extend(err.problems)
        mapping = ColumnMapping()
    if problems:
        raise InputError(problems)
    return SourceConfig(name=name, kind=kind, url=url, dataset=dataset, table=table,
                        jurisdiction=jurisdiction, columns=dict(mapping.columns),
                        constants=dict(mapping.constants), page_size=page_size,
                        rate_limit=rate_limit, token_env=token_env, options=opts)


def _options(kind: str, pairs: Iterable[str], problems: list[str]) -> dict[str, str]:
    allowed = OPTIONS.get(kind, {})
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in allowed:
            names = ", ".join(allowed) or "none"
            problems.append(f"--option: got {describe(pair)}; {kind} options: {names}")
            continue
        choices = allowed[key]
        ok = value.isdigit() and int(value) > 0 if choices is None else value in choices
        if not ok:
            what = "a positive whole number" if choices is None else ", ".join(choices)
            problems.append(f"--option {key}: got {describe(value)}; allowed: {what}")
            continue
        out[key] = value
    return out
