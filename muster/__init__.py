"""Muster, the application: settings, the `muster` CLI, the server that wires every component, the API."""

__version__ = "0.1.0"
__all__ = ["__version__"]
