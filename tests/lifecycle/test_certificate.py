"""The certificate of disposal as a document (L2): its canonical payload, its signature, what
checking it finds when one byte changed or the key is another, and the page it renders to."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit.keys import key_id_of
from agent.lifecycle.certificate import (
    CERTIFICATE_FORMAT,
    CheckpointRef,
    DisposalRecord,
    certificate_document,
    certificate_payload,
)
from agent.lifecycle.certificate_check import check_certificate, parse_certificate_payload
from agent.lifecycle.certificate_html import certificate_html
from agent.lifecycle.model import ApprovalFacts, ApprovalKind, HoldFacts, HoldReason
from agent.lifecycle.removal import Item
from tests.support.identity_numbers import some

#: A valid fødselsnummer (checksums hold): it must never leave in a certificate.
IDENTITY_NUMBER = some(1, 1, 70)  # synthetic, made valid by the test support
STARTED = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
FINISHED = datetime(2026, 4, 20, 9, 3, 12, tzinfo=UTC)
ISSUED = datetime(2026, 4, 20, 9, 3, 13, tzinfo=UTC)
ZONE = "/srv/vokter/p1234/data"


def sample_files(count: int = 3, zone: str = ZONE) -> tuple[Item, ...]:
    files = tuple(Item(zone, f"cohort/part-{index:06d}.csv", "file", 100 + index,
                       f"{index:064x}") for index in range(count))
    return (*files, Item(zone, "cohort", "dir", 0, None))


def sample_record(files: tuple[Item, ...] | None = None, project: str = "p1234",
                  started: datetime = STARTED, finished: datetime = FINISHED) -> DisposalRecord:
    return DisposalRecord(
        project=project, title="Night shifts and sleep", leader="alice",
        end_date=date(2026, 3, 31), policy_name="default", policy_version="2026.1",
        approvals=(ApprovalFacts(1, ApprovalKind.REK, "REK 2024/1234",
                                 valid_until=date(2026, 3, 31)),),
        holds=(HoldFacts(2, HoldReason.SUPERVISORY_CASE, "DT 26/0042",
                         released_on=date(2026, 4, 19)),),
        holds_checked_at=started,
        decision=(("end", "L1, L8"), ("dispose", "L2"), ("deleted", "L2")),
        method="delete",
        keyset={"destroyed_at": started, "master_key_id": "3f2a9c0d1e4b5a6f",
                "had_keyset": True},
        files=sample_files() if files is None else files,
        tables=(),
        verification={"zones_empty": True, "left": [], "key_opens": False},
        started_at=started, finished_at=finished)


def checkpoint(seq: int, key_id: str) -> CheckpointRef:
    return CheckpointRef(seq=seq, head="ab" * 32, time=STARTED, key_id=key_id,
                         signature=base64.b64encode(bytes(64)).decode(), project_seq=seq // 2,
                         project_head="cd" * 32)


def signed(record: DisposalRecord, key: Ed25519PrivateKey) -> bytes:
    key_id = key_id_of(key.public_key())
    payload = certificate_payload(record, version="0.1.0", key_id=key_id,
                                  before=checkpoint(10, key_id), after=checkpoint(42, key_id),
                                  issued_at=ISSUED)
    return certificate_document(payload, key.sign(payload.encode("ascii"))).encode("ascii")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_l2_a_signed_certificate_checks_with_the_public_key_alone(
    key: Ed25519PrivateKey,
) -> None:
    check = check_certificate(signed(sample_record(), key), key.public_key(),
                              key_id_of(key.public_key()))
    assert check.ok and check.kind is None, check.problem
    cert = check.certificate
    assert cert is not None
    assert (cert.project, cert.method, cert.entries, cert.files, cert.bytes) == (
        "p1234", "delete", 4, 3, 100 + 101 + 102)
    assert (cert.before_seq, cert.after_seq, cert.issued_at) == (10, 42, ISSUED)
    body = cert.body
    assert body["format"] == CERTIFICATE_FORMAT
    assert body["tool"] == {"name": "vokter", "version": "0.1.0"}
    assert body["legal_basis"]["holds_checked_at"] == "2026-04-20T09:00:00.000000Z"
    assert body["decision"][0] == {"step": "end", "rules": "L1, L8"}
    assert body["keys_destroyed"]["destroyed_at"] == "2026-04-20T09:00:00.000000Z"
    assert body["verification"] == {"zones_empty": True, "left": [], "key_opens": False}
    assert body["audit"]["after"]["project_seq"] == 21
    entry = body["files"]["zones"][0]["entries"][1]
    assert entry == {"path": "cohort/part-000001.csv", "kind": "file", "size": 101,
                     "sha256": f"{1:064x}"}


def test_l2_the_payload_is_canonical_json_and_the_same_record_signs_the_same_bytes(
    key: Ed25519PrivateKey,
) -> None:
    document = json.loads(signed(sample_record(), key))
    payload = document["payload"]
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=True)
    assert signed(sample_record(), key) == signed(sample_record(), key)  # Ed25519: deterministic


def test_l2_every_single_changed_byte_of_the_file_fails_the_check(
    key: Ed25519PrivateKey,
) -> None:
    text = signed(sample_record(), key)
    public, key_id = key.public_key(), key_id_of(key.public_key())
    kinds = set()
    for index in range(len(text)):
        changed = bytearray(text)
        changed[index] ^= 0x01
        check = check_certificate(bytes(changed), public, key_id)
        assert not check.ok, f"byte {index} ({chr(text[index])!r}) changed and still OK"
        kinds.add(check.kind)
    assert kinds <= {"malformed", "changed", "wrong_key"} and "changed" in kinds


def test_l2_a_changed_value_inside_the_payload_is_named_a_change(
    key: Ed25519PrivateKey,
) -> None:
    text = signed(sample_record(), key)
    forged = text.replace(b"part-000001.csv", b"part-000009.csv")
    assert forged != text
    check = check_certificate(forged, key.public_key(), key_id_of(key.public_key()))
    assert (check.ok, check.kind) == (False, "changed")
    assert check.problem is not None and "changed after it was signed" in check.problem


def test_l2_a_certificate_checked_with_another_key_fails_naming_the_key(
    key: Ed25519PrivateKey,
) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    check = check_certificate(signed(sample_record(), key), other, key_id_of(other))
    assert (check.ok, check.kind) == (False, "wrong_key")
    assert check.problem is not None and key_id_of(key.public_key()) in check.problem


def test_l2_a_certificate_signed_by_another_key_that_names_ours_is_a_change(
    key: Ed25519PrivateKey,
) -> None:
    ours = key_id_of(key.public_key())
    payload = certificate_payload(sample_record(), version="0.1.0", key_id=ours, before=None,
                                  after=checkpoint(42, ours), issued_at=ISSUED)
    forged = certificate_document(payload, Ed25519PrivateKey.generate().sign(payload.encode()))
    check = check_certificate(forged.encode(), key.public_key(), ours)
    assert (check.ok, check.kind) == (False, "changed")


@pytest.mark.parametrize("text", [
    b"", b"not json", b"[]", b'{"payload": "x"}', b'{"payload": 1, "signature": "AA=="}',
    b'{"payload": "{}", "signature": "not base64!"}',
    json.dumps({"payload": "{}", "signature": "AA==", "extra": "x"}).encode(),
], ids=["empty", "text", "list", "no-signature", "payload-not-text", "bad-base64", "extra"])
def test_l2_what_is_not_a_certificate_is_named_malformed(
    key: Ed25519PrivateKey, text: bytes
) -> None:
    check = check_certificate(text, key.public_key(), key_id_of(key.public_key()))
    assert (check.ok, check.kind) == (False, "malformed")
    assert check.problem


def test_l2_a_signed_payload_whose_totals_do_not_add_up_is_refused(
    key: Ed25519PrivateKey,
) -> None:
    key_id = key_id_of(key.public_key())
    payload = certificate_payload(sample_record(), version="0.1.0", key_id=key_id, before=None,
                                  after=checkpoint(42, key_id), issued_at=ISSUED)
    body = json.loads(payload)
    body["files"]["bytes"] += 1
    tampered = json.dumps(body, sort_keys=True, separators=(",", ":"))
    text = certificate_document(tampered, key.sign(tampered.encode())).encode()
    check = check_certificate(text, key.public_key(), key_id)
    assert (check.ok, check.kind) == (False, "malformed")
    assert check.problem is not None and "do not add up" in check.problem
    with pytest.raises(ValueError, match="missing or unknown"):
        parse_certificate_payload(json.dumps({**body, "extra": 1}))


def test_l2_no_identity_number_leaves_in_a_path_a_title_a_reference_or_an_outcome(
    key: Ed25519PrivateKey,
) -> None:
    files = (Item(f"/srv/z/{IDENTITY_NUMBER}", f"{IDENTITY_NUMBER}.csv", "file", 5, "e" * 64),
             Item(ZONE, f"a/{IDENTITY_NUMBER[:6]} {IDENTITY_NUMBER[6:]}/x.csv", "file", 1,
                  "f" * 64),
             # A name that looks like a digest (lowercase hex with letters) carries one too.
             Item(ZONE, f"{IDENTITY_NUMBER}abcdef", "file", 1, "d" * 64))
    record = sample_record(files)
    record = DisposalRecord(**{
        **record.__dict__, "title": f"Follow-up of {IDENTITY_NUMBER}",
        "approvals": (ApprovalFacts(1, ApprovalKind.REK, f"REK/{IDENTITY_NUMBER}"),),
        "verification": {"zones_empty": False, "left": [f"data/{IDENTITY_NUMBER}.csv"]},
        "tables": ({"table": f"{IDENTITY_NUMBER}.parquet", "k": 5},)})
    text = signed(record, key)
    digits = re.sub(r"[^0-9]", "", IDENTITY_NUMBER)
    assert digits not in re.sub(r"[ .\-]", "", text.decode())
    assert text.count(b"[id-number]") == 8
    # Vokter's own hashes are left whole.
    assert b"e" * 64 in text and b"f" * 64 in text
    page = certificate_html(check_certificate(text, key.public_key(),
                                              key_id_of(key.public_key())).certificate
                            or pytest.fail("does not check"), b"\0" * 64)
    assert IDENTITY_NUMBER not in page


def test_l2_a_file_named_like_markup_shows_as_text_on_the_page(
    key: Ed25519PrivateKey,
) -> None:
    files = (Item(ZONE, "<script>alert(1)</script>", "file", 3, "a" * 64),
             Item(ZONE, '"><img src=x onerror=alert(1)>', "file", 4, "b" * 64),
             Item("/srv/<b>zone</b>", "&amp;.csv", "file", 5, "c" * 64))
    record = sample_record(files)
    record = DisposalRecord(**{**record.__dict__, "title": "<i>Sleep</i> & shifts",
                               "tables": ({"<th>": "<td>", "k": 5},)})
    cert = check_certificate(signed(record, key), key.public_key(),
                             key_id_of(key.public_key())).certificate
    assert cert is not None
    page = certificate_html(cert, b"\0" * 64)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&amp;amp;.csv" in page and "/srv/&lt;b&gt;zone&lt;/b&gt;" in page
    assert "&lt;i&gt;Sleep&lt;/i&gt; &amp; shifts" in page
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<i>" not in lowered
    # Nothing is loaded from anywhere: no src, no href, no url(), no @import.
    for loads in ("src=\"", "href=", "url(", "@import"):
        assert loads not in lowered
    assert "default-src 'none'" in page


def test_l2_the_page_states_the_record_in_words_and_tables(key: Ed25519PrivateKey) -> None:
    cert = check_certificate(signed(sample_record(), key), key.public_key(),
                             key_id_of(key.public_key())).certificate
    assert cert is not None
    page = certificate_html(cert, b"\1" * 64)
    for said in ("Certificate of disposal", "p1234", "Night shifts and sleep", "alice",
                 "2026-03-31", "cryptographic erase of the project&#x27;s keyset",
                 "REK 2024/1234", "DT 26/0042", "2026-04-19", "L1, L8", "3f2a9c0d1e4b5a6f",
                 "Every zone empty after the run", "Decryption with the project&#x27;s key now "
                 "fails", "Checkpoint before the run", "Checkpoint after the run",
                 "cohort/part-000002.csv",
                 f"{2:064x}", "default, version 2026.1", "vokter 0.1.0",
                 base64.b64encode(b"\1" * 64).decode(), "@page { size: A4",
                 "2026-04-20 09:00:00 UTC", "2026-04-20 09:03:12 UTC"):
        assert said in page, said


def test_l2_a_hundred_thousand_files_make_one_page_with_every_row(
    key: Ed25519PrivateKey,
) -> None:
    files = sample_files(100_000)
    cert = check_certificate(signed(sample_record(files), key), key.public_key(),
                             key_id_of(key.public_key())).certificate
    assert cert is not None and cert.files == 100_000
    page = certificate_html(cert, b"\0" * 64)
    assert page.count("<tr><td class=\"num\">") == 100_001
    assert "cohort/part-099999.csv" in page and page.endswith("</html>\n")


def test_l2_an_unknown_method_is_never_signed(key: Ed25519PrivateKey) -> None:
    record = DisposalRecord(**{**sample_record().__dict__, "method": "shred-later"})
    with pytest.raises(ValueError, match="unknown disposal method"):
        signed(record, key)
