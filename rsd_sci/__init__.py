"""rsd-sci: generative priors for MRI and CT learned from corrupted measurements only."""

__version__ = "0.1.0"
