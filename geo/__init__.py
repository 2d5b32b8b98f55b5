"""Requests: the canonical model, readers, validation, stores and spatial joins."""
