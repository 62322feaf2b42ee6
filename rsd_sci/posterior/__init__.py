"""Posterior reconstruction: classical baselines, A-DPS with the teacher, and the generator prior."""
