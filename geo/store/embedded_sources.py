"""The embedded store's feed sources: one ``sources.json`` in each snapshot.

The file maps a source name to its configuration, its sync state and its Open311 service
list. These are pure steps on the parsed file (the store locks, reads and commits), so
the state of a page is written in the very snapshot that holds the page's requests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from geo.store.sources import (
    Source,
    SourceConfig,
    SourceState,
    config_from_json,
    config_to_json,
    state_from_json,
    state_to_json,
)
from hotspot311.errors import InputError

FILE = "sources.json"


def _entries(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc.get("sources", {}))


def listed(doc: dict[str, Any]) -> list[Source]:
    """Every source in the file, by name."""
    out = []
    for name, entry in sorted(_entries(doc).items()):
        config = config_from_json(entry["config"])
        state = state_from_json(entry.get("state") or {"name": name})
        out.append(Source(config, state))
    return out


def with_config(doc: dict[str, Any], config: SourceConfig, *, replace: bool) -> dict[str, Any]:
    """The file with ``config`` added (or replacing the stored one when ``replace``).

    Raises
    ------
    InputError
        When a source of that name exists and ``replace`` is false.
    """
    entries = copy.deepcopy(_entries(doc))
    if config.name in entries and not replace:
        raise InputError(f"source {config.name!r} exists already; remove it first, or "
                         "choose another name")
    old = entries.get(config.name, {})
    entries[config.name] = {
        "config": config_to_json(config),
        "state": old.get("state") or state_to_json(SourceState(config.name)),
        "services": old.get("services", []),
    }
    return {**doc, "sources": entries}


def without(doc: dict[str, Any], name: str) -> tuple[dict[str, Any], bool]:
    """The file without source ``name``, and whether it was there."""
    entries = copy.deepcopy(_entries(doc))
    found = entries.pop(name, None) is not None
    return {**doc, "sources": entries}, found


def with_state(doc: dict[str, Any], state: SourceState) -> dict[str, Any]:
    """The file with the state of ``state.name`` replaced.

    Raises
    ------
    InputError
        When no source has that name (it was removed during the sync).
    """
    entries = copy.deepcopy(_entries(doc))
    if state.name not in entries:
        raise InputError(f"source {state.name!r} is not registered (was it removed?)")
    entries[state.name]["state"] = state_to_json(state)
    return {**doc, "sources": entries}


def with_services(doc: dict[str, Any], name: str, services: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    """The file with the service list of source ``name`` replaced."""
    entries = copy.deepcopy(_entries(doc))
    if name not in entries:
        raise InputError(f"source {name!r} is not registered (was it removed?)")
    entries[name]["services"] = [dict(s) for s in services]
    return {**doc, "sources": entries}


def services(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The stored service list of source ``name`` (empty when none)."""
    return list(_entries(doc).get(name, {}).get("services", []))


class EmbeddedSources:
    """The source methods of :class:`geo.store.embedded.EmbeddedStore` (a mixin: the
    store provides ``_lock``, ``_commit``, ``_current_file`` and ``_read``)."""

    def _sources_doc(self) -> dict[str, Any]:
        path = self._current_file(FILE)  # type: ignore[attr-defined]
        if path is None:
            return {}
        return dict(self._read(path, lambda p: json.loads(p.read_text(encoding="utf-8"))))  # type: ignore[attr-defined]

    def _write_sources(self, doc: dict[str, Any]) -> None:
        self._commit({FILE: doc})  # type: ignore[attr-defined]

    def sources(self) -> list[Source]:
        """Every registered source (see :meth:`geo.store.base.Store.sources`)."""
        return listed(self._sources_doc())

    def save_source(self, config: SourceConfig, *, replace: bool = False) -> None:
        """Register a source (see :meth:`geo.store.base.Store.save_source`)."""
        with self._lock():  # type: ignore[attr-defined]
            self._write_sources(with_config(self._sources_doc(), config, replace=replace))

    def remove_source(self, name: str) -> bool:
        """Forget a source, keeping its requests (see :meth:`Store.remove_source`)."""
        with self._lock():  # type: ignore[attr-defined]
            doc, found = without(self._sources_doc(), name)
            if found:
                self._write_sources(doc)
        return found

    def save_source_state(self, state: SourceState) -> None:
        """Replace a source's state alone (see :meth:`Store.save_source_state`)."""
        with self._lock():  # type: ignore[attr-defined]
            self._write_sources(with_state(self._sources_doc(), state))

    def save_source_services(self, name: str, services: list[dict[str, Any]]) -> None:
        """Replace a source's service list (see :meth:`Store.save_source_services`)."""
        with self._lock():  # type: ignore[attr-defined]
            self._write_sources(with_services(self._sources_doc(), name, services))

    def source_services(self, name: str) -> list[dict[str, Any]]:
        """A source's stored service list (see :meth:`Store.source_services`)."""
        return services(self._sources_doc(), name)
