"""Analytics: exact worker performance, summaries, and what is published for Athena."""
