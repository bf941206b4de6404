"""Exactly one runner per project's disposal (L2): the claim, on SQLite and PostgreSQL.

On PostgreSQL the claim is an advisory lock held on a connection of its own, so a second
daemon on the same database (here: a second engine, as a second daemon would have) is told
the disposal is busy while the first runs, and may take it once the first is done.
"""

from __future__ import annotations

import pytest

from agent.lifecycle.disposal import claim
from agent.services import Services
from agent.store import Store


def test_l2_one_claim_at_a_time_per_project(services: Services) -> None:
    with claim(services, "p1") as first:
        assert first
        with claim(services, "p1") as second:
            assert not second
        with claim(services, "p2") as other:
            assert other
    with claim(services, "p1") as again:
        assert again


def test_l2_a_second_daemon_on_the_same_postgresql_is_told_busy(services: Services) -> None:
    if services.store.backend != "postgresql":
        pytest.skip("SQLite has one daemon per database: the claim above is all there is")
    url = services.store.engine.url.render_as_string(hide_password=False)
    second_daemon = Store(url)
    try:
        from dataclasses import replace

        elsewhere = replace(services, store=second_daemon)
        with claim(services, "p1") as first:
            assert first
            with claim(elsewhere, "p1") as second:
                assert not second
        with claim(elsewhere, "p1") as after:
            assert after
    finally:
        second_daemon.close()


def test_l5_a_hold_placed_through_this_daemon_stops_the_run_before_its_next_file(
    services: Services,
) -> None:
    from agent.lifecycle.disposal_guard import HoldWatch, hold_flag_clear, hold_placed

    watch = HoldWatch(services, "p1")
    assert not watch()
    hold_placed("p1")  # what 'hold place' does once the hold is committed
    assert watch()  # no polling interval in between: the very next file is not removed
    other = HoldWatch(services, "p2")
    assert not other()
    hold_flag_clear("p1")  # a later run, after the release, starts clean
    assert not HoldWatch(services, "p1")()
