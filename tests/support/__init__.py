"""Helpers the tests share: operator checks and their per-family cases, the in-process CLI runner, fastMRI-schema files, the toy engine run."""
