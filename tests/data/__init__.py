"""rsd_sci/data/: measurement sets, readers and writers, simulation, batches, scaling, run lock, resumable builds."""
