"""The test suite, one folder per floor of the house (docs/architecture.md); shared helpers in support/."""
