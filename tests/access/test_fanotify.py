"""The fanotify binding against the real kernel: errors keep their errno, a deny reaches the
opener as EPERM, and the directory handles in events are the ones name_to_handle_at gives."""

from __future__ import annotations

import errno
import os
import select
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.access import fanotify as fan

pytestmark = pytest.mark.root

_NOTIF_MASK = fan.FAN_ATTRIB | fan.FAN_CREATE | fan.FAN_ONDIR | fan.FAN_EVENT_ON_CHILD
_ADD = fan.FAN_MARK_ADD | fan.FAN_MARK_ONLYDIR | fan.FAN_MARK_DONT_FOLLOW


@pytest.fixture
def notif_group() -> Iterator[int]:
    group = fan.init(fan.FAN_CLASS_NOTIF | fan.FAN_REPORT_DFID_NAME | fan.FAN_CLOEXEC
                     | fan.FAN_NONBLOCK, os.O_RDONLY)
    try:
        yield group
    finally:
        os.close(group)


def _read_until(group: int, count: int, timeout: float = 5.0) -> list[fan.Event]:
    events: list[fan.Event] = []
    while len(events) < count:
        ready, _, _ = select.select([group], [], [], timeout)
        if not ready:
            break
        events.extend(fan.read_events(group))
    return events


def test_init_with_unknown_flags_raises_oserror_with_einval() -> None:
    with pytest.raises(OSError) as raised:
        fan.init(0x8000_0000, os.O_RDONLY)
    assert raised.value.errno == errno.EINVAL


def test_marks_keep_the_errno_and_the_path(notif_group: int, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(OSError) as raised:
        fan.mark(notif_group, _ADD, _NOTIF_MASK, missing)
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == missing
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(OSError) as raised:
        fan.mark(notif_group, _ADD, _NOTIF_MASK, str(plain))
    assert raised.value.errno == errno.ENOTDIR


def test_handle_of_a_descriptor_equals_handle_of_its_path(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert fan.handle_of(fd) == fan.handle_of(str(tmp_path))
    finally:
        os.close(fd)
    other = tmp_path / "other"
    other.mkdir()
    assert fan.handle_of(str(other)) != fan.handle_of(str(tmp_path))


def test_dfid_name_records_carry_the_marked_directory_handle_and_the_child_name(
    notif_group: int, tmp_path: Path
) -> None:
    child = tmp_path / "data.csv"
    child.write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    for directory in (tmp_path, sub):
        fan.mark(notif_group, _ADD, _NOTIF_MASK, str(directory))
    subprocess.run(["chmod", "600", str(child)], check=True)
    subprocess.run(["chmod", "700", str(sub)], check=True)
    (tmp_path / "new").mkdir()

    events = _read_until(notif_group, 3)
    seen = [(e.mask, r.key, r.name) for e in events for r in e.records]
    parent = fan.handle_of(str(tmp_path))
    assert (fan.FAN_ATTRIB, parent, "data.csv") in seen
    # An event on a marked directory itself names that directory and the name ".".
    assert (fan.FAN_ATTRIB | fan.FAN_ONDIR, fan.handle_of(str(sub)), ".") in seen
    assert (fan.FAN_CREATE | fan.FAN_ONDIR, parent, "new") in seen
    assert all(e.fd == fan.FAN_NOFD for e in events)
    assert all(r.info_type == fan.FAN_EVENT_INFO_TYPE_DFID_NAME for e in events
               for r in e.records)


def test_a_deny_reaches_the_opener_as_operation_not_permitted(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("payload")
    group = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC, os.O_RDONLY | os.O_LARGEFILE)
    seen: list[tuple[int, str]] = []

    def answer() -> None:
        for event in fan.read_events(group):
            try:
                seen.append((event.pid, os.readlink(f"/proc/self/fd/{event.fd}")))
                fan.respond(group, event.fd, False)
            finally:
                os.close(event.fd)

    try:
        fan.mark(group, _ADD, fan.FAN_OPEN_PERM | fan.FAN_EVENT_ON_CHILD, str(tmp_path))
        reader = threading.Thread(target=answer, daemon=True)
        reader.start()
        cat = subprocess.run(["sh", "-c", 'echo $$; exec cat "$1"', "sh",
                              str(tmp_path / "secret")], capture_output=True, text=True,
                             timeout=20)
        reader.join(timeout=10)
    finally:
        os.close(group)
    assert cat.returncode != 0
    assert "Operation not permitted" in cat.stderr
    assert "payload" not in cat.stdout
    assert seen == [(int(cat.stdout.split()[0]), str(tmp_path / "secret"))]


def test_closing_the_group_drops_its_marks(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("still here")
    group = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC, os.O_RDONLY)
    fan.mark(group, _ADD, fan.FAN_OPEN_PERM | fan.FAN_EVENT_ON_CHILD, str(tmp_path))
    os.close(group)  # nobody answers any more: the open must not hang
    cat = subprocess.run(["cat", str(tmp_path / "f")], capture_output=True, text=True,
                         timeout=20)
    assert cat.stdout == "still here"


def test_respond_to_an_event_that_is_not_pending_raises(tmp_path: Path) -> None:
    group = fan.init(fan.FAN_CLASS_CONTENT | fan.FAN_CLOEXEC, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            fan.respond(group, 12345, True)
        assert raised.value.errno == errno.ENOENT
    finally:
        os.close(group)


def _event(mask: int, fd: int, pid: int, info: bytes = b"") -> bytes:
    return struct.pack("=IBBHQii", 24 + len(info), 3, 0, 24, mask, fd, pid) + info


def _dfid_name(fsid: tuple[int, int], handle_type: int, handle: bytes, name: bytes) -> bytes:
    body = struct.pack("=ii", *fsid) + struct.pack("=Ii", len(handle), handle_type) + handle
    body += name + b"\0"
    body += b"\0" * (-(len(body) + 4) % 4)
    return struct.pack("=BBH", fan.FAN_EVENT_INFO_TYPE_DFID_NAME, 0, len(body) + 4) + body


def test_parse_events_splits_metadata_and_fid_records() -> None:
    record = _dfid_name((7, -2), 1, b"\x01\x02\x03\x04\x05\x06\x07\x08", b"report.txt")
    buf = (_event(fan.FAN_OPEN_PERM, 9, 100) + _event(fan.FAN_CREATE | fan.FAN_ONDIR,
                                                     fan.FAN_NOFD, 200, record))
    first, second = fan.parse_events(buf)
    assert (first.mask, first.fd, first.pid, first.records) == (fan.FAN_OPEN_PERM, 9, 100, ())
    assert (second.mask, second.fd, second.pid) == (fan.FAN_CREATE | fan.FAN_ONDIR, -1, 200)
    (rec,) = second.records
    assert rec.name == "report.txt"
    assert rec.key == fan.HandleKey(7 | (0xFFFF_FFFE << 32), 1, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    # A torn tail is left alone rather than misread.
    assert len(fan.parse_events(buf[:-3])) == 1


def test_parse_events_refuses_an_unknown_metadata_version() -> None:
    buf = struct.pack("=IBBHQii", 24, 4, 0, 24, fan.FAN_OPEN_PERM, 3, 1)
    with pytest.raises(OSError, match="version 4"):
        fan.parse_events(buf)
