"""`--config FILE`: a YAML mapping of option names to values; flags given on the command line win.

The file is read as a small configuration, not as any YAML: a regular file of at most MAX_BYTES (a FIFO
would block, /dev/zero never end), no anchors or aliases (an alias bomb expands a few lines into
gigabytes), no key given twice (which one wins would be a guess), at most MAX_DEPTH levels deep.
"""

from __future__ import annotations

import stat
from pathlib import Path

MAX_BYTES = 1 << 20   # a configuration is a few hundred bytes
MAX_DEPTH = 8         # option values are scalars or short lists


def read_config(config: Path) -> dict:
    """The option mapping in `config`; InputError (one line) for anything a configuration is not."""
    import yaml

    from rsd_sci.errors import InputError

    try:
        info = Path(config).stat()
        if not stat.S_ISREG(info.st_mode):
            raise InputError(config, "is not a regular file")
        if info.st_size > MAX_BYTES:
            raise InputError(config, f"is {info.st_size} bytes, too large for a configuration (at most {MAX_BYTES})")
        text = Path(config).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(config, f"cannot read YAML ({type(e).__name__})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise InputError(config, f"is nested more than {MAX_DEPTH} levels deep") from None
    except yaml.YAMLError as e:
        raise InputError(config, f"cannot read YAML ({type(e).__name__})") from None
    _check_node(config, node, 0, set())
    try:
        loaded = yaml.SafeLoader(text).construct_document(node) if node is not None else {}
    except yaml.YAMLError as e:   # e.g. a tag SafeLoader does not construct
        raise InputError(config, f"cannot read YAML ({type(e).__name__})") from None
    if not isinstance(loaded, dict):
        raise InputError(config, "must be a YAML mapping of option names to values")
    return loaded


def _check_node(config: Path, node, depth: int, seen: set) -> None:
    """InputError for an alias (a node met twice: the composer shares an anchored node), a repeated key
    or nesting deeper than MAX_DEPTH under `node`; `seen` holds the ids of the nodes met so far."""
    import yaml

    from rsd_sci.errors import InputError

    if node is None:
        return
    if depth > MAX_DEPTH:
        raise InputError(config, f"is nested more than {MAX_DEPTH} levels deep")
    if id(node) in seen:
        raise InputError(config, "uses YAML anchors or aliases, which a configuration does not need")
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise InputError(config, f"gives {repeated[0][:40]!r} more than once")
        for k, v in node.value:
            _check_node(config, k, depth + 1, seen)
            _check_node(config, v, depth + 1, seen)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_node(config, v, depth + 1, seen)


def merge_config(ctx, values: dict, config: Path | None) -> dict:
    """`values` (the command's options, by name) with the value from `config` for every option the user
    did not type; keys that name no option of `values` are refused."""
    if config is None:
        return values
    from rsd_sci.errors import InputError

    loaded = read_config(config)
    params = {p.name: p for p in ctx.command.params}
    merged = dict(values)
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in values or name == "config" or name not in params:
            raise InputError(config, f"unknown option {str(key)[:40]!r}")
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
