"""Typed settings: ``AVOCADO_*`` environment variables, an optional TOML file, then defaults.

Precedence, highest first: values passed in code (CLI flags), environment, the TOML file, defaults.
What every service's settings share is in :mod:`~avocado.config.shared`; a node's are in
:mod:`~avocado.config.node`, a gateway's in :mod:`~avocado.config.gateway` (the platform's, in
:mod:`avocado.platform.settings`); where client commands find them, in :mod:`~avocado.config.clients`.
"""

from avocado.config.clients import client_base_url, gateway_base_url
from avocado.config.gateway import (
    DEFAULT_GATEWAY_PORT,
    GatewaySettings,
    load_gateway_settings,
    master_key_file,
)
from avocado.config.node import DEFAULT_PORT, Settings, load_settings
from avocado.config.shared import AvocadoSettings, checked_networks, comma_list

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_PORT",
    "AvocadoSettings",
    "GatewaySettings",
    "Settings",
    "checked_networks",
    "client_base_url",
    "comma_list",
    "gateway_base_url",
    "load_gateway_settings",
    "load_settings",
    "master_key_file",
]
