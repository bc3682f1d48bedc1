"""Numerics with interchangeable formulations per backend: depthwise conv and pooling
primitives, custom VJPs, fusion barriers and native CPU kernels. Only `models/` imports it."""
