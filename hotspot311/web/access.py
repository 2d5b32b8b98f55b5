"""Who may see and do what in the app: the roles file, the four roles, the bind rule.

Logins are Streamlit's own OpenID Connect login (``st.login``, configured in
``.streamlit/secrets.toml``); this module is the pure part, without Streamlit. The
roles file (TOML, ``HOTSPOT311_ROLES``) maps a signed-in user to a role and a department
by e-mail, or by a group of the identity provider's ``groups`` claim; a department names
the preset and the filter its users start on::

    [users]
    "ana@city.gov" = { role = "lead", department = "streets" }

    [groups]
    "311-analysts" = { role = "analyst" }

    [departments.streets]
    preset = "streets"
    agencies = ["Streets Department"]

Roles, each with what the one before it has:

- ``viewer``: aggregates and hotspots; no addresses or descriptions, no exports;
- ``analyst``: everything, addresses and descriptions included;
- ``lead``: a department lead: also exports work lists and report files;
- ``admin``: also the data quality page.

A user in several groups gets the highest of their roles; a user the file does not
name is refused. With the login off (``HOTSPOT311_AUTH=off``, the local demo) the one
user is the local admin and the app may only be bound to a loopback address.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from hotspot311.errors import InputError, describe

ROLES: Final = ("viewer", "analyst", "lead", "admin")
AUTH_MODES: Final = ("off", "oidc")
#: The local demo's user (login off).
LOCAL_USER: Final = "local demo user"


@dataclass(frozen=True)
class Department:
    """Where a department's users start: a preset key and a department filter."""

    key: str
    preset: str = "custom"
    agencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Access:
    """One signed-in user's rights.

    Attributes
    ----------
    user
        E-mail (or the local demo user).
    role
        One of :data:`ROLES`.
    department
        The user's department, if the roles file gives one.
    """

    user: str
    role: str
    department: Department | None = None

    @property
    def sees_personal(self) -> bool:
        """Addresses and descriptions (analysts and above)."""
        return ROLES.index(self.role) >= ROLES.index("analyst")

    @property
    def may_export(self) -> bool:
        """Work lists and report files (department leads and admins)."""
        return ROLES.index(self.role) >= ROLES.index("lead")

    @property
    def sees_data_quality(self) -> bool:
        """The data quality page (admins)."""
        return self.role == "admin"


@dataclass(frozen=True)
class RolesFile:
    """The parsed roles file (see the module docstring)."""

    users: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    departments: Mapping[str, Department] = field(default_factory=dict)

    def resolve(self, email: str | None, groups: Sequence[str] = ()) -> Access | None:
        """The access of a signed-in user, or ``None`` when the file names them nowhere.

        Examples
        --------
        >>> roles = parse_roles({"users": {"a@x.org": {"role": "viewer"}},
        ...                      "groups": {"leads": {"role": "lead"}}})
        >>> roles.resolve("A@x.org", ["leads"]).role
        'lead'
        >>> roles.resolve("b@x.org") is None
        True
        """
        found: list[tuple[str, str | None]] = []
        if email and email.strip().lower() in self.users:
            found.append(self.users[email.strip().lower()])
        found += [self.groups[g] for g in groups if g in self.groups]
        if not found:
            return None
        role, dept = max(found, key=lambda f: ROLES.index(f[0]))
        dept = dept or next((d for _, d in found if d), None)
        return Access(user=email or "(no e-mail)", role=role,
                      department=self.departments.get(dept) if dept else None)


def parse_roles(doc: Mapping[str, Any], *, source: str = "roles file") -> RolesFile:
    """Check and parse a roles document, listing every problem at once.

    Raises
    ------
    InputError
        Naming each bad entry, its value and what is allowed.
    """
    problems: list[str] = []
    unknown = sorted(set(doc) - {"users", "groups", "departments"})
    if unknown:
        problems.append(f"{source}: unknown tables {unknown}; allowed: users, groups, "
                        "departments")
    departments: dict[str, Department] = {}
    for key, spec in dict(doc.get("departments", {})).items():
        if not isinstance(spec, Mapping):
            problems.append(f"{source}: departments.{key}: got {describe(spec)}; allowed: a "
                            "table with preset and agencies")
            continue
        agencies = spec.get("agencies", [])
        if not isinstance(agencies, list) or not all(isinstance(a, str) for a in agencies):
            problems.append(f"{source}: departments.{key}.agencies: got {describe(agencies)}; "
                            "allowed: a list of department names")
            agencies = []
        departments[str(key)] = Department(key=str(key), preset=str(spec.get("preset", "custom")),
                                           agencies=tuple(agencies))

    def entries(table: str, lower: bool) -> dict[str, tuple[str, str | None]]:
        out: dict[str, tuple[str, str | None]] = {}
        for name, spec in dict(doc.get(table, {})).items():
            role = spec.get("role") if isinstance(spec, Mapping) else spec
            dept = spec.get("department") if isinstance(spec, Mapping) else None
            if role not in ROLES:
                problems.append(f"{source}: {table}.{name}.role: got {describe(role)}; "
                                f"allowed: {', '.join(ROLES)}")
                continue
            if dept is not None and dept not in departments:
                problems.append(f"{source}: {table}.{name}.department: got {describe(dept)}; "
                                f"allowed: {', '.join(departments) or 'a [departments] key'}")
                continue
            out[str(name).strip().lower() if lower else str(name)] = (str(role), dept)
        return out

    users, groups = entries("users", True), entries("groups", False)
    if problems:
        raise InputError(problems)
    return RolesFile(users=users, groups=groups, departments=departments)


def load_roles(path: str | Path) -> RolesFile:
    """Read a roles file (see the module docstring).

    Raises
    ------
    InputError
        When the file is missing, not TOML, or holds a bad entry.
    """
    file = Path(path)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"HOTSPOT311_ROLES: {str(file)!r} does not exist; give the roles "
                         "file (TOML with [users], [groups], [departments])") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{file}: not TOML ({err})") from err
    return parse_roles(doc, source=str(file))


def auth_mode(environ: Mapping[str, str]) -> str:
    """``HOTSPOT311_AUTH``: ``oidc`` (logins) or ``off`` (the local demo, the default).

    Raises
    ------
    InputError
        For any other value.
    """
    mode = environ.get("HOTSPOT311_AUTH", "").strip().lower() or "off"
    if mode not in AUTH_MODES:
        raise InputError(f"HOTSPOT311_AUTH: got {describe(mode)}; allowed: "
                         f"{', '.join(AUTH_MODES)}")
    return mode


def is_loopback(address: str | None) -> bool:
    """Whether a server address serves this machine only (``None``: Streamlit's default,
    every interface).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def open_bind_problem(address: str | None, environ: Mapping[str, str]) -> str | None:
    """Why the login-off app must not serve on ``address``, or ``None`` when it may.

    The local demo (login off) may only be bound to a loopback address, unless
    ``HOTSPOT311_ALLOW_OPEN=1`` forces it.
    """
    if auth_mode(environ) != "off" or is_loopback(address):
        return None
    if environ.get("HOTSPOT311_ALLOW_OPEN", "").strip().lower() in ("1", "true", "yes"):
        return None
    where = address or "every interface (Streamlit's default)"
    return (f"server.address: got {where}; with the login off (HOTSPOT311_AUTH=off) the app "
            "serves 127.0.0.1 only, since anyone who reaches it sees residents' addresses. "
            "Turn the login on (HOTSPOT311_AUTH=oidc, see README), bind to 127.0.0.1, or set "
            "HOTSPOT311_ALLOW_OPEN=1 to force it")
