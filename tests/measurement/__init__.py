"""rsd_sci/measurement/: the measurement model, one class per family."""
