"""Textured wound phantoms: synthetic depth-camera scans of chronic wounds with exact ground truth."""

from features.phantoms.generate import Phantom, PhantomConfig, make_phantom, write_phantoms

__all__ = ["Phantom", "PhantomConfig", "make_phantom", "write_phantoms"]
