"""What the MSSanté connector must remember across runs, in its own state folder (no database:
connectors know no storage code): the Message-IDs already imported (a message fetched twice —
redelivered, copied, or left unflagged by a crash — is imported once), the originals it
archived, and the Message-IDs it sent (an acknowledgement leads back to its exchange).

Append-only JSON lines, one file per concern, written before the IMAP flag is set; originals
are archived content-addressed (`<sha256>.eml`, mode 0600) and never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def _normalise(message_id: str) -> str:
    return "".join(message_id.split()).lower()


class Ledger:
    def __init__(self, state_dir: str | os.PathLike | None, archive_dir: str | os.PathLike | None = None):
        self._lock = threading.Lock()
        self.dir = Path(state_dir) if state_dir else None
        self.archive_dir = Path(archive_dir) if archive_dir else (self.dir / "archive" if self.dir else None)
        self.imported: dict[str, str] = {}  # message id → archive sha256
        self.sent: dict[str, str] = {}  # message id → exchange id
        self._memory: dict[str, bytes] = {}  # archive without a folder (tests, one-off runs)
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            for line in self._lines("imported.jsonl"):
                self.imported[line["message_id"]] = line["sha256"]
            for line in self._lines("sent.jsonl"):
                self.sent[line["message_id"]] = line["exchange"]

    def _lines(self, name: str):
        path = self.dir / name
        if not path.exists():
            return
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:  # a torn last line after a crash
                continue

    def _append(self, name: str, record: dict) -> None:
        if not self.dir:
            return
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())

    # ------------------------------------------------------------------ originals

    def archive(self, raw: bytes) -> str:
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            if self.archive_dir is None:
                self._memory[digest] = raw
                return digest
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            path = self.archive_dir / f"{digest}.eml"
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(raw)
        return digest

    def original(self, digest: str) -> bytes | None:
        if self.archive_dir is None:
            return self._memory.get(digest)
        path = self.archive_dir / f"{digest}.eml"
        return path.read_bytes() if path.exists() else None

    # ----------------------------------------------------------------- imported

    def seen(self, message_id: str) -> bool:
        return bool(message_id) and _normalise(message_id) in self.imported

    def imported_archive(self, message_id: str) -> str | None:
        return self.imported.get(_normalise(message_id))

    def record_import(self, message_id: str, digest: str) -> None:
        key = _normalise(message_id) or f"sha256:{digest}"
        with self._lock:
            if key in self.imported:
                return
            self.imported[key] = digest
            self._append("imported.jsonl", {"message_id": key, "sha256": digest})

    # --------------------------------------------------------------------- sent

    def record_sent(self, message_id: str, exchange_id: str) -> None:
        key = _normalise(message_id)
        with self._lock:
            if self.sent.get(key) == exchange_id:
                return
            self.sent[key] = exchange_id
            self._append("sent.jsonl", {"message_id": key, "exchange": exchange_id})

    def exchange_of(self, message_id: str) -> str | None:
        return self.sent.get(_normalise(message_id))
