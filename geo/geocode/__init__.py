"""Offline geocoding from the city's street data.

:mod:`~geo.geocode.address` parses and standardizes addresses, :mod:`~geo.geocode.streets`
reads street files into segments, :mod:`~geo.geocode.positioning` places segments that come
without geometry, :mod:`~geo.geocode.geocoder` matches addresses against the street index and
:mod:`~geo.geocode.providers` plugs in an online geocoder behind the same interface.
"""
