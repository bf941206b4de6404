"""The journal of encryptions in place: one durable entry per file being encrypted, naming
everything a restart needs to finish or undo it (agent.crypto.inplace).

Entries live in ``<state_dir>/crypto-journal/``, root's alone. Each is written durably (a
temporary file, fsync, rename, fsync of the folder) before the step it protects, and removed
only once the file is settled.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from agent.durable import fsync_folder, replace_durably

JOURNAL_DIR = "crypto-journal"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class JournalEntry:
    """What a restart needs to finish or undo one encryption in place."""

    entry_id: str
    project: str
    zone: str
    zone_root: str
    #: The file's folder relative to the zone root ("" for the root itself).
    folder: str
    name: str
    temp_name: str
    target_name: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    #: The ciphertext's inode, recorded before the rename: only that file is ever ours.
    cipher_dev: int | None = None
    cipher_ino: int | None = None



class JournalRecord(Protocol):
    """What a journal keeps: a dataclass with an id (the storage rules' moves use one too)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def entry_id(self) -> str: ...


Record = TypeVar("Record", bound=JournalRecord)


def journal_dir(state_dir: Path, name: str = JOURNAL_DIR) -> Path:
    """The journal's folder; made durably the first time, or a crash could lose the folder
    with the entries in it."""
    path = state_dir / name
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsync_folder(state_dir)
    return path


def write_entry(directory: Path, entry: JournalRecord) -> None:
    """Durably, over an earlier version of the same entry."""
    replace_durably(directory, f"{entry.entry_id}.json",
                    json.dumps(asdict(entry), sort_keys=True).encode("utf-8"))


def remove_entry(directory: Path, entry_id: str) -> None:
    folder = os.open(directory, _DIR_FLAGS)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{entry_id}.json", dir_fd=folder)
        os.fsync(folder)
    finally:
        os.close(folder)


def read_entries(directory: Path, kind: type[Record]) -> tuple[list[Record], list[str]]:
    """The journal's entries, and the names of files in it that are not entries (damaged)."""
    entries: list[Record] = []
    damaged: list[str] = []
    if not directory.is_dir():
        return entries, damaged
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            path.unlink(missing_ok=True)  # a journal write that never reached its rename
            continue
        try:
            entries.append(kind(**json.loads(path.read_text("utf-8"))))
        except (ValueError, TypeError):
            damaged.append(path.name)
    return entries, damaged
