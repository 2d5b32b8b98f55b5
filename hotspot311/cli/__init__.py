"""The command line front door: ``hotspot311`` (click).

:mod:`~hotspot311.cli.base` holds what every command shares (options, the store, exit
codes), :mod:`~hotspot311.cli.main` the group and entry point; one module per command family.
"""
