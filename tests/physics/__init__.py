"""rsd_sci/physics/: the operators and their algebra, against references (sigpy, scikit-image, fastMRI, numpy)."""
