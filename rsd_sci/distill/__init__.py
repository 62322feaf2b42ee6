"""Phase 2 of the method: Restoration Score Distillation into a one-step generator (docs/method.md)."""
