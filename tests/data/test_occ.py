"""OCC option symbol parsing."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from marketjepa.data.occ import occ_symbol, parse_occ


def test_valid_symbols_with_and_without_prefix():
    p = parse_occ(
        pl.Series(["O:SPY240119C00470000", "SPY240119P00470500", "O:SPXW251231C05000000"])
    )
    assert p["valid"].to_list() == [True, True, True]
    assert p["root"].to_list() == ["SPY", "SPY", "SPXW"]
    assert p["expiry"].to_list() == [date(2024, 1, 19), date(2024, 1, 19), date(2025, 12, 31)]
    assert p["right"].to_list() == ["C", "P", "C"]
    assert p["strike"].to_list() == [470.0, 470.5, 5000.0]
    assert p["symbol"][0] == "O:SPY240119C00470000"


@pytest.mark.parametrize(
    "bad",
    [
        "SPY",  # no expiry/right/strike
        "O:SPY240119X00470000",  # right not C/P
        "O:SPY241332C00470000",  # month 13
        "O:SPY240230C00470000",  # Feb 30
        "O:SPY240119C0047000",  # 7-digit strike
        "O:SPY240119C00000000",  # zero strike
        "O:TOOLONGROOT240119C00470000",
        "",
        None,
    ],
)
def test_bad_symbols_are_flagged_not_guessed(bad):
    p = parse_occ(pl.Series([bad, "O:SPY240119C00470000"], dtype=pl.Utf8))
    assert p["valid"].to_list() == [False, True]


def test_format_round_trip():
    sym = occ_symbol("SPY", date(2024, 3, 15), "P", 512.5)
    assert sym == "O:SPY240315P00512500"
    assert occ_symbol("SPY", date(2024, 3, 15), "C", 512.0, prefix=False) == "SPY240315C00512000"
    p = parse_occ(pl.Series([sym])).row(0, named=True)
    assert (p["root"], p["expiry"], p["right"], p["strike"]) == (
        "SPY",
        date(2024, 3, 15),
        "P",
        512.5,
    )
    with pytest.raises(ValueError):
        occ_symbol("SPY", date(2024, 3, 15), "X", 1.0)
