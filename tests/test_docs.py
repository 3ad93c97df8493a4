"""The documentation site (mkdocs.yml, docs/): it builds with --strict, a broken internal link
fails that build, every config option and every strategy's method card is on its page, every
runnable block is run by a test, and the README stays one or two screens with the picture."""

import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_main
from infobatch_runner.config.schema import SCHEMAS
from infobatch_runner.pruning import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]
# Item 1 of the docs issue: every one of these is a page of the site.
PAGES = ["index.md", "getting-started.md", "configuration.md", "strategies.md", "your-own-strategy.md", "report.md",
         "wandb.md", "validation-and-search.md", "library.md", "resuming.md", "speed.md", "leaderboard.md", "api.md",
         "layout.md"]


def build(config: Path, site: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([*MKDOCS, "--config-file", str(config), "--site-dir", str(site)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    result = build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def text_of(site: Path, page: str) -> str:
    """A built page's text, tags stripped."""
    folder = "" if page == "index.md" else page.removesuffix(".md") + "/"
    return html.unescape(re.sub(r"<[^>]+>", "", (site / folder / "index.html").read_text()))


def test_every_page_is_in_the_site_and_its_navigation(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    assert [next(iter(item.values())) for item in nav] == PAGES
    for page in PAGES:
        assert text_of(site, page).strip(), page


def test_every_option_of_every_config_group_is_on_the_configuration_page(site):
    text = text_of(site, "configuration.md")
    sections = re.split(r"\n(?=(?:(?:dataset|model|optimizer|scheduler|prune|logger)=\w+|trainer)¶\n)",
                        text[text.index("Every option¶"):])
    by_title = {section.split("\n", 1)[0].rstrip("¶"): section for section in sections[1:]}
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            title = group if group == "trainer" else f"{group}={option}"
            assert title in by_title, f"no section for {title}"
            for field in dataclasses.fields(schema):
                assert f"{group}.{field.name}" in by_title[title], f"{title}: {group}.{field.name} missing"
    assert "dataset.augment.crop_padding" in by_title["dataset=cifar10"], "nested keys by their full name"


def test_every_strategy_has_its_method_card_from_its_docstring(site):
    text = text_of(site, "strategies.md")
    cards = text[text.index("Method cards"):]
    for name, cls in STRATEGIES.items():
        first_line = cls.__doc__.strip().splitlines()[0].strip()
        assert f"\n{name}¶" in cards and first_line in cards, name


def test_the_api_reference_renders_the_public_names(site):
    text = text_of(site, "api.md")
    for name in ("Pruner", "PrunedBatchSampler", "IndexedDataset", "InfoBatchCallback", "InfoBatchTrainer", "Strategy",
                 "check_strategy"):
        assert re.search(rf"\n\s*{name}\s*¶", text), name
    assert "One strategy, its epoch and that epoch's plan, and the weighted loss." in text, "Pruner's docstring"


def test_a_broken_internal_link_fails_the_build(tmp_path):
    """Our mkdocs.yml's checks on a two-page fixture (its hooks and API reference left out for speed):
    it builds, and the same pages with one link to a page that does not exist do not."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.pop("hooks")
    config["plugins"] = ["search"]
    config.update(docs_dir=str(tmp_path / "docs"), nav=[{"Home": "index.md"}, {"Other": "other.md"}])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))

    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the other page](other.md).\n")
    assert build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path).returncode == 0
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the other page](othr.md).\n")
    broken = build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert broken.returncode != 0 and "othr.md" in broken.stderr, broken.stderr[-3000:]


def test_every_runnable_block_of_the_docs_is_run_by_a_test():
    """A block is runnable when a `<!-- <name>-example -->` marker precedes it; a test runs it by that marker."""
    markers = set()
    for page in (ROOT / "docs").glob("*.md"):
        for marker in re.findall(r"<!-- [\w-]+-example -->", page.read_text()):
            following = page.read_text().split(marker, 1)[1].lstrip()
            assert following.startswith("```python"), f"{page.name}: {marker} marks no Python block"
            markers.add(marker)
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_docs.py")
    assert markers >= {"<!-- library-example -->", "<!-- hf-example -->", "<!-- check-strategy-example -->"}
    assert [m for m in sorted(markers) if m not in tests] == []


def test_the_readme_is_two_screens_with_the_leaderboard_picture_and_the_home_page_includes_it(site):
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert pictures and all((ROOT / p).is_file() for p in pictures)
    intro = readme.split("<!-- --8<-- [start:intro] -->", 1)[1].split("<!-- --8<-- [end:intro] -->", 1)[0]
    first_sentence = " ".join(intro.split())[:60]
    home = " ".join(text_of(site, "index.md").split())
    assert first_sentence in home, "docs/index.md includes the README's intro, not a copy that can drift"
    assert (site / pictures[0]).is_file(), "the picture is in the site at its repository path"
    for link in re.findall(r"\]\((docs/[^)]+\.md)\)", readme):
        assert (ROOT / link).is_file(), link


def test_help_ends_with_where_the_docs_are(monkeypatch, capsys):
    status, out = run_main(monkeypatch, capsys, ["--help"])
    last = [line for line in out.splitlines() if line.strip()][-2:]
    assert status == 0 and "make docs" in last[0] and "docs/configuration.md" in last[1], last
