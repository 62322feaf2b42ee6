"""Method level: the linear-theory check and distillation improving on its teacher (toy points, images)."""
