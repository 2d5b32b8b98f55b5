"""Numba kernels behind :func:`clustering.dbscan.dbscan` (private).

Points are sorted into square grid cells; every kernel works cell by cell and never
builds per-point neighbour lists, so memory stays O(n) whatever ``eps`` and the density.

All pruning is *rigorous in floating point*: correctly rounded subtraction, squaring
and addition are monotone, so a bound computed from a cell's bounding box (the actual
minimum and maximum coordinates of the points in it) bounds the computed squared
distance ``dx*dx + dy*dy`` of every point pair it covers. Pruning therefore never
changes the answer of the plain test ``dx*dx + dy*dy <= eps*eps``.

Arrays used throughout (``m`` cells, ``n`` points, points sorted by cell):

``keys``
    Sorted distinct cell keys ``cx * ny + cy`` (length ``m``).
``starts``
    Cell ``c`` holds sorted points ``starts[c]:starts[c + 1]`` (length ``m + 1``).
``bbox``
    ``(m, 4)`` array of ``xmin, ymin, xmax, ymax`` of the points in each cell.
``tight``
    ``True`` where every pair of points in the cell is within ``eps`` (proved from the
    bounding box), so the cell's points are mutually neighbours.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from geo.store.id_merge import radix_order

_NO_LABEL = np.iinfo(np.int64).max


def argsort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable argsort of non-negative int64 keys, and the sorted keys
    (:func:`geo.store.id_merge.radix_order`: O(n) time and memory, a pass per 16 bits
    that differ among the keys; 2 passes for 4 million cells)."""
    order = radix_order(np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64)[None, :])
    return order, keys[order]


@njit(cache=True, nogil=True, parallel=True)
def gather(
    points: np.ndarray, weights: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return x, y and weight of the points in ``order``."""
    n = order.shape[0]
    xs = np.empty(n, dtype=np.float64)
    ys = np.empty(n, dtype=np.float64)
    ws = np.empty(n, dtype=np.float64)
    for i in prange(n):
        j = order[i]
        xs[i] = points[j, 0]
        ys[i] = points[j, 1]
        ws[i] = weights[j]
    return xs, ys, ws


@njit(cache=True, nogil=True)
def cell_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct keys of ``sorted_keys`` and the start of each run."""
    n = sorted_keys.shape[0]
    m = 0
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            m += 1
    keys = np.empty(m, dtype=np.int64)
    starts = np.empty(m + 1, dtype=np.int64)
    c = 0
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            keys[c] = sorted_keys[i]
            starts[c] = i
            c += 1
    starts[m] = n
    return keys, starts


@njit(cache=True, nogil=True, parallel=True)
def cell_stats(
    xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, starts: np.ndarray, eps2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each cell's bounding box, total weight and whether it is tight."""
    m = starts.shape[0] - 1
    bbox = np.empty((m, 4), dtype=np.float64)
    wsum = np.empty(m, dtype=np.float64)
    tight = np.empty(m, dtype=np.bool_)
    for c in prange(m):
        s, e = starts[c], starts[c + 1]
        x0 = xs[s]
        x1 = xs[s]
        y0 = ys[s]
        y1 = ys[s]
        w = 0.0
        for i in range(s, e):
            x0 = min(x0, xs[i])
            x1 = max(x1, xs[i])
            y0 = min(y0, ys[i])
            y1 = max(y1, ys[i])
            w += ws[i]
        bbox[c, 0] = x0
        bbox[c, 1] = y0
        bbox[c, 2] = x1
        bbox[c, 3] = y1
        wsum[c] = w
        dx = x1 - x0
        dy = y1 - y0
        tight[c] = dx * dx + dy * dy <= eps2
    return bbox, wsum, tight


@njit(cache=True, nogil=True, inline="always")
def _row_range(keys: np.ndarray, row: int, cy: int, ny: int, reach: int) -> tuple[int, int]:
    """Return the cell index range of cells in grid row ``row`` near column ``cy``."""
    lo = row * ny + max(cy - reach, 0)
    hi = row * ny + min(cy + reach, ny - 1)
    i0 = int(np.searchsorted(keys, lo, side="left"))
    i1 = int(np.searchsorted(keys, hi, side="right"))
    return i0, i1


@njit(cache=True, nogil=True, inline="always")
def _gap2(px: float, py: float, bbox: np.ndarray, c: int) -> float:
    """Lower bound of the squared distance from a point to any point of cell ``c``."""
    gx = 0.0
    if px < bbox[c, 0]:
        gx = bbox[c, 0] - px
    elif px > bbox[c, 2]:
        gx = px - bbox[c, 2]
    gy = 0.0
    if py < bbox[c, 1]:
        gy = bbox[c, 1] - py
    elif py > bbox[c, 3]:
        gy = py - bbox[c, 3]
    return gx * gx + gy * gy


@njit(cache=True, nogil=True, inline="always")
def _far2(px: float, py: float, bbox: np.ndarray, c: int) -> float:
    """Upper bound of the squared distance from a point to any point of cell ``c``."""
    fx = max(abs(px - bbox[c, 0]), abs(bbox[c, 2] - px))
    fy = max(abs(py - bbox[c, 1]), abs(bbox[c, 3] - py))
    return fx * fx + fy * fy


@njit(cache=True, nogil=True, parallel=True)
def core_flags(
    xs: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    keys: np.ndarray,
    starts: np.ndarray,
    bbox: np.ndarray,
    wsum: np.ndarray,
    tight: np.ndarray,
    nx: int,
    ny: int,
    reach: int,
    eps2: float,
    min_samples: float,
    nonneg: bool,
) -> np.ndarray:
    """Return, per sorted point, whether its weighted eps-neighbourhood reaches min_samples.

    With non-negative weights the count stops as soon as it reaches ``min_samples`` and a
    tight cell whose weight reaches it is core as a whole without looking at neighbours.
    """
    n = xs.shape[0]
    m = keys.shape[0]
    core = np.zeros(n, dtype=np.bool_)
    for a in prange(m):
        s, e = starts[a], starts[a + 1]
        if nonneg and tight[a] and wsum[a] >= min_samples:
            for i in range(s, e):
                core[i] = True
            continue
        cx = keys[a] // ny
        cy = keys[a] - cx * ny
        for i in range(s, e):
            px = xs[i]
            py = ys[i]
            if tight[a]:
                cnt = wsum[a]
            else:
                cnt = 0.0
                for j in range(s, e):
                    dx = xs[j] - px
                    dy = ys[j] - py
                    if dx * dx + dy * dy <= eps2:
                        cnt += ws[j]
            if nonneg and cnt >= min_samples:
                core[i] = True
                continue
            done = False
            for row in range(max(cx - reach, 0), min(cx + reach, nx - 1) + 1):
                i0, i1 = _row_range(keys, row, cy, ny, reach)
                for b in range(i0, i1):
                    if b == a or _gap2(px, py, bbox, b) > eps2:
                        continue
                    if _far2(px, py, bbox, b) <= eps2:
                        cnt += wsum[b]
                    else:
                        for j in range(starts[b], starts[b + 1]):
                            dx = xs[j] - px
                            dy = ys[j] - py
                            if dx * dx + dy * dy <= eps2:
                                cnt += ws[j]
                    if nonneg and cnt >= min_samples:
                        done = True
                        break
                if done:
                    break
            core[i] = cnt >= min_samples
    return core


@njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True, inline="always")
def _union(parent: np.ndarray, i: int, j: int) -> None:
    ri = _find(parent, i)
    rj = _find(parent, j)
    if ri < rj:
        parent[rj] = ri
    elif rj < ri:
        parent[ri] = rj


@njit(cache=True, nogil=True)
def _any_pair_within(
    cxs: np.ndarray,
    cys: np.ndarray,
    a0: int,
    a1: int,
    b0: int,
    b1: int,
    bbox: np.ndarray,
    a: int,
    b: int,
    eps2: float,
) -> bool:
    """Whether some core point of cell ``a`` is within eps of some core point of cell ``b``.

    Only points of one cell that can reach the other cell's bounding box are compared
    (the facing strips), and the search stops at the first pair found.
    """
    na = a1 - a0
    nb = b1 - b0
    # Filter the smaller side against the other cell's box, then scan the other side.
    if na > nb:
        a0, a1, b0, b1 = b0, b1, a0, a1
        a, b = b, a
    for i in range(a0, a1):
        px = cxs[i]
        py = cys[i]
        if _gap2(px, py, bbox, b) > eps2:
            continue
        if _far2(px, py, bbox, b) <= eps2:
            return True
        for j in range(b0, b1):
            dx = cxs[j] - px
            dy = cys[j] - py
            if dx * dx + dy * dy <= eps2:
                return True
    return False


@njit(cache=True, nogil=True)
def union_core(
    cxs: np.ndarray,
    cys: np.ndarray,
    cstarts: np.ndarray,
    keys: np.ndarray,
    bbox: np.ndarray,
    tight: np.ndarray,
    nx: int,
    ny: int,
    reach: int,
    eps2: float,
) -> np.ndarray:
    """Union-find over core points; return each core point's root (its component).

    ``cxs, cys`` are the core points in cell order and cell ``c`` holds core points
    ``cstarts[c]:cstarts[c + 1]``. The core points of a tight cell form one component
    at once; two tight cells are joined as soon as one pair of their core points is
    within eps. Cells that are not tight (rare: only when floating point rounding or a
    coarse grid leaves a cell wider than eps) are handled point by point.
    """
    nc = cxs.shape[0]
    m = keys.shape[0]
    parent = np.arange(nc)
    for a in range(m):
        s, e = cstarts[a], cstarts[a + 1]
        if tight[a]:
            for i in range(s + 1, e):
                parent[i] = s
        else:
            for i in range(s, e):
                for j in range(i + 1, e):
                    dx = cxs[j] - cxs[i]
                    dy = cys[j] - cys[i]
                    if dx * dx + dy * dy <= eps2:
                        _union(parent, i, j)
    for a in range(m):
        s, e = cstarts[a], cstarts[a + 1]
        if s == e:
            continue
        cx = keys[a] // ny
        cy = keys[a] - cx * ny
        for row in range(cx, min(cx + reach, nx - 1) + 1):
            i0, i1 = _row_range(keys, row, cy, ny, reach)
            for b in range(max(i0, a + 1), i1):
                t, f = cstarts[b], cstarts[b + 1]
                if t == f:
                    continue
                if tight[a] and tight[b]:
                    if _find(parent, s) == _find(parent, t):
                        continue
                    # gap between the two boxes: a lower bound for every pair
                    gx = max(bbox[b, 0] - bbox[a, 2], bbox[a, 0] - bbox[b, 2], 0.0)
                    gy = max(bbox[b, 1] - bbox[a, 3], bbox[a, 1] - bbox[b, 3], 0.0)
                    if gx * gx + gy * gy > eps2:
                        continue
                    if _any_pair_within(cxs, cys, s, e, t, f, bbox, a, b, eps2):
                        _union(parent, s, t)
                else:
                    for i in range(s, e):
                        for j in range(t, f):
                            dx = cxs[j] - cxs[i]
                            dy = cys[j] - cys[i]
                            if dx * dx + dy * dy <= eps2:
                                _union(parent, i, j)
    for i in range(nc):
        parent[i] = _find(parent, i)
    return parent


@njit(cache=True, nogil=True)
def number_components(roots: np.ndarray, first_index: np.ndarray) -> np.ndarray:
    """Label components 0..k-1 in order of their smallest ``first_index`` (input order)."""
    nc = roots.shape[0]
    big = np.iinfo(np.int64).max
    smallest = np.full(nc, big, dtype=np.int64)
    for i in range(nc):
        r = roots[i]
        smallest[r] = min(smallest[r], first_index[i])
    reps = np.empty(nc, dtype=np.int64)
    k = 0
    for i in range(nc):
        if roots[i] == i:
            reps[k] = i
            k += 1
    reps = reps[:k]
    order = np.argsort(smallest[reps])
    comp_label = np.empty(nc, dtype=np.int64)
    for lab in range(k):
        comp_label[reps[order[lab]]] = lab
    labels = np.empty(nc, dtype=np.int64)
    for i in range(nc):
        labels[i] = comp_label[roots[i]]
    return labels


@njit(cache=True, nogil=True, parallel=True)
def border_labels(
    xs: np.ndarray,
    ys: np.ndarray,
    core: np.ndarray,
    starts: np.ndarray,
    cxs: np.ndarray,
    cys: np.ndarray,
    clabels: np.ndarray,
    cstarts: np.ndarray,
    keys: np.ndarray,
    bbox: np.ndarray,
    tight: np.ndarray,
    nx: int,
    ny: int,
    reach: int,
    eps2: float,
) -> np.ndarray:
    """Label every sorted point: core points by component, others by their border rule.

    A non-core point takes the smallest label among the core points within eps of it
    (scikit-learn's expansion order gives the same), or -1 (noise) if there is none.
    """
    n = xs.shape[0]
    m = keys.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    for a in prange(m):
        s, e = starts[a], starts[a + 1]
        k = cstarts[a]
        for i in range(s, e):
            if core[i]:
                labels[i] = clabels[k]
                k += 1
        if k - cstarts[a] == e - s:
            continue
        cx = keys[a] // ny
        cy = keys[a] - cx * ny
        for i in range(s, e):
            if core[i]:
                continue
            px = xs[i]
            py = ys[i]
            best = _NO_LABEL
            for row in range(max(cx - reach, 0), min(cx + reach, nx - 1) + 1):
                i0, i1 = _row_range(keys, row, cy, ny, reach)
                for b in range(i0, i1):
                    t, f = cstarts[b], cstarts[b + 1]
                    if t == f or _gap2(px, py, bbox, b) > eps2:
                        continue
                    if tight[b]:
                        lab = clabels[t]
                        if lab >= best:
                            continue
                        if _far2(px, py, bbox, b) <= eps2:
                            best = lab
                            continue
                        for j in range(t, f):
                            dx = cxs[j] - px
                            dy = cys[j] - py
                            if dx * dx + dy * dy <= eps2:
                                best = lab
                                break
                    else:
                        for j in range(t, f):
                            if clabels[j] < best:
                                dx = cxs[j] - px
                                dy = cys[j] - py
                                if dx * dx + dy * dy <= eps2:
                                    best = clabels[j]
            if best != _NO_LABEL:
                labels[i] = best
    return labels
