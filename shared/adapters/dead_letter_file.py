"""The embedded runtime's dead-letter queue: the retained pull subscription of the dead-letter topic, in SQLite.

Pub/Sub keeps a dead letter in the `--inspect` subscription until someone acks it, across any number of processes;
the in-process bus dies with its process, so its copy of that subscription lives in a file under the runtime's home.
An operator's `cloudact dead-letters` (another process) then sees what a previous `cloudact run` dead-lettered.
Ids are the file's own row ids: the in-process bus numbers messages from 1 in every process, so its message ids
repeat across processes and cannot name a dead letter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path

from shared.contracts.envelope import ReceivedMessage
from shared.ports.bus import DeadLetter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    publish_time TEXT NOT NULL
)
"""


class DeadLetterFile:
    """A `DeadLetterQueue` in one SQLite file (or `":memory:"`); safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute(_SCHEMA)

    def retain(self, message: ReceivedMessage) -> str:
        """Keep a message published to the dead-letter topic until it is acked; returns its dead-letter id."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO dead_letters (data, attributes, publish_time) VALUES (?, ?, ?)",
                (message.data, json.dumps(message.attributes, sort_keys=True), message.publish_time),
            )
        return str(cursor.lastrowid)

    def peek_dead_letters(self, limit: int) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, data, attributes, publish_time FROM dead_letters ORDER BY id LIMIT ?", (max(0, limit),)
            ).fetchall()
        return [DeadLetter(str(row[0]), bytes(row[1]), dict(json.loads(row[2])), str(row[3])) for row in rows]

    def ack_dead_letters(self, dead_letter_ids: Collection[str]) -> list[str]:
        wanted = [int(i) for i in dead_letter_ids if str(i).isdigit()]
        acked: list[str] = []
        with self._lock:
            for row_id in wanted:
                if self._db.execute("DELETE FROM dead_letters WHERE id = ?", (row_id,)).rowcount:
                    acked.append(str(row_id))
        return acked

    def close(self) -> None:
        with self._lock:
            self._db.close()
