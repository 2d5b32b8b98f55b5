"""Hotspots: DBSCAN and hotspot summaries."""
