"""The HTTP front door (Open311 GeoReport v2 and the residents' tracking page).

Empty today: the room exists so the layering contract in ``pyproject.toml`` covers it.
"""
