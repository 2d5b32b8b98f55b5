"""Data quality: the quarantine by reason, geocode match types, and the geocode review list."""

from __future__ import annotations

import streamlit as st

from geo.ingest.cells import to_csv
from hotspot311.settings import from_environment
from hotspot311.web import appdata
from hotspot311.web.arrowpool import use_returning_pool
from hotspot311.web.signin import require_access

st.set_page_config(page_title="hotspot311 data quality", layout="wide")
use_returning_pool()

settings = from_environment()
access = require_access()
if not access.sees_data_quality:
    st.error("The data quality page is for administrators.")
    st.stop()
store = appdata.get_store(settings.store, settings.city)
version = appdata.data_version(store)
matches = appdata.match_types(settings.store, settings.city, version)
quarantine = appdata.quarantine(settings.store, settings.city, version)

st.title("Data quality")
if matches.empty and quarantine.empty:
    appdata.first_run(store)
    st.stop()

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Quarantine by reason")
    st.caption("Rows that were not stored as requests, and why. They stay here until a "
               "later ingest fixes them.")
    if quarantine.empty:
        st.success("Nothing is quarantined.")
    else:
        reasons = quarantine["reason"].value_counts().rename_axis("reason").reset_index(
            name="rows")
        st.dataframe(reasons, hide_index=True, key="reasons")
with right:
    st.subheader("Geocode match types")
    st.caption("How each stored request got its position.")
    matches["share"] = (matches["requests"] / max(int(matches["requests"].sum()), 1)
                        * 100).round(1)
    st.dataframe(matches, hide_index=True, key="matches",
                 column_config={"share": st.column_config.NumberColumn("share %",
                                                                       format="%.1f")})

st.subheader("Geocode review list")
review = quarantine[quarantine["reason"] == "needs_geocoding"] if len(quarantine) else quarantine
st.caption(f"{len(review):,} requests need a usable position (reason `needs_geocoding`). "
           "Fix the address or coordinates in the source and ingest it again.")
if len(review):
    cols = [c for c in ("service_request_id", "address", "detail", "source_file", "source_row",
                        "batch_id") if c in review.columns]
    st.dataframe(review[cols], hide_index=True, key="review")
    st.download_button("Review list CSV", appdata.exporter(
        access, settings.store, settings.city, what="geocode review list", filters={},
        make=lambda: (to_csv(review[cols]).encode("utf-8"), len(review))),
        file_name="geocode-review.csv", mime="text/csv", key="dl_review", on_click="ignore")

st.subheader("Feeds")
feeds = appdata.feed_sources(store)
if feeds.empty:
    st.caption("No city feeds registered (`hotspot311 sources add`); data come from files.")
else:
    st.caption("Each source's last sync, rows synced, watermark (where the next sync "
               "starts) and last error.")
    st.dataframe(feeds, hide_index=True, key="feeds")

if len(quarantine):
    reason = st.selectbox("Quarantined rows of reason", sorted(quarantine["reason"].unique()),
                          key="reason")
    rows = quarantine[quarantine["reason"] == reason]
    st.dataframe(rows.drop(columns=["raw"], errors="ignore"), hide_index=True, key="rows")
