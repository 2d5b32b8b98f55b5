"""Offline geocoding of addresses and intersections against a city's street index.

Matching order for each distinct normalized address:

1. ``exact``: an address point, when the city supplies an address-points layer;
2. ``range``: interpolation along the segment whose range and side parity hold the number,
   offset ``side_offset_m`` (25 ft) to that side of the street;
3. ``intersection``: the node shared by the two streets (nearest to the centroid when the
   streets meet at several nodes close together; ``ambiguous`` when they are far apart);
4. ``fuzzy_range`` / ``fuzzy_intersection``: the same with a street name that is not in the
   city's list replaced by the closest one, when the rapidfuzz ``ratio`` reaches
   ``fuzzy_threshold`` (default 85: "FRANKFRD" → "FRANKFORD" scores 94, "MARKT" → "MARKET"
   91, while unrelated short names stay below it).

Every row gets a ``match_type`` (``exact``, ``range``, ``intersection``, ``fuzzy_range``,
``fuzzy_intersection``, ``unmatched``), a ``score`` from 0 to 100 and, when unmatched, a
``reason`` (``unparseable``, ``unknown_street``, ``number_out_of_range``, ``unpositioned``
(the range exists but its block has no position in the index), ``ambiguous``,
``streets_do_not_meet`` (both streets are known but share no node), ``outside_city``).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from rapidfuzz import fuzz, process

from geo.geocode.address import STATES, ParsedAddress, StreetNames, parse_address
from geo.geocode.positioning import PositionStats, isolated_blocks, position_segments
from geo.geocode.providers import RESULT_COLUMNS
from geo.geocode.streets import (
    CenterlineFields,
    nodes_from_segments,
    read_city_streets,
    segments_from_centerline,
)
from hotspot311.errors import InputError, describe

_ALGO_VERSION = 2  # bump when geo.geocode.positioning changes (invalidates caches)
_PLAIN = re.compile(r"^\s*(\d{1,6})\s+([A-Za-z0-9][A-Za-z0-9 .']*?)\s*$")
_MISSING: Any = object()
_KEY = 10_000_000  # numbers are below this; keys are (code * 2 + parity) * _KEY + number


@dataclass(frozen=True)
class _Result:
    x: float
    y: float
    match_type: str
    score: float
    reason: str


_UNPARSEABLE = _Result(np.nan, np.nan, "unmatched", 0.0, "unparseable")


def _unmatched(reason: str) -> _Result:
    return _Result(np.nan, np.nan, "unmatched", 0.0, reason)


class Geocoder:
    """An offline geocoder over one city's street index.

    Build it with :meth:`from_city_streets` or :meth:`from_centerline`.

    Parameters
    ----------
    segments
        Street segments with LineString geometry (None where unknown) and the columns of
        :data:`geo.geocode.streets.SEGMENT_COLUMNS`.
    nodes
        Intersection nodes: ``node_id``, ``code_1``, ``code_2``, ``x``, ``y``.
    city, state
        The city served; inputs naming another city or state are ``outside_city``.
    zip_prefixes
        ZIP code prefixes of the city (e.g. ``("191",)``); other ZIPs are ``outside_city``.
    address_points
        Optional address points: ``number``, ``street`` (standardized, e.g. ``N BROAD ST``),
        ``x``, ``y`` in ``segments.crs``.
    fuzzy_threshold
        Smallest rapidfuzz ``ratio`` (0–100) for a fuzzy street-name match.
    side_offset_m
        Distance from the centerline to the side of the street, in metres.
    ambiguous_m
        Two streets meeting at nodes farther apart than this are ``ambiguous``.
    isolated_m
        Sanity check on positioned blocks: a block farther than this from both of its
        neighbouring blocks on the same street (by number), while those two lie close
        together, is treated as unpositioned (its position contradicts the street's).
    """

    def __init__(
        self,
        segments: gpd.GeoDataFrame,
        nodes: pd.DataFrame,
        *,
        city: str,
        state: str,
        zip_prefixes: Iterable[str] = (),
        address_points: pd.DataFrame | None = None,
        fuzzy_threshold: float = 85.0,
        side_offset_m: float = 7.62,
        ambiguous_m: float = 400.0,
        isolated_m: float = 600.0,
        stats: PositionStats | None = None,
    ) -> None:
        if segments.crs is None:
            raise InputError("segments has no CRS; set one (e.g. EPSG:2272)")
        if not 0 <= fuzzy_threshold <= 100:
            raise InputError(f"fuzzy_threshold={describe(fuzzy_threshold)}; allowed: 0 to 100")
        self.crs = pyproj.CRS(segments.crs)
        unit = self.crs.axis_info[0].unit_conversion_factor if self.crs.is_projected else 1.0
        self.city = city.upper()
        self.state = STATES.get(state.upper(), state.upper())
        self.zip_prefixes = tuple(zip_prefixes)
        self.fuzzy_threshold = float(fuzzy_threshold)
        self.offset = side_offset_m / unit
        self.ambiguous = ambiguous_m / unit
        self.isolated = isolated_m / unit
        self.stats = stats
        self._to_lonlat = pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        self._segments = segments
        self._nodes = nodes
        self._build_streets(segments)
        self._build_nodes(nodes)
        self._points: dict[str, tuple[float, float]] = {}
        if address_points is not None:
            for n, st, x, y in address_points[["number", "street", "x", "y"]].itertuples(
                    index=False):
                self._points[f"{int(n)} {str(st).upper()}"] = (float(x), float(y))
        self._cache: dict[str, _Result] = {}
        self._parse_cache: dict[str, ParsedAddress] = {}
        self._street_cache: dict[str, ParsedAddress | None] = {}
        self._fuzzy_cache: dict[str, tuple[str, float] | None] = {}
        self._cand_cache: dict[tuple[str, str, str, str],
                               tuple[list[tuple[int, float]], bool]] = {}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_city_streets(cls, streets_dir: str | Path, crs: str = "EPSG:2272",
                          city: str = "Philadelphia", state: str = "PA", *,
                          numbered_hundreds: bool = True, cache_dir: str | Path | None = None,
                          **options: Any) -> Geocoder:
        """Build from a passyunk-style folder (ranges without geometry plus nodes).

        Parameters
        ----------
        streets_dir
            Folder read by :func:`geo.geocode.streets.read_city_streets`.
        crs
            CRS of the node coordinates.
        city, state
            The city served.
        numbered_hundreds
            Passed to :func:`geo.geocode.positioning.position_segments`.
        cache_dir
            When given, the positioned segments are kept there as GeoParquet, keyed by the
            content of the input files and the positioning version, and reused by the next
            build (a cold build takes 10–25 s on two cores; a cached one about a second).
        **options
            Passed to :class:`Geocoder`.
        """
        ranges, nodes, _names = read_city_streets(streets_dir)
        cached = None
        if cache_dir is not None:
            # keyed by content (not times), so fresh clones and test sessions share it
            h = hashlib.sha1(repr([crs, numbered_hundreds, _ALGO_VERSION]).encode())
            for f in sorted(Path(streets_dir).glob("*.csv")):
                h.update(f.name.encode())
                h.update(f.read_bytes())
            sig = h.hexdigest()
            cached = Path(cache_dir) / f"segments-{sig[:16]}.parquet"
        stats = None
        if cached is not None and cached.exists():
            segments = gpd.read_parquet(cached)
        else:
            segments, stats = position_segments(ranges, nodes, crs=crs,
                                                numbered_hundreds=numbered_hundreds)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp")
                segments.to_parquet(tmp)
                tmp.replace(cached)
        if stats is None:
            pos = segments["position"]
            stats = PositionStats(len(segments), int(((segments["l_to"] > 0) | (
                segments["r_to"] > 0)).sum()), int((pos == "nodes").sum()),
                int((pos == "inferred").sum()), int(segments["street_code"].nunique()))
        return cls(segments, nodes, city=city, state=state, stats=stats, **options)

    @classmethod
    def from_centerline(cls, gdf: gpd.GeoDataFrame, *, fields: CenterlineFields | None = None,
                        city: str, state: str, **options: Any) -> Geocoder:
        """Build from a centerline layer with geometry (TIGER/Line edges by default).

        Parameters
        ----------
        gdf
            Lines with address ranges per side, in a projected CRS.
        fields
            Field names; TIGER/Line names by default.
        city, state
            The city served.
        **options
            Passed to :class:`Geocoder`.
        """
        segments = segments_from_centerline(gdf, fields=fields or CenterlineFields())
        return cls(segments, nodes_from_segments(segments), city=city, state=state, **options)

    def _build_streets(self, segments: gpd.GeoDataFrame) -> None:
        segs = segments.reset_index(drop=True)
        codes = segs["street_code"].to_numpy(np.int64)
        uniq, code_idx = np.unique(codes, return_inverse=True)
        self._code_of = {int(c): i for i, c in enumerate(uniq)}
        first = segs.groupby("street_code", sort=True)[["predir", "name", "suffix",
                                                         "postdir"]].first()
        self._parts = [tuple(map(str, r)) for r in first.itertuples(index=False)]
        self._by_name: dict[str, list[int]] = defaultdict(list)
        for i, parts in enumerate(self._parts):
            self._by_name[parts[1]].append(i)
        self._names = sorted(self._by_name)
        self.street_names = StreetNames(self._names)
        self._size = np.bincount(code_idx, minlength=len(uniq))
        geoms = segs.geometry.to_numpy()
        has = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        self.n_isolated = 0
        if has.any():
            iso = isolated_blocks(segs, geoms, has, self.isolated)
            self.n_isolated = int(iso.sum())
            has &= ~iso
        rows = []
        for side, a, b in ((1, "l_from", "l_to"), (-1, "r_from", "r_to")):
            f = segs[a].to_numpy(np.int64)
            t = segs[b].to_numpy(np.int64)
            ok = (f > 0) | (t > 0)
            rows.append(pd.DataFrame({
                "code": code_idx[ok], "seg": np.flatnonzero(ok), "side": side,
                "f": f[ok], "t": t[ok], "pos": has[ok]}))
        tab = pd.concat(rows, ignore_index=True)
        tab["lo"] = np.minimum(tab["f"], tab["t"])
        tab["hi"] = np.maximum(tab["f"], tab["t"])
        tab["key"] = (tab["code"] * 2 + tab["lo"] % 2) * _KEY + tab["lo"]
        tab = tab.sort_values("key", kind="stable").reset_index(drop=True)
        self._ranges = {c: tab[c].to_numpy() for c in tab.columns}
        self._geoms = geoms

    def _build_nodes(self, nodes: pd.DataFrame) -> None:
        by_node: dict[int, tuple[float, float, set[int]]] = {}
        for nid, c1, c2, x, y in nodes[["node_id", "code_1", "code_2", "x", "y"]].itertuples(
                index=False):
            entry = by_node.setdefault(int(nid), (float(x), float(y), set()))
            for c in (c1, c2):
                if int(c) in self._code_of:
                    entry[2].add(self._code_of[int(c)])
        self._pairs: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
        for x, y, codes in by_node.values():
            cs = sorted(codes)
            for i, a in enumerate(cs):
                for b in cs[i + 1:]:
                    self._pairs[(a, b)].append((x, y))

    # -- public API ---------------------------------------------------------------------
    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        """Geocode a series of addresses; the result is aligned to ``addresses.index``.

        Distinct inputs are parsed once and distinct normalized addresses matched once
        (results are cached on the geocoder).

        Parameters
        ----------
        addresses
            Free-text addresses or intersections; missing values are ``unparseable``.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`RESULT_COLUMNS`; ``x``/``y`` in the city CRS, ``lat``/``lon``
            in WGS84, NaN when unmatched.
        """
        if not isinstance(addresses, pd.Series):
            raise InputError(f"addresses must be a pandas Series, got {type(addresses)}")
        texts = addresses.astype(object).where(addresses.notna(), "")
        codes, uniq = pd.factorize(texts.astype(str), use_na_sentinel=False)
        parsed = [self._parse(t) for t in uniq]
        norms = [p.normalized for p in parsed]
        keys = [self._key(p, n) for p, n in zip(parsed, norms, strict=True)]
        todo = {k: p for k, p in zip(keys, parsed, strict=True) if k not in self._cache}
        if todo:
            self._resolve_fuzzy(todo.values())
            self._cache.update(self._match(list(todo), list(todo.values())))
        res = [self._cache[k] for k in keys]
        return self._frame(res, norms, codes, addresses.index)

    def geocode_one(self, text: str) -> dict[str, Any]:
        """Geocode one address (no cache); return a dict with :data:`RESULT_COLUMNS`."""
        p = parse_address(text, streets=self.street_names)
        k = self._key(p)
        res = self._match([k], [p])[k]
        frame = self._frame([res], [p.normalized], np.zeros(1, dtype=np.int64),
                            pd.RangeIndex(1))
        return {c: frame[c].iloc[0] for c in RESULT_COLUMNS}

    def _segments_for_tests(self) -> gpd.GeoDataFrame:
        return self._segments

    def _nodes_for_tests(self) -> pd.DataFrame:
        return self._nodes

    def clear_cache(self) -> None:
        """Forget cached parses, street-name resolutions and matches."""
        self._cache.clear()
        self._parse_cache.clear()
        self._street_cache.clear()
        self._fuzzy_cache.clear()
        self._cand_cache.clear()

    # -- steps --------------------------------------------------------------------------
    def _parse(self, text: str) -> ParsedAddress:
        p = self._parse_cache.get(text)
        if p is None:
            p = self._parse_fast(text)
            self._parse_cache[text] = p
        return p

    def _parse_fast(self, text: str) -> ParsedAddress:
        """Parse ``text``; a plain "number street" reuses the parse of its street part.

        Most inputs are a bare house number and a street: the street part is parsed once
        (as house number 1) and the number put in, which gives the same result as a full
        parse whenever the template parses as an address (checked: anything else takes
        the full parser).
        """
        mt = _PLAIN.match(text)
        if mt is None:
            return parse_address(text, streets=self.street_names)
        rest = mt.group(2)
        templ = self._street_cache.get(rest, _MISSING)
        if templ is _MISSING:
            t = parse_address("1 " + rest, streets=self.street_names)
            templ = t if (t.kind == "address" and t.number == 1 and t.number_high is None
                          and not t.fraction) else None
            self._street_cache[rest] = templ
        if templ is None:
            return parse_address(text, streets=self.street_names)
        # dataclasses.replace is slow; the copy is a plain frozen dataclass
        out = object.__new__(ParsedAddress)
        out.__dict__.update(templ.__dict__)
        out.__dict__["number"] = int(mt.group(1))
        return out

    def _resolve_fuzzy(self, parsed: Iterable[ParsedAddress]) -> None:
        """Fuzzy-match every unknown street name of ``parsed`` at once (both cores)."""
        unknown = {n for p in parsed for n in (p.name, p.name2)
                   if n and n not in self._by_name and n not in self._fuzzy_cache}
        if not unknown or not self._names:
            return
        queries = sorted(unknown)
        for a in range(0, len(queries), 4096):
            chunk = queries[a:a + 4096]
            scores = process.cdist(chunk, self._names, scorer=fuzz.ratio,
                                   score_cutoff=self.fuzzy_threshold, dtype=np.float32,
                                   workers=-1)
            best = scores.argmax(axis=1)
            top = scores[np.arange(len(chunk)), best]
            for q, b, v in zip(chunk, best, top, strict=True):
                self._fuzzy_cache[q] = ((self._names[int(b)], float(v))
                                        if v >= self.fuzzy_threshold and v > 0 else None)

    def _key(self, p: ParsedAddress, normalized: str | None = None) -> str:
        if p.kind == "unparseable":
            return "?"
        if (p.state or p.city or p.zip) and self._outside(p):
            return "!"
        return p.normalized if normalized is None else normalized

    def _outside(self, p: ParsedAddress) -> bool:
        if p.state and p.state != self.state:
            return True
        if p.city:
            c = p.city.replace(" ", "")
            target = self.city.replace(" ", "")
            if not (c == target or (len(c) >= 4 and target.startswith(c))):
                return True
        return bool(p.zip and self.zip_prefixes
                    and not p.zip.startswith(self.zip_prefixes))

    def _candidates(self, predir: str, name: str, suffix: str,
                    postdir: str) -> tuple[list[tuple[int, float]], bool]:
        """Street codes for name parts, best first, with scores; and whether fuzzy."""
        ck = (predir, name, suffix, postdir)
        hit = self._cand_cache.get(ck)
        if hit is None:
            hit = self._cand_cache[ck] = self._candidates_uncached(predir, name, suffix,
                                                                   postdir)
        return hit

    def _candidates_uncached(self, predir: str, name: str, suffix: str,
                             postdir: str) -> tuple[list[tuple[int, float]], bool]:
        fuzzy = False
        base = 100.0
        codes = self._by_name.get(name)
        if not codes:
            hit = self._fuzzy(name)
            if hit is None:
                return [], False
            name, ratio = hit
            codes, fuzzy, base = self._by_name[name], True, min(95.0, ratio)
        out = []
        for c in codes:
            pd_, _, sf, po = self._parts[c]
            s = base
            if predir and pd_ != predir:
                s -= 15
            if suffix and sf != suffix:
                s -= 12
            if postdir != po:
                s -= 8
            if not suffix and sf not in {"ST", "AVE", "RD"}:
                s -= 3
            out.append((c, s - 1e-6 * float(-self._size[c])))
        out.sort(key=lambda cs: -cs[1])
        return out, fuzzy

    def _fuzzy(self, name: str) -> tuple[str, float] | None:
        if name not in self._fuzzy_cache:
            hit = process.extractOne(name, self._names, scorer=fuzz.ratio,
                                     score_cutoff=self.fuzzy_threshold)
            self._fuzzy_cache[name] = None if hit is None else (str(hit[0]), float(hit[1]))
        return self._fuzzy_cache[name]

    def _match(self, keys: list[str], parsed: list[ParsedAddress]) -> dict[str, _Result]:
        out: dict[str, _Result] = {}
        q_key: list[str] = []
        q_code: list[int] = []
        q_num: list[int] = []
        q_score: list[float] = []
        q_fuzzy: list[bool] = []
        for k, p in zip(keys, parsed, strict=True):
            if k == "?":
                out[k] = _UNPARSEABLE
            elif k == "!":
                out[k] = _unmatched("outside_city")
            elif p.kind == "intersection":
                out[k] = self._intersection(p)
            else:
                pt = self._points.get(f"{p.number} {p.street}") if self._points else None
                if pt is not None:
                    out[k] = _Result(pt[0], pt[1], "exact", 100.0, "")
                    continue
                cands, fuzzy = self._candidates(p.predir, p.name, p.suffix, p.postdir)
                if not cands:
                    out[k] = _unmatched("unknown_street")
                    continue
                out[k] = _unmatched("number_out_of_range")
                for c, s in cands:
                    q_key.append(k)
                    q_code.append(c)
                    q_num.append(int(p.number or 0))
                    q_score.append(s)
                    q_fuzzy.append(fuzzy)
        if q_key:
            out.update(self._ranges_match(q_key, np.array(q_code), np.array(q_num),
                                          np.array(q_score), np.array(q_fuzzy)))
        return out

    def _ranges_match(self, q_key: list[str], code: np.ndarray, num: np.ndarray,
                      score: np.ndarray, fuzzy: np.ndarray) -> dict[str, _Result]:
        r = self._ranges
        qid = pd.factorize(np.asarray(q_key, dtype=object))[0]
        h_q, h_s, h_pos = [], [], []
        # the other side of the named street ranks above a street with another prefix
        for parity_penalty, parity in ((0.0, num % 2), (10.0, 1 - num % 2)):
            key = (code * 2 + parity) * _KEY + num
            pos = np.searchsorted(r["key"], key, side="right") - 1
            pos_ok = pos >= 0
            pos = np.where(pos_ok, pos, 0)
            hit = pos_ok & (r["code"][pos] == code) & (r["hi"][pos] >= num) & (
                r["lo"][pos] % 2 == parity)
            h_q.append(np.flatnonzero(hit))
            h_s.append(score[hit] - parity_penalty)
            h_pos.append(pos[hit])
        hq, hs, hpos = np.concatenate(h_q), np.concatenate(h_s), np.concatenate(h_pos)
        if not len(hq):
            return {}
        def pick(mask: np.ndarray) -> dict[str, tuple[float, int, int]]:
            """Best score per query among ``mask``; ties keep the first candidate met."""
            q, sc, ps = hq[mask], hs[mask], hpos[mask]
            order = np.lexsort((np.arange(len(q)), -sc, qid[q]))
            first = np.r_[True, qid[q][order][1:] != qid[q][order][:-1]][:len(order)]
            sel = order[first]
            return {q_key[int(i)]: (float(v), int(p), int(num[i]))
                    for i, v, p in zip(q[sel], sc[sel], ps[sel], strict=True)}

        best = pick(np.ones(len(hq), dtype=bool))
        placed = pick(r["pos"][hpos].astype(bool))
        out: dict[str, _Result] = {}
        for k in [k for k, v in best.items() if not r["pos"][v[1]]]:
            alt = placed.get(k)
            if alt is not None and alt[0] >= best[k][0] - 10.0:
                best[k] = alt  # the other side of the same street is positioned
            else:
                # the range exists but its block could not be positioned: say so rather
                # than fall back to a street with another prefix far away
                out[k] = _unmatched("unpositioned")
                del best[k]
        if not best:
            return out
        ks = list(best)
        rows = np.array([best[k][1] for k in ks])
        nums = np.array([best[k][2] for k in ks], dtype=float)
        f, t = r["f"][rows].astype(float), r["t"][rows].astype(float)
        frac = np.where(t != f, (nums - f) / np.where(t != f, t - f, 1.0), 0.5)
        frac = np.clip(frac, 0.0, 1.0)
        lines = self._geoms[r["seg"][rows]]
        pt = shapely.line_interpolate_point(lines, frac, normalized=True)
        a = shapely.line_interpolate_point(lines, np.clip(frac - 0.02, 0, 1), normalized=True)
        b = shapely.line_interpolate_point(lines, np.clip(frac + 0.02, 0, 1), normalized=True)
        x, y = shapely.get_x(pt), shapely.get_y(pt)
        dx, dy = shapely.get_x(b) - shapely.get_x(a), shapely.get_y(b) - shapely.get_y(a)
        norm = np.hypot(dx, dy)
        norm = np.where(norm > 0, norm, 1.0)
        side = r["side"][rows]
        x = x - dy / norm * self.offset * side
        y = y + dx / norm * self.offset * side
        idx = {k: i for i, k in enumerate(q_key)}
        for i, k in enumerate(ks):
            kind = "fuzzy_range" if fuzzy[idx[k]] else "range"
            out[k] = _Result(float(x[i]), float(y[i]), kind,
                             float(max(1.0, min(100.0, best[k][0]))), "")
        return out

    def _intersection(self, p: ParsedAddress) -> _Result:
        ca, fa = self._candidates(p.predir, p.name, p.suffix, p.postdir)
        cb, fb = self._candidates(p.predir2, p.name2, p.suffix2, p.postdir2)
        if not ca or not cb:
            return _unmatched("unknown_street")
        found: list[tuple[float, list[tuple[float, float]]]] = []
        for a, sa in ca:
            for b, sb in cb:
                pts = self._pairs.get((min(a, b), max(a, b)))
                if pts:
                    found.append((min(sa, sb), pts))
        if not found:
            return _unmatched("streets_do_not_meet")
        top = max(s for s, _ in found)
        pts_all = np.array([pt for s, pts in found if s >= top - 1e-3 for pt in pts])
        centre = pts_all.mean(axis=0)
        d = np.hypot(*(pts_all - centre).T)
        if float(d.max()) * 2 > self.ambiguous:
            return _unmatched("ambiguous")
        x, y = pts_all[int(np.argmin(d))]
        kind = "fuzzy_intersection" if (fa or fb) else "intersection"
        return _Result(float(x), float(y), kind, float(max(1.0, min(100.0, top))), "")

    def _frame(self, res: list[_Result], normalized: list[str], codes: np.ndarray,
               index: pd.Index) -> pd.DataFrame:
        x = np.array([r.x for r in res], dtype=float)
        y = np.array([r.y for r in res], dtype=float)
        lon, lat = self._to_lonlat.transform(x, y)
        uniq = pd.DataFrame({
            "x": x, "y": y, "lat": np.where(np.isnan(x), np.nan, lat),
            "lon": np.where(np.isnan(x), np.nan, lon),
            "match_type": [r.match_type for r in res],
            "score": np.array([r.score for r in res], dtype=float),
            "reason": [r.reason for r in res],
            "normalized": normalized,
        })
        out = uniq.iloc[codes].reset_index(drop=True)
        out.index = index
        return out
