"""A setting is written once: the commands hand every flag over by name to its record (TrainConfig, its
`make` options, MakeSpec), the flags' defaults are the records', and every preset names what the record
leaves to it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

import cli.data_cmd
import cli.train_cmd
from cli.app import app
from rsd_sci.config import FROM_PRESET, MAKE_OPTIONS, PRESET_OPTIONS, TrainConfig
from rsd_sci.data.make import MakeSpec
from rsd_sci.presets import NETWORK_KEYS, PRESETS

COMMANDS = typer.main.get_command(app).commands
OWN = {"out", "config", "dry_run", "force"}   # options of the command itself, no setting


def _handed_over(monkeypatch, module, args) -> dict:
    """The values the command hands to merge_config (every option, by name)."""
    seen = {}
    real = module.merge_config
    monkeypatch.setattr(module, "merge_config", lambda ctx, values, config: seen.update(values) or
                        real(ctx, values, config))
    CliRunner().invoke(app, args)
    return seen


@pytest.mark.parametrize("module, command, args, record", [
    (cli.train_cmd, COMMANDS["train"], ["train", "--dry-run", "--out", "{tmp}/run"],
     {f.name for f in dataclasses.fields(TrainConfig)} | set(MAKE_OPTIONS)),
    (cli.data_cmd, COMMANDS["data"].commands["make"], ["data", "make", "--out", "{tmp}/set", "--accel", "0"],
     {f.name for f in dataclasses.fields(MakeSpec)}),
])
def test_every_option_is_handed_over_by_name_to_its_record(monkeypatch, tmp_path, module, command, args, record):
    seen = _handed_over(monkeypatch, module, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert set(seen) == {p.name for p in command.params}
    assert set(seen) - OWN <= record


def test_the_flags_defaults_are_the_records():
    train = {p.name: p.default for p in COMMANDS["train"].params}
    config = TrainConfig()
    for name, default in train.items():   # a flag not typed is not handed on: None says "the record's"
        if name in PRESET_OPTIONS or name in MAKE_OPTIONS:
            assert default is None, name   # the preset's, or the modality's data-make default
        elif name not in OWN:
            assert default is None or default == getattr(config, name), name
    make = {p.name: p.default for p in COMMANDS["data"].commands["make"].params}
    make_spec = MakeSpec()
    for name, default in make.items():
        if name not in OWN and name != "device":   # device: auto, resolved where --maps torch runs
            assert default == getattr(make_spec, name), name


def test_every_preset_names_what_the_record_leaves_to_it():
    required = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("preset") is FROM_PRESET}
    for name, preset in PRESETS.items():
        assert required <= set(preset), (name, required - set(preset))
        assert set(preset) <= set(PRESET_OPTIONS) | set(NETWORK_KEYS), name


def test_a_preset_overrides_the_records_own_value():
    assert TrainConfig(preset="tiny").resolved().gan_weight == PRESETS["tiny"]["gan_weight"] > 0
    assert TrainConfig(preset="small").resolved().gan_weight == 0.0
    assert TrainConfig(preset="small", gan_weight=5.0).resolved().gan_weight == 5.0


def test_the_defaults_a_help_text_quotes_are_the_records():
    from rsd_sci.distill.losses import ALPHA, SIGMA_INIT, T_MAX
    from rsd_sci.posterior.reconstruct import DEFAULT_STEPS

    helps = {p.name: p.help for p in COMMANDS["train"].params}
    make_spec = MakeSpec()
    for name, value in (("alpha", ALPHA), ("sigma_init", SIGMA_INIT), ("t_max", T_MAX),
                        ("adps_steps", DEFAULT_STEPS["adps"]), ("generator_steps", DEFAULT_STEPS["generator"]),
                        ("checkpoint_every", TrainConfig.checkpoint_every), ("accel", make_spec.accel),
                        ("center_fraction", make_spec.center_fraction), ("coils", make_spec.coils), ("views", make_spec.views),
                        ("p", make_spec.p)):
        assert re.search(rf"[( ]{re.escape(f'{value:g}')}[);]", helps[name]), (name, helps[name])
