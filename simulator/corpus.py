"""Message bodies from a tab-separated corpus file: id, rating, text.

The bundled file is the tweet set of the VADER ground truth (Hutto and
Gilbert, ICWSM 2014, MIT license, see ``data/LICENSE-vader.txt``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BODY_MAX_CHARS = 1000


def default_corpus_path() -> Path:
    return Path(str(resources.files("simulator") / "data" / "tweets.tsv"))


def load_bodies(path: Path | None = None) -> list[str]:
    """Read the text column of a corpus file as message bodies.

    Texts are cut to the body limit of 1000 characters, and texts that are
    empty or only white space after the cut are skipped, because the API
    rejects such bodies. Raise ValueError when no text remains.
    """
    path = path or default_corpus_path()
    bodies = []
    with path.open(encoding="utf-8") as corpus:
        for number, line in enumerate(corpus, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            columns = line.split("\t", 2)
            if len(columns) != 3:
                raise ValueError(
                    f"{path}:{number}: expected id, rating and text separated "
                    f"by tabs, got {len(columns)} column(s)"
                )
            body = columns[2][:BODY_MAX_CHARS]
            if body.strip() and "\x00" not in body:
                bodies.append(body)
    if not bodies:
        raise ValueError(f"{path} contains no usable message text")
    return bodies
