"""The scoring phase through the real loop: charged, cached once per sweep, never lost."""

import pytest
from hydra import compose, initialize_config_module

from conftest import TINY
from infobatch_runner.engine.scoring import cache_key, cache_path
from infobatch_runner.engine.train import setup, train


def cfg_for(tmp_path, *extra):
    with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
        return compose(config_name="config",
                       overrides=TINY + ["prune=el2n", "prune.score_epochs=1", f"prune.cache_dir={tmp_path / 'cache'}", *extra])


def test_a_ratio_sweep_scores_once_and_every_run_reports_the_cost(tmp_path):
    first = train(cfg_for(tmp_path, "prune.ratio=0.3"), tmp_path / "a")
    second = train(cfg_for(tmp_path, "prune.ratio=0.6"), tmp_path / "b")
    assert not first["scoring_cached"] and second["scoring_cached"]
    assert second["time_scoring_s"] == first["time_scoring_s"] > 0
    assert second["samples_scoring"] == first["samples_scoring"] == 256 * 1 + 256 / 3
    assert second["time_cost_s"] == pytest.approx(second["time_train_s"] + first["time_scoring_s"])


def test_anything_that_changes_the_scores_changes_the_key(tmp_path):
    base = cfg_for(tmp_path)
    key = cache_key(setup(base), _spec(base))
    for change in ("prune.score_epochs=2", "seed=1", "optimizer.lr=0.05", "model.width=8", "dataset.num_train=200"):
        cfg = cfg_for(tmp_path, change)
        assert cache_key(setup(cfg), _spec(cfg)) != key, change
    cfg = cfg_for(tmp_path, "prune.ratio=0.9", "prune.offset=3", "trainer.epochs=4")
    assert cache_key(setup(cfg), _spec(cfg)) == key, "selection knobs do not change the scores"


def _spec(cfg):
    from infobatch_runner.pruning import build_strategy

    return build_strategy(cfg.prune, 256, cfg.trainer.epochs, cfg.seed).scoring()


def test_a_damaged_cache_costs_a_rescoring_not_the_run(tmp_path):
    cfg = cfg_for(tmp_path)
    train(cfg, tmp_path / "a")
    path = cache_path(cfg.prune.cache_dir, cache_key(setup(cfg), _spec(cfg)))
    path.write_bytes(b"garbage")
    again = train(cfg, tmp_path / "b")
    assert not again["scoring_cached"] and again["time_scoring_s"] > 0


def test_cached_and_computed_scores_train_the_same(tmp_path):
    computed = train(cfg_for(tmp_path, "dataset.augment.crop_padding=2", "dataset.augment.flip=true"), tmp_path / "a")
    cached = train(cfg_for(tmp_path, "dataset.augment.crop_padding=2", "dataset.augment.flip=true"), tmp_path / "b")
    assert cached["scoring_cached"] and not computed["scoring_cached"]
    assert cached["final/test_acc"] == computed["final/test_acc"]
    assert cached["final/test_loss"] == computed["final/test_loss"]
