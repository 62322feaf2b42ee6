"""cli/: the commands in-process, their flags, config files and one-line refusals."""
