"""rsd_sci/diffusion/: EDM preconditioning, backbones, the teacher's losses, samplers."""
