"""VADER scoring of message bodies inside Spark, with ``mapInPandas``.

It calls the stream's own scorer (:func:`app.sentiment.score`), so both
layers round the compound score and pick the label the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pandas as pd

SCORED_SCHEMA = (
    "message_id string, user string, day bigint, compound_units bigint, label string"
)


def score_batches(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Score each body; the input has message_id, user, day and body."""
    # Imported on the executor, where the analyzer is built once per worker.
    from app.sentiment import score

    for frame in batches:
        scores = [score(body) for body in frame["body"]]
        yield pd.DataFrame(
            {
                "message_id": frame["message_id"],
                "user": frame["user"],
                "day": frame["day"],
                "compound_units": [sentiment.compound_units for sentiment in scores],
                "label": [sentiment.label for sentiment in scores],
            }
        )
