"""Did-you-mean hints for error messages: the closest known names to a mistyped one.

Every user-facing error that names an unknown key, part, data set or hook ends
with such a hint, so a typo costs one look, not a search through the docs.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def suggest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Closest matches of ``word`` among ``candidates`` (at most ``n``)."""
    cands = list(candidates)
    found = difflib.get_close_matches(word, cands, n=n, cutoff=0.6)
    if not found:
        # Prefix matches catch 'resnet9' -> 'resnet' that ratio-based matching can miss.
        found = [c for c in cands if word.startswith(c) or c.startswith(word)][:n]
    return found


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x' or 'y'?"`` for the closest candidates, or ``""`` when none is close."""
    found = suggest(word, candidates)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"
