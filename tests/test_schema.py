"""The typed schemas of the config tree (infobatch_runner/config/schema.py): every option declares its
schema, wrong types fail at composition naming the key, unknown keys are refused in one sentence,
`--help` lists our groups only, and a timm model that cannot take the images says so at build."""

import dataclasses
import os
import socket
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from infobatch_runner.config import schema
from infobatch_runner.config.choices import group_options
from infobatch_runner.config.schema import SCHEMAS, check_known_keys
from infobatch_runner.config.validate import validate
from infobatch_runner.engine.models import build_model
from infobatch_runner.errors import UserError

GROUPS = list(SCHEMAS)  # dataset, model, optimizer, scheduler, prune, logger, trainer


def compose_with(overrides=(), hydra_node=False):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_node)


def test_every_yaml_option_has_a_schema_and_every_schema_a_yaml_option():
    for group in GROUPS:
        assert set(SCHEMAS[group]) == set(group_options(group)), group


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in SCHEMAS[g]])
def test_each_option_is_typed_by_its_schema_and_fills_every_field(group, option):
    cfg = compose_with([f"{group}={option}"])
    node = cfg[group]
    assert OmegaConf.get_type(node) is SCHEMAS[group][option]
    assert OmegaConf.get_type(cfg) is schema.Config
    assert OmegaConf.missing_keys(cfg) == set(), "the YAML gives every field of its schema a value"
    assert set(node.keys()) == {f.name for f in dataclasses.fields(SCHEMAS[group][option])}
    check_known_keys(cfg)


def test_schemas_hold_no_values_so_the_yaml_is_the_one_place_defaults_live():
    classes = {schema.Config, schema.Augment, *(cls for options in SCHEMAS.values() for cls in options.values())}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING:  # a nested schema (dataset.augment)
                assert dataclasses.is_dataclass(f.default_factory()), (cls.__name__, f.name)
            else:
                assert f.default == MISSING, (cls.__name__, f.name, f.default)


@pytest.mark.parametrize("override,key", [
    ("dataset.image_size=abc", "dataset.image_size"),
    ("dataset.val_fraction=some", "dataset.val_fraction"),
    ("objective=[val_acc,saving]", "objective"),
    ("model.width=1.5", "model.width"),
    ("optimizer.lr=fast", "optimizer.lr"),
    ("scheduler.pct_start=abc", "scheduler.pct_start"),
    ("prune.ratio=abc", "prune.ratio"),
    ("logger.tags=abc", "logger.tags"),
    ("trainer.epochs=abc", "trainer.epochs"),
    ("trainer.channels_last=perhaps", "trainer.channels_last"),
    ("seed=abc", "seed"),
    ("resume=[1,2]", "resume"),
])
def test_the_schema_refuses_a_wrong_type_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as err:
        compose_with([override])
    assert key in str(err.value)
    cause = err.value.__cause__
    assert isinstance(cause, ValidationError) and key in str(cause), cause  # OmegaConf's full_key


def test_values_are_converted_to_their_types():
    cfg = compose_with(["prune.ratio=1", "scheduler=cosine", "scheduler.warmup_epochs=1", "dataset.mean=[1]",
                        "logger=wandb", "logger.init_timeout=5"])
    assert isinstance(cfg.prune.ratio, float) and cfg.prune.ratio == 1.0
    assert isinstance(cfg.scheduler.warmup_epochs, float) and cfg.dataset.mean == [1.0]
    assert isinstance(cfg.logger.init_timeout, float)
    assert isinstance(cfg.trainer.epochs, int) and isinstance(cfg.seed, int)


@pytest.mark.parametrize("progress", ["auto", "true", "false"])
def test_trainer_progress_takes_auto_or_a_bool(progress):
    cfg = compose_with([f"trainer.progress={progress}"])
    assert cfg.trainer.progress == {"auto": "auto", "true": True, "false": False}[progress]
    validate(cfg)


def test_logger_mode_still_follows_wandb_mode(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert compose_with(["logger=wandb"]).logger.mode == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    assert compose_with(["logger=wandb"]).logger.mode == "online"


@pytest.mark.parametrize("name", group_options("experiment"))
def test_experiment_presets_compose_typed_and_validate(name):
    cfg = compose_with([f"experiment={name}"])
    validate(cfg)
    assert OmegaConf.get_type(cfg.dataset) is SCHEMAS["dataset"][cfg.dataset.name]


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_launcher_presets_compose(launcher):
    cfg = compose_with([f"hydra/launcher={launcher}"], hydra_node=True)
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.hydra_submitit_launcher")
    check_known_keys(cfg)  # the hydra node is Hydra's, never checked
    validate(cfg)


def test_every_job_of_a_sweep_over_strategies_and_ratios_composes():
    parsed = OverridesParser.create().parse_overrides(["prune=full,infobatch", "prune.ratio=0.3,0.5"])
    jobs = list(product(*[[f"{o.key_or_group}={v}" for v in o.sweep_string_iterator()] for o in parsed]))
    assert len(jobs) == 4
    for job in jobs:
        validate(compose_with(job))


@pytest.mark.parametrize("overrides,message", [
    (["+trainer.epoch=3"], "trainer.epoch is not a setting of trainer; did you mean trainer.epochs?"),
    (["+dataset.augment.flop=1"], "dataset.augment.flop is not a setting of dataset=fashion_mnist; "
                                  "did you mean dataset.augment.flip?"),
    (["prune=full", "+prune.delta=0.5"], "prune.delta is not a setting of prune=full; it takes name, ratio, target_saving."),
    (["+sede=1"], "sede is not a setting; did you mean seed?"),
    (["prune.ratio=???"], "prune.ratio has no value; set one with prune.ratio=<value>."),
    (["dataset.name=synthetic"], "dataset.num_train is missing for dataset=synthetic; choose that option with "
                                 "dataset=synthetic rather than by setting dataset.name."),
])
def test_unknown_keys_are_one_sentence_with_the_close_match(overrides, message):
    cfg = compose_with(overrides)
    with pytest.raises(UserError) as err:
        check_known_keys(cfg)
    assert str(err.value) == message
    with pytest.raises(UserError, match="^" + message.split(";")[0]):
        validate(cfg)  # validate checks the keys first


def test_the_hydra_node_is_not_checked():
    cfg = compose_with([], hydra_node=True)
    assert isinstance(cfg.hydra, DictConfig)
    check_known_keys(cfg)
    with pytest.raises(UserError, match="trainer.epoch is not a setting"):
        check_known_keys(compose_with(["+trainer.epoch=3"], hydra_node=True))


def test_the_config_package_registers_the_schemas_when_loaded():
    code = ("from hydra import compose, initialize_config_module\n"
            "from omegaconf import OmegaConf\n"
            "with initialize_config_module(version_base='1.3', config_module='infobatch_runner.conf'):\n"
            "    cfg = compose(config_name='config')\n"
            "print(OmegaConf.get_type(cfg.prune).__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "InfoBatch"


@pytest.mark.parametrize("overrides,message", [
    (["dataset=imagenet", "dataset.eval_resize=200"], "dataset.eval_resize must be an integer >= 224 (got 200)."),
    (["dataset=cifar10", "dataset.mean=[0.5,0.5]"], "dataset.mean needs 1 or 3 values, one per channel (got 2: [0.5, 0.5])."),
    (["dataset=fashion_mnist", "dataset.mean=[0.5,0.5]"], "dataset.mean needs 1 value (got 2: [0.5, 0.5])."),
    (["optimizer=adamw", "optimizer.betas=[0.9,-0.1]"], "optimizer.betas must be two numbers in [0, 1), as [beta1, beta2] (got [0.9, -0.1])."),
    (["scheduler=step", "scheduler.milestones=[0.5,0.5]"], "scheduler.milestones must be a list of fractions of the run in (0, 1], in increasing order (got [0.5, 0.5])."),
    (["scheduler=step", "scheduler.milestones=[0,0.5]"], "scheduler.milestones must be a list of fractions of the run in (0, 1], in increasing order (got [0.0, 0.5])."),
    (["logger=wandb", "logger.init_timeout=0"], "logger.init_timeout must be a number > 0 (got 0.0)."),
    (["dataset.val_fraction=0.6"], "dataset.val_fraction must be a number in [0, 0.5] (got 0.6)."),
    (["objective=best"], "objective must be one of auto, val_acc, val_acc+saving (got 'best')."),
    (["objective=val_acc"], "objective=val_acc is measured on a validation split, but dataset.val_fraction is 0; "
                            "set dataset.val_fraction (e.g. 0.1) so that no search tunes on the test set."),
])
def test_range_checks_name_the_key_and_the_value(overrides, message):
    with pytest.raises(UserError) as err:
        validate(compose_with(overrides))
    assert str(err.value) == message


def test_imagenet_may_count_its_classes_but_others_may_not():
    validate(compose_with(["dataset=imagenet", "dataset.num_classes=null"]))
    validate(compose_with(["dataset=imagenet", "dataset.num_classes=1000"]))
    with pytest.raises(UserError, match="dataset.num_classes"):
        validate(compose_with(["dataset=imagenet", "dataset.num_classes=1"]))
    with pytest.raises(ConfigCompositionException, match="dataset.num_classes"):
        compose_with(["dataset=cifar10", "dataset.num_classes=null"])


def test_help_lists_exactly_our_groups_and_their_options():
    """The group list of --help ($APP_CONFIG_GROUPS), as Hydra formats it: no schema shows up."""
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        listing = GlobalHydra.instance().hydra.format_config_groups(lambda g: not g.startswith("hydra"))
    expected = [f"{g}: {', '.join(group_options(g))}" for g in sorted([*GROUPS, "experiment", "hparams_search"])]
    assert listing.splitlines() == expected
    assert "prune: el2n, epsilon_greedy, forgetting, full, grand, infobatch, random_dynamic, rs2, seta, short_schedule, static_random, ucb" in expected


def test_help_of_the_console_script_shows_no_schema(tmp_path):
    script = str(Path(sys.executable).with_name("infobatch-run"))
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([script, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "model: cnn_small, resnet18, resnet50, timm" in groups and "experiment: " in groups
    assert "hparams_search: infobatch_optuna, infobatch_optuna_saving" in groups
    assert "schema" not in result.stdout


def _no_network(*args, **kwargs):
    raise AssertionError("a timm model was built through the network")


def test_a_timm_vit_that_cannot_take_the_image_size_is_one_sentence_at_build(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    cfg = OmegaConf.create(dict(name="timm", arch="vit_tiny_patch16_224", pretrained=False))
    with pytest.raises(UserError) as err:
        build_model(cfg, num_classes=10, channels=3, image_size=16)
    message = str(err.value)
    assert message.startswith("model.arch=vit_tiny_patch16_224 cannot take 3x16x16 images (")
    assert message.endswith("); choose another model or dataset.image_size.") and "\n" not in message


def test_a_timm_model_that_takes_the_images_builds_offline_in_training_mode(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    model = build_model(OmegaConf.create(dict(name="timm", arch="resnet10t", pretrained=False)), 10, 1, 16)
    assert model.training
