"""The certificate's page in a real browser (L2): Debian's headless Chromium renders it at A4
proportions (1240 x 1754 pixels, 150 dpi) and takes a screenshot. The screenshot kept in
docs/certificate.png was made the same way; this test writes only to its own folder."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit.keys import key_id_of
from agent.lifecycle.certificate_check import check_certificate
from agent.lifecycle.certificate_html import certificate_html
from agent.lifecycle.removal import Item
from tests.lifecycle.test_certificate import ZONE, sample_files, sample_record, signed

WIDTH, HEIGHT = 1240, 1754
_PNG = b"\x89PNG\r\n\x1a\n"


def write_page(folder: Path) -> Path:
    """A certificate of 40 files, one of them named like markup, as the page a person gets."""
    key = Ed25519PrivateKey.generate()
    files = (*sample_files(40), Item(ZONE, "<script>alert(1)</script>.csv", "file", 12,
                                     "9f" * 32))
    text = signed(sample_record(files), key)
    check = check_certificate(text, key.public_key(), key_id_of(key.public_key()))
    assert check.certificate is not None, check.problem
    page = folder / "certificate.html"
    page.write_text(certificate_html(check.certificate, bytes(range(64))))
    return page


def screenshot(page: Path, out: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={out}",
         f"--window-size={WIDTH},{HEIGHT}", f"file://{page}"],
        capture_output=True, text=True, timeout=180, check=False)


def png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, bytes per pixel and the (still filtered) scanlines of a PNG."""
    assert data.startswith(_PNG), "not a PNG"
    offset, idat, header = len(_PNG), [], None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{kind!r} chunk damaged"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        offset += 12 + length
        if kind == b"IEND":
            break
    assert header is not None and idat, "no image in the PNG"
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6), (depth, colour)
    return width, height, 3 if colour == 2 else 4, zlib.decompress(b"".join(idat))


def test_l2_headless_chromium_renders_the_certificate_page_to_a_real_screenshot(
    tmp_path: Path,
) -> None:
    page = write_page(tmp_path)
    out = tmp_path / "certificate.png"
    result = screenshot(page, out, tmp_path / "profile")
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    data = out.read_bytes()
    width, height, channels, scanlines = png_pixels(data)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(scanlines) == height * (1 + width * channels)
    # A page of text and tables, not a blank or one-colour image: many distinct byte values
    # spread over the rows, and a compressed size no blank page reaches.
    assert len(set(scanlines)) > 64
    rows = [scanlines[i * (1 + width * channels):(i + 1) * (1 + width * channels)]
            for i in range(0, height, 50)]
    assert sum(1 for row in rows if len(set(row[1:])) > 2) > len(rows) // 3
    assert 30_000 < len(data) < 10_000_000
