"""imgpull: pull container images into archives without a Docker daemon."""
