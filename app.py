"""hotspot311 map: the stored requests on a folium map (Streamlit).

Run with ``streamlit run app.py`` (README gives the one command that sets it up). The
page is a thin shell: settings → cached reads from the store → pure map builders in
:mod:`hotspot311.maps` → ``st_folium``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from geo.store import Store, open_store
from hotspot311.maps import request_map
from hotspot311.settings import from_environment
from layers.profile import load_profile

st.set_page_config(page_title="hotspot311", layout="wide")


@st.cache_resource
def get_store(location: str, city: str) -> Store:
    """Open the store once per process."""
    return open_store(location, load_profile(city))


@st.cache_data(show_spinner="Reading requests…")
def get_requests(location: str, city: str) -> pd.DataFrame:
    """The stored requests, without geometry objects (x/y and lat/lon carry position)."""
    frame = get_store(location, city).requests()
    return pd.DataFrame(frame.drop(columns="geometry"))


settings = from_environment()
store = get_store(settings.store, settings.city)
requests = get_requests(settings.store, settings.city)

st.title(f"hotspot311 — {store.profile.name}")
if requests.empty:
    st.header("No requests yet")
    st.markdown(
        f"The store at `{store.describe()}` is empty. Load the bundled demo data with\n\n"
        "```\nhotspot311 demo\n```\n\nor your own file with `hotspot311 ingest FILE`."
    )
    st.stop()

services = sorted(requests["service_name"].unique())
chosen = st.sidebar.multiselect("Service type", services, default=[])
status = st.sidebar.radio("Status", ["all", "open", "closed"], horizontal=True)
keys = list(store.layer_keys())
layer = st.sidebar.selectbox("Boundary layer", ["(none)", *keys])

view = requests
if chosen:
    view = view[view["service_name"].isin(chosen)]
if status != "all":
    view = view[view["status"] == status]

st.metric("Requests shown", f"{len(view):,}")
areas = store.areas(layer) if layer != "(none)" else None
fmap = request_map(view, areas=areas, layer_key=None if layer == "(none)" else layer)
st_folium(fmap, key="map", height=640, use_container_width=True, returned_objects=[])
