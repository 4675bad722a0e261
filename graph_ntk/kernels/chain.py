r"""Plans for the tiled executor: a program as a chain of aggregation stages with readout taps.

Most graph networks are a *trunk* of node-level ops (pointwise ops and aggregations) from
which graph-level readouts branch off: the GNTK with jumping knowledge reads out every
block, ``FanOut(2) -> parallel(readout, rest) -> FanInSum``. :func:`chain_plan` writes such
a program as

* ``trunk``: pointwise ops, ``("agg", Aggregate)`` entries and ``("tap", Tap)`` entries, in
  order — a tap reads the trunk's activation at its position;
* ``expr``: how the taps' graph-level kernels combine: :class:`Sum` of terms (taps or
  nested sums) followed by graph-level pointwise ``post`` ops.

Programs that are not of this shape (a residual connection or concatenation of node-level
activations, ``StructurePool``) have no chain plan; the dense executor runs them.

Example:
    >>> from graph_ntk import program as P
    >>> prog = (P.Dense(8), P.Branch(((P.GlobalPool("sum"),), (P.Aggregate(), P.GlobalPool("sum"))), "sum"))
    >>> plan = chain_plan(prog)
    >>> [t if not isinstance(t, tuple) else t[0] for t in plan.trunk]
    [Dense(width=8, W_std=1.0, b_std=0.0), 'tap', 'agg', 'tap']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graph_ntk import program as P

__all__ = ["ChainPlan", "NotAChain", "Sum", "Tap", "chain_plan"]

POINTWISE = (P.Dense, P.Scale, *P.ELEMENTWISE)


class NotAChain(Exception):
    """The program has node-level merges or coarsening: use the dense executor."""


@dataclass(eq=False)
class Tap:
    """A readout of the trunk: pointwise ``ops`` on a copy, then the global pool ``mode``."""

    ops: tuple
    mode: str
    group: int = -1  # accumulator shared with the other plain taps of one sum


@dataclass(eq=False)
class Sum:
    terms: list = field(default_factory=list)  # Tap or Sum
    post: tuple = ()


@dataclass
class ChainPlan:
    trunk: list
    expr: Sum
    num_groups: int = 0

    @property
    def num_stages(self) -> int:
        return 1 + sum(1 for t in self.trunk if isinstance(t, tuple) and t[0] == "agg")


def _is_tap(branch: P.Program) -> bool:
    pools = [i for i, op in enumerate(branch) if isinstance(op, P.GlobalPool)]
    return len(pools) == 1 and all(isinstance(op, POINTWISE) for i, op in enumerate(branch) if i != pools[0])


def _graph_post(ops: P.Program) -> tuple:
    if not all(isinstance(op, POINTWISE) for op in ops):
        raise NotAChain("graph-level ops after the readout other than Dense, Scale or nonlinearities")
    return tuple(ops)


def _walk(ops: P.Program, trunk: list) -> Sum:
    for i, op in enumerate(ops):
        if isinstance(op, POINTWISE):
            trunk.append(op)
        elif isinstance(op, P.Aggregate):
            trunk.append(("agg", op))
        elif isinstance(op, P.GlobalPool):
            tap = Tap((), op.mode)
            trunk.append(("tap", tap))
            return Sum([tap], _graph_post(ops[i + 1:]))
        elif isinstance(op, P.Branch) and op.combine == "sum":
            taps = [b for b in op.branches if _is_tap(b)]
            rest = [b for b in op.branches if not _is_tap(b)]
            if len(rest) > 1:
                raise NotAChain("more than one branch continues at node level")
            terms: list = []
            follow = rest[0] if rest else ()
            lead = 0  # pointwise ops the continuation starts with
            while lead < len(follow) and isinstance(follow[lead], POINTWISE):
                lead += 1
            deferred = []
            for b in taps:
                k, pool = next((j, o) for j, o in enumerate(b) if isinstance(o, P.GlobalPool))
                tap_ops = tuple(b[:k])
                # A readout that starts with the ops the trunk applies next reads the trunk
                # after them (no copy): the GNTK's per-block Dense before its readout.
                if tap_ops and tap_ops == tuple(follow[:len(tap_ops)]):
                    deferred.append((len(tap_ops), Tap((), pool.mode), _graph_post(b[k + 1:])))
                else:
                    tap = Tap(tap_ops, pool.mode)
                    trunk.append(("tap", tap))
                    terms.append(Sum([tap], _graph_post(b[k + 1:])))
            if rest:
                sub_trunk: list = []
                sub = _walk(follow, sub_trunk)
                # Insert the deferred taps after the shared leading ops.
                for n_ops, tap, post in sorted(deferred, key=lambda d: -d[0]):
                    sub_trunk.insert(n_ops, ("tap", tap))
                    terms.append(Sum([tap], post))
                trunk.extend(sub_trunk)
                terms.append(sub)
            elif deferred:
                raise NotAChain("readout branches only")  # unreachable: deferred needs a continuation
            return Sum(terms, _graph_post(ops[i + 1:]))
        else:
            raise NotAChain(f"{type(op).__name__} at node level")
    raise NotAChain("the program has no global readout")


def _flatten(expr: Sum) -> Sum:
    """Merge nested sums without post ops into their parent (fewer accumulators)."""
    terms = []
    for t in expr.terms:
        if isinstance(t, Sum):
            t = _flatten(t)
            if not t.post:
                terms.extend(t.terms)
                continue
        terms.append(t)
    return Sum(terms, expr.post)


def _assign_groups(expr: Sum, counter: list[int]) -> None:
    """Plain taps (no post ops) of one sum with the same pool mode share an accumulator."""
    by_mode: dict[str, int] = {}
    for t in expr.terms:
        if isinstance(t, Tap):
            if t.mode not in by_mode:
                by_mode[t.mode] = counter[0]
                counter[0] += 1
            t.group = by_mode[t.mode]
        else:
            if len(t.terms) == 1 and isinstance(t.terms[0], Tap):
                t.terms[0].group = counter[0]
                counter[0] += 1
            else:
                _assign_groups(t, counter)


def chain_plan(program: P.Program, *, separate_taps: bool = False) -> ChainPlan:
    """The chain plan of a normalised program, or :class:`NotAChain`.

    With ``separate_taps`` every readout gets its own accumulator, numbered in trunk order
    (e.g. the GNTK's per-depth readouts, for every depth's Gram from one run).
    """
    trunk: list = []
    expr = _flatten(_walk(tuple(program), trunk))
    counter = [0]
    if separate_taps:
        for item in trunk:
            if isinstance(item, tuple) and item[0] == "tap":
                item[1].group = counter[0]
                counter[0] += 1
    else:
        _assign_groups(expr, counter)
    return ChainPlan(trunk, expr, counter[0])
