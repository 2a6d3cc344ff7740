"""The area hierarchy: city > district > street > community > grid, plus special grids.

An :class:`AreaSet` is immutable once built. It wraps one GeoDataFrame and answers the
hierarchy questions the worker and the map need. It serialises without pickle (gzip'd JSON
with WKB hex geometry) because it travels through Redis, where a pickle would be a code
execution risk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.packing import pack, payload, unpack_with_digest

LEVELS: tuple[str, ...] = ("city", "district", "street", "community", "grid")
SPECIAL = "special"
#: Sort order of levels; special grids sit after the tiling levels.
LEVEL_ORDER: dict[str, int] = {lvl: i for i, lvl in enumerate((*LEVELS, SPECIAL))}
SPECIAL_KINDS: tuple[str, ...] = ("school", "park", "industrial")
COLUMNS: tuple[str, ...] = ("level", "parent", "name_zh", "name_en", "kind", "geometry")
CRS = "EPSG:4326"
_FORMAT = "cockpit-areas"
_FORMAT_VERSION = 1


class AreaSet:
    """An immutable, validated area hierarchy.

    ``frame`` is a GeoDataFrame indexed by ``id`` with columns ``level``, ``parent``
    (None for the root), ``name_zh``, ``name_en``, ``kind`` and ``geometry`` (EPSG:4326),
    sorted by level order then id.
    """

    def __init__(self, frame: gpd.GeoDataFrame) -> None:
        self.frame: gpd.GeoDataFrame = _normalise(frame)
        _validate(self.frame)
        self._parent: dict[str, str | None] = dict(
            zip(self.frame.index, self.frame["parent"], strict=True)
        )
        self._level: dict[str, str] = dict(zip(self.frame.index, self.frame["level"], strict=True))
        children: dict[str, list[str]] = {i: [] for i in self.frame.index}
        for area_id, parent in self._parent.items():
            if parent is not None:
                children[parent].append(area_id)
        self._children = children
        self._root_id = next(i for i, p in self._parent.items() if p is None)

    # -- construction helpers -------------------------------------------------------------

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]]) -> AreaSet:
        """Build from dicts with keys id, level, parent, name_zh, name_en, kind, geometry."""
        rows = list(records)
        frame = gpd.GeoDataFrame(
            {
                "id": [r["id"] for r in rows],
                "level": [r["level"] for r in rows],
                "parent": [r.get("parent") for r in rows],
                "name_zh": [r.get("name_zh", r["id"]) for r in rows],
                "name_en": [r.get("name_en", r["id"]) for r in rows],
                "kind": [r.get("kind", "") for r in rows],
            },
            geometry=[r["geometry"] for r in rows],
            crs=CRS,
        )
        return cls(frame.set_index("id"))

    # -- hierarchy ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, area_id: object) -> bool:
        return area_id in self._parent

    def __repr__(self) -> str:
        counts = self.frame["level"].value_counts()
        parts = ", ".join(f"{lvl}={counts.get(lvl, 0)}" for lvl in LEVEL_ORDER)
        return f"AreaSet(root={self.root_id!r}, {parts})"

    @property
    def root_id(self) -> str:
        """Id of the single area without a parent."""
        return self._root_id

    @cached_property
    def grids(self) -> gpd.GeoDataFrame:
        """Comprehensive grids sorted by id; row positions are the locator's grid positions."""
        return self.frame[self.frame["level"] == "grid"].sort_index()

    def level_of(self, area_id: str) -> str:
        """Level of an area; KeyError if unknown."""
        return self._level[area_id]

    def parent_of(self, area_id: str) -> str | None:
        """Parent id of an area (None for the root); KeyError if unknown."""
        return self._parent[area_id]

    def children(self, area_id: str) -> list[str]:
        """Direct children (all levels, special grids included), sorted by level then id."""
        return list(self._children[area_id])

    def ancestors(self, area_id: str) -> list[str]:
        """Ancestors, parent first, up to the root."""
        out: list[str] = []
        parent = self._parent[area_id]
        while parent is not None:
            out.append(parent)
            parent = self._parent[parent]
        return out

    def descendants(self, area_id: str, level: str | None = None) -> list[str]:
        """All areas below ``area_id`` (optionally only of ``level``), sorted by level then id."""
        if area_id not in self._children:
            raise KeyError(area_id)
        found: list[str] = []
        stack = list(self._children[area_id])
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(self._children[node])
        if level is not None:
            found = [i for i in found if self._level[i] == level]
        found.sort(key=lambda i: (LEVEL_ORDER[self._level[i]], i))
        return found

    def grid_ancestors_table(self) -> pd.DataFrame:
        """Per grid id, the id of its ancestor at each level above grid ("" if none).

        Columns ``community, street, district, city``; lets callers roll grid counts up
        with one vectorised ``groupby`` instead of walking the tree per event.
        """
        cols = [lvl for lvl in reversed(LEVELS[:-1])]
        data: dict[str, list[str]] = {c: [] for c in cols}
        for grid_id in self.grids.index:
            found = {self._level[a]: a for a in self.ancestors(grid_id)}
            for c in cols:
                data[c].append(found.get(c, ""))
        return pd.DataFrame(data, index=pd.Index(self.grids.index, name="id"))

    # -- identity and serialisation -------------------------------------------------------

    def _payload(self) -> bytes:
        rows = [
            [
                str(i),
                r.level,
                r.parent,
                r.name_zh,
                r.name_en,
                r.kind,
                shapely.to_wkb(r.geometry, hex=True),
            ]
            for i, r in zip(self.frame.index, self.frame.itertuples(index=False), strict=True)
        ]
        doc = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "crs": CRS,
            "columns": ["id", "level", "parent", "name_zh", "name_en", "kind", "wkb"],
            "rows": rows,
        }
        return payload(doc)

    @cached_property
    def version(self) -> str:
        """sha256 hex of the content; equal sets give equal versions (cache key)."""
        return hashlib.sha256(self._payload()).hexdigest()

    def to_bytes(self) -> bytes:
        """Gzip'd JSON with WKB hex geometries; deterministic (gzip mtime fixed at 0)."""
        return pack(self._payload())

    @classmethod
    def from_bytes(cls, data: bytes) -> AreaSet:
        """Inverse of :meth:`to_bytes`; raises ValueError on anything unexpected.

        The version is the hash of the payload read (what :attr:`version` hashes), so a reader
        need not serialise the whole set again to learn it.
        """
        doc, digest = unpack_with_digest(data, _FORMAT, _FORMAT_VERSION, "a serialised AreaSet")
        rows = doc.pop("rows")
        del doc
        frame = gpd.GeoDataFrame(
            {
                "id": [r[0] for r in rows],
                "level": [r[1] for r in rows],
                "parent": [r[2] for r in rows],
                "name_zh": [r[3] for r in rows],
                "name_en": [r[4] for r in rows],
                "kind": [r[5] for r in rows],
            },
            geometry=shapely.from_wkb(np.array([r[6] for r in rows], dtype=object)),
            crs=CRS,
        )
        del rows
        areas = cls(frame.set_index("id"))
        areas.__dict__["version"] = digest  # the cached_property's slot
        return areas

    # -- map payload ----------------------------------------------------------------------

    def to_geojson(
        self, level: str | list[str], ids: set[str] | None = None, precision: int = 6
    ) -> dict[str, Any]:
        """FeatureCollection of the areas at ``level`` (optionally only ``ids``).

        Grid and special features also carry their ancestors' names (``community_zh``,
        ``street_en``, ...) so a tooltip needs no second lookup. Coordinates are rounded to
        ``precision`` decimals (6 is about 0.1 m) to keep the payload small.
        """
        sel, geoms = self._rounded(level, ids, precision)
        geo_json = shapely.to_geojson(geoms)
        # plain dicts and lists: pandas row access is ~10x slower at 50k features
        names_zh = dict(zip(self.frame.index, self.frame["name_zh"], strict=True))
        names_en = dict(zip(self.frame.index, self.frame["name_en"], strict=True))
        features = []
        for area_id, lvl, parent, zh, en, kind, gj in zip(
            sel.index,
            sel["level"],
            sel["parent"],
            sel["name_zh"],
            sel["name_en"],
            sel["kind"],
            geo_json,
            strict=True,
        ):
            props: dict[str, Any] = {
                "id": area_id,
                "level": lvl,
                "parent": parent,
                "name_zh": zh,
                "name_en": en,
            }
            if lvl in ("grid", SPECIAL):
                props["kind"] = kind
                found = {self._level[a]: a for a in self.ancestors(area_id)}
                for up in ("community", "street", "district"):
                    anc = found.get(up)
                    props[f"{up}_zh"] = names_zh[anc] if anc else ""
                    props[f"{up}_en"] = names_en[anc] if anc else ""
            features.append(
                {"type": "Feature", "id": area_id, "properties": props, "geometry": json.loads(gj)}
            )
        return {"type": "FeatureCollection", "features": features}

    def _rounded(
        self, level: str | list[str], ids: set[str] | None, precision: int
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows at ``level`` (optionally only ``ids``) and their geometries with
        coordinates rounded to ``precision`` decimals."""
        levels = [level] if isinstance(level, str) else list(level)
        for lvl in levels:
            if lvl not in LEVEL_ORDER:
                raise ValueError(f"unknown level {lvl!r}; expected one of {list(LEVEL_ORDER)}")
        sel = self.frame[self.frame["level"].isin(levels)]
        if ids is not None:
            sel = sel[sel.index.isin(list(ids))]
        geoms = shapely.transform(
            np.asarray(sel.geometry.values, dtype=object), lambda c: np.round(c, precision)
        )
        return sel, geoms

    def served_geojson(
        self, level: str | list[str], ids: set[str] | None = None, precision: int = 6
    ) -> bytes:
        """Compact UTF-8 GeoJSON of the areas at ``level`` (optionally only ``ids``), as the map
        draws them: the same features and coordinates as :meth:`to_geojson`, with only the
        properties the map reads (grid and special features: ``name_zh``, ``name_en`` and their
        ancestors' names for the tooltip; other levels: ``level``, ``name_zh``, ``name_en``).
        The id travels once, as the feature's ``id``.

        Written as text around shapely's GeoJSON of each geometry: no Python object per
        coordinate, which at 20,000 grids took over a second and a peak of ~100 MB.
        """
        sel, geoms = self._rounded(level, ids, precision)
        names_zh = dict(zip(self.frame.index, self.frame["name_zh"], strict=True))
        names_en = dict(zip(self.frame.index, self.frame["name_en"], strict=True))

        def text(value: object) -> str:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

        parts = []
        for area_id, lvl, zh, en, gj in zip(
            sel.index, sel["level"], sel["name_zh"], sel["name_en"], shapely.to_geojson(geoms),
            strict=True,
        ):  # fmt: skip
            props: dict[str, str] = {"name_zh": zh, "name_en": en}
            if lvl in ("grid", SPECIAL):
                found = {self._level[a]: a for a in self.ancestors(area_id)}
                for up in ("community", "street", "district"):
                    anc = found.get(up)
                    props[f"{up}_zh"] = names_zh[anc] if anc else ""
                    props[f"{up}_en"] = names_en[anc] if anc else ""
            else:
                props = {"level": lvl, **props}
            parts.append(
                f'{{"type":"Feature","id":{text(area_id)},"properties":{text(props)},'
                f'"geometry":{gj}}}'
            )
        body = '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"
        return body.encode("utf-8")


def _normalise(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Copy into the canonical column set, dtypes and sort order."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ValueError("AreaSet needs a geopandas.GeoDataFrame")
    if "id" in frame.columns:
        frame = frame.set_index("id")
    missing = [c for c in ("level", "parent", "name_zh", "name_en") if c not in frame.columns]
    if missing:
        raise ValueError(f"AreaSet frame lacks column(s): {', '.join(missing)}")
    if frame.crs is not None and not frame.crs.equals(CRS):
        raise ValueError(f"AreaSet geometry must be in {CRS}, got {frame.crs.to_string()}")

    def clean_parent(p: object) -> str | None:
        # NaN, None and "" all mean "no parent": files spell the root differently.
        if p is None or p is pd.NA or (isinstance(p, float) and np.isnan(p)) or p == "":
            return None
        return str(p)

    index = pd.Index([str(i) for i in frame.index], name="id")
    # object dtype on purpose: pandas 3 would infer "str" and turn the root's None into NaN
    parents = pd.Series([clean_parent(p) for p in frame["parent"]], dtype=object, index=index)
    out = gpd.GeoDataFrame(
        {
            "level": [str(v) for v in frame["level"]],
            "parent": parents,
            "name_zh": [str(v) for v in frame["name_zh"]],
            "name_en": [str(v) for v in frame["name_en"]],
            "kind": [str(v) for v in frame["kind"]] if "kind" in frame else [""] * len(frame),
        },
        geometry=np.asarray(frame.geometry.values, dtype=object),
        crs=CRS,
        index=index,
    )
    levels, names = out["level"].tolist(), out.index.tolist()
    order = sorted(range(len(out)), key=lambda k: (LEVEL_ORDER.get(levels[k], 99), names[k]))
    return out.iloc[order]


def _validate(frame: gpd.GeoDataFrame) -> None:
    """Raise ValueError naming the first problem found."""
    ids = frame.index
    if len(frame) == 0:
        raise ValueError("AreaSet is empty")
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"duplicate area ids: {', '.join(map(str, dup[:5]))}")
    bad_levels = sorted(set(frame["level"]) - set(LEVEL_ORDER))
    if bad_levels:
        raise ValueError(f"invalid level(s) {bad_levels}; expected one of {list(LEVEL_ORDER)}")
    level = dict(zip(ids, frame["level"], strict=True))
    roots = [i for i, p in zip(ids, frame["parent"], strict=True) if p is None]
    if len(roots) != 1:
        raise ValueError(f"expected exactly one root area (no parent), found {roots[:5]}")
    for area_id, parent in zip(ids, frame["parent"], strict=True):
        if parent is None:
            continue
        if parent not in level:
            raise ValueError(f"area {area_id!r} has unknown parent {parent!r}")
        # A parent must sit strictly higher; this also rules out cycles.
        if LEVEL_ORDER[level[parent]] >= LEVEL_ORDER[level[area_id]] or level[parent] == SPECIAL:
            raise ValueError(
                f"area {area_id!r} ({level[area_id]}) cannot have parent {parent!r} "
                f"({level[parent]})"
            )
    kinds = frame["kind"]
    # the demo uses SPECIAL_KINDS; imported files may bring their own kinds
    bad_kind = frame.index[(frame["level"] == SPECIAL) & (kinds == "")].tolist()
    if bad_kind:
        raise ValueError(f"special grids need a kind (e.g. {SPECIAL_KINDS}): {bad_kind[:5]}")
    types = shapely.get_type_id(np.asarray(frame.geometry.values, dtype=object))
    # 3 = Polygon, 6 = MultiPolygon
    bad_geom = frame.index[~np.isin(types, (3, 6))].tolist()
    if bad_geom:
        raise ValueError(f"areas need Polygon or MultiPolygon geometry: {bad_geom[:5]}")
