"""DAG helpers for pipeline tasks. Imports no Django.

Every function takes ``tasks``: a mapping of task name -> the names it depends
on (its ``depends_on``), in the order the definition lists the tasks. That
order is the tie-breaker everywhere, so the same definition always gives the
same answer (the runner, the UI graph and the tests rely on it).

Dependencies on names that are not keys of ``tasks`` are ignored: validated
definitions never have them, and the editor's live preview must still draw a
half-written definition.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence

Tasks = Mapping[str, Sequence[str]]


def _deps(tasks: Tasks, name: str) -> list[str]:
    """The known dependencies of ``name``, in order, without repeats."""
    return list(dict.fromkeys(d for d in tasks[name] if d in tasks))


def _dependents(tasks: Tasks) -> dict[str, list[str]]:
    """Task name -> the tasks that depend on it directly, in input order."""
    result: dict[str, list[str]] = {name: [] for name in tasks}
    for name in tasks:
        for dep in _deps(tasks, name):
            result[dep].append(name)
    return result


def topological_order(tasks: Tasks) -> list[str]:
    """All tasks, each after its dependencies.

    Among tasks that could go next, the one listed first in ``tasks`` wins, so
    a definition without dependencies keeps its written order. Raises
    ``ValueError`` naming the tasks of a cycle when there is one.
    """
    order = _sorted_acyclic_part(tasks)
    if len(order) < len(tasks):
        cycle = find_cycle(tasks) or []
        raise ValueError("dependency cycle: " + " -> ".join([*cycle, *cycle[:1]]))
    return order


def _sorted_acyclic_part(tasks: Tasks) -> list[str]:
    """Topological order of the tasks that are not on or behind a cycle."""
    names = list(tasks)
    index = {name: i for i, name in enumerate(names)}
    waiting = {name: len(_deps(tasks, name)) for name in names}
    dependents = _dependents(tasks)
    # A heap of input positions: the earliest-listed ready task goes next.
    heap = [index[name] for name in names if waiting[name] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        name = names[heapq.heappop(heap)]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(heap, index[dependent])
    return order


def find_cycle(tasks: Tasks) -> list[str] | None:
    """One dependency cycle, or None when the graph is a DAG.

    The cycle is given in run order: each task is a dependency of the next
    one, and the last is a dependency of the first. It starts at the task of
    the cycle listed first in ``tasks``. A task that depends on itself is the
    cycle ``[name]``.
    """
    return next(find_cycles(tasks), None)


def find_cycles(tasks: Tasks) -> Iterator[list[str]]:
    """Every cycle ``find_cycle`` would give, in turn, dropping each one's tasks.

    The same as calling ``find_cycle`` again on the graph without the tasks of
    the cycles found so far, but in one depth-first pass (linear time): a
    definition of thousands of two-task cycles must not cost a search each.
    Dropping a cycle's tasks changes nothing for the tasks already searched
    (no cycle was reachable from them), so the search goes on where it was.
    """
    position = {name: i for i, name in enumerate(tasks)}
    done: set[str] = set()  # searched: no cycle reachable, or dropped with one
    for start in tasks:
        if start in done:
            continue
        # Iterative depth-first search along depends_on edges: a definition
        # may hold a chain longer than Python's recursion limit. ``depth``
        # maps each task on the path to its index there.
        path = [start]
        depth = {start: 0}
        stack = [iter(_deps(tasks, start))]
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                done.add(path[-1])
                del depth[path.pop()]
                stack.pop()
            elif dep in depth:
                # path[at:] are tasks each depending on the next; reversed, it
                # is in run order.
                at = depth[dep]
                cycle = path[at:][::-1]
                first = min(range(len(cycle)), key=lambda i: position[cycle[i]])
                yield cycle[first:] + cycle[:first]
                # Drop the cycle's tasks (done: never entered again) and go
                # on from the task that led into it.
                done.update(cycle)
                for name in cycle:
                    del depth[name]
                del path[at:], stack[at:]
            elif dep not in done:
                depth[dep] = len(path)
                path.append(dep)
                stack.append(iter(_deps(tasks, dep)))


def downstream(tasks: Tasks, name: str) -> set[str]:
    """Every task that depends on ``name``, directly or not (``KeyError`` if unknown)."""
    return _reachable(_dependents(tasks), name)


def upstream(tasks: Tasks, name: str) -> set[str]:
    """Every task ``name`` depends on, directly or not (``KeyError`` if unknown)."""
    return _reachable({task: _deps(tasks, task) for task in tasks}, name)


def _reachable(edges: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Names reachable from ``name`` along ``edges`` (``name`` only if on a cycle)."""
    seen: set[str] = set()
    todo = list(edges[name])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(edges[current])
    return seen


def ready(tasks: Tasks, done: set[str], started: set[str]) -> list[str]:
    """Tasks that may start now, in input order.

    ``done`` holds the tasks that finished in a way that lets dependents run;
    ``started`` the ones already queued or running. A task is ready when it is
    in neither and all its dependencies are done.
    """
    return [
        name
        for name in tasks
        if name not in done
        and name not in started
        and all(dep in done for dep in _deps(tasks, name))
    ]


def layers(tasks: Tasks) -> list[list[str]]:
    """Tasks grouped by depth, for drawing: roots first, each layer in input order.

    A task's depth is the length of the longest dependency chain above it.
    Never raises: tasks on or behind a cycle go in one extra last layer, so
    an invalid definition can still be drawn.
    """
    depth: dict[str, int] = {}
    for name in _sorted_acyclic_part(tasks):
        depth[name] = 1 + max((depth[d] for d in _deps(tasks, name)), default=-1)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in tasks:
        if name in depth:
            result[depth[name]].append(name)
    stuck = [name for name in tasks if name not in depth]
    if stuck:
        result.append(stuck)
    return result
