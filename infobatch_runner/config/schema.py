"""Typed schemas of the config tree, registered in Hydra's ConfigStore, and the strict key check.

Values live in the YAML files of `conf/` only: every field here is MISSING (`???`) and gets its
value from the option's YAML, which names its schema first in its defaults list, e.g.
`conf/prune/infobatch.yaml` starts with `defaults: [/schema_prune_infobatch@_here_, _self_]`.
Hydra then converts and checks every value against the field's type as it composes, so
`trainer.epochs=abc` or `prune.ratio=abc` fail at composition naming the key.

The schemas are stored at the root of the ConfigStore under flat names (`schema_<group>_<option>`,
`schema_config` for the root), not in a `schema/...` group: Hydra's `--help` lists every config
group, and flat names keep the schemas out of that list; `choices.py` reads the YAML folders only.

Hydra still lets `+group.key=value` add a key that no schema declares; `check_known_keys` (called
first by `validate`) refuses such keys in one sentence, with the closest known key as a hint.
"""

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from infobatch_runner.errors import UserError

# ---------------------------------------------------------------------------------------------
# dataset


@dataclass
class Augment:
    crop_padding: int = MISSING
    flip: bool = MISSING


@dataclass
class DatasetCommon:
    """The keys every dataset option has."""

    name: str = MISSING
    root: Optional[str] = MISSING
    download: bool = MISSING
    limit_train: Optional[int] = MISSING
    limit_test: Optional[int] = MISSING
    val_fraction: float = MISSING  # held out of training for validation (0: no split)
    channels: int = MISSING
    image_size: int = MISSING
    mean: List[float] = MISSING
    std: List[float] = MISSING
    augment: Augment = field(default_factory=Augment)


@dataclass
class InMemoryDataset(DatasetCommon):
    """Fashion-MNIST and CIFAR: files read whole into memory."""

    num_classes: int = MISSING


@dataclass
class ImageFolderDataset(DatasetCommon):
    """An ImageNet-style tree of class folders, streamed by a DataLoader."""

    train_dir: str = MISSING
    test_dir: str = MISSING
    num_classes: Optional[int] = MISSING  # null: count the class folders
    eval_resize: int = MISSING


@dataclass
class SyntheticDataset(DatasetCommon):
    """Learnable random images made from the seed."""

    num_train: int = MISSING
    num_test: int = MISSING
    num_classes: int = MISSING
    noise: float = MISSING


# ---------------------------------------------------------------------------------------------
# model


@dataclass
class CnnSmall:
    name: str = MISSING
    width: int = MISSING


@dataclass
class ResNet:
    name: str = MISSING
    stem: str = MISSING  # auto | cifar | imagenet


@dataclass
class Timm:
    name: str = MISSING
    arch: str = MISSING
    pretrained: bool = MISSING


# ---------------------------------------------------------------------------------------------
# optimizer


@dataclass
class SGD:
    name: str = MISSING
    lr: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING
    weight_decay: float = MISSING


@dataclass
class Adam:
    """AdamW and LAMB."""

    name: str = MISSING
    lr: float = MISSING
    betas: List[float] = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING


@dataclass
class LARS:
    name: str = MISSING
    lr: float = MISSING
    momentum: float = MISSING
    weight_decay: float = MISSING
    trust_coefficient: float = MISSING
    eps: float = MISSING


# ---------------------------------------------------------------------------------------------
# scheduler


@dataclass
class OneCycle:
    name: str = MISSING
    pct_start: float = MISSING
    div_factor: float = MISSING
    final_div_factor: float = MISSING


@dataclass
class Cosine:
    name: str = MISSING
    warmup_epochs: float = MISSING
    min_factor: float = MISSING


@dataclass
class Step:
    name: str = MISSING
    milestones: List[float] = MISSING
    gamma: float = MISSING
    warmup_epochs: float = MISSING


@dataclass
class Constant:
    name: str = MISSING
    warmup_epochs: float = MISSING


# ---------------------------------------------------------------------------------------------
# prune


@dataclass
class Full:
    name: str = MISSING
    ratio: float = MISSING  # accepted so that a sweep over prune.ratio composes with prune=full; ignored
    target_saving: Optional[float] = MISSING  # likewise for a sweep over InfoBatch's budget mode; ignored


@dataclass
class InfoBatch:
    name: str = MISSING
    ratio: float = MISSING
    delta: float = MISSING
    score_momentum: float = MISSING
    target_saving: Optional[float] = MISSING
    max_ratio: float = MISSING


@dataclass
class ShortSchedule:
    name: str = MISSING
    ratio: float = MISSING
    target_saving: Optional[float] = MISSING


@dataclass
class SeTa:
    name: str = MISSING
    ratio: float = MISSING
    num_group: int = MISSING
    window_scale: float = MISSING
    delta: float = MISSING
    target_saving: Optional[float] = MISSING


@dataclass
class RS2:
    """prune=rs2 (random subsets without replacement); random_dynamic adds the choice of `replacement`."""

    name: str = MISSING
    ratio: float = MISSING
    interval: int = MISSING
    delta: float = MISSING
    rescale: bool = MISSING
    target_saving: Optional[float] = MISSING


@dataclass
class RandomDynamic(RS2):
    replacement: bool = MISSING


@dataclass
class EpsilonGreedy:
    name: str = MISSING
    ratio: float = MISSING
    epsilon: float = MISSING
    alpha: float = MISSING
    interval: int = MISSING
    delta: float = MISSING
    target_saving: Optional[float] = MISSING


@dataclass
class UCB:
    name: str = MISSING
    ratio: float = MISSING
    c: float = MISSING
    alpha: float = MISSING
    use_variance: bool = MISSING
    interval: int = MISSING
    delta: float = MISSING
    target_saving: Optional[float] = MISSING


@dataclass
class EL2N:
    name: str = MISSING
    ratio: float = MISSING
    score_epochs: Optional[int] = MISSING
    score_runs: int = MISSING
    offset: int = MISSING
    cache: bool = MISSING
    cache_dir: str = MISSING


@dataclass
class GraNd:
    name: str = MISSING
    ratio: float = MISSING
    variant: str = MISSING
    score_epochs: Optional[int] = MISSING
    score_runs: int = MISSING
    offset: int = MISSING
    cache: bool = MISSING
    cache_dir: str = MISSING


@dataclass
class Forgetting:
    name: str = MISSING
    ratio: float = MISSING
    score_epochs: Optional[int] = MISSING
    offset: int = MISSING
    cache: bool = MISSING
    cache_dir: str = MISSING


@dataclass
class StaticRandom:
    name: str = MISSING
    ratio: float = MISSING


# ---------------------------------------------------------------------------------------------
# logger


@dataclass
class WandbLogger:
    name: str = MISSING
    mode: str = MISSING  # an interpolation (${oc.env:WANDB_MODE,online}) is checked when read
    project: str = MISSING
    entity: Optional[str] = MISSING
    group: Optional[str] = MISSING
    tags: List[str] = MISSING
    init_timeout: float = MISSING


@dataclass
class NoLogger:
    name: str = MISSING
    mode: str = MISSING
    project: str = MISSING


# ---------------------------------------------------------------------------------------------
# trainer


@dataclass
class Trainer:
    epochs: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    device: str = MISSING
    precision: str = MISSING
    num_workers: int = MISSING
    loader: str = MISSING
    label_smoothing: float = MISSING
    grad_clip: Optional[float] = MISSING
    skip_nonfinite: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    compile_mode: str = MISSING
    compile_backend: str = MISSING
    cudnn_benchmark: bool = MISSING
    tf32: bool = MISSING
    checkpoint_every: int = MISSING
    warmup_steps: int = MISSING
    progress: Any = MISSING  # auto | true | false


# ---------------------------------------------------------------------------------------------
# root


@dataclass
class Config:
    """The root: one node per group (typed by the option's own schema) plus seed, resume and objective."""

    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    prune: Any = MISSING
    logger: Any = MISSING
    trainer: Any = MISSING
    seed: int = MISSING
    resume: Optional[str] = MISSING  # auto | null
    objective: str = MISSING  # what run() returns to a sweeper: auto | val_acc | val_acc+saving


# The schema of each option of each group; `trainer` has one schema whatever its option.
SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"fashion_mnist": InMemoryDataset, "cifar10": InMemoryDataset, "cifar100": InMemoryDataset,
                "imagenet": ImageFolderDataset, "synthetic": SyntheticDataset},
    "model": {"cnn_small": CnnSmall, "resnet18": ResNet, "resnet50": ResNet, "timm": Timm},
    "optimizer": {"sgd": SGD, "adamw": Adam, "lars": LARS, "lamb": Adam},
    "scheduler": {"onecycle": OneCycle, "cosine": Cosine, "step": Step, "constant": Constant},
    "prune": {"full": Full, "short_schedule": ShortSchedule, "infobatch": InfoBatch, "seta": SeTa,
              "random_dynamic": RandomDynamic, "rs2": RS2, "epsilon_greedy": EpsilonGreedy,
              "ucb": UCB, "el2n": EL2N, "grand": GraNd, "forgetting": Forgetting, "static_random": StaticRandom},
    "logger": {"wandb": WandbLogger, "none": NoLogger},
    "trainer": {"default": Trainer},
}
ROOT_SCHEMA_NAME = "schema_config"


def schema_name(group: str, option: str) -> str:
    """The ConfigStore name of an option's schema, as its YAML names it: `/schema_<group>_<option>`."""
    return f"schema_{group}_{option}"


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; run when infobatch_runner.conf is imported).
    A strategy another package registers has no YAML file: its schema (strategy_schema.py), defaults
    included, is stored as the option `prune=<name>` too, and joins SCHEMAS["prune"]."""
    from infobatch_runner.config.strategy_schema import plugin_schemas

    store = ConfigStore.instance()
    store.store(name=ROOT_SCHEMA_NAME, node=Config)
    for name, schema in plugin_schemas().items():
        SCHEMAS["prune"].setdefault(name, schema)
        store.store(group="prune", name=name, node=schema)
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            store.store(name=schema_name(group, option), node=schema)


def schema_of(group: str, node) -> type | None:
    """The schema of the option in use of `group` (by its `name`; None for a name we do not know)."""
    options = SCHEMAS[group]
    if group == "trainer":
        return options["default"]
    name = node.get("name") if isinstance(node, DictConfig) else None
    return options.get(name) if isinstance(name, str) else None


def _nested_schema(schema: type, key: str) -> type | None:
    """The dataclass of a nested field (dataset.augment), else None."""
    factory = schema.__dataclass_fields__[key].default_factory  # type: ignore[attr-defined]
    if not callable(factory):
        return None
    made = factory()
    return type(made) if is_dataclass(made) else None


def _check_node(node: DictConfig, schema: type, path: str, owner: str, group: str) -> None:
    known = [f.name for f in fields(schema)]
    for key in node.keys():
        full = f"{path}.{key}"
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            more = f"did you mean {path}.{hint[0]}?" if hint else f"it takes {', '.join(known)}."
            raise UserError(f"{full} is not a setting of {owner}; {more}")
        if OmegaConf.is_missing(node, key):
            raise UserError(f"{full} has no value; set one with {full}=<value>.")
        value = node._get_node(key)
        nested = _nested_schema(schema, key)
        if nested is not None and isinstance(value, DictConfig) and not value._is_none():
            _check_node(value, nested, full, owner, group)
    absent = [k for k in known if k not in node.keys()]
    if absent:  # a name changed by hand (dataset.name=synthetic on dataset=cifar10's keys)
        raise UserError(f"{path}.{absent[0]} is missing for {owner}; choose that option with {owner} "
                        f"rather than by setting {group}.name.")


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse, in one sentence, a key of the composed config that its schema does not declare.

    Hydra lets `+trainer.epoch=3` add a key even to a structured config, and such a typo would
    otherwise be ignored. Every key of the root and of each group node (recursively, e.g.
    dataset.augment) is compared with the fields of its schema; the message names the full key
    and, where difflib finds one, the close match. A group node is checked against the schema of
    the option in use (`prune.name` picks the prune schema; trainer has one); a name we do not
    know is left to the checks that name it. The `hydra` node is Hydra's and is not checked.
    Also refused: a key left at `???`, and a schema key absent from its node.
    """
    root = [f.name for f in fields(Config)]
    for key in cfg.keys():
        if key == "hydra" or key in root:
            continue
        hint = difflib.get_close_matches(str(key), root, n=1)
        more = f"did you mean {hint[0]}?" if hint else f"the top level holds {', '.join(root)}."
        raise UserError(f"{key} is not a setting; {more}")
    present = set(cfg.keys())  # `in cfg` is False for a key at ???
    for key in root:
        if key in present and OmegaConf.is_missing(cfg, key):
            raise UserError(f"{key} has no value; set one with {key}=<value>.")
    for group in SCHEMAS:
        if group not in present:
            continue
        node = cfg._get_node(group)
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
            continue
        schema = schema_of(group, node)
        if schema is not None:
            owner = group if group == "trainer" else f"{group}={node.get('name')}"
            _check_node(node, schema, group, owner, group)
