"""Reports: the standard request reports (areas as drawn today or on the request date) and
the contact reports of the 311 center (resolution summary, call volumes, departments)."""

from __future__ import annotations

import streamlit as st

from geo.ingest.cells import to_csv
from hotspot311.settings import from_environment
from hotspot311.web import appdata
from hotspot311.web.arrowpool import use_returning_pool
from hotspot311.web.reportpage import CONTACT_REPORT_TITLES, REQUEST_REPORTS
from hotspot311.web.signin import require_access

st.set_page_config(page_title="hotspot311 reports", layout="wide")
use_returning_pool()

settings = from_environment()
access = require_access()
store = appdata.get_store(settings.store, settings.city)
version = appdata.data_version(store)
offered = appdata.choices(settings.store, settings.city, version)
contacts = appdata.contacts(settings.store, settings.city, version)
profile = store.profile
titles = {spec.key: spec.title for spec in profile.layers}

st.title("Reports")
if offered.count == 0 and contacts.empty:
    appdata.first_run(store)
    st.stop()

side = st.sidebar
side.header("Period")
start = side.date_input("From", value=None, key="start",
                        help="First local date (empty: the data's first).")
end = side.date_input("To", value=None, key="end", help="Last local date (empty: the data's last).")
if start is not None and end is not None and start > end:
    side.error(f"From {start} is after To {end}; choose From on or before To.")
    st.stop()

st.header("Service requests")
if offered.count == 0:
    st.info("The store holds no service requests.")
else:
    left, mid, right = st.columns(3)
    names: list[str] = list(REQUEST_REPORTS)
    name = str(left.selectbox("Report", names, key="request_report",
                              format_func=lambda n: REQUEST_REPORTS[n]))
    keys = list(store.layer_keys())
    by = mid.selectbox("Break down by", ["(none)", *keys], key="by",
                       format_func=lambda k: titles.get(k, k))
    drawn = str(right.radio("Areas as drawn", ["today", "request-date"], key="as_drawn",
                            horizontal=True,
                            format_func=lambda m: "today" if m == "today"
                            else "on the request date",
                            help="Each request in its area on today's map, or on the map in "
                                 "force on its request date (after a redistricting)."))
    table, note = appdata.request_report(
        settings.store, settings.city, version, name, now=appdata.now_hour(), start=start,
        end=end, by=None if by == "(none)" else by, as_drawn=drawn)
    st.caption(f"{REQUEST_REPORTS[name]}; {note}")
    st.dataframe(table, hide_index=True, key="request_table")
    if access.may_export:
        st.download_button("CSV", appdata.exporter(
            access, settings.store, settings.city, what=f"report {name} CSV",
            filters={"start": str(start or ""), "end": str(end or ""), "by": by,
                     "as_drawn": drawn},
            make=lambda: (to_csv(table).encode("utf-8"), len(table))),
            file_name=f"{name}.csv", mime="text/csv", key="dl_request", on_click="ignore")

if access.may_export and offered.count:
    from hotspot311.web.reportpage import meeting_workbook

    st.download_button(
        "Meeting workbook (Excel)", appdata.exporter(
            access, settings.store, settings.city, what="meeting workbook",
            filters={"start": str(start or ""), "end": str(end or "")},
            make=lambda: meeting_workbook(store, now=appdata.now_hour(), start=start,
                                          end=end)),
        file_name="meeting.xlsx", key="dl_meeting", on_click="ignore",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        help="One sheet per standard report (and the contact reports): the performance "
             "meeting's pack, as `hotspot311 report meeting` writes it.")

st.header("Contacts")
if contacts.empty:
    st.info("The store holds no contact log. Ingest one with "
            "`hotspot311 ingest --kind contacts FILE` (the demo includes a synthetic one).")
    st.stop()
if contacts["synthetic"].any():
    share = float(contacts["synthetic"].mean())
    st.warning(f"{share:.0%} of these contacts are synthetic (generated for the demo), "
               "not real 311 contacts.")
inquiries = appdata.contact_report(settings.store, settings.city, version, "inquiries",
                                   start=start, end=end, freq="week")
left, right = st.columns(2, gap="large")
with left:
    st.subheader(CONTACT_REPORT_TITLES["inquiries"])
    st.caption("Contacts by outcome; abandoned calls left out.")
    st.dataframe(inquiries, hide_index=True, key="inquiries",
                 column_config={"share": st.column_config.NumberColumn(format="percent")})
with right:
    st.bar_chart(inquiries.iloc[:-1], x="label", y="contacts", horizontal=True)

st.subheader(CONTACT_REPORT_TITLES["calls"])
freq = st.radio("Calls", ["week", "month", "fytd"], horizontal=True, key="freq",
                format_func={"week": "by week", "month": "by month",
                             "fytd": "fiscal year to date"}.get)
calls = appdata.contact_report(settings.store, settings.city, version, "calls", start=start,
                               end=end, freq=freq)
month, day = profile.fiscal_year_start
st.caption(f"Calls are phone contacts. Weekday average = calls on working days / working days "
           f"(weekends and city holidays left out). Fiscal year from {month:02d}-{day:02d}.")
st.dataframe(calls, hide_index=True, key="calls",
             column_config={"answered_share": st.column_config.NumberColumn(format="percent")})
if freq != "fytd" and len(calls):
    st.line_chart(calls, x="period", y=["calls", "answered"])

st.subheader(CONTACT_REPORT_TITLES["call-departments"])
departments = appdata.contact_report(settings.store, settings.city, version,
                                     "call-departments", start=start, end=end, freq="week")
st.dataframe(departments, hide_index=True, key="call_departments",
             column_config={"share": st.column_config.NumberColumn(format="percent"),
                            "answered_share": st.column_config.NumberColumn(format="percent")})
