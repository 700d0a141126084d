"""Exactly-once ingest of orchestrator event files into a partition's snapshot."""
