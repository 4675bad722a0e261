"""Benchmark graph datasets: TU Dortmund, GIN/GNTK text format, Planetoid, and a built-in demo set.

Example:
    >>> from graph_ntk.datasets import make_demo_dataset
    >>> len(make_demo_dataset(40))
    40
"""

from graph_ntk.datasets._errors import DatasetFormatError, DatasetNotFoundError, DatasetWarning
from graph_ntk.datasets.download import download_tu
from graph_ntk.datasets.gin import load_gin, read_gin_folds
from graph_ntk.datasets.planetoid import PlanetoidData, load_planetoid
from graph_ntk.datasets.tu import load_tu

__all__ = [
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetWarning",
    "PlanetoidData",
    "download_tu",
    "load_gin",
    "load_planetoid",
    "load_tu",
    "make_demo_dataset",
    "read_gin_folds",
]


def __getattr__(name: str):
    # The demo generator needs networkx (~0.4 s to import); the loaders don't.
    if name == "make_demo_dataset":
        from graph_ntk.datasets.synthetic import make_demo_dataset

        return make_demo_dataset
    raise AttributeError(f"module 'graph_ntk.datasets' has no attribute {name!r}")
