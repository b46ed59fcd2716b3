"""The version, in a module of its own so that no module needs the package face."""

__version__ = "0.1.0"
