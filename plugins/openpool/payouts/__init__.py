"""Payouts: a plan a person approves, then exactly-once ETH transfers from the hot wallet."""
