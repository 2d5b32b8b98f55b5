"""Positioning street segments that come without geometry, from intersection nodes.

How positions are derived (:func:`position_segments`)
------------------------------------------------------
For one street code, the intersection nodes that carry the code are points on the street.
They are ordered along the street (projection on the principal axis, or a nearest-neighbour
walk from one end when that gives a shorter path, which handles curved streets). Consecutive
nodes bound one *gap*. The street's segments, sorted by address, are then aligned to the gaps
by a monotone dynamic programme (each segment goes to one gap, in order; gaps may stay empty,
segments may stay unplaced, two segments may share a gap when a node is missing), run in both
directions along the street. The cost of putting a segment in a gap uses

* *anchors*: the address expected at a node. With ``numbered_hundreds=True`` (grid cities
  such as Philadelphia) a cross street named with an ordinal, e.g. ``12TH``, anchors the
  address ``1200`` on every street it crosses. After each round, every cross street gets the
  median address observed where the aligned streets cross it; a cross street whose
  observations agree (spread below ``anchor_spread``) anchors the next round. This is how
  the east-west streets (Market = 0, Arch = 100, …) come to orient the numbered streets;
* the gap length compared with the share of a block (one hundred numbers) that the segment
  covers;
* the directional prefix when nothing else orients the street: ``N`` streets count upwards
  going north, ``S`` south, ``E`` east, ``W`` west.

Segments left unplaced are *inferred* between their placed neighbours on the same street
when possible. Each segment line runs from its low-address end to its high-address end, so
the left side is the side of ``l_from``/``l_to`` as in the source.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo.geocode.streets import SEGMENT_COLUMNS

_ORDINAL = re.compile(r"^(\d+)(ST|ND|RD|TH)$")
_HEADING = {"N": (0.0, 1.0), "S": (0.0, -1.0), "E": (1.0, 0.0), "W": (-1.0, 0.0)}


@dataclass
class PositionStats:
    """How many segments got a position."""

    n_segments: int
    n_addressed: int
    n_positioned: int
    n_inferred: int
    n_streets: int
    extra: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.n_positioned:,} of {self.n_segments:,} segments positioned between "
            f"intersection nodes, {self.n_inferred:,} more inferred between neighbours "
            f"({self.n_addressed:,} carry addresses; {self.n_streets:,} streets)"
        )


def _order_nodes(xy: np.ndarray) -> np.ndarray:
    """Order points along a street: principal-axis order or a nearest-neighbour walk."""
    n = len(xy)
    if n <= 2:
        return np.arange(n)
    centred = xy - xy.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[0]
    by_axis = np.argsort(proj, kind="stable")
    if n > 400:
        return by_axis
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    walk = [int(by_axis[0])]
    seen = np.zeros(n, dtype=bool)
    seen[walk[0]] = True
    for _ in range(n - 1):
        row = np.where(seen, np.inf, d[walk[-1]])
        nxt = int(np.argmin(row))
        walk.append(nxt)
        seen[nxt] = True
    walk_arr = np.array(walk)

    def length(order: np.ndarray) -> float:
        return float(d[order[:-1], order[1:]].sum())

    return walk_arr if length(walk_arr) < 0.9 * length(by_axis) else by_axis


@numba.njit(cache=True, nogil=True)
def _align_core(lo: np.ndarray, hi: np.ndarray, gap_len: np.ndarray, cost: np.ndarray,
                med: float) -> tuple[float, np.ndarray]:  # pragma: no cover - compiled
    m, k = cost.shape
    c_unplaced, c_share, c_gap, window, back = 1.5, 0.8, 0.1, 25, 3
    cum = np.zeros(k + 1)
    for j in range(k):
        cum[j + 1] = cum[j] + gap_len[j]
    best = np.full((m, k), np.inf)
    src_s = np.full((m, k), -1, dtype=np.int64)
    src_j = np.full((m, k), -1, dtype=np.int64)
    for s in range(m):
        for j in range(k):
            c0 = cost[s, j] + c_unplaced * s
            b, bs, bj = c0, -1, -1
            for sp in range(max(0, s - back), s):
                extra = c_unplaced * (s - sp - 1)
                jump = max(0.0, lo[s] - hi[sp] - 2.0) / 100.0 * med
                for jp in range(max(0, j - window), j + 1):
                    prev = best[sp, jp]
                    if prev == np.inf:
                        continue
                    if jp == j:
                        t = c_share
                    else:
                        skipped = cum[j] - cum[jp + 1]
                        t = c_gap * (j - jp - 1) + 0.5 * abs(
                            np.log((skipped + 100.0) / (jump + 100.0)))
                    v = prev + extra + t + cost[s, j]
                    if v < b:
                        b, bs, bj = v, sp, jp
            best[s, j] = b
            src_s[s, j] = bs
            src_j[s, j] = bj
    total = np.inf
    ls, lj = -1, -1
    for s in range(m):
        for j in range(k):
            v = best[s, j] + c_unplaced * (m - 1 - s)
            if v < total:
                total, ls, lj = v, s, j
    gaps = np.full(m, -1, dtype=np.int64)
    while ls >= 0:
        gaps[ls] = lj
        ls, lj = src_s[ls, lj], src_j[ls, lj]
    return total, gaps


@numba.njit(cache=True, nogil=True)
def _cost_matrix(lo: np.ndarray, hi: np.ndarray, gap_len: np.ndarray, h: np.ndarray,
                 w: np.ndarray, med: float) -> np.ndarray:  # pragma: no cover - compiled
    m, k = len(lo), len(gap_len)
    cost = np.empty((m, k))
    for s in range(m):
        frac = min(max((hi[s] - lo[s] + 2) / 100.0, 0.05), 1.0)
        exp_len = frac * med
        for j in range(k):
            c = 0.25 * abs(np.log((gap_len[j] + 40.0) / (exp_len + 40.0)))
            a_lo = 0.0 if np.isnan(h[j]) else w[j] * min(abs(lo[s] - h[j]), 300.0) / 100
            a_hi = 0.0 if np.isnan(h[j + 1]) else w[j + 1] * min(
                abs(hi[s] + 1 - h[j + 1]), 300.0) / 100
            cost[s, j] = c + a_lo + a_hi
    return cost


def _align(lo: np.ndarray, hi: np.ndarray, gap_len: np.ndarray, h: np.ndarray,
           w: np.ndarray) -> tuple[float, np.ndarray]:
    """Monotone alignment of sorted segments to gaps; return cost and gap per segment (-1)."""
    med = float(np.median(gap_len)) if len(gap_len) else 1.0
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    gap_len = gap_len.astype(np.float64)
    cost = _cost_matrix(lo, hi, gap_len, h.astype(np.float64), w.astype(np.float64), med)
    total, gaps = _align_core(lo, hi, gap_len, cost, med)
    return float(total), gaps


def _street_table(ranges: pd.DataFrame) -> pd.DataFrame:
    vals = ranges[["l_from", "l_to", "r_from", "r_to"]].to_numpy()
    masked = np.where(vals > 0, vals, np.iinfo(np.int64).max)
    lo = masked.min(axis=1)
    hi = np.where(vals > 0, vals, 0).max(axis=1)
    out = ranges.copy()
    out["lo"] = np.where(hi > 0, lo, 0)
    out["hi"] = hi
    return out


def _street_inputs(segs: pd.DataFrame, pairs: pd.DataFrame) -> dict[int, dict]:
    """Per street code: ordered node coordinates, ids, cross streets and sorted ranges."""
    addressed = segs[segs["hi"] > 0].sort_values(["street_code", "lo", "hi"], kind="stable")
    seg_codes = addressed["street_code"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, seg_codes[1:] != seg_codes[:-1], True])
    seg_index = addressed.index.to_numpy()
    lo_all, hi_all = addressed["lo"].to_numpy(float), addressed["hi"].to_numpy(float)
    pre_all = addressed["predir"].to_numpy()
    seg_slices = {int(seg_codes[a]): (a, b) for a, b in pairwise(bounds)}
    pairs = pairs.sort_values(["code", "node_id"], kind="stable")
    codes = pairs["code"].to_numpy()
    nid = pairs["node_id"].to_numpy()
    oth = pairs["other"].to_numpy()
    px, py = pairs["x"].to_numpy(), pairs["y"].to_numpy()
    pb = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
    out: dict[int, dict] = {}
    for a, b in pairwise(pb):
        code = int(codes[a])
        if code not in seg_slices:
            continue
        cross: dict[int, list[int]] = {}
        first: dict[int, int] = {}
        for r in range(a, b):
            n = int(nid[r])
            cross.setdefault(n, []).append(int(oth[r]))
            first.setdefault(n, r)
        rows = np.array(list(first.values()))
        xy = np.column_stack([px[rows], py[rows]])
        if len(xy) < 2:
            continue
        order = _order_nodes(xy)
        ids = nid[rows][order]
        sa, sb = seg_slices[code]
        out[code] = {
            "xy": xy[order], "node_ids": ids, "others": [cross[int(n)] for n in ids],
            "seg_index": seg_index[sa:sb], "lo": lo_all[sa:sb], "hi": hi_all[sa:sb],
            "predir": str(pre_all[sa]),
        }
    return out


@numba.njit(cache=True)
def _anchors_core(qx: np.ndarray, qy: np.ndarray, qcode: np.ndarray, qgroup: np.ndarray,
                  ostart: np.ndarray, oend: np.ndarray, ox: np.ndarray, oy: np.ndarray,
                  ocode: np.ndarray, oval: np.ndarray, radius: float,
                  spread: float) -> np.ndarray:  # pragma: no cover - compiled
    out = np.full(len(qx), np.nan)
    r2 = radius * radius
    done = -1
    for i in range(len(qx)):
        if qgroup[i] == done:
            continue
        a, b = ostart[i], oend[i]
        if b - a < 3:
            continue
        buf = np.empty(b - a)
        k = 0
        first = -1
        multi = False
        for j in range(a, b):
            if ocode[j] == qcode[i]:
                continue
            if (ox[j] - qx[i]) ** 2 + (oy[j] - qy[i]) ** 2 <= r2:
                buf[k] = oval[j]
                k += 1
                if first == -1:
                    first = ocode[j]
                elif ocode[j] != first:
                    multi = True
        if not multi:
            continue
        vals = buf[:k]
        med = np.median(vals)
        if np.median(np.abs(vals - med)) <= spread:
            out[i] = med
            done = qgroup[i]
    return out


def _local_anchors(by_code: dict[int, dict],
                   observations: dict[int, list[tuple[float, float, int, float]]], *,
                   radius: float, spread: float) -> dict[tuple[int, int], float]:
    """Address expected at each (street, node): what nearby parallel streets show there.

    For each node, the first cross street (in node order) whose observations by at least
    two other streets within ``radius`` agree (median absolute deviation up to ``spread``)
    gives the node their median.
    """
    keys = sorted(observations)
    if not keys:
        return {}
    obs = np.array([row for o in keys for row in observations[o]], dtype=float)
    sizes = np.array([len(observations[o]) for o in keys])
    ends = np.cumsum(sizes)
    span = {o: (int(e - n), int(e)) for o, n, e in zip(keys, sizes, ends, strict=True)}
    qx, qy, qcode, qgroup, qs, qe, qkey = [], [], [], [], [], [], []
    group = 0
    for code, st in by_code.items():
        for i, oth in enumerate(st["others"]):
            x, y = st["xy"][i]
            for o in oth:
                a_b = span.get(o)
                if a_b is None:
                    continue
                qx.append(x)
                qy.append(y)
                qcode.append(code)
                qgroup.append(group)
                qs.append(a_b[0])
                qe.append(a_b[1])
                qkey.append((code, int(st["node_ids"][i])))
            group += 1
    if not qx:
        return {}
    med = _anchors_core(np.array(qx, dtype=float), np.array(qy, dtype=float),
                        np.array(qcode, dtype=np.int64), np.array(qgroup, dtype=np.int64),
                        np.array(qs, dtype=np.int64), np.array(qe, dtype=np.int64),
                        np.ascontiguousarray(obs[:, 0]), np.ascontiguousarray(obs[:, 1]),
                        obs[:, 2].astype(np.int64), np.ascontiguousarray(obs[:, 3]),
                        float(radius), float(spread))
    return {qkey[i]: float(med[i]) for i in np.flatnonzero(~np.isnan(med))}


def position_segments(
    ranges: pd.DataFrame,
    nodes: pd.DataFrame,
    *,
    crs: str = "EPSG:2272",
    numbered_hundreds: bool = True,
    rounds: int = 3,
    anchor_spread: float = 60.0,
    anchor_radius: float = 1500.0,
    min_density_m: float = 0.1,
    max_density_m: float = 8.0,
) -> tuple[gpd.GeoDataFrame, PositionStats]:
    """Give each centerline segment a line between two intersection nodes.

    Parameters
    ----------
    ranges
        Segments as returned by :func:`read_city_streets` (no geometry).
    nodes
        Intersection nodes: ``node_id``, ``code_1``, ``code_2``, ``x``, ``y``.
    crs
        CRS of the node coordinates.
    numbered_hundreds
        Anchor address ``N*100`` where a street crosses a street named with the ordinal N.
    rounds
        Alignment rounds (anchors learned from one round are used in the next).
    anchor_spread
        Largest median absolute deviation of the addresses observed at a cross street for it
        to serve as an anchor.
    anchor_radius
        Observations of a cross street within this distance (CRS units) of a node are used
        for that node's learned anchor.
    min_density_m, max_density_m
        Sanity bounds, in metres per house number, on the length given to address ranges.
        Segments packed tighter than ``min_density_m`` into one gap (a run of blocks
        squeezed between two nodes a few feet apart: an alignment failure on diagonal or
        curved streets) lose that position; runs of unplaced segments are then spread
        between their placed neighbours in proportion to their numbers, but only when the
        result stays within both bounds (otherwise they stay unpositioned).

    Returns
    -------
    segments, stats
        A GeoDataFrame with :data:`SEGMENT_COLUMNS` and LineString geometry (None where no
        position could be derived), and the counts.
    """
    unit = pyproj.CRS(crs).axis_info[0].unit_conversion_factor
    min_density, max_density = min_density_m / unit, max_density_m / unit
    segs = _street_table(ranges).reset_index(drop=True)
    pairs = pd.concat([
        nodes[["node_id", "code_1", "code_2", "x", "y"]].rename(
            columns={"code_1": "code", "code_2": "other"}),
        nodes[["node_id", "code_2", "code_1", "x", "y"]].rename(
            columns={"code_2": "code", "code_1": "other"}),
    ], ignore_index=True)
    pairs = pairs[pairs["code"] != pairs["other"]].drop_duplicates(["node_id", "code", "other"])
    code_names = segs.drop_duplicates("street_code").set_index("street_code")["name"]
    static_anchor: dict[int, float] = {}
    if numbered_hundreds:
        for code, nm in code_names.items():
            mt = _ORDINAL.match(str(nm))
            if mt:
                static_anchor[int(str(code))] = float(mt.group(1)) * 100.0

    by_code = _street_inputs(segs, pairs)
    learned: dict[tuple[int, int], float] = {}
    result: dict[int, tuple[np.ndarray, bool]] = {}
    last: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}

    def both_ways(code: int, st: dict) -> tuple[np.ndarray, tuple[float, np.ndarray],
                                                  tuple[float, np.ndarray]]:
        h = np.full(len(st["xy"]), np.nan)
        w = np.zeros(len(st["xy"]))
        for i, oth in enumerate(st["others"]):
            for o in oth:
                if o in static_anchor:
                    h[i], w[i] = static_anchor[o], 1.0
                    break
                if (code, st["node_ids"][i]) in learned:
                    h[i], w[i] = learned[(code, st["node_ids"][i])], 0.7
        prev = last.get(code)
        if prev is not None and np.array_equal(prev[0], w) and np.array_equal(
                prev[1], h, equal_nan=True):
            return prev[2]  # same anchors as the last round: the same (deterministic) answer
        gap_len = np.hypot(*np.diff(st["xy"], axis=0).T)
        lo, hi = st["lo"], st["hi"]
        out = (w, _align(lo, hi, gap_len, h, w),
               _align(lo, hi, gap_len[::-1].copy(), h[::-1].copy(), w[::-1].copy()))
        last[code] = (w, h, out)
        return out

    # within a round the streets are independent: the compiled alignment releases the GIL,
    # so two threads use both cores (rounds depend on each other through the anchors)
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    for _ in range(max(1, rounds)):
        # observations[cross code] = list of (x, y, observing code, address)
        observations: dict[int, list[tuple[float, float, int, float]]] = defaultdict(list)
        aligned = list(pool.map(lambda item: both_ways(*item), by_code.items(),
                                chunksize=64))
        for (code, st), (w, (c_f, g_f), (c_r, g_r)) in zip(by_code.items(), aligned,
                                                         strict=True):
            xy = st["xy"]
            n_nodes = len(xy)
            lo, hi = st["lo"], st["hi"]
            heading = _HEADING.get(st["predir"])
            if np.any(w > 0) or heading is None:
                forward = c_f <= c_r
            else:
                forward = float(np.dot(xy[-1] - xy[0], heading)) >= 0
            gaps = g_f if forward else g_r
            result[code] = (gaps, forward)
            for s, g in enumerate(gaps):
                if g < 0:
                    continue
                n_lo = g if forward else n_nodes - 1 - g
                n_hi = g + 1 if forward else n_nodes - 2 - g
                for ni, val in ((n_lo, lo[s]), (n_hi, hi[s] + 1)):
                    for o in st["others"][ni]:
                        observations[o].append((xy[ni][0], xy[ni][1], code, val))
        learned = _local_anchors(by_code, observations, radius=anchor_radius,
                                 spread=anchor_spread)
    pool.shutdown()

    geoms: list[shapely.LineString | None] = [None] * len(segs)
    how = np.array([""] * len(segs), dtype=object)
    for code, (gaps, forward) in result.items():
        st = by_code[code]
        xy = st["xy"] if forward else st["xy"][::-1]
        lo, hi, idx = st["lo"], st["hi"], st["seg_index"]
        share: dict[int, list[int]] = defaultdict(list)
        for s, g in enumerate(gaps):
            if g >= 0:
                share[int(g)].append(s)
        for g, members in share.items():
            a, b = xy[g], xy[g + 1]
            spans = np.array([hi[s] - lo[s] + 2 for s in members], dtype=float)
            cuts = np.concatenate([[0.0], np.cumsum(spans) / spans.sum()])
            for t, s in enumerate(members):
                p, q = a + (b - a) * cuts[t], a + (b - a) * cuts[t + 1]
                geoms[idx[s]] = shapely.LineString([p, q])
                how[idx[s]] = "nodes"
        # sanity: a gap holding a long run of numbers in a few feet is a failed alignment
        for g, members in share.items():
            span = float(sum(hi[s] - lo[s] + 2 for s in members))
            gap = float(np.hypot(*(xy[g + 1] - xy[g])))
            if span >= 20 and gap / span < min_density:
                for s in members:
                    geoms[idx[s]] = None
                    how[idx[s]] = ""
        _infer_runs(lo, hi, idx, geoms, how, min_density=min_density, max_density=max_density)
    out = gpd.GeoDataFrame(segs.drop(columns=["lo", "hi"]), geometry=geoms, crs=crs)
    out["position"] = how
    stats = PositionStats(
        n_segments=len(out), n_addressed=int((segs["hi"] > 0).sum()),
        n_positioned=int((how == "nodes").sum()), n_inferred=int((how == "inferred").sum()),
        n_streets=int(segs["street_code"].nunique()),
        extra={"learned_anchors": len(learned), "numbered_cross_streets": len(static_anchor)},
    )
    return out[[*SEGMENT_COLUMNS, "geometry"]], stats


def _infer_runs(lo: np.ndarray, hi: np.ndarray, idx: np.ndarray,
                geoms: list[shapely.LineString | None], how: np.ndarray, *,
                min_density: float, max_density: float) -> None:
    """Spread each run of unplaced segments between its placed neighbours (by numbers)."""
    m = len(lo)
    placed = np.array([geoms[idx[s]] is not None for s in range(m)])
    s = 0
    while s < m:
        if placed[s]:
            s += 1
            continue
        e = s
        while e < m and not placed[e]:
            e += 1
        if s > 0 and e < m:
            gb, ga = geoms[idx[s - 1]], geoms[idx[e]]
            assert gb is not None and ga is not None
            p0 = np.asarray(gb.coords[-1])
            p1 = np.asarray(ga.coords[0])
            spans = hi[s:e] - lo[s:e] + 2
            dist = float(np.hypot(*(p1 - p0)))
            if dist >= 1.0 and min_density <= dist / float(spans.sum()) <= max_density:
                cuts = np.concatenate([[0.0], np.cumsum(spans) / spans.sum()])
                for t in range(e - s):
                    a, b = p0 + (p1 - p0) * cuts[t], p0 + (p1 - p0) * cuts[t + 1]
                    geoms[idx[s + t]] = shapely.LineString([a, b])
                    how[idx[s + t]] = "inferred"
        s = e


def isolated_blocks(segs: pd.DataFrame, geoms: np.ndarray, has: np.ndarray,
              far: float) -> np.ndarray:
    """Blocks placed far from both neighbouring blocks of their street (which agree)."""
    v = segs[["l_from", "l_to", "r_from", "r_to"]].to_numpy(np.int64)
    hi = v.max(axis=1)
    ok = has & (hi > 0)
    idx = np.flatnonzero(ok)
    lo = np.where(v > 0, v, np.iinfo(np.int64).max).min(axis=1)[idx]
    code = segs["street_code"].to_numpy(np.int64)[idx]
    c = shapely.centroid(geoms[idx])
    x, y = shapely.get_x(c), shapely.get_y(c)
    order = np.lexsort((lo, code))
    idx, code, x, y = idx[order], code[order], x[order], y[order]
    lo, hi = lo[order], hi[idx]
    out = np.zeros(len(segs), dtype=bool)
    if len(idx) < 3:
        return out
    mid = slice(1, -1)
    same = (code[:-2] == code[mid]) & (code[2:] == code[mid])
    d_prev = np.hypot(x[mid] - x[:-2], y[mid] - y[:-2])
    d_next = np.hypot(x[mid] - x[2:], y[mid] - y[2:])
    d_pn = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2])
    # the two neighbours lie together: closer than half the limit, or than the numbers
    # between them allow (a block of 100 numbers up to the limit long)
    agree = d_pn < np.maximum(far / 2, far / 100 * np.maximum(lo[2:] - hi[:-2], 0))
    out[idx[mid][same & (d_prev > far) & (d_next > far) & agree]] = True
    return out
