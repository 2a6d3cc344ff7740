"""Incident states written in bulk (a batch of new reports, each once) are the same documents
the general path writes one by one, hostile text included."""

from __future__ import annotations

import json

import numpy as np
import redis

from cockpit.ingest.incidents import prepare_incidents

HOSTILE = ['quote " and \\ backslash', "<script>alert(1)</script>", "tab\tnew\nline \x01",
           "中文 地址 🚒", "\u2028 line separator"]  # fmt: skip


def _states(batch) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    out = {}
    for _shard, (_expire, flat) in batch.fresh.items():
        for k in range(0, len(flat), 2):
            out[flat[k]] = json.loads(flat[k + 1])
    return out


def test_sta001_bulk_states_equal_the_general_path(r: redis.Redis, loaded_city):
    geo = loaded_city
    rng = np.random.default_rng(5)
    pts = geo.areas.grids.geometry.representative_point()
    now_ms = int(r.time()[0]) * 1000
    entries = []
    for k in range(40):
        g = int(rng.integers(len(pts)))
        fields = {"id": f"s-{k}" if k % 7 else f'odd "id" {k}', "ts": str(now_ms - 1000 * k),
                  "category": "dispute", "lat": f"{pts.y.iloc[g]:.7f}",
                  "lon": f"{pts.x.iloc[g]:.7f}", "severity": str(1 + k % 4)}  # fmt: skip
        if k % 3 == 0:
            fields["text"] = HOSTILE[k % len(HOSTILE)]
            fields["reporter"] = "王 " + str(k)
        if k % 5 == 0:
            fields["status"] = "dispatched"
            fields["address"] = HOSTILE[(k + 1) % len(HOSTILE)]
        entries.append((f"{1000 + k}-0", fields))
    bulk = prepare_incidents(r, geo, entries, now_ms)
    # the same reports plus a resend of the first: the batch then takes the general path
    general = prepare_incidents(r, geo, [*entries, ("2000-0", entries[0][1])], now_ms)
    assert bulk.n_valid == 40 and general.n_valid == 40
    assert _states(bulk) == _states(general)
    assert len(_states(bulk)) == 40
    odd = _states(bulk)['odd "id" 0']
    assert odd["text"] == HOSTILE[0] and odd["reporter"] == "王 0"
