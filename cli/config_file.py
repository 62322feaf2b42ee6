"""`--config FILE`: a YAML mapping of option names to values; flags given on the command line win."""

from __future__ import annotations

from pathlib import Path


def merge_config(ctx, values: dict, config: Path | None) -> dict:
    """Values from `config` for every option the user did not type; unknown keys are refused."""
    if config is None:
        return values
    import yaml

    from rsd_sci.errors import InputError

    try:
        loaded = yaml.safe_load(Path(config).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(config, f"cannot read YAML ({type(e).__name__})") from None
    if not isinstance(loaded, dict):
        raise InputError(config, "must be a YAML mapping of option names to values")
    merged = dict(values)
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in values or name == "config":
            raise InputError(config, f"unknown option {key!r}")
        source = ctx.get_parameter_source(name)  # an enum of click's (vendored by newer Typer)
        if getattr(source, "name", None) != "COMMANDLINE":
            merged[name] = value
    return merged
