r"""Gram matrices of graph kernels at dataset scale: bucketed, blocked, cached and resumable.

:func:`gram` computes :math:`K_{ij} = k(G_i, G'_j)` for every pair of graphs of one or two
collections, where :math:`k` is the NNGP (``get='nngp'``) or NTK (``get='ntk'``) of a graph
network, given either

* as a :class:`GNTK` description (the GNTK of Du et al. 2019, see
  :func:`graph_ntk.models.gntk`), which can use the fast colour-compressed engine
  (:mod:`graph_ntk.kernels.gntk_colour`) when the node features are discrete labels, or
* as any ``kernel_fn`` of a ``stax`` triple built from :class:`graph_ntk.Aggregate` and the
  graph pools, evaluated on padded node-feature batches (the *node path*).

The node path
-------------
Padding every graph to the largest one wastes work quadratically (PROTEINS: a median of 26
nodes but a maximum of 620), so graphs are grouped by node count into a few *buckets*,
padded only to their bucket's largest graph, and the kernel is evaluated block by block:
``bucket_i x bucket_j``, each side cut into chunks of at most ``block_size`` graphs (fewer
for big graphs, so that one block stays within ``memory_limit``). Every block shape is
compiled once by :func:`jax.jit`; in the symmetric case (``graphs2=None``) each unordered
pair of chunks is computed once and mirrored. Blocks are spread round-robin over all
local JAX devices.

The bucket boundaries minimise an estimate of the run time: for ``k`` buckets a dynamic
programme picks the boundaries minimising the padded work :math:`\sum_b n_b N_b^2`
(:math:`n_b` graphs padded to :math:`N_b` nodes; a dense ``Aggregate`` costs
:math:`O(N N'(N + N'))` per graph pair), and ``k`` trades that work against one
compilation per pair of buckets.

The colour path
---------------
For a :class:`GNTK` on graphs with discrete node labels, the colour engine
(:func:`graph_ntk.kernels.gntk_colour.gntk_gram_colour`) computes the same matrix exactly
over distinct Weisfeiler-Lehman colours, usually far faster. Its memory grows with the
square of the number of colours, so when the whole collection does not fit
``memory_limit`` the graphs are cut into chunks of bounded colour count and the engine is
run per pair of chunks (see :func:`_plan_colour_chunks`).

Caching and resuming
--------------------
With ``cache_dir``, every finished block is written atomically (temporary file in the same
folder, then :func:`os.replace`) to ``cache_dir/<key>/``. The key hashes the graphs' content
(node counts, arcs, labels, features, edge weights of both collections), the kernel
configuration, ``get``, ``dtype`` and the block plan, so a changed setting never reuses a
stale block, and a run killed at any moment (even by SIGKILL) restarts without redoing the
finished blocks. ``output`` is likewise written atomically once the matrix is complete.

Precision: ``dtype='float64'`` turns on JAX's 64-bit mode *for the duration of the call*
(``jax.enable_x64``), without changing the global setting.

Example:
    >>> from graph_ntk.datasets import make_demo_dataset
    >>> ds = make_demo_dataset(60)
    >>> K = gram(GNTK(num_blocks=2), ds, get="ntk", progress=False)  # colour engine
    >>> K.shape
    (60, 60)
"""


from graph_ntk.engine.buckets import BucketPlan, plan_buckets
from graph_ntk.engine.files import cache_key, save_npy_atomic
from graph_ntk.engine.jobs import GNTK, gram, gram_diagonal

__all__ = ["GNTK", "BucketPlan", "cache_key", "gram", "gram_diagonal", "plan_buckets", "save_npy_atomic"]
