"""The "Config groups" table of the configuration page (docs/configuration.md) lists the options
exactly as `infobatch-run --help` does."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from infobatch_runner.config.choices import group_options

from conftest import run_main

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
HEADER = "| group | options | notes |"


def config_group_table() -> dict[str, str]:
    """{group: its options cell} of the `| group | options | notes |` table under "Config groups"."""
    text = PAGE.read_text()
    section = text[text.index("## Config groups"):]
    lines = section.splitlines()
    start = lines.index(HEADER)
    rows = {}
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # `\|` inside a cell is not a border
        assert len(cells) == 3, f"a row of the config-group table without three cells: {line}"
        (group,) = re.findall(r"`([^`]+)`", cells[0])
        rows[group] = cells[1]
    return rows


def options_in(cell: str) -> list[str]:
    return sorted(re.findall(r"`([^`]+)`", cell))


def help_groups(monkeypatch, capsys) -> dict[str, list[str]]:
    """The "== Configuration groups ==" section of `infobatch-run --help`: {group: options}."""
    status, out = run_main(monkeypatch, capsys, ["--help"])
    assert status == 0
    section = out.split("== Configuration groups ==", 1)[1].split("== Config ==", 1)[0]
    groups = {}
    for line in section.splitlines():
        if re.match(r"^[\w/]+: ", line):
            group, options = line.split(": ", 1)
            groups[group] = sorted(o.strip() for o in options.split(","))
    assert groups, "no configuration groups found in --help"
    return groups


def test_the_table_has_a_row_for_every_group_that_help_lists(monkeypatch, capsys):
    table = config_group_table()
    shown = help_groups(monkeypatch, capsys)
    # --help lists our groups; hydra/launcher holds our presets inside Hydra's own group, which --help leaves out
    assert sorted(table) == sorted([*shown, "hydra/launcher"])
    for group, options in shown.items():
        assert options == group_options(group), f"--help and group_options disagree on {group}"


@pytest.mark.parametrize("group", sorted(config_group_table()))
def test_each_row_lists_exactly_the_groups_options(group):
    assert options_in(config_group_table()[group]) == group_options(group)


def test_the_defaults_marked_in_the_table_are_the_defaults():
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        choices = compose(config_name="config", return_hydra_config=True).hydra.runtime.choices
    marked = {group: re.findall(r"`([^`]+)` \(default\)", cell) for group, cell in config_group_table().items()}
    for group, defaults in marked.items():
        assert len(defaults) <= 1, f"{group}: more than one option marked (default)"
        if defaults:
            assert choices[group] == defaults[0], f"{group}: the page says {defaults[0]}, config {choices[group]}"
    assert sum(map(len, marked.values())) >= 6  # dataset, model, optimizer, scheduler, prune, logger
