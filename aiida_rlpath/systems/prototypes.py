"""Crystal prototypes and element vocabularies for RL crystal design (pymatgen; no AiiDA import).

A prototype is a small primitive cell whose sites an agent fills with elements, one site per step. Each is
built with :meth:`pymatgen.core.Structure.from_spacegroup` from a reference compound, so its lattice is a
physical starting point (Å); :func:`prescale` rescales it for the elements actually placed, before any
relaxation.

===============  ==============  ==========================  =====
name             space group     reference (a, c in Å)       sites
===============  ==============  ==========================  =====
rocksalt         Fm-3m (225)     NaCl, a = 5.64              2
cesium_chloride  Pm-3m (221)     CsCl, a = 4.12              2
zincblende       F-43m (216)     GaAs, a = 5.65              2
diamond          Fd-3m (227)     Si, a = 5.43                2
wurtzite         P6_3mc (186)    ZnO, a = 3.25, c = 5.21     4
fluorite         Fm-3m (225)     CaF2, a = 5.46              3
perovskite       Pm-3m (221)     SrTiO3, a = 3.905           5
rutile           P4_2/mnm (136)  TiO2, a = 4.594, c = 2.959  6
spinel           Fd-3m (227)     MgAl2O4, a = 8.08           14
===============  ==============  ==========================  =====
"""

from __future__ import annotations

import collections
import typing as t

import numpy as np
from pymatgen.core import Element, Lattice, Structure

__all__ = (
    'PROTOTYPES',
    'VOCABULARIES',
    'bfs_site_order',
    'neighbour_graph',
    'prescale',
    'prototype',
    'vocabulary',
)

# name -> (space group, lattice factory, species, fractional coordinates)
_SPECS: dict[str, tuple[str, t.Callable[[], Lattice], list[str], list[list[float]]]] = {
    'rocksalt': ('Fm-3m', lambda: Lattice.cubic(5.64), ['Na', 'Cl'], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    'cesium_chloride': ('Pm-3m', lambda: Lattice.cubic(4.12), ['Cs', 'Cl'], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    'zincblende': ('F-43m', lambda: Lattice.cubic(5.65), ['Ga', 'As'], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    'diamond': ('Fd-3m', lambda: Lattice.cubic(5.43), ['Si'], [[0, 0, 0]]),
    'wurtzite': (
        'P6_3mc',
        lambda: Lattice.hexagonal(3.25, 5.21),
        ['Zn', 'O'],
        [[1 / 3, 2 / 3, 0.0], [1 / 3, 2 / 3, 0.382]],
    ),
    'fluorite': ('Fm-3m', lambda: Lattice.cubic(5.46), ['Ca', 'F'], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    'perovskite': (
        'Pm-3m',
        lambda: Lattice.cubic(3.905),
        ['Sr', 'Ti', 'O'],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0]],
    ),
    'rutile': ('P4_2/mnm', lambda: Lattice.tetragonal(4.594, 2.959), ['Ti', 'O'], [[0, 0, 0], [0.305, 0.305, 0]]),
    'spinel': (
        'Fd-3m',
        lambda: Lattice.cubic(8.08),
        ['Mg', 'Al', 'O'],
        [[0, 0, 0], [0.625, 0.625, 0.625], [0.3874, 0.3874, 0.3874]],  # origin choice 1,
    ),
}

PROTOTYPES: tuple[str, ...] = tuple(_SPECS)

_SMALL = ['Li', 'Na', 'K', 'Mg', 'Ca', 'Sr', 'Ba', 'Al', 'Ga', 'Si', 'Ti', 'Zn', 'N', 'P', 'O', 'S', 'F', 'Cl']
_MEDIUM = [*_SMALL, 'B', 'C', 'Ge', 'Sn', 'As', 'Se', 'Br', 'I', 'Cu', 'Fe', 'Mn', 'Zr']
_LARGE = [
    *_MEDIUM, 'Rb', 'Cs', 'Be', 'Sc', 'Y', 'V', 'Cr', 'Co', 'Ni', 'Nb',
    'Mo', 'In', 'Sb', 'Te', 'Cd', 'Ag', 'La', 'Hf', 'Ta', 'W',
]  # fmt: skip
VOCABULARIES: dict[str, tuple[str, ...]] = {'small': tuple(_SMALL), 'medium': tuple(_MEDIUM), 'large': tuple(_LARGE)}


def vocabulary(name_or_symbols: str | t.Sequence[str]) -> tuple[str, ...]:
    """The element symbols of a named vocabulary (``small``: 18, ``medium``: 30, ``large``: 50) or of an explicit
    list, each checked to be a real element; raises ``ValueError`` naming the bad entry."""
    if isinstance(name_or_symbols, str):
        if name_or_symbols not in VOCABULARIES:
            raise ValueError(f'unknown vocabulary {name_or_symbols!r}; known: {", ".join(VOCABULARIES)}')
        return VOCABULARIES[name_or_symbols]
    symbols = tuple(str(s) for s in name_or_symbols)
    if not symbols:
        raise ValueError('the vocabulary is empty')
    for symbol in symbols:
        if not Element.is_valid_symbol(symbol):
            raise ValueError(f'{symbol!r} in the vocabulary is not an element symbol')
    if len(set(symbols)) != len(symbols):
        raise ValueError('the vocabulary repeats an element')
    return symbols


def prototype(name: str) -> Structure:
    """The primitive cell of prototype ``name`` (see the module table), with its reference compound's species."""
    if name not in _SPECS:
        raise ValueError(f'unknown prototype {name!r}; known: {", ".join(PROTOTYPES)}')
    group, lattice, species, coords = _SPECS[name]
    structure = Structure.from_spacegroup(group, lattice(), species, coords)
    primitive = structure.get_primitive_structure()
    return Structure.from_sites(sorted(primitive.sites, key=lambda s: (str(s.specie), *np.round(s.frac_coords, 6))))


def neighbour_graph(structure: Structure, tolerance: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Periodic neighbour pairs of ``structure``: site i is joined to every j within ``tolerance`` × i's shortest
    distance, in both directions (so each site reaches at least its nearest neighbours). Returns ``edges``
    (E, 2) site indices, without self-loops, and their distances (Å), sorted by (i, distance, j)."""
    distances = []
    for i in range(len(structure)):
        neighbours = structure.get_neighbors(structure[i], 8.0)
        distances.append(min(n.nn_distance for n in neighbours) if neighbours else np.inf)
    pairs = {}
    for i in range(len(structure)):
        for n in structure.get_neighbors(structure[i], 8.0):
            j = int(n.index)
            if i == j or n.nn_distance > tolerance * distances[i]:
                continue
            for key in ((i, j), (j, i)):
                pairs[key] = min(pairs.get(key, np.inf), float(n.nn_distance))
    items = sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[1], kv[0][1]))
    edges = np.array([k for k, _ in items], dtype=np.int64).reshape(-1, 2)
    return edges, np.array([d for _, d in items], dtype=float)


def bfs_site_order(structure: Structure, edges: np.ndarray | None = None, start: int = 0) -> list[int]:
    """The sites of ``structure`` in breadth-first order over its neighbour graph, from site ``start``; neighbours
    are visited nearest first (ties by index), and a disconnected site starts a new search at the lowest index."""
    if edges is None:
        edges, _ = neighbour_graph(structure)
    adjacency = collections.defaultdict(list)
    for i, j in edges:
        if j not in adjacency[int(i)]:
            adjacency[int(i)].append(int(j))
    order, seen = [], set()
    for root in [start, *range(len(structure))]:
        if root in seen:
            continue
        queue = collections.deque([root])
        seen.add(root)
        while queue:
            site = queue.popleft()
            order.append(site)
            for j in adjacency[site]:
                if j not in seen:
                    seen.add(j)
                    queue.append(j)
    return order


def _radius(symbol: str) -> float:
    element = Element(symbol)
    radius = element.atomic_radius or element.atomic_radius_calculated
    return float(radius) if radius else 1.5


def prescale(structure: Structure, edges: np.ndarray | None = None) -> Structure:
    """A copy of ``structure`` scaled isotropically so that its neighbour distances match, on average, the sum of
    the atomic radii (Å) of the elements now on the sites: a physical start for a relaxation after the
    prototype's reference species were replaced."""
    if edges is None:
        edges, _ = neighbour_graph(structure)
    scaled = structure.copy()
    if len(edges) == 0:
        return scaled
    ratios = []
    for i, j in edges:
        distance = structure.get_distance(int(i), int(j))
        ratios.append((_radius(str(structure[int(i)].specie)) + _radius(str(structure[int(j)].specie))) / distance)
    scaled.scale_lattice(structure.volume * float(np.mean(ratios)) ** 3)
    return scaled
