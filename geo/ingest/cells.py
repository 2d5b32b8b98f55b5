"""Spreadsheet-safe text: the one rule every CSV and Excel writer applies.

A spreadsheet opening a CSV or an ``.xlsx`` file runs a text cell that begins with
``=``, ``+``, ``-`` or ``@`` (and, in some programs, a tab or carriage return) as a
formula: ``=HYPERLINK("http://evil","click")`` in an address typed by a resident becomes
a link in a city analyst's workbook. Following OWASP's rule, such a text value is written
with an apostrophe in front (``'=HYPERLINK(...)``), which spreadsheets show as the text it
was. Only text is touched: a number stays a number (``-5.0`` in a numeric column is
written as ``-5.0``), while the text ``"-5"`` in a text column is text and gets the
apostrophe like any other.

:func:`neutralize` is the rule for one value; :func:`neutralize_frame` applies it to the
text columns (and the header) of a frame, and :func:`to_csv` is how every CSV export is
written: neutralized, with RFC 4180 line ends (CRLF), so that a carriage return inside a
value is quoted (with bare ``\n`` line ends pandas leaves a lone ``\r`` unquoted, and a
reader splits the record there). The Excel writer
(:mod:`reports.export`) calls :func:`neutralize` per cell, since openpyxl would otherwise
store a string starting with ``=`` as a formula.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar, overload

import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_PATTERN: Final = r"[=+\-@\t\r]"

T = TypeVar("T")
F = TypeVar("F", bound=pd.DataFrame)


def neutralize(value: T) -> T | str:
    """``value`` with an apostrophe in front when it is text that begins like a formula.

    Examples
    --------
    >>> neutralize('=HYPERLINK("http://evil","click")')
    '\\'=HYPERLINK("http://evil","click")'
    >>> neutralize("-5"), neutralize(-5.0), neutralize("12 Main St"), neutralize(None)
    ("'-5", -5.0, '12 Main St', None)
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralize_frame(frame: F) -> F:
    """A copy of ``frame`` whose text cells and column names are neutralized.

    Numeric, boolean, time and geometry columns are returned as they are; in a column of
    mixed values only the ``str`` values are looked at. Categorical text columns come back
    as plain text columns.

    Examples
    --------
    >>> out = neutralize_frame(pd.DataFrame({"a": ["=1+1", "ok"], "n": [-1.5, 2.0]}))
    >>> out["a"].tolist(), out["n"].tolist()
    (["'=1+1", 'ok'], [-1.5, 2.0])
    """
    out = frame.copy()
    for i in range(frame.shape[1]):
        col = out.iloc[:, i]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if not _texts_in(pd.Series(dtype.categories)):
                continue
            col = col.astype(object).where(col.notna(), None)
        elif not (dtype.kind == "O" or isinstance(dtype, pd.StringDtype)):
            continue
        if not _texts_in(col):
            continue
        starts = col.str.match(_PATTERN, na=False).to_numpy(dtype=bool)
        if starts.any():
            col = col.copy()
            col[starts] = "'" + col[starts].astype(str)
        out.isetitem(i, col)  # type: ignore[arg-type]  # a Series is accepted
    renamed = [neutralize(c) for c in frame.columns]
    if renamed != list(frame.columns):
        out.columns = pd.Index(renamed)
    return out


@overload
def to_csv(frame: pd.DataFrame, path: None = None, **kwargs: Any) -> str: ...
@overload
def to_csv(frame: pd.DataFrame, path: Any, **kwargs: Any) -> None: ...
def to_csv(frame: pd.DataFrame, path: Any = None, **kwargs: Any) -> str | None:
    """Write ``frame`` as CSV the one way every export does: :func:`neutralize_frame`,
    no index, CRLF line ends (``pandas.DataFrame.to_csv`` keywords pass through).

    Returns
    -------
    str or None
        The CSV text when ``path`` is ``None``.

    Examples
    --------
    >>> to_csv(pd.DataFrame({"a": ["@x", "p\\rq"], "n": [-1, 2]}))
    'a,n\\r\\n\\'@x,-1\\r\\n"p\\rq",2\\r\\n'
    """
    return neutralize_frame(frame).to_csv(path, index=False, lineterminator="\r\n", **kwargs)


def _texts_in(col: pd.Series) -> bool:
    """Whether a column holds any ``str`` value (the ``.str`` accessor needs one)."""
    if isinstance(col.dtype, pd.StringDtype):
        return True
    try:
        col.str  # noqa: B018 - raises when the column holds no text at all
    except AttributeError:
        return False
    return True
