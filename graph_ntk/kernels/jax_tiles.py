r"""The tiled executor's block columns as jitted JAX computations (``backend='jax'``).

:mod:`graph_ntk.kernels.tiled_exec` plans a chain and hands out block columns ``p`` to
worker threads; with ``backend='jax'`` each thread is bound to one of
``jax.local_devices()`` (round-robin, so every local accelerator works in parallel) and runs
:func:`run_block` instead of the NumPy ``_Stage.run_block``. On the device, per block
column (the stored representation :math:`X = K/(d_i d_j)`, :math:`\tau = \Theta/(d_i d_j)`
of the NumPy executor):

- the panel :math:`[X|\tau][s:, s:e]`: from the low-rank factor, two dense matmuls
  (:math:`F[s:] F[s:e]^\top`, the factor uploaded once per stage and device); from the
  previous stage, :math:`\sum_t \tilde M_t[s:]\,W_t` as a BCOO sparse x dense product,
  where :math:`W_t = [X|\tau]_{k-1} \tilde M_t[s:e]^\top` is still formed on the host from
  the stored tiles (the gather and first sparse product of the NumPy executor);
- the stage's pointwise ops, segment by segment;
- the readout contractions :math:`E[:, s:] X E[:, s:e]^\top` into per-device accumulators.

The panel then comes back to the host and is stored as tiles when the next stage needs it,
so memory stays bounded as for the NumPy executor (one panel per thread on the device).

Pointwise ops: NT's own layers are the definition. A segment's ops are turned into the
matching ``graph_ntk.nn`` layers (whose NT ``kernel_fn`` is NT's closed form) and their
``serial`` ``kernel_fn`` is applied to an ``nt.Kernel`` holding the panel,
:math:`K = X d_i d_j` with ``cov1``/``cov2`` the row / column item variances; the result
is stored back relative to the segment's output scales. No closed form is written a second
time (array-generic copies of :mod:`graph_ntk.kernels.tile_ops` would have had to drop its
in-place, cache-chunked NumPy form, which is what makes the CPU executor fast).

Shapes are bucketed (panel rows, sparse nnz) so that each stage compiles a few functions,
not one per block column. float64 runs under ``jax.enable_x64`` scoped to each worker
thread; the global configuration is never changed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

import numpy as np
import scipy.sparse as sp

from graph_ntk import program as P
from graph_ntk.kernels.dense_exec import pointwise_variance

__all__ = ["BACKENDS", "resolve_backend", "attach_devices", "collect", "run_block", "segment"]

BACKENDS = ("auto", "numpy", "jax")
# Modules whose presence means JAX may see an accelerator (found without importing JAX).
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin",
                        "libtpu")


def resolve_backend(backend: str) -> str:
    """``'numpy'`` or ``'jax'`` for a user's ``backend``; ``'auto'`` is ``'jax'`` only when
    an accelerator is present, decided without importing JAX on a machine without one."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'numpy' or 'jax', got {backend!r}")
    if backend != "auto":
        return backend
    return "jax" if _accelerator_present() else "numpy"


def _accelerator_present() -> bool:
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms and all(p.strip() == "cpu" for p in platforms.split(",")):
        return False
    if "jax" not in sys.modules and not any(importlib.util.find_spec(m) is not None for m in _ACCELERATOR_PLUGINS):
        return False
    import jax  # a plugin is installed (or JAX is loaded anyway): ask it

    return any(d.platform != "cpu" for d in jax.local_devices())


# ----------------------------------------------------------------------- planning (no JAX)
def segment(track, ops: tuple, dtype) -> tuple[list, tuple | None]:
    """``track.compile(ops)`` for the NumPy steps, and the device steps of the same segment
    (``None`` when there are no ops), one per op as the NumPy steps go:

    - ``("corr", op, c2)``: a positively homogeneous op (ReLU family, ``Dense(b=0)``,
      ``Scale``) on correlations: NT's rule on :math:`X` with unit variances, divided by
      the op's variance factor ``c2``. Besides matching the NumPy steps, this keeps the
      self-pairs exact: on :math:`K = X d_i d_j` a fused multiply-add turns NT's
      :math:`q_1 q_2 - k^2` into the rounding error of :math:`d^4` (an angle of 1e-8).
    - ``("general", op, d_in, var_in, d_out, unit_out)``: NT's rule on :math:`K = X d_i d_j`
      with the item variances, stored back relative to ``d_out``.
    """
    dtype = np.dtype(dtype)
    tr = track.copy()
    compiled = track.compile(tuple(ops), dtype)
    if not ops:
        return compiled, None
    steps = []
    for op in ops:
        unit_in, d_in = tr.unit, tr.d.astype(dtype)
        # As in tile_ops._Generic: on correlations the rule sees d^2 exactly as K = X d_i d_j
        # is formed, so that an item with itself has k^2 == q1 q2 bit for bit.
        var_in = d_in * d_in if unit_in else tr.var.astype(dtype)
        tr.compile((op,), dtype)
        homogeneous = (isinstance(op, P.ABRelu) and op.a ** 2 + op.b ** 2 > 0) or isinstance(op, P.Scale) or \
            (isinstance(op, P.Dense) and op.b_std == 0.0 and op.W_std != 0.0)
        if unit_in and homogeneous and tr.unit:
            steps.append(("corr", op, float(pointwise_variance(op, np.ones(1))[0])))
        else:
            steps.append(("general", op, d_in, var_in, tr.d.astype(dtype), bool(tr.unit)))
    return compiled, tuple(steps)


def attach_devices(contexts: list[dict]) -> None:
    """Bind the worker contexts to the local devices, round-robin."""
    import jax

    devices = jax.local_devices()
    for i, ctx in enumerate(contexts):
        ctx["device"] = devices[i % len(devices)]
        ctx["jacc"] = {}


def collect(contexts: list[dict]) -> None:
    """Move the per-device readout accumulators of a finished stage into ``ctx['acc']``."""
    for ctx in contexts:
        for group, pair in ctx["jacc"].items():
            for ch in range(2):
                ctx["acc"][group][ch] += np.asarray(pair[ch]).astype(ctx["acc"][group][ch].dtype)
        ctx["jacc"] = {}


# ----------------------------------------------------------------------- bucketing
def _bucket(n: int, unit: int) -> int:
    """``n`` rounded up to ``unit`` times 2^k or 3 * 2^(k-1) (at most a third of padding)."""
    blocks = max(1, -(-n // unit))
    size = 1
    while size < blocks:
        size = size * 3 // 2 if size > 1 and (size & (size - 1)) == 0 else (1 << size.bit_length())
    return size * unit


def _padded_vector(v: np.ndarray, start: int, length: int) -> np.ndarray:
    out = np.ones(length, dtype=v.dtype)  # padding rows: unit scales, never read back
    part = v[start: start + length]
    out[: part.size] = part
    return out


def _bcoo_parts(mat: sp.spmatrix, dtype) -> tuple[np.ndarray, np.ndarray]:
    """COO data and indices of ``mat``, nnz padded (zeros at (0, 0)) to a bucket."""
    coo = mat.tocoo()
    nnz = _bucket(coo.nnz, 256)
    data = np.zeros(nnz, dtype=dtype)
    idx = np.zeros((nnz, 2), dtype=np.int32)
    data[: coo.nnz] = coo.data
    idx[: coo.nnz, 0] = coo.row
    idx[: coo.nnz, 1] = coo.col
    return data, idx


# ----------------------------------------------------------------------- jitted pieces
def _nt_layer(op):
    """The ``graph_ntk.nn`` layer of a pointwise program op (its NT ``kernel_fn`` is the rule)."""
    import graph_ntk.nn as nn

    if isinstance(op, P.Dense):
        return nn.Dense(op.width, op.W_std, op.b_std)
    if isinstance(op, P.Scale):
        return nn.Scale(op.c)
    if isinstance(op, P.ABRelu):
        return nn.ABRelu(op.a, op.b)
    if isinstance(op, P.Erf):
        return nn.Erf(op.a, op.b, op.c)
    if isinstance(op, P.Gelu):
        return nn.Gelu(op.approximate)
    if isinstance(op, P.Sign):
        return nn.Sign()
    raise TypeError(f"no device form for the pointwise op {op!r}")


@functools.lru_cache(maxsize=None)
def _jit():
    """The jitted functions (built on first use: importing this module stays JAX-free)."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import sparse as jsparse

    import graph_ntk.nn as nn
    from neural_tangents._src.utils.kernel import Kernel

    def kernel(nngp, ntk, cov1, cov2):
        return Kernel(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, x1_is_x2=jnp.bool_(False), is_gaussian=True,
                      is_reversed=False, is_input=False, diagonal_batch=True, diagonal_spatial=False,
                      shape1=(nngp.shape[0], 1), shape2=(nngp.shape[1], 1), batch_axis=0, channel_axis=1,
                      mask1=None, mask2=None)

    @functools.lru_cache(maxsize=None)
    def segment_fn(structure: tuple):
        """One jitted function for a segment's steps (``structure``: ``(kind, op, c2, unit)``
        per step; the general steps' scale vectors are arguments)."""
        kernel_fns = [nn.serial(_nt_layer(op)).triple[2] for _, op, _, _ in structure]

        def run(panel, vectors):
            lam, tau = panel[:, 0], panel[:, 1]
            eye = jnp.eye(lam.shape[0], lam.shape[1], dtype=bool)
            vec = iter(vectors)
            for (kind, _, c2, unit), kernel_fn in zip(structure, kernel_fns):
                if kind == "corr":
                    out = kernel_fn(kernel(lam, tau, jnp.ones(lam.shape[0], lam.dtype), jnp.ones(lam.shape[1], lam.dtype)))
                    lam, tau = out.nngp / c2, out.ntk / c2
                else:
                    din_r, din_c, vin_r, vin_c, dout_r, dout_c = next(vec)
                    scale = din_r[:, None] * din_c[None, :]
                    out = kernel_fn(kernel(lam * scale, tau * scale, vin_r, vin_c))
                    scale_out = dout_r[:, None] * dout_c[None, :]
                    lam, tau = out.nngp / scale_out, out.ntk / scale_out
                if unit:  # as the NumPy steps: an item with itself has correlation exactly 1
                    lam = jnp.where(eye, 1.0, lam)
            return jnp.stack([lam, tau], axis=1).astype(panel.dtype)

        return jax.jit(run)

    @functools.partial(jax.jit, static_argnames=("rows", "width", "has_ft"))
    def factor_panel(fk, ft, s, rows: int, width: int, has_ft: bool):
        def prod(f):
            a = jax.lax.dynamic_slice_in_dim(f, s, rows)
            b = jax.lax.dynamic_slice_in_dim(f, s, width)
            return a @ b.T

        nngp = prod(fk)
        return jnp.stack([nngp, prod(ft) if has_ft else jnp.zeros_like(nngp)], axis=1)

    @functools.partial(jax.jit, static_argnames=("shape",))
    def spmm(data, idx, dense, shape: tuple[int, int]):
        return jsparse.BCOO((data, idx), shape=shape) @ dense

    @jax.jit
    def unit_diagonal(panel):
        eye = jnp.eye(panel.shape[0], panel.shape[2], dtype=bool)
        return panel.at[:, 0].set(jnp.where(eye, 1.0, panel[:, 0]).astype(panel.dtype))

    @functools.partial(jax.jit, static_argnames=("n_graphs",))
    def readout(panel, es, eb, acc0, acc1, n_graphs: int):
        """acc += E[:, s:] X E[:, s:e]^T, transposed (the accumulators are symmetrised when
        folded), the diagonal tile counting half."""
        rows, _, w = panel.shape
        flat = panel.reshape(rows, 2 * w)
        e_s = jsparse.BCOO(es, shape=(n_graphs, rows))
        e_b = jsparse.BCOO(eb, shape=(n_graphs, w))
        xs = e_s @ flat - 0.5 * (e_b @ flat[:w])
        xs = xs.reshape(n_graphs, 2, w)
        return acc0 + e_b @ xs[:, 0].T, acc1 + e_b @ xs[:, 1].T

    return {"segment": segment_fn, "factor": factor_panel, "spmm": spmm, "unit": unit_diagonal,
            "readout": readout, "jax": jax, "jnp": jnp}


# ----------------------------------------------------------------------- one block column
def run_block(stage, p: int, ctx: dict) -> None:
    """Block column ``p`` of ``stage`` (a ``tiled_exec._Stage``) on ``ctx['device']``."""
    fns = _jit()
    jax = fns["jax"]
    with jax.enable_x64(stage.dtype == np.float64):
        _run_block(stage, p, ctx, fns)


def _run_block(stage, p: int, ctx: dict, fns: dict) -> None:
    import time

    from graph_ntk.kernels.tiles import tick

    jax, dev, dtype = fns["jax"], ctx["device"], stage.dtype
    times = ctx["times"]
    s, e = int(stage.starts[p]), int(stage.starts[p + 1])
    w, n = e - s, stage.size
    # One panel shape per stage, (rows, 2, block): every column block is padded to the full
    # height and width, so each stage compiles each function once. Padding rows and columns
    # carry unit scales and are never read back; the sparse products skip them.
    block = int(stage.starts[1] - stage.starts[0])
    rows = -(-n // block) * block
    put = functools.partial(jax.device_put, device=dev)
    t = time.thread_time()
    if stage.source[0] == "factor":
        key = (id(stage), "factor")
        if ctx.get("factor_key") != key:  # upload once per stage and device
            _, fk, ft = stage.source
            length = 2 * rows + block
            pad = lambda f: None if f is None else np.concatenate(  # noqa: E731
                [f, np.zeros((length - f.shape[0], f.shape[1]), f.dtype)])
            ctx["factor_key"], ctx["factor"] = key, (put(pad(fk)), None if ft is None else put(pad(ft)))
        fk_d, ft_d = ctx["factor"]
        panel = fns["factor"](fk_d, fk_d if ft_d is None else ft_d, s, rows=rows, width=block,
                              has_ft=ft_d is not None)
    else:
        _, prev, m_tildes, _ = stage.source
        panel = None
        for t_idx, m_tilde in enumerate(m_tildes):
            wt2, f0 = stage.wt(p, t_idx, ctx)
            t = tick(times, "aggregate_host", t)
            used = wt2.shape[0] - f0
            w_rows = _bucket(used, block)
            dense = np.zeros((w_rows, 2, block), dtype=dtype)  # a fresh copy: wt2 is a reused buffer
            dense[:used, :, :w] = wt2[f0:].reshape(used, 2, w)
            sub = m_tilde[s:].tocoo()
            shifted = sp.coo_matrix((sub.data, (sub.row, sub.col - f0)), shape=(rows, w_rows))
            data, idx = _bcoo_parts(shifted, dtype)
            part = fns["spmm"](put(data), put(idx), put(dense.reshape(w_rows, 2 * block)), shape=(rows, w_rows))
            panel = part if panel is None else panel + part
        panel = panel.reshape(rows, 2, block)
    if stage.unit_diagonal:
        panel = fns["unit"](panel)
    for (_, tap), (spec, tap_spec) in zip(stage.segments, stage.device_segments):
        if spec is not None:
            panel = _apply(fns, spec, panel, s, e, rows, put)
        if tap is not None:
            src = panel if tap_spec is None else _apply(fns, tap_spec, panel, s, e, rows, put)
            _, e_mat, group = tap
            n_g = e_mat.shape[0]
            es = _bcoo_parts(sp.hstack([e_mat[:, s:], sp.csc_matrix((n_g, rows - (n - s)))]), dtype)
            eb = _bcoo_parts(sp.hstack([e_mat[:, s:e], sp.csc_matrix((n_g, block - w))]), dtype)
            acc = ctx["jacc"].get(group)
            if acc is None:
                zero = put(np.zeros((n_g, n_g), dtype))
                acc = (zero, zero)
            ctx["jacc"][group] = fns["readout"](src, tuple(map(put, es)), tuple(map(put, eb)), *acc, n_graphs=n_g)
    t = tick(times, "device", t)
    if stage.store is not None:
        stage.store_column(p, np.asarray(panel[: n - s, :, :w]))
        tick(times, "store", t)


def _apply(fns: dict, steps: tuple, panel, s: int, e: int, rows: int, put):
    vec = lambda v: put(_padded_vector(v, s, rows))  # noqa: E731
    col = lambda v: put(_padded_vector(v, s, panel.shape[2]))  # noqa: E731
    structure, vectors = [], []
    for step in steps:
        if step[0] == "corr":
            structure.append((*step, True))
        else:
            _, op, d_in, var_in, d_out, unit_out = step
            structure.append(("general", op, None, unit_out))
            vectors.append((vec(d_in), col(d_in), vec(var_in), col(var_in), vec(d_out), col(d_out)))
    return fns["segment"](tuple(structure))(panel, vectors)
