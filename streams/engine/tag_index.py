"""Which tags an event can flip: the tag engine's incremental plan.

An event changes the values of the features it feeds, and nothing else (every time-driven change
before now was applied first, at its due time). A tag can only change when a value it reads
changes, and a tag whose condition is a boolean combination of comparisons with constants
(``spend_30d >= 500 and purchases_7d == 0``: ``tag_rules.expr_atoms``) only when one of those
comparisons flips: ``spend_30d >= 500`` flips only when the value crosses 500. Per feature the
index keeps the constants sorted, so the comparisons an event crosses are found by bisection:
with 1,000 tags over 33 features an event flips a handful, not the hundreds that read its
features.

Three classes of tag, per feature state key:

* *atoms*: conditions made of comparisons (``when``, and ``exit`` with hysteresis): evaluated when
  one of its comparisons on that feature flips;
* *opaque*: any other ``when`` (``spend_24h >= spend_30d / 2``): evaluated when the value changes;
* *stepped*: the tags the caller names (the engine: hysteresis or flap control whose conditions
  are not all comparisons): evaluated whenever the feature is fed.

A tag with hysteresis or flap control whose conditions are comparisons is an *atoms* tag too:
its outcome (streams/engine/flap.py) depends on the two conditions, the held state and the clock,
and the clock's part is the engine's: a ``min_duration`` or ``cooldown`` that ends is a due time,
evaluated (every tag) before any later event. So with no comparison flipped and no gate passed,
its outcome is the one of its last evaluation.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tag_rules.compiler import TagDef
from tag_rules.expr_atoms import Atom
from tag_rules.expr_values import HELPERS, PREFIX

_Entry = tuple[Atom, int]
"""A comparison and the index of the tag it belongs to."""


_NUMERIC: dict[Any, tuple[Callable[[Any, Any], bool], Callable[[Any, Any], bool]]] = {
    HELPERS[PREFIX + "lt"]: (operator.lt, operator.gt), HELPERS[PREFIX + "le"]: (operator.le, operator.ge),
    HELPERS[PREFIX + "gt"]: (operator.gt, operator.lt), HELPERS[PREFIX + "ge"]: (operator.ge, operator.le),
    operator.eq: (operator.eq, operator.eq), operator.ne: (operator.ne, operator.ne)}
"""An atom's test as a plain operator on finite numbers (where the rule helpers' None and type
guards never apply): (``value OP constant``, the same for ``constant OP value``)."""


def _finite(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v))


class _FeatureIndex:
    """The tags that read one feature state key, by how they are triggered."""

    __slots__ = ("always", "atoms", "bounds", "numeric", "on_change", "on_feed", "ordered")

    def __init__(self) -> None:
        self.on_feed: list[int] = []
        self.on_change: list[int] = []
        self.atoms: list[_Entry] = []
        self.bounds: list[float] = []
        """The numeric constants of ``ordered``, ascending."""
        self.ordered: list[_Entry] = []
        self.numeric: list[tuple[Callable[[Any, Any], bool], Any, int]] = []
        """``ordered`` as (operator, constant, tag): ``operator(value, constant)`` is the atom's truth
        for a finite number ``value``."""
        self.always: list[_Entry] = []
        """Comparisons with a non-numeric constant and bare features: checked at every change."""

    def add_atom(self, atom: Atom, tag: int) -> None:
        self.atoms.append((atom, tag))
        if atom.test in _NUMERIC and _finite(atom.constant):
            self.ordered.append((atom, tag))
        else:
            self.always.append((atom, tag))

    def freeze(self) -> None:
        self.ordered.sort(key=lambda e: float(e[0].constant))
        self.bounds = [float(a.constant) for a, _ in self.ordered]
        self.numeric = [(_NUMERIC[a.test][a.constant_first], a.constant, tag) for a, tag in self.ordered]
        self.on_feed = sorted(set(self.on_feed))
        self.on_change = sorted(set(self.on_change))

    def flipped(self, old: Any, new: Any, out: set[int]) -> None:
        """Adds to ``out`` the tags this feature going from ``old`` to ``new`` may change."""
        if self.on_feed:
            out.update(self.on_feed)
        if type(old) is type(new) and old == new:
            return
        if self.on_change:
            out.update(self.on_change)
        if _finite(old) and _finite(new):
            lo, hi = (old, new) if old <= new else (new, old)
            numeric = self.numeric
            for i in range(bisect_left(self.bounds, lo), bisect_right(self.bounds, hi)):
                op, constant, tag = numeric[i]
                if op(old, constant) != op(new, constant):
                    out.add(tag)
            check = self.always
        else:  # None, a string, a bool: no order to use
            check = self.atoms
        for atom, tag in check:
            if atom.holds(old) != atom.holds(new):
                out.add(tag)


def condition_atoms(tag: TagDef) -> tuple[Atom, ...] | None:
    """The comparisons of the tag's conditions (``when`` and ``exit``), or None when one of them is
    not a boolean combination of comparisons."""
    atoms = tag.when.atoms
    if tag.exit is None or atoms is None:
        return atoms
    exit_atoms = tag.exit.atoms
    return None if exit_atoms is None else atoms + exit_atoms


class TagIndex:
    """Built once per engine from its tags (in rule order) and the state key of each feature name."""

    def __init__(self, tags: Sequence[TagDef], key_of: Mapping[str, str], stepped: frozenset[str]) -> None:
        self._by_key: dict[str, _FeatureIndex] = {}
        for i, tag in enumerate(tags):
            atoms = None if tag.name in stepped else condition_atoms(tag)
            for name in tag.features:
                fi = self._for(key_of[name])
                if tag.name in stepped:
                    fi.on_feed.append(i)
                elif atoms is None:
                    fi.on_change.append(i)
            for atom in atoms or ():
                self._for(key_of[atom.name]).add_atom(atom, i)
        for fi in self._by_key.values():
            fi.freeze()

    def _for(self, key: str) -> _FeatureIndex:
        return self._by_key.setdefault(key, _FeatureIndex())

    def flipped(self, key: str, old: Any, new: Any, out: set[int]) -> None:
        """Adds to ``out`` the indexes of the tags that the feature state ``key`` going from value
        ``old`` to ``new`` (at one instant) may change."""
        fi = self._by_key.get(key)
        if fi is not None:
            fi.flipped(old, new, out)
