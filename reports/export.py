"""Writing reports to CSV and to formatted Excel workbooks (openpyxl).

Each sheet starts with the report title, its filters, the data date and the period, then
the table (header frozen, auto-filter on) and, where a chart reads better than a table,
a chart beside it. Formats follow the column names: shares and ``change_pct`` as
percentages, ``*_days_to_close`` with one decimal, counts with thousands separators,
dates as ``yyyy-mm-dd``. Text that a spreadsheet would run as a formula is written with
an apostrophe in front (:mod:`geo.ingest.cells`), in CSV and in every workbook cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from geo.ingest.cells import neutralize, to_csv
from hotspot311.errors import InputError, describe

FORMATS: Final = ("csv", "xlsx")
PERCENT: Final = "0.0%"
ONE_DECIMAL: Final = "0.0"
COUNT: Final = "#,##0"
DATE: Final = "yyyy-mm-dd"
HEADER_ROWS: Final = 5  # title, filters, data date, period, blank
_MAX_WIDTH: Final = 50
_SHEET_NAME_MAX: Final = 31


@dataclass(frozen=True)
class ChartSpec:
    """A chart of some columns of a sheet's table.

    Attributes
    ----------
    kind
        ``bar`` (horizontal bars) or ``line``.
    category
        Column with the labels (x axis for lines).
    values
        Columns plotted, one series each.
    title
        Chart title.
    """

    kind: Literal["bar", "line"]
    category: str
    values: tuple[str, ...]
    title: str


@dataclass
class Sheet:
    """One sheet: a title, header lines and a table, with an optional chart."""

    name: str
    title: str
    table: pd.DataFrame
    lines: Sequence[str] = ()
    chart: ChartSpec | None = None
    extra: dict[str, object] = field(default_factory=dict)


def number_format(column: str, dtype: Any) -> str | None:
    """The Excel number format for a column, from its name and dtype.

    Examples
    --------
    >>> number_format("compliance", "float64"), number_format("p90_days_to_close", "float64")
    ('0.0%', '0.0')
    """
    if column in {"share", "compliance", "change_pct"} or column.endswith(("_share", "_pct")):
        return PERCENT
    if column.endswith("days_to_close") or column.endswith("_days"):
        return ONE_DECIMAL
    if pd.api.types.is_integer_dtype(dtype):
        return COUNT
    return None


def write_table(table: pd.DataFrame, path: Path, *, fmt: str, sheet: Sheet | None = None
                ) -> Path:
    """Write one report as CSV or as a one-sheet workbook.

    Parameters
    ----------
    table
        The report.
    path
        Output file.
    fmt
        ``csv`` or ``xlsx``.
    sheet
        Title, header lines and chart for the workbook (a bare sheet when omitted).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        For an unknown ``fmt``.
    """
    if fmt == "csv":
        to_csv(table, path)
        return path
    if fmt == "xlsx":
        return write_workbook([sheet or Sheet(name="Report", title="Report", table=table)], path)
    raise InputError(f"format: got {describe(fmt)}; allowed: {', '.join(FORMATS)}")


def write_workbook(sheets: Sequence[Sheet], path: Path) -> Path:
    """Write sheets into one workbook.

    Parameters
    ----------
    sheets
        In order; names are cut to Excel's 31 characters and must then be unique.
    path
        Output ``.xlsx`` file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    names = [s.name[:_SHEET_NAME_MAX] for s in sheets]
    if len(set(names)) != len(names):
        raise InputError(f"sheet names: {names} are not unique once cut to 31 characters")
    book = Workbook()
    if book.active is not None:
        book.remove(book.active)
    for sheet, name in zip(sheets, names, strict=True):
        _write_sheet(book.create_sheet(name), sheet)
    book.save(path)
    return path


def _write_sheet(ws: Worksheet, sheet: Sheet) -> None:
    ws.cell(row=1, column=1, value=neutralize(sheet.title)).font = Font(bold=True, size=14)
    for i, line in enumerate(list(sheet.lines)[: HEADER_ROWS - 2], start=2):
        ws.cell(row=i, column=1, value=neutralize(line)).font = Font(italic=True)
    table = sheet.table
    top = HEADER_ROWS + 1
    for j, col in enumerate(table.columns, start=1):
        ws.cell(row=top, column=j, value=neutralize(str(col))).font = Font(bold=True)
    formats = [number_format(str(c), table[c].dtype) for c in table.columns]
    for i, row in enumerate(table.itertuples(index=False), start=top + 1):
        for j, value in enumerate(row, start=1):
            cell = ws.cell(row=i, column=j, value=_cell_value(value))
            fmt = formats[j - 1]
            if isinstance(cell.value, date | datetime):
                cell.number_format = DATE
            elif fmt is not None:
                cell.number_format = fmt
    for j, col in enumerate(table.columns, start=1):
        values = [str(col), *(_shown(v, formats[j - 1]) for v in table[col].head(500))]
        width = min(_MAX_WIDTH, max(len(v) for v in values) + 2)
        ws.column_dimensions[get_column_letter(j)].width = width
    if len(table.columns):
        ws.freeze_panes = ws.cell(row=top + 1, column=1)
        last = get_column_letter(len(table.columns))
        ws.auto_filter.ref = f"A{top}:{last}{top + max(1, len(table))}"
    if sheet.chart is not None and len(table):
        _add_chart(ws, sheet.chart, table, top)


def _cell_value(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        stamp = value.tz_localize(None) if value.tzinfo is not None else value
        return stamp.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return neutralize(value)


def _shown(value: object, fmt: str | None) -> str:
    value = _cell_value(value)
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return "2000-01-01"
    if isinstance(value, float):
        return f"{value * 100:.1f}%" if fmt == PERCENT else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _add_chart(ws: Worksheet, spec: ChartSpec, table: pd.DataFrame, top: int) -> None:
    cols = list(table.columns)
    missing = [c for c in (spec.category, *spec.values) if c not in cols]
    if missing:
        raise InputError(f"chart: columns {missing} are not in the table; columns: {cols}")
    n = len(table)
    chart: BarChart | LineChart
    if spec.kind == "bar":
        chart = BarChart()
        chart.type = "bar"
        chart.height = max(7.5, 0.6 * n + 2)
    else:
        chart = LineChart()
        chart.height = 9
    chart.title = spec.title
    chart.width = 22
    for name in spec.values:
        j = cols.index(name) + 1
        ref = Reference(ws, min_col=j, min_row=top, max_row=top + n)
        chart.add_data(ref, titles_from_data=True)
    j = cols.index(spec.category) + 1
    chart.set_categories(Reference(ws, min_col=j, min_row=top + 1, max_row=top + n))
    if spec.kind == "bar":
        chart.x_axis.scaling.orientation = "maxMin"  # rank 1 at the top
    ws.add_chart(chart, f"{get_column_letter(len(cols) + 2)}{top}")
