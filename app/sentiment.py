"""VADER sentiment of a message body."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's recommended thresholds on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


@dataclass(frozen=True, slots=True)
class Sentiment:
    compound: float
    label: str

    @property
    def compound_units(self) -> int:
        """Return the compound score in integer units of 0.0001."""
        return round(self.compound * 10_000)


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def label_of(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def score(body: str) -> Sentiment:
    """Score ``body``, which must be at most ``BODY_MAX_CHARS`` long.

    VADER's run time grows steeply with emoji-heavy input, so callers pass
    only bodies that ``parse_body`` accepted.
    """
    compound = float(_analyzer().polarity_scores(body)["compound"])
    return Sentiment(compound=compound, label=label_of(compound))
