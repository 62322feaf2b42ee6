"""rsd_sci/distill/: the distiller, its losses and held-out signals."""
