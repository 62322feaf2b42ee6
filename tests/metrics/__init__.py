"""rsd_sci/metrics/: image metrics, distribution distances, FID/KID through an extractor's interface."""
