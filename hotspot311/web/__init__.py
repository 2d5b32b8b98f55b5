"""What the Streamlit pages use: maps, map data, view rules, cached reads, filters, presets,
work lists, trends. The only package of ours that imports Streamlit (in
:mod:`~hotspot311.web.appdata`); the rest are pure functions, tested without it.
"""
