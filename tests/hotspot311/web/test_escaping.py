"""The two escaping rules of the web pages: HTML for popups, Markdown for captions."""

from __future__ import annotations

import html

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from hotspot311.web.escaping import escape_html, escape_markdown, escape_texts
from tests.hostile import PAYLOADS

MARKDOWN = ["![pixel](http://evil.example/p.png)", "[click](javascript:alert(1))",
            ":red[urgent] $x^2$", "# heading", "**bold** _it_ `code`", "<b>raw</b>",
            "1. list", "> quote", "a\\b", "x | y"]


@pytest.mark.parametrize("value", [*PAYLOADS, *MARKDOWN])
def test_escaped_html_reads_back_as_the_text(value: str) -> None:
    escaped = escape_html(value)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped
    assert "{" not in escaped and "}" not in escaped  # nothing for jinja2 to evaluate
    assert html.unescape(escaped) == value


@pytest.mark.parametrize("value", [*PAYLOADS, *MARKDOWN])
def test_escaped_markdown_renders_as_the_text(value: str) -> None:
    rendered = MarkdownIt("commonmark").render(escape_markdown(value))
    assert "<img" not in rendered and "<a " not in rendered and "<h1" not in rendered
    assert "<strong" not in rendered and "<code" not in rendered and "<ol" not in rendered
    body = rendered.removeprefix("<p>").removesuffix("</p>\n")
    assert html.unescape(body) == " ".join(value.split())


def test_escape_texts_keeps_numbers_and_missing_values() -> None:
    out = escape_texts(pd.Series(["<b>", 2, 2.5, None], dtype=object))
    assert out.tolist() == ["&lt;b&gt;", 2, 2.5, None]
