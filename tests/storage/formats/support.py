"""What the format tests share: synthetic identity numbers and a file opened the way the
daemon opens one (read-only, never following a symlink), judged as the scanner judges it."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from agent.storage.evidence import TableVerdict, judge_table
from agent.storage.formats import Table, Text, read_content
from tests.support.identity_numbers import bank_account_numbers
from tests.support.identity_numbers import valid_numbers as numbers

__all__ = ["SHARE", "TODAY", "accounts", "holds_no_identity_number", "numbers", "opened",
           "random_eleven", "tables", "text_of", "verdicts"]

TODAY = date(2026, 11, 23)
SHARE = 0.9


def accounts(count: int, seed: int) -> list[str]:
    return bank_account_numbers(count, seed=seed)


def random_eleven(count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"{rnd.randrange(10**10, 10**11)}" for _ in range(count)]


@contextmanager
def opened(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def tables(path: Path) -> list[Table]:
    with opened(path) as fd:
        found = read_content(fd, path.name)
        assert all(isinstance(c, Table) for c in found)
        return [c for c in found if isinstance(c, Table)]


def verdicts(path: Path) -> dict[str, TableVerdict]:
    """Each table of the file judged, by table name; rows read while the file is open."""
    with opened(path) as fd:
        found = read_content(fd, path.name)
        return {c.name: judge_table(c.header, c.rows(), today=TODAY, share=SHARE)
                for c in found if isinstance(c, Table)}


def text_of(path: Path) -> str:
    with opened(path) as fd:
        [content] = read_content(fd, path.name)
        assert isinstance(content, Text)
        return "".join(content.chunks())


def holds_no_identity_number(message: str, people: list[str]) -> bool:
    """Whether a message is free of the numbers a test wrote and of anything shaped like one."""
    return not any(p in message or p[1:] in message for p in people) and not re.search(
        r"[0-9]{6}[ .\-]?[0-9]{4,5}", message)
