"""The package version, declared once: pyproject.toml reads it from here (`dynamic = ["version"]`), the public
API re-exports it, and the runtime's provenance stamps it into every record without importing the package's
`__init__` back (the contract and the runtime never import the layer above them)."""

__version__ = "0.2.0"
