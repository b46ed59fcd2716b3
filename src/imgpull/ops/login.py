"""``login`` and ``logout``: credentials checked, then saved where ``docker login`` does."""

from __future__ import annotations

from imgpull.config.settings import Settings, default_docker_config_dir
from imgpull.errors import UsageError
from imgpull.reference import normalize_registry
from imgpull.registry.client import RegistryClient
from imgpull.registry.credentials import Credentials, remove_credentials, save_credentials
from imgpull.registry.session import Registries

__all__ = ["login", "logout"]


def login(registry: str, *, settings: Settings) -> str:
    """Check ``settings``' credentials against ``registry`` and save them as docker does;
    returns where they went."""
    name = normalize_registry(registry)
    if not settings.username:
        raise UsageError("login needs a username", "pass -u NAME")
    credentials = Credentials(settings.username, settings.password or "")
    registries = Registries(settings)
    try:
        client = RegistryClient(settings.registry_host(name), registries.http, credentials)
        client.verify_login()
    finally:
        registries.close()
    return save_credentials(default_docker_config_dir(settings), name, credentials)


def logout(registry: str, *, settings: Settings) -> bool:
    """Forget saved credentials for ``registry``; False when there were none."""
    return remove_credentials(default_docker_config_dir(settings), normalize_registry(registry))
