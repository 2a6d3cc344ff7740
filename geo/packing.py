"""The envelope both AreaSet and ReferenceData travel in through Redis: gzip'd JSON with a
format marker and version, deterministic bytes, and never pickle (it would execute code)."""

from __future__ import annotations

import gzip
import hashlib
import json
from typing import Any


def payload(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a document (what a content version is hashed from)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def pack(raw_payload: bytes) -> bytes:
    """Gzip with the mtime fixed at 0, so equal content gives equal bytes."""
    return gzip.compress(raw_payload, compresslevel=6, mtime=0)


def unpack(data: bytes, fmt: str, version: int, what: str) -> dict[str, Any]:
    """The document inside ``data``; ValueError naming ``what`` on anything unexpected."""
    return unpack_with_digest(data, fmt, version, what)[0]


def unpack_with_digest(
    data: bytes, fmt: str, version: int, what: str
) -> tuple[dict[str, Any], str]:
    """The document inside ``data`` and the sha256 hex of its JSON payload: the content version
    of what was packed, without serialising the document again to hash it."""
    try:
        raw = gzip.decompress(data)
        digest = hashlib.sha256(raw).hexdigest()
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not {what}: {exc}") from exc
    del raw  # the payload is as large as the document; do not hold both longer than needed
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ValueError(f"not {what}: missing format marker")
    if doc.get("version") != version:
        raise ValueError(f"unsupported format version {doc.get('version')!r} in {what}")
    return doc, digest
