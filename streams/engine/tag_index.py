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

Which way a comparison flipped matters too (``Flips``). A plain tag's condition (no hysteresis,
no flap control) uses only ``and``, ``or`` and ``not``, so it is monotone in its comparisons'
truth, each taken with its sign (``Atom.negated``): a tag that is not held can only come in when
one of them moves *toward* true, a held one only leave when one moves *toward* false. The
engine keeps a plain tag held exactly when its condition holds (every time-driven change before
now was applied at its due time), so ``Flips.chosen`` drops the others. That is what makes 1,000
narrow segments cheap: ``purchases_30d >= 20 and cart_removals_7d < 3`` is crossed on every
first removal (``< 3`` moves toward false) but cannot come in then.

A plain tag may also compare linear forms of features (``buys >= views_24h / 3``: ``CompiledExpr.monotone``,
tag_rules/expr_linear.py). Such a comparison's truth rises or falls with each feature it reads, by
the sign of the feature's coefficient, so a change of a feature moves it one known way (a value
that is not a finite number: either way). The index cannot tell whether it flipped (that needs the
other features' values), so the tag is put on the side it moved toward (``Flips.up`` or
``down``) at every change of such a feature, and the direction alone decides: a held
``buys >= views_24h / 3`` is not evaluated when ``buys`` rises, one not held when ``views_24h`` does.
A tag with guards (below) that is not held is evaluated on a move toward true only when they hold
(``Flips.up_guarded``): ``views_24h >= 20 and buys >= views_24h / 3`` not at every purchase, only
for the customers with 20 views. Its guards on the value that moved are checked here, at once:
``spend_30d >= 1000 and views_1h >= spend_30d / 4`` implies ``views_1h >= 250``
(``expr_linear.implied_guards``), so a view that leaves ``views_1h`` under 250 passes it by.

An *opaque* plain tag that is an ``and`` with comparisons among its terms (``CompiledExpr.guards``:
``views_24h >= 20 and buys >= views_24h / 3``) is *guarded*: a customer who does not hold it is
evaluated only when every guard holds for the new values (``Flips.guarded``; the engine checks
them, as it has the values). A false guard makes the condition false whatever the rest, so this
needs no assumption on the held state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from streams.engine.crossings import Crossings, Thresholds
from streams.engine.flip_moves import FlipDelta, LinearMoves, numeric_atom
from streams.engine.flips import Flips, destination
from streams.engine.guards import NUMERIC, finite
from tag_rules.compiler import TagDef
from tag_rules.expr_atoms import Atom

_Entry: TypeAlias = tuple[Atom, int, int]
"""A comparison, the index of the tag it belongs to and its sign: +1 (or -1 when negated) in a
plain tag, 0 in one whose outcome is not monotone in it (hysteresis, flap control)."""


class _FeatureIndex:
    """The tags that read one feature state key, by how they are triggered."""

    __slots__ = ("always", "atoms", "crossings", "either", "fall", "first", "first_rest", "limit", "linear",
                 "memo", "memoized", "none_truth", "numeric",
                 "on_change", "on_feed", "on_guarded", "once", "ordered", "rise", "with_guards")

    def __init__(self) -> None:
        self.memo: dict[int, FlipDelta] = {}
        """``flipped``'s result for an int (or None) going to an int, by ``(old, new)`` as one int
        (``new * MEMO_RANGE + old + 1``, None as -1: a small int hashes and compares in a few
        instructions, a tuple of two in a few hundred) (``FlipDelta``), from the second call with them
        on (``once``)."""
        self.once: set[int] = set()
        """The ``(old, new)`` seen once and not remembered yet: a transition is remembered at its
        second call. A heavy customer's count climbs past every other's (the live benchmark's
        busiest reaches 870 purchases in 30,000 events), and a ``FlipDelta`` built for a transition
        that never recurs cost more than the call it was to spare: half the calls that missed."""
        self.memoized = False
        """Whether ``memo`` is used: only with ``MEMO_MIN_ATOMS`` comparisons and linear terms on the
        feature or more; with fewer (the 50 reference tags' features), computing the result costs no
        more than looking it up."""
        self.with_guards: Container[int] = frozenset()
        self.on_feed: list[int] = []
        self.on_change: list[int] = []
        self.on_guarded: list[int] = []
        """Plain tags of ``on_change`` kind with guards (``Flips.guarded``)."""
        self.atoms: list[_Entry] = []
        self.ordered: list[_Entry] = []
        """Comparisons with a number (exact as a float) by a numeric operator."""
        self.numeric: list[tuple[Callable[[Any, Any], bool], Any, int, int]] = []
        """``ordered`` as (operator, constant, tag, sign): ``operator(value, constant)`` is the atom's
        truth for a finite number ``value``."""
        self.crossings = Crossings((), ())
        """``numeric`` by where each flips (a change between two finite numbers)."""
        self.none_truth: list[bool] = []
        self.first: list[Thresholds] = []
        """A first value (from None): ``numeric``'s order comparisons false for None, by where their
        flip to true puts their tag (``flips.destination``: always, down, up_guarded, up), found by
        bisection. A first visit crosses every ``since_last_visit < N`` at once (76 with 1,000 tags)."""
        self.first_rest: list[tuple[Callable[[Any, Any], bool], Any, int, int, bool]] = []
        """The others (``==``, ``!=``, true for None), tested one by one: (operator, constant, tag, sign,
        truth for None)."""
        """Each of ``ordered``'s truth for the value None (no data yet: a recency, a maximum)."""
        self.always: list[_Entry] = []
        """Comparisons with a non-numeric constant and bare features: checked at every change."""
        self.linear: list[tuple[int, int, bool, tuple[Atom, ...]]] = []
        """Comparisons of linear forms reading this feature, as (tag, signed slope, whether the tag
        has guards, its guards on this feature): slope +1 the tag's condition can only rise with
        the value, -1 only fall, 0 either way."""
        self.rise = LinearMoves()
        self.fall = LinearMoves()
        self.either = LinearMoves()
        """``linear`` by where a rise, a fall, or a change either way (not finite numbers) puts them."""
        self.limit = math.inf
        """Values within ``±limit`` keep the slopes of every ``linear`` comparison (``Linear.limit``)."""

    def add_linear(self, tag: int, slope: int, limit: float, guarded: bool, guards: Sequence[Atom]) -> None:
        self.linear.append((tag, slope, guarded, tuple(guards)))
        self.limit = min(self.limit, limit)

    def add_atom(self, atom: Atom, tag: int, plain: bool) -> None:
        entry = (atom, tag, (-1 if atom.negated else 1) if plain else 0)
        self.atoms.append(entry)
        if numeric_atom(atom):
            self.ordered.append(entry)
        else:
            self.always.append(entry)

    def freeze(self, with_guards: Container[int]) -> None:
        self.with_guards = with_guards
        self.memo = {}
        self.once = set()
        self.memoized = len(self.atoms) + len(self.linear) >= MEMO_MIN_ATOMS
        self.numeric = [(NUMERIC[a.test][a.constant_first], a.constant, tag, sign) for a, tag, sign in self.ordered]
        self.crossings = Crossings(self.numeric, with_guards)
        self.none_truth = [bool(a.holds(None)) for a, _, _ in self.ordered]
        self.first = [Thresholds() for _ in range(4)]
        self.first_rest = []
        for (op, constant, tag, sign), none_true in zip(self.numeric, self.none_truth, strict=True):
            if none_true or not self.first[destination(tag, sign, True, with_guards)].add(tag, op, float(constant)):
                self.first_rest.append((op, constant, tag, sign, none_true))
        for th in self.first:
            th.freeze()
        self.on_feed = sorted(set(self.on_feed))
        self.on_change = sorted(set(self.on_change))
        self.on_guarded = sorted(set(self.on_guarded))
        self.rise, self.fall, self.either = LinearMoves(), LinearMoves(), LinearMoves()
        for tag, slope, guarded, guards in self.linear:
            self.rise.add(tag, slope, guarded, guards, True)
            self.fall.add(tag, slope, guarded, guards, False)
            self.either.add(tag, slope, guarded, guards, None)
        for moves in (self.rise, self.fall):
            moves.freeze()

    def flipped(self, old: Any, new: Any, out: Flips) -> None:
        """Adds to ``out`` the tags this feature going from ``old`` to ``new`` may change: for counts
        (ints, or None at a first value, to an int) the result of an earlier call with the same
        values (``memo``: a pure function of them, remembered at the second call), else ``_flipped``'s."""
        if self.memoized and type(new) is int and (old is None or type(old) is int):
            n: int = new
            o: int = -1 if old is None else old
            if not (0 <= n < MEMO_RANGE and 0 <= o + 1 < MEMO_RANGE):  # a count beyond the keys' range
                self._flipped(old, new, out)
                return
            key = n * MEMO_RANGE + o + 1
            delta = self.memo.get(key)
            if delta is not None:
                delta.apply(out)
                return
            once = self.once
            if key in once:  # its second call: remembered from now on
                once.discard(key)
                scratch = Flips((), self.with_guards)
                self._flipped(old, new, scratch)
                delta = FlipDelta(scratch)
                if len(self.memo) < MEMO_MAX:
                    self.memo[key] = delta
                delta.apply(out)
                return
            if len(once) < MEMO_MAX:
                once.add(key)
        self._flipped(old, new, out)

    def _flipped(self, old: Any, new: Any, out: Flips) -> None:
        if self.on_feed:
            out.always.update(self.on_feed)
        if type(old) is type(new) and old == new:
            return
        if self.on_change:
            out.always.update(self.on_change)
        if self.on_guarded:
            out.guarded.update(self.on_guarded)
        if self.linear:
            self._moved(old, new, out)
        if finite(old) and finite(new):
            self.crossings.flipped(old, new, out)
            check = self.always
        elif old is None and finite(new):  # a first value
            self._first(new, out)
            check = self.always
        elif new is None and finite(old):  # the last value gone
            for (op, constant, tag, sign), none_true in zip(self.numeric, self.none_truth, strict=True):
                now_true = none_true if new is None else op(new, constant)
                if (none_true if old is None else op(old, constant)) != now_true:
                    out.add(tag, sign, now_true)
            check = self.always
        else:  # a string, a bool: no order to use
            check = self.atoms
        for atom, tag, sign in check:
            now_true = atom.holds(new)
            if atom.holds(old) != now_true:
                out.add(tag, sign, now_true)


    def _first(self, new: Any, out: Flips) -> None:
        """The tags of ``numeric`` whose comparison a first value ``new`` (a finite number) flips."""
        always, down, up_guarded, up = self.first
        if always.live:
            always.passing(new, out.always)
        if down.live:
            down.passing(new, out.down)
        if up_guarded.live:
            up_guarded.passing(new, out.up_guarded)
        if up.live:
            up.passing(new, out.up)
        for op, constant, tag, sign, none_true in self.first_rest:
            now_true = op(new, constant)
            if none_true != now_true:
                out.add(tag, sign, now_true)

    def _moved(self, old: Any, new: Any, out: Flips) -> None:
        """The tags of ``linear``, on the side the value going from ``old`` to ``new`` moved them."""
        limit = self.limit
        if finite(old) and finite(new) and -limit <= old <= limit and -limit <= new <= limit:
            moves = self.rise if new > old else self.fall
            moves.fixed.apply(out)
            if moves.thresholds.live:
                moves.thresholds.passing(new, out.up_guarded)
            for tag, guards in moves.up_tested:
                for g in guards:  # a guard on this value fails: it cannot come in
                    if not g.holds_for(new):
                        break
                else:
                    out.up_guarded.add(tag)
        else:  # either way; a tag with guards that is not held can still only come in when they hold
            out.always.update(self.either.always)
            out.guarded.update(self.either.guarded)


MEMO_MIN_ATOMS: Final = 8
"""Comparisons and linear terms on a feature from which its count transitions are memoized."""
MEMO_RANGE: Final = 1 << 20
"""Counts from 0 to below this are memoized (``_FeatureIndex.memo``'s keys). Under 2**30 on both
sides of ``new * MEMO_RANGE``: compiled, a product of two ints that small is one C multiplication
(a larger operand takes Python's own, ~130 instructions)."""
MEMO_MAX: Final = 4096
"""Count transitions remembered per feature state key (``_FeatureIndex.memo``): a count's
``(old, new)`` pairs recur (``n`` to ``n + 1``), ~4,000 per feature in 50,000 events with 1,000 tags."""


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
        self.with_guards = frozenset(i for i, t in enumerate(tags)
                                     if t.when.guards and t.exit is None and not t.flap_controlled
                                     and t.name not in stepped)
        """Plain tags with guards (``CompiledExpr.guards``): a move toward true is checked against them."""
        for i, tag in enumerate(tags):
            atoms = None if tag.name in stepped else condition_atoms(tag)
            plain = tag.exit is None and not tag.flap_controlled
            monotone = tag.when.monotone if plain and atoms is None and tag.name not in stepped else None
            for name in tag.features:
                fi = self._for(key_of[name])
                if tag.name in stepped:
                    fi.on_feed.append(i)
                elif atoms is None and monotone is None:
                    (fi.on_guarded if plain and tag.when.guards else fi.on_change).append(i)
            for atom in atoms or ():
                self._for(key_of[atom.name]).add_atom(atom, i, plain)
            if monotone is not None:
                for atom in monotone.atoms:
                    self._for(key_of[atom.name]).add_atom(atom, i, True)
                for form in monotone.linear:
                    for name, slope in form.slopes:
                        self._for(key_of[name]).add_linear(
                            i, -slope if form.negated else slope, form.limit, i in self.with_guards,
                            [g for g in tag.when.guards if key_of[g.name] == key_of[name]])
        for fi in self._by_key.values():
            fi.freeze(self.with_guards)

    def flips(self, always: Iterable[int] = ()) -> Flips:
        """An empty ``Flips`` for one event (``always``: tags to evaluate whatever it flips)."""
        return Flips(always, self.with_guards)

    def _for(self, key: str) -> _FeatureIndex:
        return self._by_key.setdefault(key, _FeatureIndex())

    def flipped(self, key: str, old: Any, new: Any, out: Flips) -> None:
        """Adds to ``out`` the indexes of the tags that the feature state ``key`` going from value
        ``old`` to ``new`` (at one instant) may change, by which way they can."""
        fi = self._by_key.get(key)
        if fi is not None:
            fi.flipped(old, new, out)
