"""Run reports: RUN/report.md with its figures (`rsd-sci report`)."""
