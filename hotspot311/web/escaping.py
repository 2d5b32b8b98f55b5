"""HTML-safe text: the one escaping rule for values shown in the browser as HTML.

Folium's popups and tooltips (``GeoJsonPopup``, ``GeoJsonTooltip``), Leaflet's layer
control and our legend put their text into the page with ``innerHTML``. Addresses,
descriptions and service names are typed by residents and arrive through feeds, so a
value such as ``<img src=x onerror=...>`` would run as script in an analyst's browser.
Every such value goes through :func:`escape_html` first: the browser then shows the text
literally. The printable work list (:mod:`hotspot311.web.worklist`) uses it too.

The braces ``{`` and ``}`` are escaped as well. branca, which builds folium's page, wraps
each element's rendered output in a new jinja2 template and renders the page from those:
text in a popup, a tooltip or a layer's GeoJSON that holds ``{{ … }}`` or ``{% … %}``
would be evaluated as a template on the server (``{{ 7*7 }}`` shown as ``49``, and worse
with Python attribute access). Encoded as ``&#123;``/``&#125;`` they are shown as typed.

Streamlit renders captions as Markdown (no raw HTML, but images, links and its own
``:color[…]`` directives): public text put into one goes through :func:`escape_markdown`.
"""

from __future__ import annotations

import html
import re

import pandas as pd


def escape_html(value: object) -> str:
    """``value`` as text with ``& < > " '`` and the braces escaped, for ``innerHTML`` in a
    page that branca renders as a template (see the module docstring).

    Examples
    --------
    >>> escape_html('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    >>> escape_html("L&I district")
    'L&amp;I district'
    >>> escape_html("{{ 7*7 }}")
    '&#123;&#123; 7*7 &#125;&#125;'
    """
    return html.escape(str(value), quote=True).translate(_BRACES)


_BRACES = str.maketrans({"{": "&#123;", "}": "&#125;"})


def escape_texts(values: pd.Series) -> pd.Series:
    """Every text value of ``values`` escaped (:func:`escape_html`); numbers and missing
    values stay as they are, so popups still format numbers.

    Examples
    --------
    >>> escape_texts(pd.Series(["<b>", 3, None], dtype=object)).tolist()
    ['&lt;b&gt;', 3, None]
    """
    return values.map(lambda v: escape_html(v) if isinstance(v, str) else v)


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(value: object) -> str:
    r"""``value`` as text with every ASCII punctuation character backslash-escaped, so
    Markdown (Streamlit's captions) shows it as typed: no image, link or directive.

    Examples
    --------
    >>> print(escape_markdown("#1 ![x](http://evil/p.png) :red[12 MAIN ST]"))
    \#1 \!\[x\]\(http\:\/\/evil\/p\.png\) \:red\[12 MAIN ST\]
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
