"""Which hidden units track what: correlate each unit's activation with simple text features.

A feature is a number per character, computed from the text alone and read as
"the state after reading this character": 1 inside a double-quoted span, the
bracket depth, the column in the line, 1 inside a URL or a [[wiki link]]. A unit
whose activation correlates strongly with one is the kind of interpretable
neuron the char-rnn blog post shows (a quote detector, a line-length counter).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FEATURES = ("quotes", "brackets", "line-position", "url", "wiki-link")
STRONG = 0.3  # |r| from which a unit counts as tracking a feature in the report's shortlist

_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')  # straight or curly double quotes
_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'|\]}]+|www\.[^\s<>\"'|\]}]+")
_WIKI_LINK = re.compile(r"\[\[[^\[\]\n]*\]\]")
_BRACKET_STEP = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


@dataclass(frozen=True)
class UnitScore:
    """How well one hidden unit tracks one feature."""

    layer: int
    unit: int
    feature: str
    correlation: float  # Pearson r over the characters, signed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _inside(text: str, pattern: re.Pattern) -> np.ndarray:
    """1.0 for every character that is part of a match of `pattern`, else 0.0."""
    mask = np.zeros(len(text), np.float32)
    for match in pattern.finditer(text):
        mask[match.start() : match.end()] = 1.0
    return mask


def _bracket_depth(text: str) -> np.ndarray:
    """Nesting depth of (), [] and {} after each character, never below 0."""
    depth, out = 0, np.empty(len(text), np.float32)
    for t, char in enumerate(text):
        depth = max(0, depth + _BRACKET_STEP.get(char, 0))
        out[t] = depth
    return out


def _line_position(text: str) -> np.ndarray:
    """Characters since the last newline, counting the character itself (0 at a newline)."""
    is_newline = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32) == ord("\n")
    index = np.arange(len(text))
    last_newline = np.maximum.accumulate(np.where(is_newline, index, -1))
    return (index - last_newline).astype(np.float32)


def text_features(text: str) -> dict[str, np.ndarray]:
    """Each feature of `FEATURES` as a float32 array (T,), one value per character of `text`."""
    return {
        "quotes": _inside(text, _QUOTED),
        "brackets": _bracket_depth(text),
        "line-position": _line_position(text),
        "url": _inside(text, _URL),
        "wiki-link": _inside(text, _WIKI_LINK),
    }


def correlations(activations: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of each column of `activations` (T, H) with `feature` (T,); 0 for a constant unit.

    Rows where an activation is NaN (characters the model did not read) are left out.
    """
    keep = ~np.isnan(activations).any(axis=1)
    x = activations[keep].astype(np.float64)
    f = feature[keep].astype(np.float64)
    if not len(f) or np.ptp(f) == 0:
        return np.zeros(activations.shape[1])
    varies = np.ptp(x, axis=0) > 0  # a constant unit's centred values are rounding noise, not signal
    x -= x.mean(axis=0)
    f -= f.mean()
    norms = np.linalg.norm(x, axis=0) * np.linalg.norm(f)
    r = (f @ x) / np.where(varies, norms, 1.0)  # (H,)
    return np.where(varies, r, 0.0)


def rank_units(
    activations: list[np.ndarray], features: dict[str, np.ndarray], *, feature: str | None = None, top: int = 10
) -> list[UnitScore]:
    """The `top` units whose activations track a feature best, by |r|.

    Args:
        activations: per layer, (T, H) activations over the same characters the features describe.
        features: name -> (T,) values, e.g. from `text_features`. Features constant over the
            text (no quotes at all, say) are skipped: no correlation is defined.
        feature: rank units for this feature only; None ranks every (unit, feature) pair and
            keeps each unit once, with the feature it tracks best.
        top: how many scores to return.
    """
    best: dict[tuple[int, int], UnitScore] = {}
    for name in [n for n in varying_features(features) if feature is None or n == feature]:
        for layer, acts in enumerate(activations):
            for unit, r in enumerate(correlations(acts, features[name])):
                key = (layer, unit)
                if key not in best or abs(r) > abs(best[key].correlation):
                    best[key] = UnitScore(layer, unit, name, float(r))
    return sorted(best.values(), key=lambda s: -abs(s.correlation))[:top]


def varying_features(features: dict[str, np.ndarray]) -> list[str]:
    """The names of the features that take more than one value, so a correlation is defined."""
    return [name for name, values in features.items() if len(values) and np.ptp(values) > 0]


@dataclass(frozen=True)
class Pick:
    """A unit worth looking at, and why."""

    layer: int
    unit: int
    reason: str  # e.g. "tracks quotes (r = +0.71)"


def shortlist(activations: list[np.ndarray], features: dict[str, np.ndarray], count: int) -> list[Pick]:
    """`count` units to look at first: for each feature, strongest first, its best unit not yet
    picked; then other units that track a feature with |r| >= `STRONG`; then the units whose
    activation varies most over the text."""
    ranked = {name: rank_units(activations, features, feature=name, top=count) for name in varying_features(features)}
    picks: dict[tuple[int, int], Pick] = {}

    def add(layer: int, unit: int, reason: str) -> None:
        if len(picks) < count:
            picks.setdefault((layer, unit), Pick(layer, unit, reason))

    def tracks(s: UnitScore) -> str:
        return f"tracks {s.feature} (r = {s.correlation:+.2f})"

    for name in sorted(ranked, key=lambda n: -abs(ranked[n][0].correlation)):
        free = next((s for s in ranked[name] if (s.layer, s.unit) not in picks), None)
        if free is not None:
            add(free.layer, free.unit, tracks(free))
    for s in sorted((s for scores in ranked.values() for s in scores), key=lambda s: -abs(s.correlation)):
        if abs(s.correlation) >= STRONG:
            add(s.layer, s.unit, tracks(s))
    spread = [(float(std), layer, unit) for layer, acts in enumerate(activations)
              for unit, std in enumerate(np.nanstd(acts, axis=0))]
    for std, layer, unit in sorted(spread, key=lambda s: -s[0]):
        add(layer, unit, f"varies most (std {std:.2f})")
    return list(picks.values())
