"""Ready-made architectures (``stax`` triples)."""

from graph_ntk.models.gntk import gntk

__all__ = ["gntk"]
