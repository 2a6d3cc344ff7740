"""The quick check of clean incident entries must agree with the detailed checks: whatever it
accepts, the detailed checks accept with the same values, and it never accepts a bad entry."""

from __future__ import annotations

import itertools

import pytest

from cockpit.contract import (
    MAX_FUTURE_MS,
    _Bad,
    _checked_incident,
    _clean_incident,
    _clean_incidents,
)

NOW = 1_795_000_000_000
BBOX = (120.0, 31.4, 120.6, 31.8)
GOOD = {"id": "i-1", "ts": str(NOW - 1000), "category": "dispute", "lat": "31.6",
        "lon": "120.3", "severity": "3", "status": "dispatched"}  # fmt: skip

# each field's plausible and hostile values; the product covers their combinations
VARIANTS = {
    "id": ["i-1", "", "x" * 128, "x" * 129],
    "ts": [str(NOW - 1000), "", "2026-11-23T08:00:00+08:00", "2026-11-23T08:00:00",
           str(NOW + MAX_FUTURE_MS + 1), "١٢٣", "²", " 1795000000000", "12.5"],
    "category": ["dispute", "hotline", "", "DISPUTE", "fire"],
    "lat": ["31.6", "nan", "inf", "-inf", "1e400", "abc", "", " 31.6 ", "3_1.6", "90"],
    "lon": ["120.3", "NaN", "120", "200"],
    "severity": ["3", "", "0", "5", "2.0", None],
    "status": ["dispatched", "", "new", "open", None],
    "text": [None, "ok", "x" * 2001, "bad \ufffd byte"],
}  # fmt: skip


def _entries():
    names = list(VARIANTS)
    for values in itertools.product(*VARIANTS.values()):
        fields = {k: v for k, v in zip(names, values, strict=True) if v is not None}
        yield fields


def test_fast001_quick_check_agrees_with_detailed_checks():
    accepted = rejected = 0
    for fields in _entries():
        quick = _clean_incident(fields, NOW + MAX_FUTURE_MS, BBOX)
        try:
            detailed = _checked_incident(fields, NOW, BBOX)
        except _Bad:
            detailed = None
        except ValueError:
            detailed = "error"  # the detailed path's own failure; the quick one must not accept
        if quick is not None:
            assert quick == detailed, fields
            accepted += 1
        else:
            rejected += 1
    # the product must exercise both outcomes in bulk
    assert accepted >= 500 and rejected >= 100_000, (accepted, rejected)


@pytest.mark.parametrize("field", ["id", "ts", "category", "lat", "lon"])
def test_fast002_missing_required_field_never_passes_quick_check(field):
    fields = {k: v for k, v in GOOD.items() if k != field}
    assert _clean_incident(fields, NOW + MAX_FUTURE_MS, BBOX) is None


def test_fast003_batch_check_agrees_with_the_entry_check():
    """The column-wise check of a whole batch accepts exactly what the per-entry quick check
    accepts, with the same values, on every combination above (one batch, 864,000 rows)."""
    rows = list(_entries())
    ok, ts, lat, lon, status, severity = _clean_incidents(rows, NOW + MAX_FUTURE_MS, BBOX)
    accepted = 0
    for k, fields in enumerate(rows):
        quick = _clean_incident(fields, NOW + MAX_FUTURE_MS, BBOX)
        if ok[k]:
            assert quick == (ts[k], lat[k], lon[k], status[k], severity[k]), fields
            accepted += 1
        else:
            assert quick is None, fields
    assert accepted >= 500, accepted


def test_fast004_batch_check_of_a_mixed_batch_keeps_each_row_apart():
    """A bad row does not spoil the good rows beside it, and non-UTF-8 text found anywhere in
    the batch rejects only its own row."""
    bad_text = {**GOOD, "id": "i-2", "text": "bad \ufffd byte"}
    no_lat = {k: v for k, v in GOOD.items() if k != "lat"}
    rows = [GOOD, bad_text, no_lat, {**GOOD, "id": "i-3", "lat": "abc"}, {**GOOD, "id": "i-4"}]
    ok = _clean_incidents(rows, NOW + MAX_FUTURE_MS, BBOX)[0]
    assert ok == [True, False, False, False, True]
