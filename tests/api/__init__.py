"""rsd_sci/__init__.py and api.py: the Python API."""
