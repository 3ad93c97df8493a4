"""A new user's bad inputs and the faults of real machines, walked as one table.

For every case: a non-zero exit, no traceback anywhere in the output, exactly one error line that
names the key or the file, and every file that existed before byte-identical after. Config
mistakes must write nothing at all. The cases run in this process through the real entry points
(`infobatch_runner.cli.main`, `infobatch_runner.results.cli.main`), so the table costs seconds.
"""

import builtins
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_main, snapshot
from test_config import BAD
from test_datasets import corrupt_tree, not_an_image, truncate, write_cifar10, write_fashion_mnist, write_image_tree

OFFLINE = "http://127.0.0.1:9"  # nothing listens there: a download fails at once
SEARCH = ["-m", "hparams_search=infobatch_optuna", "dataset.val_fraction=0.2", *TINY, "hydra.sweeper.n_trials=2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run folder (copied into each case that needs one, so that cases stay apart)."""
    from _pytest.monkeypatch import MonkeyPatch

    run = tmp_path_factory.mktemp("template") / "run"
    with MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["infobatch-run", *TINY, f"hydra.run.dir={run}"])
        from infobatch_runner import cli

        cli.main()
    return run


# ---------------------------------------------------------------------------------------------
# Each fault: a function (tmp, finished, monkeypatch) -> the command's arguments, after arranging
# the fault; the name the error line must contain; and which entry point it goes through.
# ---------------------------------------------------------------------------------------------

def _folder_of(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _copy_run(tmp: Path, finished: Path) -> Path:
    target = tmp / "run"
    shutil.copytree(finished, target)
    return target


def fresh_run_into_a_finished_folder(tmp, finished, mp):
    return TINY + [f"hydra.run.dir={_copy_run(tmp, finished)}"], "already holds a run"


def resume_with_another_config(tmp, finished, mp):
    return TINY + [f"hydra.run.dir={_copy_run(tmp, finished)}", "resume=auto", "seed=7"], "another config (seed: 0 vs 7)"


def fresh_run_into_results_without_checkpoints(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    shutil.rmtree(run / "checkpoints")
    return TINY + [f"hydra.run.dir={run}"], "already holds a run"


def resume_of_results_without_checkpoints(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    shutil.rmtree(run / "checkpoints")
    return TINY + [f"hydra.run.dir={run}", "resume=auto"], "no checkpoint"


def resume_from_a_truncated_checkpoint(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    (run / "summary.json").unlink()
    truncate(run / "checkpoints" / "last.pt")
    return TINY + [f"hydra.run.dir={run}", "resume=auto"], "last.pt is unreadable"


def resume_from_a_checkpoint_of_another_tool(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    (run / "summary.json").unlink()
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.pt")
    return TINY + [f"hydra.run.dir={run}", "resume=auto"], "not a checkpoint of this version"


def resume_with_a_garbage_metrics_row(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    (run / "summary.json").unlink()
    with open(run / "metrics.csv", "a") as f:
        f.write("three,oops,,,,,\n")
    return TINY + [f"hydra.run.dir={run}", "resume=auto"], "metrics.csv line 5 is not a row this tool wrote"


def resume_with_foreign_metrics_columns(tmp, finished, mp):
    run = _copy_run(tmp, finished)
    (run / "summary.json").unlink()
    (run / "metrics.csv").write_text("step,loss\n1,0.5\n")
    return TINY + [f"hydra.run.dir={run}", "resume=auto"], "metrics.csv does not have the columns"


def run_folder_under_a_file(tmp, finished, mp):
    (tmp / "afile").write_text("not a folder\n")
    return TINY + [f"hydra.run.dir={tmp / 'afile' / 'run'}"], "cannot create the folder"


def fresh_sweep_into_a_used_sweep_folder(tmp, finished, mp):
    sweep = tmp / "sweep"
    shutil.copytree(finished, sweep / "0_infobatch")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return ["-m", "prune=infobatch,full", *TINY, f"hydra.sweep.dir={sweep}"], "already holds a sweep"


def search_into_a_folder_of_an_earlier_search(tmp, finished, mp):
    sweep = tmp / "search"
    shutil.copytree(finished, sweep / "0_infobatch")  # an Optuna search writes no multirun.yaml
    return [*SEARCH, f"hydra.sweep.dir={sweep}"], "already holds a sweep or a search"


def search_resumed_into_a_folder_of_an_earlier_search(tmp, finished, mp):
    args, named = search_into_a_folder_of_an_earlier_search(tmp, finished, mp)
    return args + ["resume=auto"], named


def sweep_job_into_a_folder_a_live_run_holds(tmp, finished, mp):
    from infobatch_runner.results import folders

    sweep = tmp / "sweep"
    live = sweep / "1_infobatch"  # the sweep runs full first: 0_full, 1_infobatch
    live.mkdir(parents=True)
    real = folders.is_held
    mp.setattr(folders, "is_held", lambda folder: Path(folder).resolve() == live.resolve() or real(folder))
    return ["-m", "prune=infobatch,full", *TINY, f"hydra.sweep.dir={sweep}"], "1_infobatch is in use by another"


def empty_run_folder(tmp, finished, mp):
    mp.chdir(tmp)  # where an empty hydra.run.dir would write
    return TINY + ["hydra.run.dir=''"], "hydra.run.dir must name a folder"


def empty_sweep_subfolder(tmp, finished, mp):
    return ["-m", "seed=0,1", *TINY, f"hydra.sweep.dir={tmp / 'sweep'}", "hydra.sweep.subdir=''"], "hydra.sweep.subdir"


def two_sweep_jobs_in_one_folder(tmp, finished, mp):
    return (["-m", "seed=0,1", *TINY, f"hydra.sweep.dir={tmp / 'sweep'}", "hydra.sweep.subdir=${prune.name}"],
            "gives the sweep jobs seed=0 and seed=1 one folder")


def sweep_with_one_bad_value(tmp, finished, mp):
    return ["-m", "prune.ratio=0.3,1.5,0.5", *TINY, f"hydra.sweep.dir={tmp / 'sweep'}"], "prune.ratio=1.5"


def sweep_with_one_unknown_option(tmp, finished, mp):
    return ["-m", "prune=full,infobatch,nope", *TINY, f"hydra.sweep.dir={tmp / 'sweep'}"], "prune=nope"


def override_syntax_error(tmp, finished, mp):
    return TINY + ["prune.ratio=[0.3", f"hydra.run.dir={tmp / 'run'}"], "prune.ratio=[0.3"


def fashion_mnist_truncated_gz(tmp, finished, mp):
    write_fashion_mnist(_folder_of(tmp / "fm"))
    truncate(tmp / "fm" / "train-images-idx3-ubyte.gz")
    return _fashion(tmp), "train-images-idx3-ubyte.gz"


def fashion_mnist_gz_that_is_not_gzip(tmp, finished, mp):
    write_fashion_mnist(_folder_of(tmp / "fm"))
    (tmp / "fm" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>404 Not Found</html>\n")
    return _fashion(tmp), "t10k-labels-idx1-ubyte.gz"


def fashion_mnist_wrong_magic(tmp, finished, mp):
    write_fashion_mnist(_folder_of(tmp / "fm"), compress=False)
    (tmp / "fm" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02ab")
    return _fashion(tmp), "train-labels-idx1-ubyte"


def _fashion(tmp, *extra):
    return ["dataset=fashion_mnist", f"dataset.root={tmp / 'fm'}", *TINY[4:], f"hydra.run.dir={tmp / 'run'}", *extra]


def fashion_mnist_download_offline(tmp, finished, mp):
    _offline(mp)
    from infobatch_runner.data import idx

    mp.setattr(idx, "DEBIAN_DIR", tmp / "no-debian-package")
    (tmp / "fm").mkdir()
    return _fashion(tmp, "dataset.download=true"), "fashion_mnist download"


def _offline(mp):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        mp.setenv(var, OFFLINE)
    mp.delenv("no_proxy", raising=False)
    mp.delenv("NO_PROXY", raising=False)


def _cifar(tmp, *extra):
    return ["dataset=cifar10", f"dataset.root={tmp / 'c'}", *TINY[4:], f"hydra.run.dir={tmp / 'run'}", *extra]


def cifar_missing(tmp, finished, mp):
    (tmp / "c").mkdir()
    return _cifar(tmp), "data_batch_1"


def cifar_corrupt_pickle(tmp, finished, mp):
    (tmp / "c").mkdir()
    folder = write_cifar10(tmp / "c")
    (folder / "data_batch_3").write_bytes(b"\x80\x04garbage")
    return _cifar(tmp), "data_batch_3"


def cifar_labels_do_not_match(tmp, finished, mp):
    (tmp / "c").mkdir()
    folder = write_cifar10(tmp / "c")
    batch = pickle.loads((folder / "test_batch").read_bytes())
    batch[b"labels"] = batch[b"labels"][:-1]
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    return _cifar(tmp), "test_batch"


def cifar_download_offline(tmp, finished, mp):
    _offline(mp)
    (tmp / "c").mkdir()
    return _cifar(tmp, "dataset.download=true"), "cifar10 download"


def _folder(tmp, *extra):
    return ["dataset=imagenet", f"dataset.root={tmp / 'img'}", "dataset.image_size=32", "dataset.eval_resize=36",
            "model=cnn_small", *TINY[4:], f"hydra.run.dir={tmp / 'run'}", *extra]


def image_folder_of_one_class(tmp, finished, mp):
    write_image_tree(tmp / "img", classes=("cat",))
    return _folder(tmp, "trainer.num_workers=0"), "a classifier needs at least two"


def image_folder_missing(tmp, finished, mp):
    return _folder(tmp, "trainer.num_workers=0"), str(tmp / "img")


def image_folder_without_val_images(tmp, finished, mp):
    write_image_tree(tmp / "img")
    for image in (tmp / "img" / "val").rglob("*.*"):
        image.unlink()
    return _folder(tmp, "trainer.num_workers=0"), str(tmp / "img" / "val")


def corrupt_jpeg_read_by_workers(tmp, finished, mp):
    bad = corrupt_tree(tmp / "img", truncate)
    return _folder(tmp, "trainer.num_workers=2"), bad.name


def text_file_named_jpg(tmp, finished, mp):
    bad = corrupt_tree(tmp / "img", not_an_image)
    return _folder(tmp, "trainer.num_workers=0"), bad.name


def num_classes_below_the_labels(tmp, finished, mp):
    write_fashion_mnist(_folder_of(tmp / "fm"), n_train=64, n_test=16)
    return _fashion(tmp, "dataset.num_classes=5"), "dataset.num_classes=5"


def limit_train_leaving_one_class(tmp, finished, mp):
    return TINY + ["dataset.limit_train=1", f"hydra.run.dir={tmp / 'run'}"], "dataset.limit_train=1"


def kept_budget_of_zero(tmp, finished, mp):
    return TINY + ["prune=static_random", "prune.ratio=0.999", f"hydra.run.dir={tmp / 'run'}"], "= 0 of the 256"


def timm_model_that_cannot_take_the_image_size(tmp, finished, mp):
    return TINY + ["model=timm", "model.arch=vit_tiny_patch16_224", f"hydra.run.dir={tmp / 'run'}"], \
        "vit_tiny_patch16_224 cannot take"


def _torch_save_fails_like_a_full_disk(mp, after: int):
    """torch.save as it fails on a full disk: part of the file written, then torch's RuntimeError."""
    real_save, calls = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= after:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    mp.setattr(torch, "save", save)


def disk_full_at_the_first_checkpoint(tmp, finished, mp):
    _torch_save_fails_like_a_full_disk(mp, after=0)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "could not save the checkpoint"


def disk_full_at_a_later_checkpoint(tmp, finished, mp):
    _torch_save_fails_like_a_full_disk(mp, after=2)  # epoch 1 saved last.pt and best.pt
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "last good checkpoint"


def read_only_checkpoints(tmp, finished, mp):
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):  # root ignores chmod: refuse as a read-only mount would
        if "checkpoints" in str(file) and any(m in (args[0] if args else kwargs.get("mode", "r")) for m in "wa"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    mp.setattr(builtins, "open", guarded_open)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "Permission denied"


def disk_full_for_the_summary(tmp, finished, mp):
    run = tmp / "run"
    run.mkdir()
    os.symlink("/dev/full", run / "summary.json.tmp")  # writing there fails with ENOSPC, as on a full disk
    return TINY + [f"hydra.run.dir={run}"], "summary.json"


def disk_full_for_metrics(tmp, finished, mp):
    real_open = builtins.open

    def full_open(file, *args, **kwargs):
        if str(file).endswith("metrics.csv") and (args[0] if args else kwargs.get("mode", "r")).startswith("a"):
            return real_open("/dev/full", "w", newline="")
        return real_open(file, *args, **kwargs)

    mp.setattr(builtins, "open", full_open)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "metrics.csv"


def disk_full_from_the_start(tmp, finished, mp):
    import hydra.core.utils

    def full(cfg, filename, output_dir):  # Hydra's first write into the run folder: its .hydra record
        raise OSError(28, "No space left on device", str(output_dir / filename))

    mp.setattr(hydra.core.utils, "_save_config", full)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "No space left on device"


def batchnorm_on_a_batch_of_one(tmp, finished, mp):
    return TINY + ["model=resnet18", "dataset.image_size=8", "trainer.batch_size=1",
                   f"hydra.run.dir={tmp / 'run'}"], "trainer.batch_size to 2 or more"


def out_of_memory_in_training(tmp, finished, mp):
    from infobatch_runner.engine import train

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 48000000000 bytes. Error code 12 (Cannot allocate memory)")

    mp.setattr(train, "train_epoch", no_memory)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], "out of memory"


def disk_full_through_an_open_file(tmp, finished, mp):
    import hydra.core.utils

    def full(cfg, filename, output_dir):  # a write through an open file: the error carries no file name
        raise OSError(28, "No space left on device")

    mp.setattr(hydra.core.utils, "_save_config", full)
    return TINY + [f"hydra.run.dir={tmp / 'run'}"], f"cannot write {tmp / 'run'} (No space left on device)"


FAULTS = [disk_full_from_the_start, disk_full_through_an_open_file, batchnorm_on_a_batch_of_one, out_of_memory_in_training,
    
    fresh_run_into_a_finished_folder, resume_with_another_config, fresh_run_into_results_without_checkpoints,
    resume_of_results_without_checkpoints, resume_from_a_truncated_checkpoint, resume_from_a_checkpoint_of_another_tool,
    resume_with_a_garbage_metrics_row, resume_with_foreign_metrics_columns, run_folder_under_a_file,
    fresh_sweep_into_a_used_sweep_folder, search_into_a_folder_of_an_earlier_search,
    search_resumed_into_a_folder_of_an_earlier_search, sweep_job_into_a_folder_a_live_run_holds, empty_run_folder,
    empty_sweep_subfolder, two_sweep_jobs_in_one_folder, sweep_with_one_bad_value, sweep_with_one_unknown_option,
    override_syntax_error, fashion_mnist_truncated_gz, fashion_mnist_gz_that_is_not_gzip, fashion_mnist_wrong_magic,
    fashion_mnist_download_offline, cifar_missing, cifar_corrupt_pickle, cifar_labels_do_not_match,
    cifar_download_offline, image_folder_of_one_class, image_folder_missing, image_folder_without_val_images,
    corrupt_jpeg_read_by_workers, text_file_named_jpg, num_classes_below_the_labels, limit_train_leaving_one_class,
    kept_budget_of_zero, timm_model_that_cannot_take_the_image_size, disk_full_at_the_first_checkpoint,
    disk_full_at_a_later_checkpoint, read_only_checkpoints, disk_full_for_the_summary, disk_full_for_metrics,
]


def assert_one_sentence(status: int, out: str, prog: str, named: str) -> None:
    assert status not in (0, None), out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1, out
    assert named in errors[0], errors[0]


def unchanged(before: dict, after: dict) -> None:
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert not changed, f"changed or removed: {changed}"


@pytest.mark.parametrize("overrides,named", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_bad_value_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch, capsys, overrides, named):
    run = tmp_path / "run"
    status, out = run_main(monkeypatch, capsys, TINY + list(overrides) + [f"hydra.run.dir={run}"])
    assert_one_sentence(status, out, "infobatch-run", named)
    assert not run.exists(), "a refused config must not create its run folder"


# Values the preflight once accepted and the code downstream could not take: each is now checked
# against what that code can take (the generator's seed type, float32, memory, the model).
FASHION = ["dataset=fashion_mnist", *TINY[4:]]
VALUES = [
    (TINY + ["seed=18446744073709551616"], "seed must be an integer <= 18446744073709551615"),
    (TINY + ["scheduler.div_factor=1e-300"], "scheduler.div_factor=1e-300"),
    (TINY + ["scheduler=step", "scheduler.gamma=1e300"], "scheduler.gamma=1e+300"),
    (TINY + ["optimizer.lr=1e39"], "optimizer.lr=1e+39"),
    (TINY + ["dataset.image_size=20000"], "dataset.image_size=20000 needs"),
    (FASHION + ["dataset.image_size=20000"], "dataset.image_size must be 28 for fashion_mnist"),
    # a typo without the +: Hydra's own "Key 'epoch' not in 'Trainer'", given the close match
    (TINY + ["trainer.epoch=50"], "trainer.epoch is not a setting of trainer; did you mean trainer.epochs?"),
    (TINY + ["optimizer.momentun=0.5"], "did you mean optimizer.momentum?"),
    (TINY + ["dataset.augment.flop=1"], "did you mean dataset.augment.flip?"),
    # whole epochs: round(0.75 x 2) = 2 of 2 epochs is no saving at all, refused like one of 0 epochs
    (TINY + ["trainer.epochs=2", "prune=short_schedule", "prune.target_saving=0.25"],
     "= 2 epochs, all of them: no saving"),
    (TINY + ["trainer.epochs=3", "prune=short_schedule", "prune.ratio=0.1"], "raise the saving above 0.166667"),
]


@pytest.mark.parametrize("args,named", VALUES, ids=[" ".join(a[len(TINY) - 4:]) for a, _ in VALUES])
def test_a_value_the_code_cannot_take_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch, capsys, args, named):
    run = tmp_path / "run"
    status, out = run_main(monkeypatch, capsys, args + [f"hydra.run.dir={run}"])
    assert_one_sentence(status, out, "infobatch-run", named)
    assert not run.exists(), "a refused config must not create its run folder"


def test_the_largest_seed_trains(tmp_path, monkeypatch, capsys):
    status, out = run_main(monkeypatch, capsys, TINY + ["trainer.epochs=1", f"seed={2**64 - 1}",
                                                        f"hydra.run.dir={tmp_path / 'run'}"])
    assert status in (0, None), out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["seed"] == 2**64 - 1


# A search's settings, checked before its first trial (Hydra's Optuna sweeper).
SEARCHES = [
    (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials must be an integer >= 1"),
    (["hydra.sweeper.n_trials=-3"], "hydra.sweeper.n_trials must be an integer >= 1"),
    (["prune.ratio=interval(0.8,0.2)"], "prune.ratio=interval(0.8,0.2) is empty"),
    (["prune.ratio=interval(1.2,1.5)"], "prune.ratio=interval(1.2,1.5) can choose 1.2"),
    (["optimizer.lr=tag(log,interval(0,0.1))"], "needs a start above 0"),
    (["hydra.sweeper.direction=sideways"], "hydra.sweeper.direction must be minimize or maximize"),
    (["hydra.sweeper.storage=sqlite:////nonexistent/folder/study.db"], "hydra.sweeper.storage"),
    (["hparams_search=infobatch_optuna_saving", "objective=val_acc"], "objective=val_acc returns one value"),
]


@pytest.mark.parametrize("args,named", SEARCHES, ids=[" ".join(a) for a, _ in SEARCHES])
def test_a_search_setting_no_trial_could_run_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                                                 args, named):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "search"
    status, out = run_main(monkeypatch, capsys, SEARCH + args + [f"hydra.sweep.dir={sweep}"])
    assert_one_sentence(status, out, "infobatch-run", named)
    assert not sweep.exists(), "a refused search must not create its folder"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.__name__ for f in FAULTS])
def test_a_fault_is_one_sentence_and_loses_nothing(tmp_path, monkeypatch, capsys, finished_run, fault):
    args, named = fault(tmp_path, finished_run, monkeypatch)
    before = snapshot(tmp_path)
    status, out = run_main(monkeypatch, capsys, args)
    monkeypatch.undo()  # the fault's patches (open, torch.save) end here, before the files are read back
    assert_one_sentence(status, out, "infobatch-run", named)
    unchanged(before, snapshot(tmp_path))
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def _report_case(tmp: Path, finished: Path, summary_edit) -> list[str]:
    run = _copy_run(tmp, finished)
    summary = json.loads((run / "summary.json").read_text())
    summary_edit(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    return [str(tmp)]


REPORT_FAULTS = [
    ("null accuracy", lambda t, f: _report_case(t, f, lambda s: s.update({"final/test_acc": None})), "final/test_acc"),
    ("string accuracy", lambda t, f: _report_case(t, f, lambda s: s.update({"final/test_acc": "0.9"})),
     "final/test_acc"),
    ("NaN accuracy", lambda t, f: _report_case(t, f, lambda s: s.update({"final/test_acc": float("nan")})),
     "final/test_acc"),
    ("negative cost", lambda t, f: _report_case(t, f, lambda s: s.update({"time_cost_s": -1})), "time_cost_s"),
    ("folder that does not exist", lambda t, f: [str(t / "nowhere")], "nowhere"),
    ("folder without runs", lambda t, f: [str(t)], "no readable run folders"),
    ("out folder under a file", lambda t, f: [str(_copy_run(t, f)), "--out", str(_a_file(t) / "report")],
     "cannot write the report"),
    ("negative tolerance", lambda t, f: [str(_copy_run(t, f)), "--tolerance", "-0.1"], "--tolerance"),
    # a fraction that is a percentage: 0.5 would call a 50 pp loss lossless
    ("tolerance 0.5 as a fraction", lambda t, f: [str(_copy_run(t, f)), "--tolerance", "0.5"],
     "write --tolerance-pp 0.5"),
    ("tolerance 5 as a fraction", lambda t, f: [str(_copy_run(t, f)), "--tolerance", "5"], "write --tolerance-pp 5"),
    ("tolerance of 50 pp", lambda t, f: [str(_copy_run(t, f)), "--tolerance-pp", "50"], "percentage points in [0, 10]"),
    ("two tolerances", lambda t, f: [str(_copy_run(t, f)), "--tolerance-pp", "0.5", "--tolerance", "0.005"],
     "not both"),
]


def _a_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("x\n")
    return tmp / "afile"


@pytest.mark.parametrize("case", REPORT_FAULTS, ids=[c[0] for c in REPORT_FAULTS])
def test_a_bad_report_input_is_one_sentence_and_loses_nothing(tmp_path, capsys, finished_run, case):
    from infobatch_runner.results import cli as report_cli

    _, arrange, named = case
    args = arrange(tmp_path, finished_run)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        report_cli.main(args)
    captured = capsys.readouterr()
    assert_one_sentence(exit_.value.code, captured.out + captured.err, "infobatch-report", named)
    unchanged(before, snapshot(tmp_path))


def test_the_table_is_as_long_as_promised():
    assert len(BAD) + len(VALUES) + len(SEARCHES) + len(FAULTS) + len(REPORT_FAULTS) >= 60


def test_a_checkpoint_whose_optimizer_state_does_not_fit_is_one_sentence(tmp_path, monkeypatch, capsys, finished_run):
    run = _copy_run(tmp_path, finished_run)
    (run / "summary.json").unlink()
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=False)
    state["epoch"] = 1
    state["optimizer"]["param_groups"] = state["optimizer"]["param_groups"][:1]  # an earlier version's grouping
    torch.save(state, path)
    before = snapshot(tmp_path)
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}", "resume=auto"])
    assert_one_sentence(status, out, "infobatch-run", "does not fit this version")
    assert snapshot(tmp_path)["run/checkpoints/last.pt"] == before["run/checkpoints/last.pt"]


# ---------------------------------------------------------------------------------------------
# Faults a run survives: the score cache is a convenience, never a source of wrong numbers nor a
# reason to lose the scoring phase. The run ends well, says why it scored again or kept no cache,
# and leaves no temporary file.
# ---------------------------------------------------------------------------------------------

STATIC = TINY + ["prune=el2n", "prune.score_epochs=1", "trainer.epochs=1"]


def _cached_entry(tmp: Path, monkeypatch, capsys, edit) -> Path:
    cache = tmp / "cache"
    status, out = run_main(monkeypatch, capsys, STATIC + [f"prune.cache_dir={cache}", f"hydra.run.dir={tmp / 'first'}"])
    assert status in (0, None), out
    (entry,) = cache.glob("*.pt")
    saved = torch.load(entry, weights_only=True)
    edit(saved)
    torch.save(saved, entry)
    return cache


@pytest.mark.parametrize("edit,said", [
    (lambda saved: saved["scores"].__setitem__(0, float("nan")), "non-finite scores"),
    (lambda saved: saved.update({"time_s": -5.0}), "a scoring time of -5 s"),
    (lambda saved: saved.update({"samples": float("inf")}), "inf scored samples"),
])
def test_a_score_cache_entry_of_impossible_numbers_is_scored_again(tmp_path, monkeypatch, capsys, edit, said):
    cache = _cached_entry(tmp_path, monkeypatch, capsys, edit)
    status, out = run_main(monkeypatch, capsys, STATIC + [f"prune.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert status in (0, None), out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert not summary["scoring_cached"] and summary["time_scoring_s"] > 0 and summary["time_cost_s"] > 0
    assert said in out and str(cache) in out, out


def test_a_full_disk_under_the_score_cache_keeps_the_run(tmp_path, monkeypatch, capsys):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):  # torch's zip writer on a full disk: a RuntimeError, not an OSError
        if not str(f).endswith(".pt.tmp"):
            return real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(b"")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    cache = tmp_path / "cache"
    status, out = run_main(monkeypatch, capsys, STATIC + [f"prune.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"])
    monkeypatch.undo()
    assert status in (0, None), out
    assert (tmp_path / "run" / "summary.json").exists(), "the scored run finished"
    assert not list(tmp_path.rglob("*.tmp")) and not list(cache.glob("*.pt"))
    assert "could not write the score cache" in out, out


def _cut_short(summary: Path) -> None:
    summary.write_bytes(summary.read_bytes()[:100])  # a write cut short by a kill or a full disk


def test_resume_of_a_finished_run_whose_summary_was_cut_short_writes_it_again(tmp_path, monkeypatch, capsys,
                                                                               finished_run):
    run = _copy_run(tmp_path, finished_run)
    whole = json.loads((run / "summary.json").read_text())
    _cut_short(run / "summary.json")
    status, out = run_main(monkeypatch, capsys, TINY + [f"hydra.run.dir={run}", "resume=auto"])
    assert status in (0, None) and "nothing to do" not in out, out
    again = json.loads((run / "summary.json").read_text())
    for key in ("final/test_acc", "best/test_acc", "samples_trained", "saving_samples", "time_train_s"):
        assert again[key] == whole[key], key


def test_a_sweep_job_whose_summary_was_cut_short_is_rebuilt_on_resume(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    args = ["-m", "prune=full,infobatch", *TINY, "trainer.epochs=1", f"hydra.sweep.dir={sweep}"]
    status, out = run_main(monkeypatch, capsys, args)
    assert status in (0, None), out
    _cut_short(sweep / "1_infobatch" / "summary.json")
    status, out = run_main(monkeypatch, capsys, args + ["resume=auto"])
    assert status in (0, None) and "failed" not in out, out
    assert json.loads((sweep / "1_infobatch" / "summary.json").read_text())["strategy"] == "infobatch"

    _cut_short(sweep / "1_infobatch" / "summary.json")
    shutil.rmtree(sweep / "1_infobatch" / "checkpoints")  # nothing to rebuild it from: refused, naming the job
    status, out = run_main(monkeypatch, capsys, args + ["resume=auto"])
    assert_one_sentence(status, out, "infobatch-run", "1_infobatch holds a run's results but no checkpoint")


def test_a_sweep_whose_job_records_cannot_be_read_fails_naming_the_job(tmp_path, capsys, finished_run):
    from omegaconf import OmegaConf

    from infobatch_runner.sweeps.callbacks import SweepReport

    sweep = tmp_path / "sweep"
    shutil.copytree(finished_run, sweep / "0_infobatch")
    shutil.copytree(finished_run, sweep / "1_infobatch")
    _cut_short(sweep / "1_infobatch" / "summary.json")
    SweepReport.failed_jobs = 0
    SweepReport().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": {"name": "none"}}))
    out = capsys.readouterr().out
    assert SweepReport.failed_jobs == 1, out
    assert "unreadable: 1_infobatch: summary.json is not valid JSON" in out, out


@pytest.mark.parametrize("where", ["missing folder", "a folder", "under a file"])
def test_a_workspace_spec_that_cannot_be_written_is_one_sentence(tmp_path, capsys, where):
    from infobatch_runner.results import workspace

    target = {"missing folder": tmp_path / "nowhere" / "w.json", "a folder": tmp_path,
              "under a file": _a_file(tmp_path) / "w.json"}[where]
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        workspace.main(["--entity", "e", "--project", "p", "--spec", str(target)])
    captured = capsys.readouterr()
    assert_one_sentence(exit_.value.code, captured.out + captured.err, "python -m infobatch_runner.results.workspace",
                        "--spec")
    unchanged(before, snapshot(tmp_path))
