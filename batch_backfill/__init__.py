"""Batch layer: Parquet archive of the topics, Spark backfill, reconciliation, replay.

``docs/batch.md`` describes the archive layout, the backfill rules and how to
run each command.
"""
