"""Every option of every config group composes and passes validation; bad values are one sentence."""

import pytest
from omegaconf import OmegaConf

from infobatch_runner.choices import check_group_choices, group_options
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import STRATEGIES
from infobatch_runner.validate import validate

GROUPS = ["dataset", "model", "optimizer", "scheduler", "prune", "logger", "trainer", "experiment"]
EXPECTED = {
    "dataset": {"fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic"},
    "model": {"cnn_small", "resnet18", "resnet50", "timm"},
    "optimizer": {"sgd", "adamw", "lars", "lamb"},
    "scheduler": {"onecycle", "cosine", "step", "constant"},
    "prune": set(STRATEGIES),  # every registered strategy has its config file, and nothing else does
    "logger": {"wandb", "none"},
    "experiment": {"fashion_mnist_quick", "cifar10_resnet18", "cifar100_resnet50", "imagenet_resnet50"},
}
PUBLIC_KEYS = [
    "seed", "trainer.epochs", "trainer.batch_size", "trainer.device", "trainer.precision", "trainer.num_workers",
    "dataset.root", "dataset.limit_train", "dataset.limit_test", "dataset.download", "prune.ratio",
    "logger.mode", "logger.project",
]


def test_groups_hold_the_documented_options():
    for group, options in EXPECTED.items():
        assert set(group_options(group)) == options, group


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_option_composes_and_validates(compose_cfg, group, option):
    cfg = compose_cfg([f"{group}={option}"])
    validate(cfg)
    if group not in ("trainer", "experiment"):
        assert cfg[group].name == option


@pytest.mark.parametrize("key", PUBLIC_KEYS + ["prune.delta"])
def test_public_names_exist(compose_cfg, key):
    cfg = compose_cfg(["prune=infobatch"])
    assert OmegaConf.select(cfg, key, throw_on_missing=True, default="<absent>") != "<absent>"


def test_public_overrides_take_effect(compose_cfg):
    cfg = compose_cfg(["seed=3", "trainer.epochs=7", "trainer.batch_size=32", "trainer.device=cpu",
                       "trainer.precision=bf16", "dataset.limit_train=100", "prune.ratio=0.3", "prune.delta=0.5",
                       "logger.mode=disabled", "logger.project=p"])
    validate(cfg)
    assert (cfg.seed, cfg.trainer.epochs, cfg.trainer.batch_size, cfg.prune.ratio, cfg.prune.delta) == (3, 7, 32, 0.3, 0.5)
    assert cfg.dataset.limit_train == 100 and cfg.logger.project == "p"


def test_published_infobatch_recipe(compose_cfg):
    for name, dataset, model in [("cifar10_resnet18", "cifar10", "resnet18"), ("cifar100_resnet50", "cifar100", "resnet50")]:
        cfg = compose_cfg([f"experiment={name}"])
        assert (cfg.dataset.name, cfg.model.name) == (dataset, model)
        assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.label_smoothing) == (200, 128, 0.1)
        assert cfg.scheduler.name == "onecycle" and cfg.optimizer.lr == 0.05
        assert cfg.dataset.augment.crop_padding == 4 and cfg.dataset.augment.flip


def test_command_line_beats_experiment_preset(compose_cfg):
    cfg = compose_cfg(["experiment=cifar10_resnet18", "model=resnet50", "trainer.epochs=3"])
    assert cfg.model.name == "resnet50" and cfg.trainer.epochs == 3 and cfg.dataset.name == "cifar10"


def test_full_accepts_a_ratio_sweep(compose_cfg):
    cfg = compose_cfg(["prune=full", "prune.ratio=0.7"])
    validate(cfg)


BAD = [
    (["prune.ratio=1.5"], "prune.ratio"),
    (["prune.ratio=-0.1"], "prune.ratio"),
    (["prune.ratio=abc"], "prune.ratio"),
    (["prune.delta=0"], "prune.delta"),
    (["prune.score_momentum=1"], "prune.score_momentum"),
    (["+prune.nope=1"], "nope"),
    (["trainer.epochs=0"], "trainer.epochs"),
    (["trainer.epochs=2.5"], "trainer.epochs"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["trainer.precision=fp8"], "trainer.precision"),
    (["trainer.precision=fp16", "trainer.device=cpu"], "fp16"),
    (["trainer.label_smoothing=1"], "trainer.label_smoothing"),
    (["trainer.num_workers=-1"], "trainer.num_workers"),
    (["dataset.limit_train=0"], "dataset.limit_train"),
    (["dataset.std=[0.2,0.3]"], "dataset.std"),
    (["optimizer.lr=0"], "optimizer.lr"),
    (["logger.mode=maybe"], "logger.mode"),
    (["seed=-1"], "seed"),
    (["prune=infobatch", "prune.target_saving=1.2"], "prune.target_saving"),
    (["prune=random_dynamic", "prune.interval=0"], "prune.interval"),
    (["prune=epsilon_greedy", "prune.epsilon=2"], "prune.epsilon"),
    (["prune=ucb", "prune.c=-1"], "prune.c"),
    (["prune=el2n", "prune.score_runs=0"], "prune.score_runs"),
    (["prune=grand", "prune.variant=half"], "prune.variant"),
    (["prune=forgetting", "prune.score_epochs=-2"], "prune.score_epochs"),
    (["prune=static_random", "prune.ratio=1"], "prune.ratio"),
]


@pytest.mark.parametrize("overrides,named", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_are_one_sentence(compose_cfg, overrides, named):
    cfg = compose_cfg(overrides)
    with pytest.raises(UserError) as err:
        validate(cfg)
    message = str(err.value)
    assert named in message and "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("args", [["model=nope"], ["-m", "prune=full,nope"], ["prune=choice(full,nope)"]])
def test_unknown_group_option_is_one_sentence(args):
    with pytest.raises(UserError, match=r"is not an option; choose one of"):
        check_group_choices(args)


def test_known_group_options_pass():
    check_group_choices(["-m", "prune=full,infobatch", "model=resnet18", "prune.ratio=0.3,0.5", "prune=glob(*)"])
