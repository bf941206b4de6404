"""Runs the daemon's own encryption in place on one file, to be killed mid-way by a test.

``python -m tests.support.crypto_inplace_worker JOURNAL PROJECT ZONE_ROOT FOLDER NAME KEYSET``
where KEYSET is a file holding the project's serialized keyset (a test's throwaway key). It
prints ``ready`` just before it calls ``encrypt_in_place``, so the killing test can time its
SIGKILL from the moment the real work starts, then ``done`` when it returns.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent.crypto.inplace import encrypt_in_place
from agent.crypto.keyset import parse_keyset


def main(argv: list[str]) -> int:
    journal, project, zone_root, folder, name, keyset_file = argv
    keyset = parse_keyset(Path(keyset_file).read_bytes())
    source = os.open(os.path.join(zone_root, folder, name), os.O_RDONLY | os.O_NOFOLLOW)
    print("ready", flush=True)
    encrypt_in_place(journal=Path(journal), project=project, zone="data", zone_root=zone_root,
                     folder=folder, name=name, source_fd=source, key=keyset.primary)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
