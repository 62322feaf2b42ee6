"""The programs: train a run, evaluate it, reconstruct files, describe any file; they read and write
users' files and call the floors below (docs/architecture.md), which never import them."""
