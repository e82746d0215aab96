"""The resumable result cache of `neco eval`: one SQLite file in the output folder.

Every finished measurement (one codec at one quality on one image) is committed as soon as it
arrives, so an interrupted run loses at most the measurements in flight, and running the same
command again only does what is missing. A measurement is found again by a key that hashes
everything its numbers depend on: the codec's name, library versions (for neco, also digests of
its code and weights) and settings, the rate point (a quality, or a target bpp that the codec's
quality is searched for), the SHA-256 of the image file's bytes (for a video, of its bytes,
frame count and size), and `METRICS_VERSION` (bumped whenever a metric changes). A new library,
another setting or an edited image therefore misses the cache instead of returning stale
numbers. The optional perceptual metrics are not in the key: a row records the version of each
it holds, and `bench.run` measures again when a run asks for one the row lacks. SQLite makes each
commit atomic, even on Ctrl-C or a crash.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

FILE_NAME = "cache.sqlite"
METRICS_VERSION = 1


def cache_key(codec: str, version: str, settings: dict, quality: float, image_sha256: str,
              target_bpp: bool = False) -> str:
    """A stable key for one measurement (hex SHA-256 of its canonical JSON description).

    target_bpp: `quality` is a target bpp, not a quality (keys of quality runs are unchanged).
    """
    what = {"codec": codec, "version": version, "settings": settings, "quality": float(quality),
            "image": image_sha256, "metrics": METRICS_VERSION}
    if target_bpp:
        what["point"] = "target-bpp"
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    """Measurements keyed by `cache_key`; a context manager that closes the database."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE_NAME
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, row TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str) -> dict | None:
        found = self._db.execute("SELECT row FROM results WHERE key = ?", (key,)).fetchone()
        return None if found is None else json.loads(found[0])

    def put(self, key: str, row: dict) -> None:
        with self._db:  # one transaction, committed on exit
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, json.dumps(row)))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
