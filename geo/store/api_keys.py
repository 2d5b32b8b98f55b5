"""API keys of the accounts that write through the Open311 server (stored hashed).

A key is shown once, when it is made (:func:`new_key`); the stores keep only its
SHA-256 (:func:`hash_key`; a key is 256 random bits, so a plain hash cannot be
reversed by guessing), the account name, its role and whether it was revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hotspot311.errors import InputError, describe

#: Roles an account may have: neighborhood liaisons, field staff, partner systems.
ROLES: Final = ("liaison", "field_staff", "partner")
_PREFIX: Final = "h311_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """One account's key record (never the key itself).

    Attributes
    ----------
    name
        Account name (unique).
    role
        One of :data:`ROLES`.
    key_hash
        SHA-256 of the key, hex.
    created_at
        When the key was made.
    revoked_at
        When it was revoked; ``None`` while it is valid.
    """

    name: str
    role: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the key may still be used."""
        return self.revoked_at is None


def new_key() -> str:
    """A fresh random key (``h311_`` and 43 URL-safe characters)."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256, hex.

    Examples
    --------
    >>> len(hash_key("h311_x")), hash_key("a") == hash_key("a")
    (64, True)
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_account(name: str, role: str) -> None:
    """Refuse an account name or role that cannot be stored.

    Raises
    ------
    InputError
        Naming the value and what is allowed.
    """
    problems = []
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"NAME: {describe(name)} is not allowed; allowed: 1-64 letters, "
                        "digits and . _ @ - (starting with a letter or digit)")
    if role not in ROLES:
        problems.append(f"--role: {describe(role)} is not a role; allowed: {', '.join(ROLES)}")
    if problems:
        raise InputError(problems)


__all__ = ["ROLES", "ApiKey", "check_account", "hash_key", "new_key"]
