"""SLA and standard 311 reports."""
