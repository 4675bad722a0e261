"""Every compatibility shim restores the object JAX still has privately; no TensorFlow."""

import importlib
import subprocess
import sys

import neural_tangents  # noqa: F401  (after conftest's `import graph_ntk`: the hook patches JAX)
import pytest

from graph_ntk import _compat


@pytest.mark.parametrize("public,attr,private,private_attr", _compat._SHIMS,
                         ids=[f"{p}.{a}" for p, a, _, _ in _compat._SHIMS])
def test_shimmed_name_is_the_private_object(public, attr, private, private_attr):
    assert getattr(importlib.import_module(public), attr) is getattr(importlib.import_module(private), private_attr)


def test_jax_util_module_is_importable():
    import jax.util  # noqa: F401  (NT imports `from jax.util import safe_map`)

    from jax.util import safe_map, safe_zip

    assert list(safe_map(lambda a: a + 1, [1, 2])) == [2, 3]
    assert list(safe_zip([1], [2])) == [(1, 2)]


def test_zeros_like_p_is_an_inert_primitive():
    import jax.interpreters.ad as ad
    from jax._src.core import Primitive

    assert isinstance(ad.zeros_like_p, Primitive)


def test_experimental_is_a_stub_and_tensorflow_never_loads():
    # Plain `import neural_tangents` after `import graph_ntk` must work: the hook patches first.
    code = ("import sys, graph_ntk, neural_tangents.stax, graph_ntk.layers; "
            "assert 'tensorflow' not in sys.modules and 'tf2jax' not in sys.modules; "
            "print(sys.modules['neural_tangents.experimental'].__doc__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Stub installed by graph_ntk" in out.stdout


def test_import_stays_light():
    # `import graph_ntk` loads no JAX and no optional heavy module: names load on first use.
    heavy = "('jax', 'neural_tangents', 'sklearn', 'networkx', 'matplotlib', 'tqdm', 'tensorflow', 'torch')"
    code = f"import sys, graph_ntk; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # the loaders, the layer program, the builders and the item engine never need JAX, and
    # neither does gram() on a description with a layer program
    code = ("import sys, numpy as np, graph_ntk as gn, graph_ntk.datasets, graph_ntk.kernels, graph_ntk.program, "
            "graph_ntk.nn as nn\n"
            "g = gn.Graph(3, np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), node_labels=np.array([0, 1, 0]))\n"
            "gn.gram(gn.GNTK(2, 1), [g, g], progress=False)\n"
            "gn.gram(nn.serial(nn.Dense(8), nn.Aggregate('mean', True), nn.Erf(), nn.GlobalSumPool()), [g], num_tags=2, "
            "progress=False)\n"
            "print([m for m in ('jax', 'neural_tangents') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.usefixtures("x64")  # checked to float64 precision
def test_neural_tangents_core_apis_work():
    import jax
    import jax.numpy as jnp
    import neural_tangents as nt
    from neural_tangents import stax

    init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(32), stax.Relu(), stax.Dense(1))
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    exact = kernel_fn(x, None, "ntk")
    assert jnp.allclose(nt.batch(kernel_fn, batch_size=2)(x, None, "ntk"), exact)
    assert nt.empirical_ntk_fn(apply_fn)(x, None, params).shape == (4, 4)
    assert nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(2), 2)(x, None, "nngp").shape == (4, 4)
    predict = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x, jnp.ones((4, 1)), diag_reg=1e-3)
    assert predict(None, x, "ntk").shape == (4, 1)


def test_public_names_are_the_documented_objects():
    # A submodule named like a public function would shadow it once imported elsewhere.
    import graph_ntk
    import graph_ntk.engine  # noqa: F401
    import graph_ntk.node_inference  # noqa: F401

    for name in graph_ntk.__all__:
        assert not isinstance(getattr(graph_ntk, name), type(graph_ntk)), name
