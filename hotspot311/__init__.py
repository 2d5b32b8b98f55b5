"""hotspot311: the ground (errors, settings, schema names) and the three front doors.

:mod:`hotspot311.cli` (command line), :mod:`hotspot311.web` (Streamlit pages),
:mod:`hotspot311.api` (HTTP), each a thin shell over :mod:`geo`, :mod:`clustering`,
:mod:`layers` and :mod:`reports`.
"""

__version__ = "0.1.0"
