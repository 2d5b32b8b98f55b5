"""Who is signed in to the app, and with which rights (Streamlit's OpenID Connect login and
the roles file); the local demo runs without a login, on this computer only."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from hotspot311.errors import InputError
from hotspot311.web.access import (
    LOCAL_USER,
    Access,
    RolesFile,
    auth_mode,
    load_roles,
    open_bind_problem,
)
from hotspot311.web.escaping import escape_markdown


@st.cache_data(show_spinner=False, ttl=60)
def _roles(path: str) -> RolesFile:
    """The roles file (read again at most once a minute)."""
    return load_roles(path)


def require_access() -> Access:
    """The signed-in user's rights; draws the sign-in page (and stops) when there is none.

    ``HOTSPOT311_AUTH=oidc``: Streamlit's OpenID Connect login (``st.login``; the
    provider in ``.streamlit/secrets.toml``), roles from the file ``HOTSPOT311_ROLES``.
    Login off (the local demo): the local admin, and the page refuses to serve beyond
    this computer (see :func:`hotspot311.web.access.open_bind_problem`).
    """
    try:
        mode = auth_mode(os.environ)
    except InputError as err:
        st.error(str(err))
        st.stop()
    if mode == "off":
        problem = open_bind_problem(st.get_option("server.address"), os.environ)
        if problem:
            st.error(problem)
            st.stop()
        st.sidebar.caption("Local demo: no login. The app is served on this computer only "
                           "(127.0.0.1).")
        return Access(user=LOCAL_USER, role="admin")
    if not st.user.is_logged_in:
        st.title("hotspot311")
        st.subheader("Sign in")
        st.write("This app shows residents' service requests. Sign in with your city account.")
        st.button("Log in", key="login", type="primary", on_click=st.login)
        st.stop()
    email = st.user.get("email")
    claim: Any = st.user.get("groups") or []
    groups = [str(g) for g in claim] if isinstance(claim, list) else [str(claim)]
    try:
        access = _roles(os.environ.get("HOTSPOT311_ROLES", "roles.toml")).resolve(
            str(email) if email else None, groups)
    except InputError as err:
        st.error(str(err))
        st.stop()
    if access is None:
        st.error(f"{email or 'This account'} has no role in this app; ask the app's "
                 "administrator to add you to the roles file.")
        st.button("Log out", key="logout", on_click=st.logout)
        st.stop()
    dept = f", {access.department.key}" if access.department else ""
    st.sidebar.caption(f"Signed in as {escape_markdown(access.user)} ({access.role}{dept})")
    st.sidebar.button("Log out", key="logout", on_click=st.logout)
    return access
