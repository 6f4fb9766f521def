"""Logging set-up for the entry points."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send records at ``level`` and above to stderr; call once per process."""
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr)
    # aiokafka and faust log every rebalance step at INFO.
    for noisy in ("aiokafka", "faust.transport", "faust.tables.recovery"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
