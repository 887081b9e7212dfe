"""The retry settings' one rule: a wait is taken only when the budget left holds it and one more
attempt."""

from __future__ import annotations

from dataclasses import replace

from conftest import DEFAULT_RETRY


def test_a_wait_fits_when_an_attempt_still_fits_after_it() -> None:
    retry = replace(DEFAULT_RETRY, min_attempt_seconds=0.25)
    assert retry.fits(None, 60)  # no budget: anything fits
    assert retry.fits(1.0, 0.75) and not retry.fits(1.0, 0.76)
    assert not retry.fits(0.2, 0)
