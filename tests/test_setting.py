"""A run's setting (what must match for a full-data run to be its baseline) holds every option that
changes a training's result or cost: derived from the config, so a new option cannot be forgotten."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from infobatch_runner.config.schema import SCHEMAS, Config
from infobatch_runner.engine.loop import NOT_IN_SETTING, setting_of


def composed(*overrides):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=list(overrides))


def setting(cfg, world_size=1, precision="fp32"):
    return setting_of(SimpleNamespace(cfg=cfg, device=torch.device("cpu"), precision=precision, world_size=world_size))


def test_every_root_key_is_in_the_setting_or_named_as_outside_it():
    cfg = composed()
    keys = {f.name for f in dataclasses.fields(Config)}
    assert keys - set(setting(cfg)) <= set(NOT_IN_SETTING)
    assert all(key not in setting(cfg) for key in NOT_IN_SETTING if "." not in key)


GROUP_OPTIONS = [(group, option) for group, options in SCHEMAS.items() if group not in NOT_IN_SETTING
                 for option in options]


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_schema_key_is_in_the_setting_or_named_as_outside_it(group, option):
    overrides = [f"{group}={option}"] if group != "trainer" else []
    if group == "dataset":
        overrides.append("dataset.val_fraction=0.1")  # a split is in the setting; none keeps the old setting
    if option == "timm":
        overrides.append("model.arch=resnet18")
    found = setting(composed(*overrides))[group]
    for field in dataclasses.fields(SCHEMAS[group][option]):
        name = f"{group}.{field.name}"
        assert (field.name in found) != (name in NOT_IN_SETTING), f"{name}: in the setting, or named as outside it"


@pytest.mark.parametrize("override", ["trainer.num_workers=1", "trainer.cudnn_benchmark=false",
                                      "trainer.skip_nonfinite=true", "trainer.compile_backend=eager",
                                      "trainer.loader=dataloader", "trainer.tf32=false"])
def test_what_changes_the_cost_changes_the_setting(override):
    assert setting(composed()) != setting(composed(override)), override


def test_the_world_size_and_the_global_batch_are_in_the_setting():
    cfg = composed("trainer.batch_size=64")
    one, four = setting(cfg), setting(cfg, world_size=4)
    assert one != four
    assert (one["trainer"]["global_batch_size"], four["trainer"]["global_batch_size"]) == (64, 256)


@pytest.mark.parametrize("override", ["trainer.progress=false", "trainer.checkpoint_every=3", "logger=none",
                                      "trainer.eval_batch_size=17", "dataset.root=/elsewhere", "seed=5",
                                      "prune=full", "resume=auto"])
def test_what_changes_neither_leaves_the_setting_alone(override):
    assert setting(composed()) == setting(composed(override)), override


def test_every_name_outside_the_setting_is_a_real_key():
    cfg = OmegaConf.to_container(composed())
    for name in NOT_IN_SETTING:
        node = cfg
        for part in name.split("."):
            assert part in node, name
            node = node[part]
