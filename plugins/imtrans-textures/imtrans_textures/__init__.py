"""Procedural texture images as an imtrans domain (a small example plugin)."""

__version__ = "0.1.0"
