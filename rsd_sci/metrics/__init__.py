"""Image-quality metrics (fastMRI semantics) and distribution distances between image sets."""
