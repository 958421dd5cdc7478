"""CUT / FastCUT and the PatchNCE loss for imtrans (an ordinary third-party plugin)."""

__version__ = "0.1.0"
