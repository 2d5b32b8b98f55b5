"""Requests in: read, map, validate, quarantine; the ingest pipeline and request export.

Modules: :mod:`~geo.ingest.model` (the canonical frame), :mod:`~geo.ingest.readers`,
:mod:`~geo.ingest.mapping`, :mod:`~geo.ingest.times`, :mod:`~geo.ingest.validate`,
:mod:`~geo.ingest.sink` (what the pipeline needs of a store), :mod:`~geo.ingest.pipeline`
and :mod:`~geo.ingest.export`. Imports only :mod:`layers` and the ground.
"""
