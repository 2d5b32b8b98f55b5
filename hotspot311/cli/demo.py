"""The demo data set: real Philadelphia requests plus a seeded synthetic multi-service set.

Real: every 2024 Illegal Dumping request point (``illegal-dumping-2024-points.csv``),
the Graffiti Removal sample and the Parks & Recreation requests (see ``data/README.md``).

Synthetic (``synthetic = true``, ``source = "synthetic"``, ids ``SYN-…``): requests for
the service types the real files lack, placed at real Philadelphia intersections (the
City's intersection nodes, named from its street centerline) with a few feet of
jitter. Each type has a share of the volume and a share that falls in clusters around
randomly chosen intersections, as the real dumping data shows; the rest is spread over
all intersections. Times span the year before ``end``; statuses and close times follow
each type's SLA with some late and some still open. The same seed and end date give the
same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click
import numpy as np
import pandas as pd
import pyproj
import shapely

from clustering.problems import ProblemAssigner, ProblemRules
from geo.store.reads import RequestFilter
from hotspot311.cli.base import Context, handle_errors, pass_ctx
from hotspot311.errors import InputError

if TYPE_CHECKING:
    from sklearn.neighbors import KDTree

DATA_DIR: Final = Path(__file__).resolve().parents[2] / "data"
PHILA: Final = DATA_DIR / "philadelphia"


@dataclass(frozen=True)
class DemoService:
    """How the generator draws one service type."""

    name: str
    agency: str
    share: float  # of the synthetic volume
    clustered: float  # share of this type's requests that fall in clusters
    sla_days: float
    late_rate: float  # share of closed requests closed after the SLA


#: Synthetic service mix (names as in layers/profiles/philadelphia.services.toml).
DEMO_SERVICES: Final = (
    DemoService("Street Light Outage", "Streets Department", 0.14, 0.45, 20 * 7 / 5, 0.25),
    DemoService("Alley Light Outage", "Streets Department", 0.05, 0.40, 20 * 7 / 5, 0.30),
    DemoService("Street Defect", "Streets Department", 0.12, 0.35, 30, 0.35),
    DemoService("Traffic Signal Emergency", "Streets Department", 0.03, 0.20, 1, 0.15),
    DemoService(
        "Rubbish/Recyclable Material Collection", "Streets Department", 0.16, 0.30, 3 * 7 / 5, 0.20
    ),
    DemoService("Abandoned Vehicle", "Police Department", 0.10, 0.40, 30, 0.40),
    DemoService("Vacant Lot Clean-Up", "Community Life Improvement Program", 0.06, 0.50, 45, 0.30),
    DemoService("Dead Animal in Street", "Streets Department", 0.04, 0.10, 3 * 7 / 5, 0.20),
    DemoService(
        "Maintenance Residential or Commercial", "License & Inspections", 0.12, 0.35, 45, 0.30
    ),
    DemoService(
        "Dangerous Building Complaint", "License & Inspections", 0.05, 0.45, 5 * 7 / 5, 0.25
    ),
    DemoService("Vacant House or Commercial", "License & Inspections", 0.08, 0.50, 45, 0.35),
    DemoService(
        "Graffiti Removal", "Community Life Improvement Program", 0.05, 0.45, 7 * 7 / 5, 0.20
    ),
)

_FT_PER_M: Final = 1 / 0.3048006096


def street_names(centerline: pd.DataFrame) -> pd.Series:
    """Most common ``NAME TYPE`` per street code, e.g. ``87990 → "10TH ST"``."""
    name = (centerline["ST_NAME"].fillna("") + " " + centerline["ST_TYPE"].fillna("")).str.strip()
    frame = pd.DataFrame({"code": centerline["ST_CODE"], "name": name})
    return frame.groupby("code")["name"].agg(lambda s: s.value_counts().index[0])


def intersections(streets_dir: Path = PHILA / "streets") -> pd.DataFrame:
    """Named intersection points: ``x``, ``y`` (EPSG:2272 feet) and ``address``."""
    nodes = pd.read_csv(streets_dir / "intersections-2272.csv")
    names = street_names(pd.read_csv(streets_dir / "centerline-address-ranges.csv"))
    a = nodes["street_1_code"].map(names)
    b = nodes["street_2_code"].map(names)
    ok = a.notna() & b.notna() & (a != b)
    pts = shapely.from_wkt(nodes.loc[ok, "shape"].to_numpy())
    return (
        pd.DataFrame(
            {
                "x": shapely.get_x(pts),
                "y": shapely.get_y(pts),
                "address": (a[ok] + " & " + b[ok]).to_numpy(),
            }
        )
        .drop_duplicates(["x", "y"])
        .reset_index(drop=True)
    )


def generate(
    n: int,
    *,
    seed: int = 311,
    end: datetime | None = None,
    streets_dir: Path = PHILA / "streets",
) -> pd.DataFrame:
    """Generate ``n`` synthetic requests in canonical columns.

    Parameters
    ----------
    n
        Number of requests.
    seed
        Seed of the random generator.
    end
        Latest request time (UTC); the current hour when omitted.
    streets_dir
        Directory with ``intersections-2272.csv`` and ``centerline-address-ranges.csv``.

    Returns
    -------
    pandas.DataFrame
        Canonical columns plus ``synthetic`` (always true).

    Raises
    ------
    InputError
        When ``n`` is negative.
    """
    if n < 0:
        raise InputError(f"n: got {n}; allowed: 0 or more")
    rng = np.random.default_rng(seed)
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    nodes = intersections(streets_dir)
    from sklearn.neighbors import KDTree  # here: every CLI command imports this module

    tree = KDTree(nodes[["x", "y"]].to_numpy())
    shares = np.array([s.share for s in DEMO_SERVICES])
    counts = rng.multinomial(n, shares / shares.sum())
    parts = []
    for service, count in zip(DEMO_SERVICES, counts, strict=True):
        parts.append(_one_service(service, int(count), rng, nodes, tree, end))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    order = np.argsort(frame["requested_datetime"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(0, "service_request_id", [f"SYN-{seed}-{i:07d}" for i in range(len(frame))])
    return frame


def _one_service(
    service: DemoService,
    count: int,
    rng: np.random.Generator,
    nodes: pd.DataFrame,
    tree: KDTree,
    end: datetime,
) -> pd.DataFrame:
    n_clustered = round(count * service.clustered)
    n_clusters = max(1, n_clustered // 60)
    centers = rng.integers(0, len(nodes), n_clusters)
    radius_ft = rng.uniform(120, 400, n_clusters) * _FT_PER_M
    member_center = rng.integers(0, n_clusters, n_clustered)
    near = tree.query_radius(nodes[["x", "y"]].to_numpy()[centers], r=radius_ft)
    idx_clustered = np.array(
        [near[c][rng.integers(0, len(near[c]))] for c in member_center], dtype=np.int64
    )
    idx_background = rng.integers(0, len(nodes), count - n_clustered)
    idx = np.concatenate([idx_clustered, idx_background]).astype(np.int64)
    jitter = rng.normal(0, 25, (len(idx), 2))
    x = nodes["x"].to_numpy()[idx] + jitter[:, 0]
    y = nodes["y"].to_numpy()[idx] + jitter[:, 1]
    lon, lat = pyproj.Transformer.from_crs("EPSG:2272", "EPSG:4326", always_xy=True).transform(x, y)

    # clustered requests concentrate in recent months, so some hotspots are "current"
    age_days = np.concatenate(
        [
            rng.exponential(60, n_clustered).clip(0, 364),
            rng.uniform(0, 365, count - n_clustered),
        ]
    )
    hour = rng.normal(13, 3, len(idx)).clip(6, 22)
    requested = pd.to_datetime(end) - pd.to_timedelta(np.floor(age_days), unit="D")
    requested = requested.normalize() + pd.to_timedelta(hour, unit="h")
    requested = requested.floor("min")
    # a request of the last day at an hour still to come is put on the day before: none
    # is made after ``end`` (a feed holds no request from the future)
    requested = requested - pd.to_timedelta((requested > pd.Timestamp(end)).astype(int),
                                            unit="D")
    sla = pd.to_timedelta(service.sla_days, unit="D")
    late = rng.random(len(idx)) < service.late_rate
    days_to_close = np.where(
        late,
        service.sla_days * rng.uniform(1.05, 3.0, len(idx)),
        service.sla_days * rng.beta(2, 3, len(idx)),
    )
    closed = requested + pd.to_timedelta(days_to_close, unit="D")
    closed = pd.Series(closed).where(closed <= pd.Timestamp(end), pd.NaT)
    status = np.where(closed.notna(), "Closed", "Open")
    updated = closed.fillna(
        pd.Series(requested + pd.to_timedelta(1, unit="D")).clip(upper=pd.Timestamp(end))  # type: ignore[call-overload]
    )
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return pd.DataFrame(
        {
            "status": status,
            "service_name": service.name,
            "agency_responsible": service.agency,
            "description": "synthetic demo request",
            "requested_datetime": requested.strftime(fmt),
            "updated_datetime": pd.Series(updated).dt.strftime(fmt).to_numpy(),
            "expected_datetime": (requested + sla).strftime(fmt),
            "closed_datetime": closed.dt.strftime(fmt).to_numpy(),
            "address": nodes["address"].to_numpy()[idx],
            "lat": np.round(lat, 7),
            "lon": np.round(lon, 7),
            "source": "synthetic",
            "synthetic": True,
        }
    )


def dumping_requests(
    path: Path = PHILA / "requests" / "illegal-dumping-2024-points.csv",
) -> pd.DataFrame:
    """The real 2024 Illegal Dumping points as canonical requests.

    The source gives only ``X`` (lon), ``Y`` (lat) and ``T`` (days since 2024-01-01,
    time of day jittered by the publisher). Ids are assigned from the row order
    (``DUMP2024-00001`` …), which the file keeps; the status is not published, so
    these 2024 requests are taken as closed and ``status_notes`` says so.
    """
    raw = pd.read_csv(path)
    start = pd.Timestamp("2024-01-01", tz="America/New_York")
    requested = start + pd.to_timedelta(raw["T"], unit="D")
    return pd.DataFrame(
        {
            "service_request_id": [f"DUMP2024-{i:05d}" for i in range(1, len(raw) + 1)],
            "status": "Closed",
            "status_notes": "status not published in the source; 2024 requests assumed closed",
            "service_name": "Illegal Dumping",
            "agency_responsible": "Streets Department",
            "requested_datetime": requested.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": raw["Y"],
            "lon": raw["X"],
            "source": "City of Philadelphia open data (ids assigned by hotspot311)",
        }
    )


def build_demo(
    store: object,
    *,
    n_synthetic: int = 60_000,
    seed: int = 311,
    end: datetime | None = None,
    workdir: Path,
    contact_weeks: int = 6,
) -> list[object]:
    """Ingest the real files, ``n_synthetic`` synthetic requests and a synthetic contact
    log into ``store``.

    Parameters
    ----------
    store
        A :class:`geo.store.base.Store` for the Philadelphia profile.
    n_synthetic
        Number of synthetic requests.
    seed, end
        Passed to :func:`generate` and
        :func:`hotspot311.cli.demo_contacts.generate_contacts`.
    workdir
        Directory for the generated CSV files (kept, so they can be inspected).
    contact_weeks
        Weeks of synthetic contact log (about 4,000 calls a working weekday; 0: none).

    Returns
    -------
    list of geo.ingest.pipeline.IngestReport
        One report per file ingested (the contact log last).
    """
    from geo.ingest.mapping import ColumnMapping
    from geo.ingest.pipeline import ingest, ingest_contacts
    from hotspot311.cli.demo_contacts import generate_contacts
    from reports.calendar import load_calendar

    workdir.mkdir(parents=True, exist_ok=True)
    dumping = workdir / "illegal-dumping-2024.csv"
    dumping_requests().to_csv(dumping, index=False)
    synthetic = workdir / f"synthetic-requests-seed{seed}.csv"
    end = (end or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    requests = generate(n_synthetic, seed=seed, end=end)
    requests.to_csv(synthetic, index=False)
    graffiti = ColumnMapping(
        constants={
            "service_name": "Graffiti Removal",
            "agency_responsible": "Community Life Improvement Program",
        }
    )
    jobs = [
        (dumping, ColumnMapping()),
        (PHILA / "requests" / "graffiti-sample.json", graffiti),
        (PHILA / "requests" / "parks-maintenance.csv", ColumnMapping()),
        (synthetic, ColumnMapping()),
    ]
    problems = ProblemAssigner(ProblemRules.for_city(store.profile))  # type: ignore[attr-defined]
    reports: list[object] = [
        ingest(path, store, mapping=mapping, problems=problems)  # type: ignore[arg-type]
        for path, mapping in jobs
    ]
    if contact_weeks > 0:
        log = workdir / f"synthetic-contacts-seed{seed}.csv"
        calendar = load_calendar(store.profile)  # type: ignore[attr-defined]
        generate_contacts(requests, calendar=calendar, end=end, weeks=contact_weeks,
                          seed=seed).to_csv(log, index=False)
        reports.append(ingest_contacts(log, store))  # type: ignore[arg-type]
    return reports


@click.command("demo")
@click.option("--synthetic", "n_synthetic", default=60_000, show_default=True,
              help="Number of synthetic requests (labelled synthetic) to add.")
@click.option("--seed", default=311, show_default=True)
@click.option("--end", help="Latest synthetic request date, YYYY-MM-DD (default: now).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the store already has requests.")
@click.option("--contact-weeks", default=6, show_default=True,
              help="Weeks of synthetic contact log (labelled synthetic; 0: none).")
@pass_ctx
@handle_errors
def demo_cmd(ctx: Context, n_synthetic: int, seed: int, end: str | None, if_empty: bool,
             contact_weeks: int) -> None:
    """Fill the store with the bundled Philadelphia data plus synthetic requests and a
    synthetic contact log."""
    store = ctx.store()
    # one indexed look-up, not the whole table (a stored request always has its time)
    if if_empty and store.latest_request(RequestFilter()) is not None:
        click.echo(f"{store.describe()} already holds requests; nothing to do")
        return
    try:
        end_dt = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    except ValueError as err:
        raise InputError(f"--end: got {end!r}; expected YYYY-MM-DD") from err
    workdir = Path(ctx.store_location).with_name(Path(ctx.store_location).name + "-demo-files")
    if ctx.store_location.startswith("postgres"):
        workdir = Path(".hotspot311-demo-files")
    if contact_weeks < 0:
        raise InputError(f"--contact-weeks: got {contact_weeks}; allowed: 0 or more")
    reports = build_demo(store, n_synthetic=n_synthetic, seed=seed, end=end_dt, workdir=workdir,
                         contact_weeks=contact_weeks)
    for report in reports:
        r = report.result  # type: ignore[attr-defined]
        click.echo(f"{report.path.name:<40} read {report.rows_read:>7,} "  # type: ignore[attr-defined]
                   f"inserted {r.inserted:>7,} updated {r.updated:>6,} "
                   f"unchanged {r.unchanged:>7,} quarantined {sum(r.quarantined.values()):>5,}")
