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
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(config, f"cannot read YAML ({type(e).__name__})") from None
    if not isinstance(loaded, dict):
        raise InputError(config, "must be a YAML mapping of option names to values")
    params = {p.name: p for p in ctx.command.params}
    merged = dict(values)
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in values or name == "config" or name not in params:
            raise InputError(config, f"unknown option {key!r}")
        source = ctx.get_parameter_source(name)  # an enum of click's (vendored by newer Typer)
        if getattr(source, "name", None) != "COMMANDLINE":
            merged[name] = _as_option_type(config, key, params[name], ctx, value)
    return merged


def _as_option_type(config: Path, key, param, ctx, value):
    """The value converted as the flag's own type converts a typed value (one line when it cannot be)."""
    from rsd_sci.errors import InputError

    if value is None:
        return None
    try:
        return param.process_value(ctx, value)
    except Exception as e:   # click's BadParameter, or a converter's TypeError/ValueError
        message = getattr(e, "message", None) or str(e)
        raise InputError(config, f"option {key!r}: {message}") from None
