"""Thin Hydra entry points of the mkcell workflow (no science here)."""
