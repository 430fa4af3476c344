"""What one move of a feature's value adds to a ``Flips``, worked out once: the tag index's
(streams/engine/tag_index.py) memoized transitions (``FlipDelta``) and the linear comparisons' tags
by where a rise or a fall of the value puts them (``LinearMoves``)."""

from __future__ import annotations

from streams.engine.crossings import Thresholds
from streams.engine.flips import Flips
from streams.engine.guards import NUMERIC, Guard, finite, guard
from tag_rules.expr_atoms import Atom


def numeric_atom(atom: Atom) -> bool:
    """A comparison with a number (exact as a float) by a numeric operator (``NUMERIC``)."""
    return atom.test in NUMERIC and finite(atom.constant) and float(atom.constant) == atom.constant


class FlipDelta:
    """What the tag index's ``_FeatureIndex._flipped`` added to an empty ``Flips`` for one ``(old, new)``, added to
    another in one step per kind (``apply``): with 1,000 tags, a count's move crosses the same
    comparisons and ratio terms every time its customers go from ``n`` to ``n + 1``, and the
    bisections, directions and guard thresholds behind them were the index's largest cost."""

    __slots__ = ("always", "down_lists", "guarded", "up", "up_guarded_lists")

    def __init__(self, flips: Flips) -> None:
        # Lists in no order (the engine sorts what it evaluates: ``TagEngine._evaluate_flipped``);
        # sorting them was most of a ``FlipDelta``'s cost.
        self.always = list(flips.always)
        self.up = list(flips.up)
        down = list(flips.down)
        self.down_lists = [down, *flips.down_lists] if down else list(flips.down_lists)
        """``Flips.down`` and ``down_lists``: handed over as lists, not copied into a set."""
        self.guarded = list(flips.guarded)
        up_guarded = list(flips.ups_guarded())
        self.up_guarded_lists = [up_guarded] if up_guarded else []
        """``Flips.up_guarded`` (and its lists) as one list: a rise of a count puts every ratio tag
        with the count above the line there (``LinearMoves``), copied into a set at each event before."""

    def apply(self, out: Flips) -> None:
        if self.always:
            out.always.update(self.always)
        if self.up:
            out.up.update(self.up)
        if self.down_lists:
            out.down_lists.extend(self.down_lists)
        if self.guarded:
            out.guarded.update(self.guarded)
        if self.up_guarded_lists:
            out.up_guarded_lists.extend(self.up_guarded_lists)


class LinearMoves:
    """Where a rise (or a fall) of a value puts the tags of the linear comparisons on it, worked
    out once (the tag index's ``_FeatureIndex.freeze``): a per-entry loop was a third of the index's time."""

    __slots__ = ("always", "down", "fixed", "guarded", "thresholds", "up", "up_guarded", "up_tested")

    def __init__(self) -> None:
        self.fixed = FlipDelta(Flips())
        """What a move adds whatever the new value (``freeze``): the lists below, ``down`` as one of
        ``Flips.down_lists``."""
        self.always: list[int] = []
        self.guarded: list[int] = []
        self.down: list[int] = []
        self.up: list[int] = []
        self.up_guarded: list[int] = []
        self.up_tested: list[tuple[int, tuple[Guard, ...]]] = []
        """Tags with guards on this value: ``up_guarded`` only when the new value passes them."""
        self.thresholds = Thresholds()
        """The same for tags with one guard on this value, a numeric comparison (most: the guard a
        linear term implies), found by bisection instead of a test each."""

    def freeze(self) -> None:
        fixed = Flips(self.always)
        fixed.guarded.update(self.guarded)
        fixed.up.update(self.up)
        fixed.up_guarded.update(self.up_guarded)
        if self.down:
            fixed.down_lists.append(self.down)
        self.fixed = FlipDelta(fixed)
        self.thresholds.freeze()

    def add(self, tag: int, slope: int, guarded: bool, guards: tuple[Atom, ...], rising: bool | None) -> None:
        if rising is None or not slope:
            (self.guarded if guarded else self.always).append(tag)
        elif (slope > 0) != rising:
            self.down.append(tag)
        elif len(guards) == 1 and numeric_atom(guards[0]) and self.thresholds.add(
                tag, NUMERIC[guards[0].test][guards[0].constant_first], float(guards[0].constant)):
            pass
        elif guards:
            self.up_tested.append((tag, tuple(guard(g) for g in guards)))
        else:
            (self.up_guarded if guarded else self.up).append(tag)
