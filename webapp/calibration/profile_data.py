"""Active calibration profiles with their ``data`` (profile.json, about 100 kB of JSON each)
decoded once per process, not once per request.

Every page that shows or measures an X-ray chooses its profile among the C-arm's active
ones; reading and decoding each candidate's ``data`` cost about 5 ms of CPU per profile
per request. Candidates are now read without it, and their decoded data is kept in a small
per-process cache keyed by the profile's id and its ``data_digest`` (SHA-256 of the data,
set on every save), so an edited profile is never served stale. A row without a digest
(written around ``save()``) is always read afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from webapp.calibration.models import CalibrationProfile

CACHE_SIZE = 64
_cache: OrderedDict[tuple[int, str], dict] = OrderedDict()
_lock = threading.Lock()


def active_profiles(carm) -> list[CalibrationProfile]:
    """``carm``'s active profiles, ``data`` loaded (shared, read-only by convention: callers
    must not modify it) and ``attempt`` deferred."""
    rows = list(
        carm.profiles.filter(status=CalibrationProfile.Status.ACTIVE)
        .defer("data", "attempt")
    )
    for profile in rows:
        profile.data = _decoded_data(profile.pk, profile.data_digest)
    return rows


def _decoded_data(pk: int, digest: str) -> dict:
    key = (pk, digest)
    with _lock:
        if digest and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = CalibrationProfile.objects.filter(pk=pk).values_list("data", flat=True).first()
    data = data if isinstance(data, dict) else {}
    if not digest:
        return data
    with _lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data
