"""Encryption benchmark: Vokter's streaming AEAD beside what else one would use, in one run.

On one file (1 GiB by default, random bytes, in the page cache for every tool alike), prints
MB/s and peak RSS of each, and the ratios the goals are stated in:

  1. Vokter's engine (agent.crypto.stream_io), file to file, in a process of its own;
  2. ``vokter encrypt`` in place through a real vokterd (journal, temporary file, fsync, rename,
     fsync of the folder, removal of the plaintext) and ``vokter decrypt -o`` by a member;
  3. ``openssl speed -evp aes-256-gcm`` at 16 and 64 KiB: the cipher alone, in memory, no I/O
     (the machine's limit for the cipher);
  4. ``age`` (X25519 recipient, ChaCha20-Poly1305 in 64 KiB chunks), what a user would pick;
  5. ``gpg --symmetric --cipher-algo AES256`` with its defaults (as a user would run it);
  6. the ``tink`` package's own streaming AEAD on the same keyset and segment size;
  7. ``cp`` of the same file: no encryption at all, the bound for any file-to-file tool here.

Goals (issue 6): Vokter >= 2x age, >= 0.75x openssl's 64 KiB figure, peak RSS < 64 MiB.
Each figure is the median of ``--repeat`` runs of a whole process (start-up included), timed
from outside; peak RSS is the process's own high-water mark (VmHWM), read while it runs.

Usage: .venv/bin/python bench/crypto_bench.py [--size-mib N] [--repeat N] [--dir DIR]
       [--segments 65536,262144,1048576] [--skip-daemon]
Needs: apt-get install -y age gnupg openssl; pip install tink (the dev extra). Root for item 2
(it makes a Unix user for the member and removes it afterwards).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
PROJECT = "p9901"
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_kib: int


def _vm_hwm_kib(pid: int) -> int:
    """The process's own peak resident set (VmHWM, per address space): unlike wait4's
    ru_maxrss it does not count the benchmark's memory the child had before its exec."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _run(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Run:
    """One process, timed from outside; its peak RSS read from /proc while it runs (every
    5 ms; the high-water mark only grows, so the last reading before it exits is its peak)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    peak = 0
    while True:
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _vm_hwm_kib(process.pid))
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {error.strip()[:500]}")
    return Run(seconds, peak)


def _median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_rss_kib for r in runs))


def _repeat(times: int, argv: Sequence[str]) -> Run:
    return _median([_run(argv) for _ in range(times)])


def _mbs(size: int, run: Run) -> float:
    return size / run.seconds / 1e6


def _line(label: str, size: int, run: Run, *, rss: bool = True) -> float:
    rate = _mbs(size, run)
    memory = f"   peak RSS {run.peak_rss_kib / 1024:>7.1f} MiB" if rss else ""
    print(f"  {label:<44} {rate:>9,.0f} MB/s{memory}")
    return rate


# --- the processes measured (this script re-runs itself with --child) --------------------------


def _child(argv: list[str]) -> None:
    """``--child WHAT SRC DST KEYSET``: one encryption or decryption in a process of its own."""
    what, src, dst, keyset_path = argv
    from agent.crypto.keyset import parse_keyset
    from agent.crypto.wrapping import file_associated_data

    keyset_bytes = Path(keyset_path).read_bytes()
    aad = file_associated_data(PROJECT)
    if what.startswith("tink-"):
        _tink_child(what, src, dst, keyset_bytes, aad)
        return
    from agent.crypto.stream_io import decrypt_stream, encrypt_stream

    keyset = parse_keyset(keyset_bytes)
    source = os.open(src, os.O_RDONLY)
    target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if what == "encrypt":
            encrypt_stream(source, target, keyset.primary, aad)
        else:
            decrypt_stream(source, target, keyset, aad)
    finally:
        os.close(source)
        os.close(target)


def _tink_child(what: str, src: str, dst: str, keyset_bytes: bytes, aad: bytes) -> None:
    from tink import proto_keyset_format, secret_key_access, streaming_aead

    streaming_aead.register()
    handle = proto_keyset_format.parse(keyset_bytes, secret_key_access.TOKEN)
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with open(src, "rb") as source, open(dst, "wb") as target:
        if what == "tink-encrypt":
            with primitive.new_encrypting_stream(target, aad) as stream:
                while block := source.read(CHUNK):
                    view = memoryview(block)
                    while view:  # Tink's stream may take less than it is given
                        view = view[stream.write(view):]
        else:
            with primitive.new_decrypting_stream(source, aad) as stream:
                while block := stream.read(CHUNK):
                    target.write(block)


# --- the measurements --------------------------------------------------------------------------


def openssl_speed(block: int) -> float:
    """``openssl speed -evp aes-256-gcm`` at one block size, in MB/s (10^6 bytes)."""
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", str(block), "-seconds", "3"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.lower().startswith("aes-256-gcm"):
            return float(line.split()[-1].rstrip("k")) * 1000 / 1e6
    raise RuntimeError(f"no figure in openssl's output:\n{out}")


def engine(size: int, work: Path, plain: Path, keyset: Path, repeat: int) -> dict[str, Run]:
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    sealed, opened = work / "engine.tink", work / "engine.out"
    runs = {
        "encrypt": _repeat(repeat, [*me, "encrypt", str(plain), str(sealed), str(keyset)]),
        "decrypt": _repeat(repeat, [*me, "decrypt", str(sealed), str(opened), str(keyset)]),
    }
    if not _same(plain, opened):
        raise RuntimeError("Vokter's engine did not give back the plaintext")
    tink_sealed, tink_opened = work / "tink.tink", work / "tink.out"
    runs["tink-encrypt"] = _repeat(repeat, [*me, "tink-encrypt", str(plain), str(tink_sealed),
                                            str(keyset)])
    runs["tink-decrypt"] = _repeat(repeat, [*me, "tink-decrypt", str(tink_sealed),
                                            str(tink_opened), str(keyset)])
    if not _same(plain, tink_opened):
        raise RuntimeError("tink did not give back the plaintext")
    for path in (sealed, opened, tink_sealed, tink_opened):
        path.unlink()
    return runs


def age_runs(work: Path, plain: Path, repeat: int) -> dict[str, Run]:
    identity = work / "age.key"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True,
                               capture_output=True, text=True).stdout.strip()
    sealed, opened = work / "age.age", work / "age.out"
    runs = {
        "encrypt": _repeat(repeat, ["age", "-r", recipient, "-o", str(sealed), str(plain)]),
        "decrypt": _repeat(repeat, ["age", "-d", "-i", str(identity), "-o", str(opened),
                                    str(sealed)]),
    }
    if not _same(plain, opened):
        raise RuntimeError("age did not give back the plaintext")
    sealed.unlink()
    opened.unlink()
    return runs


def gpg_runs(work: Path, plain: Path, repeat: int) -> dict[str, Run]:
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
            "--passphrase", "vokter-bench"]
    sealed, opened = work / "gpg.gpg", work / "gpg.out"
    runs = {
        "encrypt": _repeat(repeat, [*base, "--symmetric", "--cipher-algo", "AES256",
                                    "-o", str(sealed), str(plain)]),
        "decrypt": _repeat(repeat, [*base, "-o", str(opened), "-d", str(sealed)]),
    }
    if not _same(plain, opened):
        raise RuntimeError("gpg did not give back the plaintext")
    sealed.unlink()
    opened.unlink()
    shutil.rmtree(home)
    return runs


def _same(first: Path, second: Path) -> bool:
    with first.open("rb") as a, second.open("rb") as b:
        while True:
            left, right = a.read(CHUNK * 8), b.read(CHUNK * 8)
            if left != right:
                return False
            if not left:
                return True


def make_plaintext(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            out.write(block)
            left -= len(block)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--child"]:
        _child(raw[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--segments", default="",
                        help="also measure the engine at these segment sizes (comma-separated)")
    parser.add_argument("--skip-daemon", action="store_true",
                        help="leave out vokter encrypt/decrypt through a real vokterd")
    args = parser.parse_args(raw)
    from agent.crypto.keyset import DEFAULT_SEGMENT_SIZE, new_keyset, serialize_keyset

    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="vokter-crypto-bench-", dir=args.dir))
    try:
        plain = work / "plain.bin"
        make_plaintext(plain, size)
        keyset = work / "keyset.bin"
        keyset.write_bytes(serialize_keyset(new_keyset()))
        print(f"file: {args.size_mib} MiB of random bytes in {work} (page cache warm for all); "
              f"median of {args.repeat} runs of a whole process each")

        print("\nthe cipher alone (openssl speed -evp aes-256-gcm, in memory):")
        openssl_16 = openssl_speed(16 * 1024)
        openssl_64 = openssl_speed(64 * 1024)
        print(f"  {'openssl 16 KiB blocks':<44} {openssl_16:>9,.0f} MB/s")
        print(f"  {'openssl 64 KiB blocks':<44} {openssl_64:>9,.0f} MB/s")

        print(f"\nfile to file ({DEFAULT_SEGMENT_SIZE // 1024} KiB segments for Vokter and tink):")
        copied = _repeat(args.repeat, ["cp", str(plain), str(work / "copy.bin")])
        copy_rate = _line("cp, no encryption (the bound for file to file)", size, copied)
        (work / "copy.bin").unlink()
        ours = engine(size, work, plain, keyset, args.repeat)
        vokter_enc = _line("Vokter encrypt (agent.crypto.stream_io)", size, ours["encrypt"])
        vokter_dec = _line("Vokter decrypt", size, ours["decrypt"])
        tink_enc = _line("tink package encrypt (streaming AEAD)", size, ours["tink-encrypt"])
        tink_dec = _line("tink package decrypt", size, ours["tink-decrypt"])
        aged = age_runs(work, plain, args.repeat)
        age_enc = _line("age -r (X25519, ChaCha20-Poly1305)", size, aged["encrypt"])
        age_dec = _line("age -d", size, aged["decrypt"])
        gpged = gpg_runs(work, plain, args.repeat)
        gpg_enc = _line("gpg --symmetric --cipher-algo AES256", size, gpged["encrypt"])
        gpg_dec = _line("gpg -d", size, gpged["decrypt"])

        daemon: dict[str, Run] = {}
        if not args.skip_daemon:
            from bench.crypto_daemon import daemon_runs

            print("\nthrough a real vokterd (in place, durable; decrypt by a member):")
            measured = daemon_runs(work, plain, size, args.repeat)
            daemon = {"encrypt": Run(measured["encrypt"], 0),
                      "decrypt": Run(measured["decrypt"], 0),
                      "vokterd": Run(0.0, int(measured["vokterd_peak_kib"])),
                      "vokterd-idle": Run(0.0, int(measured["vokterd_peak_before_kib"]))}
            _line("vokter encrypt PATH (in place, fsync)", size, daemon["encrypt"], rss=False)
            _line("vokter decrypt PATH -o OUT", size, daemon["decrypt"], rss=False)
            print(f"  {'vokterd peak RSS before / after the runs':<44} "
                  f"{daemon['vokterd-idle'].peak_rss_kib / 1024:>17.1f} / "
                  f"{daemon['vokterd'].peak_rss_kib / 1024:.1f} MiB")

        if args.segments:
            print("\nVokter's engine by segment size (encrypt / decrypt):")
            for segment in (int(s) for s in args.segments.split(",")):
                keyed = work / f"keyset-{segment}.bin"
                keyed.write_bytes(serialize_keyset(new_keyset(segment_size=segment)))
                runs = engine(size, work, plain, keyed, args.repeat)
                print(f"  {segment // 1024:>5} KiB: {_mbs(size, runs['encrypt']):>9,.0f} / "
                      f"{_mbs(size, runs['decrypt']):>9,.0f} MB/s")

        peak = max(ours["encrypt"].peak_rss_kib, ours["decrypt"].peak_rss_kib) / 1024
        print("\nratios (goal):")
        print(f"  Vokter encrypt / age encrypt        {vokter_enc / age_enc:6.2f}x   (>= 2x)")
        print(f"  Vokter decrypt / age decrypt        {vokter_dec / age_dec:6.2f}x   (>= 2x)")
        print(f"  Vokter encrypt / openssl 64 KiB     {vokter_enc / openssl_64:6.2f}x   (>= 0.75x)")
        print(f"  Vokter decrypt / openssl 64 KiB     {vokter_dec / openssl_64:6.2f}x   (>= 0.75x)")
        print(f"  Vokter peak RSS                     {peak:6.1f} MiB (< 64 MiB)")
        print(f"  Vokter encrypt / cp                 {vokter_enc / copy_rate:6.2f}x")
        print(f"  Vokter decrypt / cp                 {vokter_dec / copy_rate:6.2f}x")
        print(f"  Vokter encrypt / tink package       {vokter_enc / tink_enc:6.2f}x")
        print(f"  Vokter decrypt / tink package       {vokter_dec / tink_dec:6.2f}x")
        print(f"  Vokter encrypt / gpg                {vokter_enc / gpg_enc:6.2f}x")
        print(f"  Vokter decrypt / gpg                {vokter_dec / gpg_dec:6.2f}x")
        if daemon:
            print(f"  vokter encrypt (daemon) / age       "
                  f"{_mbs(size, daemon['encrypt']) / age_enc:6.2f}x")
            print(f"  vokter decrypt (daemon) / age       "
                  f"{_mbs(size, daemon['decrypt']) / age_dec:6.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
