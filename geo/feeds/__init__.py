"""City feeds: keep the store current from a city's own 311 system, incrementally.

:mod:`~geo.feeds.engine` is the sync engine shared by the protocols
(:mod:`~geo.feeds.open311`, :mod:`~geo.feeds.socrata`, :mod:`~geo.feeds.carto`,
:mod:`~geo.feeds.file_url`); :mod:`~geo.feeds.client` the network client (timeouts,
retries, rate limit); :mod:`~geo.feeds.config` checks a new source;
:mod:`~geo.feeds.records` turns feed records into the pipeline's raw frames. Imports
:mod:`geo.store`, :mod:`geo.ingest`, :mod:`layers` and the ground.
"""
