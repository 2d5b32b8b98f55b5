"""Where requests live: the store interface, the embedded and PostGIS stores, stored runs.

:mod:`~geo.store.base` holds the interface and :func:`~geo.store.base.open_store`;
``embedded*`` the GeoParquet store; ``postgis*``, :mod:`~geo.store.pgcopy`,
:mod:`~geo.store.hilbert` and ``migrations/`` the PostGIS store; :mod:`~geo.store.runs` the
store-independent record of a hotspot run. Imports :mod:`geo.ingest`, :mod:`geo.joins`,
:mod:`layers` and the ground, never :mod:`clustering`.
"""
