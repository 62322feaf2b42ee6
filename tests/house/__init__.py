"""The house as a whole: its floors (no import runs up one), one record of the settings, runtime dependencies, and the ground (keyed draws)."""
