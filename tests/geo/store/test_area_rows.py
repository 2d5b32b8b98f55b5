"""The PostGIS loader's area-code rows: the located codes, one row per located point, by id."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from geo.joins import build_index, locate
from geo.store.postgis_areas import area_rows
from layers.profile import load_profile
from layers.registry import load_layer


def test_area_rows_are_the_located_codes_in_id_order() -> None:
    profile = load_profile("philadelphia")
    specs = [s for s in profile.layers if s.key in ("council_district", "police_district")]
    indexes = {s.key: build_index(load_layer(s, crs=profile.crs)) for s in specs}
    rng = np.random.default_rng(11)
    n = 4000
    # points over the city and around it (some outside every area), ids in no order,
    # some sharing a prefix, one with an accent (its UTF-8 bytes sort after ASCII)
    index = next(iter(indexes.values()))
    x0, y0 = index.origin
    span = index.cell * index.cells.shape[1]
    x = x0 + rng.random(n) * span
    y = y0 + rng.random(n) * span
    ids = [f"R-{v}" for v in rng.permutation(n)]
    ids[5] = "R-é"
    rows = area_rows(pa.array(ids), x, y, indexes)

    assert set(rows) == set(indexes)
    for key, idx in indexes.items():
        table = rows[key]
        expected = {i: c for i, c in zip(ids, locate(x, y, idx), strict=True) if c is not None}
        got = table.column("service_request_id").to_pylist()
        assert got == sorted(expected, key=lambda s: s.encode("utf-8"))
        assert dict(zip(got, table.column("code").to_pylist(), strict=True)) == expected
        assert set(table.column("layer_key").to_pylist()) == {key}
        assert 0 < table.num_rows < n  # some points fall outside every area
