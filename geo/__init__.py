"""Requests from source to store: ingest, geocode, store, and point-in-polygon joins."""
