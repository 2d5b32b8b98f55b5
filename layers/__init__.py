"""Boundary layers: city profiles, loading, generations."""
