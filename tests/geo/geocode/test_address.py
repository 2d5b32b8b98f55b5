"""Parser and standardizer: one test per supported form, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.geocode.address import StreetNames, numbered_name, parse_address, standardize


@pytest.mark.parametrize(("text", "number", "high"), [
    ("1200-04 N Broad St", 1200, 1204),
    ("1200-1204 N Broad St", 1200, 1204),
    ("1200-4 N Broad St", 1200, 1204),
    ("201?251 Belgrade St", 201, 251),
])
def test_number_ranges(text: str, number: int, high: int) -> None:
    p = parse_address(text)
    assert (p.kind, p.number, p.number_high) == ("address", number, high)


def test_fraction() -> None:
    p = parse_address("123 1/2 Fourth Street")
    assert (p.number, p.fraction, p.name, p.suffix) == (123, "1/2", "4TH", "ST")


@pytest.mark.parametrize("spelling", ["4th", "fourth", "04TH", "4", "FOURTH"])
def test_numbered_streets(spelling: str) -> None:
    assert parse_address(f"10 N {spelling} St").name == "4TH"


def test_numbered_name_endings() -> None:
    assert [numbered_name(t) for t in ["1", "2", "3", "11", "12", "13", "21", "22", "101",
                                       "TWENTY-SECOND", "X"]] == [
        "1ST", "2ND", "3RD", "11TH", "12TH", "13TH", "21ST", "22ND", "101ST", "22ND", None]


@pytest.mark.parametrize(("text", "predir", "suffix", "postdir"), [
    ("100 North Broad Street", "N", "ST", ""),
    ("100 W Godfrey Avenue", "W", "AVE", ""),
    ("100 Main Boulevard NE", "", "BLVD", "NE"),
    ("100 Lincoln Drive", "", "DR", ""),
    ("100 Cherry Lane", "", "LN", ""),
])
def test_directionals_and_suffixes(text: str, predir: str, suffix: str, postdir: str) -> None:
    p = parse_address(text)
    assert (p.predir, p.suffix, p.postdir) == (predir, suffix, postdir)


@pytest.mark.parametrize(("text", "unit"), [
    ("721 S 8th St Apt 2", "APT 2"),
    ("721 S 8th St #3", "#3"),
    ("721 S 8th St Unit B", "UNIT B"),
    ("721 S 8th St Rear", "REAR"),
    ("721 S 8th St Fl 2", "FL 2"),
])
def test_units(text: str, unit: str) -> None:
    p = parse_address(text)
    assert p.unit == unit
    assert p.normalized == "721 S 8TH ST"


@pytest.mark.parametrize("text", [
    "4th & Market St", "4th and Market St", "4th at Market St", "corner of 4th and Market St",
    "4th / Market St", "4th @ Market St", "4TH ST & MKT ST",
])
def test_intersections(text: str) -> None:
    p = parse_address(text)
    assert p.kind == "intersection"
    assert (p.name, p.name2) == ("4TH", "MARKET")


def test_abbreviation_mkt() -> None:
    assert parse_address("12th and mkt").normalized == "12TH & MARKET"


def test_city_state_zip() -> None:
    p = parse_address("1001 Loney Street, Philadelphia, Pennsylvania 19111")
    assert (p.city, p.state, p.zip) == ("PHILADELPHIA", "PA", "19111")
    q = parse_address("2537 FRANKFORD AVE PHILADELPHIA PA 19125")
    assert (q.normalized, q.city, q.state, q.zip) == (
        "2537 FRANKFORD AVE", "PHILADELPHIA", "PA", "19125")
    r = parse_address("508 carver court, Lawnside, New Jersey, 08045")
    assert (r.city, r.state, r.zip) == ("LAWNSIDE", "NJ", "08045")


def test_entrance_at_address_is_an_address() -> None:
    p = parse_address("ENT @ 10945 E. KESWICK ROAD")
    assert (p.kind, p.normalized) == ("address", "10945 E KESWICK RD")


def test_street_list_keeps_known_names() -> None:
    names = StreetNames(["ST JAMES", "MARKET"])
    assert parse_address("10 ST JAMES PL", streets=names).name == "ST JAMES"
    assert parse_address("10 ST JAMES PL").name == "SAINT JAMES"


@pytest.mark.parametrize("text", ["", "   ", "dfdfa sdhl; dort@", "Starr Garden", None, "&&&"])
def test_unparseable(text: str | None) -> None:
    assert parse_address(text).kind == "unparseable"


def test_standardize() -> None:
    assert standardize("1200 north broad street apt 2") == "1200 N BROAD ST APT 2"


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_parse_never_raises(text: str) -> None:
    p = parse_address(text)
    assert p.kind in {"address", "intersection", "unparseable"}


_pieces = st.sampled_from(["100", "1200-04", "N", "south", "4th", "MARKET", "st", "Avenue",
                           "&", "and", "apt", "#", "2", ",", "Philadelphia", "PA", "19107",
                           "1/2", "@", "/", "-", "rear"])


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.lists(_pieces, max_size=9).map(" ".join)))
def test_standardize_idempotent(text: str) -> None:
    once = standardize(text)
    assert standardize(once) == once
