"""Roles file, role rights and the bind rule (hotspot311.web.access)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotspot311.errors import InputError
from hotspot311.web.access import auth_mode, load_roles, open_bind_problem, parse_roles

ROLES = """
[users]
"Ana@City.gov" = { role = "lead", department = "streets" }
"vic@city.gov" = { role = "viewer" }

[groups]
"311-analysts" = { role = "analyst" }
"it-admins" = { role = "admin" }

[departments.streets]
preset = "streets"
agencies = ["Streets Department"]
"""


def test_users_and_groups_resolve_to_the_highest_role(tmp_path: Path) -> None:
    path = tmp_path / "roles.toml"
    path.write_text(ROLES, encoding="utf-8")
    roles = load_roles(path)
    ana = roles.resolve("ana@city.gov")
    assert ana is not None and ana.role == "lead" and ana.may_export and ana.sees_personal
    assert ana.department is not None and ana.department.agencies == ("Streets Department",)
    vic = roles.resolve("vic@city.gov")
    assert vic is not None and (vic.sees_personal, vic.may_export) == (False, False)
    both = roles.resolve("vic@city.gov", ["311-analysts"])
    assert both is not None and both.role == "analyst" and not both.may_export
    admin = roles.resolve(None, ["it-admins", "311-analysts"])
    assert admin is not None and admin.sees_data_quality
    assert roles.resolve("nobody@city.gov", ["other"]) is None


def test_bad_roles_files_name_every_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        parse_roles({"users": {"a@x": {"role": "boss"}, "b@x": {"role": "lead",
                                                                "department": "parks"}},
                     "teams": {}})
    text = str(err.value)
    assert "users.a@x.role: got 'boss'; allowed: viewer, analyst, lead, admin" in text
    assert "users.b@x.department: got 'parks'" in text
    assert "unknown tables ['teams']" in text
    with pytest.raises(InputError, match="does not exist"):
        load_roles(tmp_path / "missing.toml")


def test_the_demo_without_login_serves_this_computer_only() -> None:
    assert open_bind_problem("127.0.0.1", {}) is None
    assert open_bind_problem("::1", {"HOTSPOT311_AUTH": "off"}) is None
    problem = open_bind_problem("0.0.0.0", {})
    assert problem is not None and "127.0.0.1 only" in problem
    assert open_bind_problem(None, {}) is not None  # Streamlit's default: every interface
    assert open_bind_problem("0.0.0.0", {"HOTSPOT311_ALLOW_OPEN": "1"}) is None
    assert open_bind_problem("0.0.0.0", {"HOTSPOT311_AUTH": "oidc"}) is None
    with pytest.raises(InputError, match="HOTSPOT311_AUTH: got 'saml'"):
        auth_mode({"HOTSPOT311_AUTH": "saml"})


def test_an_export_is_refused_to_a_viewer_and_audited_for_a_lead(app_store: Path,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    from geo.store.base import open_store
    from hotspot311.web import appdata
    from hotspot311.web.access import Access
    from layers.profile import load_profile

    made: list[str] = []

    def make() -> tuple[str, int]:
        made.append("file")
        return "a,b\r\n1,2\r\n", 1

    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")
    store = open_store(app_store, load_profile("philadelphia"))
    before = len(store.exports())
    viewer = appdata.exporter(Access(user="v@city.gov", role="viewer"), str(app_store),
                              "philadelphia", what="work list CSV", filters={}, make=make)
    with pytest.raises(PermissionError, match=r"v@city\.gov \(viewer\) may not export"):
        viewer()  # a forged click: the page never drew the button for this role
    assert made == [] and len(store.exports()) == before
    lead = appdata.exporter(Access(user="l@city.gov", role="lead"), str(app_store),
                            "philadelphia", what="work list CSV", filters={"status": "open"},
                            make=make)
    assert lead() == "a,b\r\n1,2\r\n"
    log = store.exports()
    assert len(log) == before + 1
    assert log.iloc[-1][["user_name", "role", "what", "rows"]].tolist() == [
        "l@city.gov", "lead", "work list CSV", 1]
