"""Every option of every config group composes and passes validation; bad values are one sentence."""

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf

from infobatch_runner.config.choices import check_group_choices, group_options
from infobatch_runner.config.validate import validate
from infobatch_runner.errors import UserError
from infobatch_runner.pruning import STRATEGIES

GROUPS = ["dataset", "model", "optimizer", "scheduler", "prune", "logger", "trainer", "experiment", "hparams_search"]
EXPECTED = {
    "dataset": {"fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic"},
    "model": {"cnn_small", "resnet18", "resnet50", "timm"},
    "optimizer": {"sgd", "adamw", "lars", "lamb"},
    "scheduler": {"onecycle", "cosine", "step", "constant"},
    "prune": set(STRATEGIES),  # every registered strategy has its config file, and nothing else does
    "logger": {"wandb", "none"},
    "experiment": {"fashion_mnist_quick", "cifar10_resnet18", "cifar100_resnet50", "imagenet_resnet50"},
    "hparams_search": {"infobatch_optuna", "infobatch_optuna_saving"},
}
PUBLIC_KEYS = [
    "seed", "trainer.epochs", "trainer.batch_size", "trainer.device", "trainer.precision", "trainer.num_workers",
    "dataset.root", "dataset.limit_train", "dataset.limit_test", "dataset.download", "prune.ratio",
    "logger.mode", "logger.project", "dataset.val_fraction", "objective",
]


def test_groups_hold_the_documented_options():
    for group, options in EXPECTED.items():
        assert set(group_options(group)) == options, group


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_option_composes_and_validates(compose_cfg, group, option):
    cfg = compose_cfg([f"{group}={option}"])
    validate(cfg)
    if group not in ("trainer", "experiment", "hparams_search"):
        assert cfg[group].name == option


def test_no_split_and_no_objective_by_default(compose_cfg):
    cfg = compose_cfg([])
    assert cfg.dataset.val_fraction == 0.0 and cfg.objective == "auto"
    for option in group_options("dataset"):
        assert compose_cfg([f"dataset={option}"]).dataset.val_fraction == 0.0, option


@pytest.mark.parametrize("option,objective,directions", [
    ("infobatch_optuna", "val_acc", "maximize"),
    ("infobatch_optuna_saving", "val_acc+saving", ["maximize", "maximize"]),
])
def test_search_presets_hold_out_a_split_and_search_the_pruning_and_the_lr(option, objective, directions):
    from hydra import compose, initialize_config_module

    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        cfg = compose(config_name="config", overrides=[f"hparams_search={option}"], return_hydra_config=True)
    validate(cfg)
    assert cfg.dataset.val_fraction == 0.1 and cfg.objective == objective
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler.seed is not None
    direction = sweeper.direction
    assert (OmegaConf.to_container(direction) if OmegaConf.is_list(direction) else direction) == directions
    assert set(sweeper.params) == {"prune.ratio", "prune.delta", "optimizer.lr"}
    assert sweeper.params["prune.ratio"].startswith("interval(") and "log" in sweeper.params["optimizer.lr"]


def test_the_command_line_beats_the_search_preset(compose_cfg):
    cfg = compose_cfg(["hparams_search=infobatch_optuna", "dataset.val_fraction=0.2", "experiment=fashion_mnist_quick"])
    assert cfg.dataset.val_fraction == 0.2 and cfg.trainer.epochs == 8


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


def test_trainer_tf32_and_checkpoint_every(compose_cfg):
    cfg = compose_cfg([])
    assert cfg.trainer.tf32 is True and cfg.trainer.checkpoint_every == 1  # what earlier versions did
    assert compose_cfg(["trainer.warmup_steps=0"]).trainer.warmup_steps == 0
    cfg = compose_cfg(["trainer.tf32=false", "trainer.checkpoint_every=0"])
    validate(cfg)
    assert cfg.trainer.tf32 is False and cfg.trainer.checkpoint_every == 0
    validate(compose_cfg(["trainer.checkpoint_every=10"]))


@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_full_accepts_a_ratio_sweep(compose_cfg, ratio):
    """`-m prune=full,infobatch prune.ratio=...` composes full with each ratio: accepted, and ignored."""
    from infobatch_runner.pruning import build_strategy, ignored_params

    cfg = compose_cfg(["prune=full", f"prune.ratio={ratio}"])
    validate(cfg)  # raises UserError on a refusal
    assert cfg.prune.ratio == ratio and "ratio" in ignored_params(cfg.prune)
    plan = build_strategy(cfg.prune, 100, 4, 0).plan(0)
    assert len(plan) == 100 and bool((plan.weights == 1).all()), "full data whatever the ratio"


# (overrides, what the one-sentence error must name). tests/test_cli.py runs each through the real
# CLI too, after its TINY overrides (synthetic 16 px data, logger=none), expecting exit 2 and one line.
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
    # keys that no schema declares (Hydra's + appends them; schema.check_known_keys refuses them)
    (["+trainer.epoch=50"], "trainer.epoch is not a setting of trainer; did you mean trainer.epochs?"),
    (["+foo=1"], "foo is not a setting"),
    (["+seeds=1"], "did you mean seed?"),
    (["+dataset.augment.crop=2"], "dataset.augment.crop is not a setting"),
    (["+optimizer.momentun=0.5"], "did you mean optimizer.momentum?"),
    (["prune=ucb", "+prune.alpa=0.5"], "did you mean prune.alpha?"),
    (["+logger.projct=p"], "did you mean logger.project?"),
    # values of the wrong type: refused while composing, by the schema
    (["trainer.epochs=abc"], "trainer.epochs"),
    (["seed=abc"], "seed"),
    (["model.width=abc"], "model.width"),
    (["optimizer.nesterov=maybe"], "optimizer.nesterov"),
    (["dataset.num_classes=null"], "dataset.num_classes"),
    (["dataset.augment.flip=sometimes"], "dataset.augment.flip"),
    (["trainer.cudnn_benchmark=maybe"], "trainer.cudnn_benchmark"),
    (["trainer.tf32=maybe"], "trainer.tf32"),
    (["trainer.checkpoint_every=often"], "trainer.checkpoint_every"),
    (["scheduler=step", "scheduler.milestones=[a,b]"], "scheduler.milestones"),
    # values out of range
    (["scheduler.pct_start=0"], "scheduler.pct_start"),
    (["scheduler.pct_start=1.5"], "scheduler.pct_start"),
    (["scheduler.div_factor=0"], "scheduler.div_factor"),
    (["scheduler.final_div_factor=-1"], "scheduler.final_div_factor"),
    (["scheduler=step", "scheduler.milestones=[0.5,2]"], "scheduler.milestones"),
    (["scheduler=step", "scheduler.milestones=[0.75,0.5]"], "scheduler.milestones"),
    (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma"),
    (["scheduler=cosine", "scheduler.min_factor=1.5"], "scheduler.min_factor"),
    (["scheduler=constant", "scheduler.warmup_epochs=-1"], "scheduler.warmup_epochs"),
    (["optimizer.momentum=1.5"], "optimizer.momentum"),
    (["optimizer=lars", "optimizer.momentum=1"], "optimizer.momentum"),
    (["optimizer=adamw", "optimizer.betas=[0.9]"], "optimizer.betas"),
    (["optimizer=adamw", "optimizer.betas=[1.5,0.9]"], "optimizer.betas"),
    (["optimizer=lamb", "optimizer.betas=[0.9,0.999,0.5]"], "optimizer.betas"),
    (["optimizer=adamw", "optimizer.eps=0"], "optimizer.eps"),
    (["optimizer=lars", "optimizer.trust_coefficient=0"], "optimizer.trust_coefficient"),
    (["model.width=0"], "model.width"),
    (["model=resnet18", "model.stem=big"], "model.stem"),
    (["model=timm", "model.arch=''"], "model.arch"),
    (["dataset.mean=[0.5,0.5]"], "dataset.mean"),
    (["dataset.num_classes=1"], "dataset.num_classes"),
    (["logger=wandb", "logger.init_timeout=-5"], "logger.init_timeout"),
    (["trainer.compile_mode=fast"], "trainer.compile_mode"),
    (["trainer.compile_backend=''"], "trainer.compile_backend"),
    (["trainer.progress=sometimes"], "trainer.progress"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every"),
    (["trainer.warmup_steps=-1"], "trainer.warmup_steps"),
    (["resume=yes"], "resume"),
    # the validation split and what a run returns to a search
    (["dataset.val_fraction=0.9"], "dataset.val_fraction"),
    (["dataset.val_fraction=-0.1"], "dataset.val_fraction"),
    (["dataset.val_fraction=abc"], "dataset.val_fraction"),
    (["objective=nope"], "objective"),
    (["objective=test_acc"], "objective"),
    (["objective=val_acc"], "dataset.val_fraction"),
    (["objective=val_acc+saving", "dataset.val_fraction=0"], "dataset.val_fraction"),
    (["hparams_search=infobatch_optuna", "dataset.val_fraction=0"], "dataset.val_fraction"),
    (["+dataset.val_fractoin=0.1"], "did you mean dataset.val_fraction?"),
]


def composition_message(exc: BaseException) -> str:
    """Hydra's composition error and the OmegaConf error under it (which names the full key)."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__
    return "\n".join(parts)


@pytest.mark.parametrize("overrides,named", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_are_one_sentence(compose_cfg, overrides, named):
    """A wrong type is refused while composing (the schema), anything else by validate: a UserError
    of one sentence. Both name the key; the CLI prints either as one line."""
    try:
        cfg = compose_cfg(overrides)
    except HydraException as exc:
        assert named in str(exc), composition_message(exc)
        return
    with pytest.raises(UserError) as err:
        validate(cfg)
    message = str(err.value)
    assert named in message and "\n" not in message and message.endswith((".", "?")), message


@pytest.mark.parametrize("args", [["model=nope"], ["-m", "prune=full,nope"], ["prune=choice(full,nope)"]])
def test_unknown_group_option_is_one_sentence(args):
    with pytest.raises(UserError, match=r"is not an option; choose one of"):
        check_group_choices(args)


def test_known_group_options_pass():
    check_group_choices(["-m", "prune=full,infobatch", "model=resnet18", "prune.ratio=0.3,0.5", "prune=glob(*)"])
