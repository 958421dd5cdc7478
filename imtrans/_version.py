"""The version of imtrans (its own module, so that the plugin loader can read it without importing the package's entry points)."""

__version__ = "0.1.0"
