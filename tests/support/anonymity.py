"""The independent k-anonymity checks of the anonymisation tests: pycanon, and a persons count.

pycanon is a separate implementation (a research group's library), so an output that passes it
is k-anonymous by a judge that shares no code with Vokter's search.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import polars as pl
from pycanon import anonymity


def _plain(frame: pl.DataFrame | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A pandas copy with a plain 0..n-1 index (pycanon miscounts otherwise), missing values
    as one marker (pycanon's grouping drops NaN)."""
    table = frame.select(list(columns)).to_pandas() if isinstance(frame, pl.DataFrame) \
        else frame[list(columns)]
    table = table.reset_index(drop=True).astype(object)
    return table.where(pd.notna(table), "<missing>")


def independent_k(frame: pl.DataFrame | pd.DataFrame, qis: Sequence[str]) -> int:
    return int(anonymity.k_anonymity(_plain(frame, qis), list(qis)))


def independent_l(frame: pl.DataFrame | pd.DataFrame, qis: Sequence[str],
                  sensitive: Sequence[str]) -> int:
    return int(anonymity.l_diversity(_plain(frame, [*qis, *sensitive]), list(qis),
                                     list(sensitive)))


def fewest_persons(frame: pl.DataFrame, qis: Sequence[str], person: str) -> int:
    """The fewest distinct persons in any class, counted directly."""
    return int(frame.group_by(list(qis)).agg(pl.col(person).n_unique())[person].min())  # type: ignore[arg-type]
