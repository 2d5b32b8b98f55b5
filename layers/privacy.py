"""What a public Open311 read shows: the ``[privacy]`` table of a city profile.

::

    [privacy]
    address = "block"              # "full", "block" (house number to its hundred block)
                                   # or "none"
    coordinate_decimals = 3        # lat/long rounded for public reads (3: about 100 m);
                                   # -1 keeps them exact
    withhold_description = ["Dangerous Building Complaint"]   # service names or codes

Without the table the defaults apply (block, 3 decimals, every description shown):
private by default. Readers with an API key see the full record.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Final

from hotspot311.errors import LayerError, describe
from layers.profile import CityProfile

ADDRESS_RULES: Final = ("full", "block", "none")
_NUMBERED = re.compile(r"^\s*(\d+)(?:\s*-\s*\d+)?[A-Za-z]?\s+(.+?)\s*$")
_UNIT = re.compile(r"[\s,]+(?:apt|apartment|unit|ste|suite|fl|floor|rm|room|#)\b.*$|\s*#.*$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class PrivacyRules:
    """The public view's rules (see the module docstring)."""

    address: str = "block"
    coordinate_decimals: int = 3
    withhold_description: frozenset[str] = frozenset()


def load_privacy(profile: CityProfile) -> PrivacyRules:
    """Read the profile's ``[privacy]`` table.

    Raises
    ------
    LayerError
        Naming the value and what is allowed.
    """
    if profile.path is None or not profile.path.is_file():
        return PrivacyRules()
    table = tomllib.loads(profile.path.read_text(encoding="utf-8")).get("privacy", {})
    problems = []
    address = table.get("address", "block")
    if address not in ADDRESS_RULES:
        problems.append(f"{profile.path}: privacy.address {describe(address)} is not one of "
                        f"{', '.join(ADDRESS_RULES)}")
    decimals = table.get("coordinate_decimals", 3)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not -1 <= decimals <= 8:
        problems.append(f"{profile.path}: privacy.coordinate_decimals {describe(decimals)} "
                        "is not an integer from -1 (exact) to 8")
    withheld = table.get("withhold_description", [])
    if not isinstance(withheld, list) or not all(isinstance(w, str) for w in withheld):
        problems.append(f"{profile.path}: privacy.withhold_description {describe(withheld)} "
                        "is not a list of service names or codes")
        withheld = []
    if problems:
        raise LayerError(problems)
    return PrivacyRules(address=str(address), coordinate_decimals=int(decimals),
                        withhold_description=frozenset(w.casefold() for w in withheld))


def block_address(address: str | None) -> str | None:
    """An address with its house number rounded down to the hundred block.

    Addresses without a house number (intersections, place names) are kept; a unit
    designator is dropped.

    Examples
    --------
    >>> block_address("1234 N Broad St Apt 5")
    '1200 block of N Broad St'
    >>> block_address("4th and Market St")
    '4th and Market St'
    """
    if address is None:
        return None
    text = _UNIT.sub("", str(address))
    match = _NUMBERED.match(text)
    if match is None:
        return text.strip()
    return f"{int(match.group(1)) // 100 * 100} block of {match.group(2)}"


__all__ = ["ADDRESS_RULES", "PrivacyRules", "block_address", "load_privacy"]
