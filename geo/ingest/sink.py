"""What the ingest pipeline needs of a store, and what a store reports back.

The pipeline (:mod:`geo.ingest.pipeline`) writes through :class:`BatchSink`, a shape that
:class:`geo.store.base.Store` has; so :mod:`geo.ingest` never imports :mod:`geo.store`,
which imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd

from geo.ingest.contacts import ContactBatch
from geo.ingest.validate import ValidatedBatch
from layers.profile import CityProfile


@dataclass
class WriteResult:
    """What a batch did to the store.

    Attributes
    ----------
    inserted, updated, unchanged
        Requests new to the store, replacing a stored one, or leaving it as it was.
    quarantined
        Reason → rows of this batch in the quarantine (new or already there).
    released
        Quarantine rows removed because the request is now usable (geocoded).
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    released: int = 0

    @property
    def total(self) -> int:
        """Rows accounted for: requests written or unchanged plus quarantined."""
        return self.inserted + self.updated + self.unchanged + sum(self.quarantined.values())


#: The request columns a :class:`ProblemAssigner` reads (``x``/``y`` in the city CRS).
PROBLEM_INPUT: Final = (
    "service_request_id",
    "service_name",
    "x",
    "y",
    "requested_datetime",
    "closed_datetime",
)


class ProblemAssigner(Protocol):
    """What a store needs to keep ``problem_id`` up to date inside a write.

    :class:`clustering.problems.ProblemAssigner` has this shape; the store is handed one
    by its caller, since :mod:`geo` cannot import :mod:`clustering`.
    """

    def reach(self) -> tuple[float, pd.Timedelta]:
        """Widest link distance (city CRS units) and time gap of any problem key."""
        ...

    def near(self, stored: pd.DataFrame, changed: pd.DataFrame) -> np.ndarray:
        """Mask over ``stored``: rows within :meth:`reach` of a row of ``changed``."""
        ...

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """``problem_id`` of every row of a frame closed under links."""
        ...


class BatchSink(Protocol):
    """A store as the ingest pipeline sees it."""

    @property
    def profile(self) -> CityProfile:
        """The city the store is bound to (time zone, CRS, extent, layers)."""
        ...

    def ensure_profile_layers(self) -> Any:
        """Load every profile layer the store does not hold yet."""
        ...

    def write_batch(
        self, batch: ValidatedBatch, *, info: dict[str, object], release: Sequence[str] = (),
        problems: ProblemAssigner | None = None,
    ) -> WriteResult:
        """Upsert a validated batch and its quarantine rows, atomically."""
        ...


class ContactSink(Protocol):
    """A store as the contact ingest sees it."""

    @property
    def profile(self) -> CityProfile:
        """The city the store is bound to (time zone of naive times)."""
        ...

    def write_contacts(self, batch: ContactBatch, *, info: dict[str, object]) -> WriteResult:
        """Upsert validated contacts and their quarantine rows, atomically."""
        ...
