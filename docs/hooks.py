"""MkDocs hooks (mkdocs.yml `hooks:`): what the site takes from the code, so that it cannot drift.

- configuration.md's `<!-- every option -->`: every option of every config group with its keys,
  their types (the typed schemas, infobatch_runner/config/schema.py), defaults (the composed
  config) and notes (the comment beside the key in the option's YAML file, conf/).
- strategies.md's `<!-- method cards -->`: a section per strategy of ours, its method card being
  its class docstring, rendered by mkdocstrings.
- the committed leaderboard plots (bench/results/**/*.png) join the site at their repository
  paths, so that the README and the pages show them by the same relative links.
"""

import dataclasses
import re
import typing
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PLOTS = "bench/results"


def on_files(files, config):
    for png in sorted((ROOT / PLOTS).rglob("*.png")):
        files.append(File.generated(config, png.relative_to(ROOT).as_posix(), abs_src_path=str(png)))
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- every option -->" in markdown:
        markdown = markdown.replace("<!-- every option -->", every_option())
    if "<!-- method cards -->" in markdown:
        markdown = markdown.replace("<!-- method cards -->", method_cards())
    return markdown


def method_cards() -> str:
    from infobatch_runner.pruning import STRATEGIES

    sections = []
    for name, cls in STRATEGIES.items():
        sections.append(f"### `{name}`\n\n::: {cls.__module__}.{cls.__qualname__}\n    options:\n"
                        "      show_root_heading: false\n      show_bases: false\n      members: false\n")
    return "\n".join(sections)


def every_option() -> str:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from infobatch_runner.config.choices import group_options
    from infobatch_runner.config.schema import SCHEMAS

    out = []
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        for group, options in SCHEMAS.items():
            for option, schema in options.items():
                overrides = [] if group == "trainer" else [f"{group}={option}"]
                node = compose(config_name="config", overrides=overrides)[group]
                values = OmegaConf.to_container(node, resolve=False)
                notes = yaml_notes(ROOT / "conf" / group / f"{option}.yaml")
                title = group if group == "trainer" else f"{group}={option}"
                out += [f"### `{title}`", "", "| key | type | default | notes |", "|---|---|---|---|"]
                for key, kind in flat_fields(schema):
                    value = values
                    for part in key.split("."):
                        value = value[part]
                    note = notes.get(key.split(".")[-1], "").replace("|", "\\|")
                    out.append(f"| `{group}.{key}` | {type_name(kind)} | `{scalar(value)}` | {note} |")
                out.append("")
        others = [g for g in ("experiment", "hparams_search", "hydra/launcher") if group_options(g)]
        out += ["### Groups without keys of their own", "",
                "They set keys of the groups above (an experiment is a recipe, a search a sweeper's setup):", ""]
        out += [f"- `{g}`: " + ", ".join(f"`{o}`" for o in group_options(g)) for g in others]
    return "\n".join(out) + "\n"


def flat_fields(schema, prefix=""):
    for f in dataclasses.fields(schema):
        factory = f.default_factory
        if callable(factory) and dataclasses.is_dataclass(made := factory()):
            yield from flat_fields(type(made), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f.type


def type_name(kind) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        return f"{type_name(next(a for a in args if a is not type(None)))} or null"
    if typing.get_origin(kind) in (list, typing.List):
        return f"list of {type_name(args[0])}"
    return "any" if kind is typing.Any else getattr(kind, "__name__", str(kind))


def scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    return str(value)


def yaml_notes(path: Path) -> dict[str, str]:
    """The comment beside each key of a YAML file (`key: value  # note`)."""
    notes = {}
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*([A-Za-z_]\w*):[^#]*#\s*(.+)$", line)
            if m:
                notes[m.group(1)] = m.group(2).strip()
    return notes
