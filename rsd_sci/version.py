"""The version of rsd-sci, written into every model file and run (`rsd_sci.__version__` names it too)."""

__version__ = "0.1.0"
