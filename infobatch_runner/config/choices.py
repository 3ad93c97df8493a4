"""Check `group=option` overrides against the options that exist, before Hydra composes.

Hydra would report a missing option with its search path and a hint about stack traces;
users get one sentence listing what they can choose instead.
"""

from importlib.resources import files

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from hydra.errors import HydraException

from infobatch_runner.errors import UserError


def group_options(group: str) -> list[str] | None:
    """The options of a config group of ours (prune: with the strategies other packages register),
    or None when `group` is not one."""
    folder = files("infobatch_runner.conf")
    for part in group.split("/"):
        folder = folder / part
    if not folder.is_dir():
        return None
    options = {p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")}
    if group == "prune":
        from infobatch_runner.pruning.registry import plugins

        options |= set(plugins())
    return sorted(options)


def check_group_choices(args: list[str]) -> None:
    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # a syntax error: Hydra's own message points at the character
    for override in parsed:
        if override.is_delete() or "." in override.key_or_group or override.key_or_group.startswith("hydra/"):
            continue  # values, and Hydra's own groups (plugins add options there), are Hydra's to check
        options = group_options(override.key_or_group)
        if options is None:
            continue
        value = override.value()
        asked = value.list if isinstance(value, ChoiceSweep) else [value] if isinstance(value, str) else []
        for choice in asked:
            if choice not in options:
                if override.key_or_group == "prune":
                    from infobatch_runner.pruning.registry import why_unusable

                    if why_unusable(choice):
                        raise UserError(why_unusable(choice))
                raise UserError(f"{override.key_or_group}={choice} is not an option; choose one of {', '.join(options)}.")
