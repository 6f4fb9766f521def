"""Faust agents: one module per topic, plus the per-user and per-day rollups."""
