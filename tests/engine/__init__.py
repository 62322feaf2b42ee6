"""rsd_sci/engine/: checkpoints, EMA, the loop, DDP, the generator's model selection."""
