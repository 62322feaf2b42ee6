"""rsd_sci/posterior/: A-DPS, the generator prior, classical baselines."""
