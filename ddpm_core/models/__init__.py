"""Denoising networks: time embeddings and the toy MLP (the UNet joins in lesson 06)."""

from .embeddings import TimestepEmbedding, timestep_embedding
from .mlp import FourierFeatures, ResidualTimeBlock, ToyMLP

__all__ = ["FourierFeatures", "ResidualTimeBlock", "TimestepEmbedding", "ToyMLP", "timestep_embedding"]
