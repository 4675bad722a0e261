r"""All learned (and feature-dependent) pools in one namespace.

These layers have a finite ``apply_fn`` following the published formulas, parameters
drawn NT-style in ``init_fn``, and a ``kernel_fn`` that raises ``NotImplementedError``
(no closed-form infinite-width kernel exists): estimate their NNGP/NTK with
:func:`graph_ntk.monte_carlo_kernel`. Pools that change the graph take the rest of the
network as ``then`` (see :mod:`graph_ntk.layers.pooling._base`); their forward passes are
also available as pure functions returning :class:`Pooled` (with the selection matrix
``S`` for the auxiliary losses).

=====================  =============================  ==========================================
layer                  forward pass                   auxiliary losses
=====================  =============================  ==========================================
TopKPooling            :func:`topk_pool`              —
SAGPooling             :func:`sag_pool`               —
DiffPool               :func:`diffpool`               :func:`diffpool_losses` (link, entropy)
MinCutPool             :func:`mincut_pool`            :func:`mincut_losses` (cut, orthogonality)
DMoNPool               :func:`dmon_pool`              :func:`dmon_losses` (modularity, collapse)
JustBalancePool        :func:`just_balance_pool`      :func:`just_balance_loss` (balance)
AsymCheegerCutPool     :func:`asym_cheeger_cut_pool`  :func:`asym_cheeger_cut_losses` (TV, balance)
LaPool                 :func:`lapool`                 —
SortPool               :func:`sort_pool`              —
GlobalAttentionPool    (layer only)                   —
GlobalAttnSumPool      (layer only)                   —
MemPooling             :func:`mem_pool`               :func:`mem_pooling_kl_loss` (KL)
=====================  =============================  ==========================================
"""

from graph_ntk.layers.pooling._base import Pooled
from graph_ntk.layers.pooling.attention import GlobalAttentionPool, GlobalAttnSumPool
from graph_ntk.layers.pooling.dense_cluster import (
    AsymCheegerCutPool,
    DiffPool,
    DMoNPool,
    JustBalancePool,
    MinCutPool,
    asym_cheeger_cut_losses,
    asym_cheeger_cut_pool,
    diffpool,
    diffpool_losses,
    dmon_losses,
    dmon_pool,
    just_balance_loss,
    just_balance_pool,
    mincut_losses,
    mincut_pool,
)
from graph_ntk.layers.pooling.lapool import LaPool, lapool, sparsemax
from graph_ntk.layers.pooling.mem import MemPooling, mem_pool, mem_pooling_kl_loss
from graph_ntk.layers.pooling.sort import SortPool, sort_pool
from graph_ntk.layers.pooling.topk import SAGPooling, TopKPooling, sag_pool, topk_pool

__all__ = [
    "AsymCheegerCutPool",
    "DMoNPool",
    "DiffPool",
    "GlobalAttentionPool",
    "GlobalAttnSumPool",
    "JustBalancePool",
    "LaPool",
    "MemPooling",
    "MinCutPool",
    "Pooled",
    "SAGPooling",
    "SortPool",
    "TopKPooling",
    "asym_cheeger_cut_losses",
    "asym_cheeger_cut_pool",
    "diffpool",
    "diffpool_losses",
    "dmon_losses",
    "dmon_pool",
    "just_balance_loss",
    "just_balance_pool",
    "lapool",
    "mem_pool",
    "mem_pooling_kl_loss",
    "mincut_losses",
    "mincut_pool",
    "sag_pool",
    "sort_pool",
    "sparsemax",
    "topk_pool",
]
