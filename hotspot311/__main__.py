"""``python -m hotspot311`` runs the command line."""

from hotspot311.cli.main import main

main()
