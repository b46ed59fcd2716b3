"""imgpull: pull container images into archives without a Docker daemon."""

__version__ = "0.1.0"
