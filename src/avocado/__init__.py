"""Avocado: run open LLMs anywhere and reach them from everywhere."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("avocado")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
