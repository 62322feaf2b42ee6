"""rsd_sci/apps/: the programs end to end (train, resume, interrupts, the fastMRI flow)."""
