"""Linkage keys (S5, D6): identity numbers paired one to one with serial numbers, with few
other columns, are a key; data files with identifiers, many-to-one mappings and repeated
serials are not."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agent.storage.evidence import judge_table
from agent.storage.linkage import LinkageVerdict, is_serial_code, judge_linkage
from tests.storage.formats.support import SHARE, TODAY, numbers


def judged(header: Sequence[str], rows: list[list[str]],
           **options: int) -> LinkageVerdict | None:
    verdict = judge_table(header, rows, today=TODAY, share=SHARE)
    return judge_linkage(header, iter(rows), verdict, **options)


def key_rows(count: int, seed: int = 1) -> list[list[str]]:
    people = numbers(count, seed)
    assert len(set(people)) == count
    return [[person, f"P{i:06d}"] for i, person in enumerate(people)]


def test_s5_identity_numbers_paired_one_to_one_with_serials_are_a_key() -> None:
    found = judged(["fnr", "lopenr"], key_rows(200))
    assert found == LinkageVerdict(identity_column="fnr", serial_column="lopenr", rows=200,
                                   other_columns=())


def test_s5_a_key_with_digit_serials_first_and_blank_rows_is_a_key() -> None:
    rows = [[str(1000 + i), person] for i, (person, _) in enumerate(key_rows(100, seed=2))]
    rows[10:10] = [["", ""], ["", ""]]
    found = judged(["lnr", "personnummer"], rows)
    assert found is not None
    assert (found.identity_column, found.serial_column, found.rows) == ("personnummer", "lnr",
                                                                        100)


def test_s5_a_key_with_two_extra_columns_is_a_key_and_names_them() -> None:
    rows = [[*row, "2026-11-01", "PRJ-42"] for row in key_rows(150, seed=3)]
    found = judged(["fnr", "lnr", "uttrekksdato", "prosjekt"], rows)
    assert found is not None
    assert found.other_columns == ("uttrekksdato", "prosjekt")
    assert judged(["fnr", "lnr", "uttrekksdato", "prosjekt"], rows, max_other_columns=1) is None


def test_s5_a_data_file_with_an_id_column_and_ten_variables_is_not_a_key() -> None:
    rnd = random.Random(4)
    header = ["fnr", "lnr", *(f"var{i}" for i in range(10))]
    rows = [[*row, *(str(rnd.randint(0, 500)) for _ in range(10))] for row in key_rows(150, 4)]
    assert judge_table(header, rows, today=TODAY, share=SHARE).identity_columns == ("fnr",)
    assert judged(header, rows) is None


def test_s5_a_many_to_one_mapping_is_not_a_key() -> None:
    people = numbers(100, 5)
    shared_serials = [[person, f"H{i // 2:04d}"] for i, person in enumerate(people)]
    assert judged(["fnr", "husholdning"], shared_serials) is None
    one_person_many_serials = [[people[i // 3], f"S{i:04d}"] for i in range(99)]
    assert judged(["fnr", "lnr"], one_person_many_serials) is None


def test_s5_a_repeated_serial_is_not_a_key() -> None:
    rows = key_rows(100, seed=6)
    rows[50][1] = rows[10][1]
    assert judged(["fnr", "lnr"], rows) is None


def test_s5_without_an_identity_column_or_with_non_codes_there_is_no_key() -> None:
    rows = key_rows(50, seed=7)
    assert judged(["a", "b"], [[f"x{i}", f"P{i}"] for i in range(50)]) is None
    measured = [[person, f"{i}.5"] for i, (person, _) in enumerate(rows)]  # decimals
    assert judged(["fnr", "vekt"], measured) is None
    spaced = [[person, f"fri tekst {i}"] for i, (person, _) in enumerate(rows)]
    assert judged(["fnr", "merknad"], spaced) is None


def test_s5_serial_codes_are_short_letters_and_digits_never_eleven_digits() -> None:
    for code in ("4711", "P000123", "LNR-00042", "ab12_cd", "0000000001"):
        assert is_serial_code(code), code
    for code in ("12345678901", "ABCDEF", "", "a b1", "P" + "1" * 20, "2.5"):
        assert not is_serial_code(code), code


def _rows(*columns: list[str]) -> list[list[str]]:
    return [list(row) for row in zip(*columns, strict=True)]


def test_s5_a_small_data_file_with_distinct_dates_or_codes_is_not_a_key() -> None:
    """Distinct values beside an identity column are no key unless named like serials."""
    ids = numbers(40, seed=41)
    dates = [f"19{50 + d}-0{d % 9 + 1}-1{d % 9}" for d in range(40)]
    codes = [f"K{1000 + d}" for d in range(40)]
    weights = [str(50 + d % 7) for d in range(40)]
    for header, second in ((["fnr", "dato", "vekt"], dates), (["fnr", "kommune", "vekt"], codes)):
        rows = _rows(ids, second, weights)
        verdict = judge_table(header, rows, today=TODAY, share=0.9)
        assert verdict.identity_columns == ("fnr",)
        assert judge_linkage(header, rows, verdict) is None


def test_s5_a_key_named_as_one_keeps_a_column_or_two_beside_it() -> None:
    ids = numbers(40, seed=42)
    serials = [f"P{d:05d}" for d in range(40)]
    extracted = ["2026-01-15"] * 40
    for name in ("lopenr", "løpenummer", "LNR", "pid", "person_id", "pseudonym", "key"):
        header = ["fnr", name, "uttrekk"]
        rows = _rows(ids, serials, extracted)
        verdict = judge_table(header, rows, today=TODAY, share=0.9)
        found = judge_linkage(header, rows, verdict)
        assert found is not None and found.serial_column == name
    # Two columns alone need no name: the pair is all there is.
    rows = _rows(ids, serials)
    verdict = judge_table(["fnr", "nr"], rows, today=TODAY, share=0.9)
    assert judge_linkage(["fnr", "nr"], rows, verdict) is not None
