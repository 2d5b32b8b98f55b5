"""The PostGIS loader's area-code rows: the located codes, one row per located point, by id."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from geo.joins import build_index, locate
from geo.store.postgis_areas import area_rows, iter_area_rows
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


def test_layer_at_a_time_rows_are_the_same_rows_in_the_indexes_order() -> None:
    profile = load_profile("philadelphia")
    specs = [s for s in profile.layers if s.key in ("zip", "council_district", "police_district")]
    indexes = {s.key: build_index(load_layer(s, crs=profile.crs)) for s in reversed(specs)}
    rng = np.random.default_rng(5)
    index = next(iter(indexes.values()))
    span = index.cell * index.cells.shape[1]
    x = index.origin[0] + rng.random(3000) * span
    y = index.origin[1] + rng.random(3000) * span
    x[7] = np.nan  # no point: no row in any layer
    ids = pa.array([f"Q{v}" for v in rng.permutation(3000)])
    whole = area_rows(ids, x, y, indexes)
    one_by_one = list(iter_area_rows(ids, x, y, indexes))
    assert [key for key, _ in one_by_one] == list(indexes)
    for key, table in one_by_one:
        assert table.equals(whole[key])
        assert ids[7].as_py() not in table.column("service_request_id").to_pylist()
