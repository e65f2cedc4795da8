"""Parsing the single sign-on claim maps from the environment (imported by settings)."""

from __future__ import annotations


def parse_map(text: str) -> dict[str, str]:
    """``a=Surgeon,b=Reviewer`` as a dict; a pair without ``=`` is refused with one line."""
    mapping: dict[str, str] = {}
    for pair in (part.strip() for part in text.split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"OIDC claim map entry {pair!r} is not claim-value=name")
        mapping[key.strip()] = value.strip()
    return mapping
