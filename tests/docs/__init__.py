"""What the user-facing pages and files promise, run: docs/python.md, examples/, recipes/."""
