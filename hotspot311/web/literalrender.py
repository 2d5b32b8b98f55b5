"""folium's page built without compiling every element's output as a new template.

branca's ``MacroElement.render`` runs an element's ``header``/``html``/``script`` macros
and wraps each output in a new ``Element``, whose constructor compiles the text as a
jinja2 ``Template``; the page is then rendered from those templates. Compiling a layer's
whole GeoJSON, popups and tooltips on every rerun was about 13 % of a rerun's CPU on the
1M PostGIS store (profiled with py-spy, 20 sessions share one process), and it is why
text in a popup was evaluated as a template on the server (see
:mod:`hotspot311.web.escaping`, which escapes braces as well).

:func:`install` replaces that method with one that keeps each output as text
(:class:`RenderedText`). A template rendered from text without template syntax is the
text less one trailing newline (jinja2's default), so the page is the same byte for
byte; only a second evaluation of the output is gone. The one folium feature that relied
on it, element references in a ``GeoJson`` style map (``{{'name'}}``, for fill
patterns), is not used by hotspot311's maps.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from branca.element import Element, Figure, MacroElement

_PARTS: Final = ("header", "html", "script")
_lock = threading.Lock()
_original: Any = None


class RenderedText(Element):
    """An element's rendered output, shown as it is (never evaluated as a template).

    Parameters
    ----------
    text : str
        The output; one trailing newline is dropped, as a jinja2 template drops it.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text[:-1] if text.endswith("\n") else text

    def render(self, **kwargs: Any) -> str:
        """The text, as given (less one trailing newline)."""
        return self._text


def _render_macro_element(self: MacroElement, **kwargs: Any) -> None:
    """``MacroElement.render`` with each macro's output kept as text."""
    figure = self.get_root()
    if not isinstance(figure, Figure):
        raise TypeError("You cannot render this Element if it is not in a Figure.")
    macros = self._template.module.__dict__
    for part in _PARTS:
        macro = macros.get(part)
        if macro is not None:
            getattr(figure, part).add_child(RenderedText(macro(self, kwargs)),
                                            name=self.get_name())
    for element in self._children.values():
        element.render(**kwargs)


def install() -> None:
    """Make every folium map of this process render its elements' output as text.

    Idempotent; cheap after the first call.
    """
    global _original
    with _lock:
        if _original is None:
            _original = MacroElement.render
            MacroElement.render = _render_macro_element  # type: ignore[method-assign]


def uninstall() -> None:
    """Put branca's own ``MacroElement.render`` back (for comparing the two)."""
    global _original
    with _lock:
        if _original is not None:
            MacroElement.render = _original  # type: ignore[method-assign]
            _original = None


def installed() -> bool:
    """Whether :func:`install` is in effect.

    Returns
    -------
    bool
        True when folium's elements render their output as text.
    """
    return _original is not None
