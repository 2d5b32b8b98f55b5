"""The embedded store's contact upsert as a pure step: stored frames and a batch in,
the files to write and the counts out (the store locks, logs and commits)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo.ingest.contacts import ContactBatch, empty_contacts
from geo.ingest.sink import WriteResult


def merge_contacts(stored: pd.DataFrame, quarantine: pd.DataFrame, batch: ContactBatch
                   ) -> tuple[dict[str, Any], WriteResult]:
    """Upsert ``batch`` into the stored contacts and contact quarantine.

    Parameters
    ----------
    stored
        The stored contacts (``contact_id``, ``row_hash``, …).
    quarantine
        The stored contact quarantine (``quarantine_id``, …).
    batch
        Validated contacts and their quarantine rows.

    Returns
    -------
    tuple
        Snapshot file name → new frame (only the files that change), and the counts:
        a contact is new, changed (its ``row_hash`` differs) or unchanged; quarantine
        rows already held are not added twice.
    """
    incoming = batch.contacts
    at = pd.Index(stored["contact_id"]).get_indexer(incoming["contact_id"])
    new = at < 0
    hashes = stored["row_hash"].to_numpy(dtype="uint64")
    before = hashes[np.where(new, 0, at)] if len(hashes) else np.zeros(len(at), "uint64")
    changed = ~new & (before != incoming["row_hash"].to_numpy(dtype="uint64"))
    result = WriteResult(inserted=int(new.sum()), updated=int(changed.sum()),
                         unchanged=int(len(incoming) - new.sum() - changed.sum()))
    writes: dict[str, Any] = {}
    if result.inserted or result.updated:
        fresh = incoming[new | changed]
        kept = stored[~stored["contact_id"].isin(set(fresh["contact_id"]))]
        merged = pd.concat([f for f in (kept, fresh) if len(f)], ignore_index=True)
        merged = merged.sort_values("contact_id", kind="stable").reset_index(drop=True)
        writes["contacts.parquet"] = merged.astype(empty_contacts().dtypes.to_dict())
    q_new = batch.quarantine
    result.quarantined = {str(k): int(v) for k, v in q_new["reason"].value_counts().items()}
    fresh_q = q_new[~q_new["quarantine_id"].isin(set(quarantine["quarantine_id"]))]
    if len(fresh_q):
        writes["contact_quarantine.parquet"] = pd.concat(
            [f for f in (quarantine, fresh_q) if len(f)], ignore_index=True)
    return writes, result
