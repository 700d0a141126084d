"""``openpool generate``: synthetic orchestrator event files, for the demo and trials."""

from openpool.ingest.generator import register

__all__ = ["register"]
