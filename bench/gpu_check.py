"""gpu-check: every CUDA path of infobatch-runner in one command, within about 8 minutes on one
H100/H200, ending in a PASS/FAIL table and the figures (images/s, loop efficiency, savings
realisation, device loader vs DataLoader).

    make gpu-check                                # = python -m bench.gpu_check
    make gpu-check GPU_CHECK_ARGS="--device cpu"  # dry run on a CPU: tiny sizes, CUDA-only checks SKIP
    python -m bench.gpu_check --phases strategies,resume --budget 300 --keep

Offline, with `logger=none` (no W&B needed): training runs are `python -m infobatch_runner.cli`
subprocesses on synthetic data (the loader phase reads Fashion-MNIST from .data/fashion-mnist or
/usr/share/datasets/fashion-mnist when present). A phase starts only while the time it needs is
left (--budget, default 470 s), every process is stopped at the budget, and the table is printed
in any case, Ctrl-C and SIGTERM included. Exit status 1 when a check FAILs or TIMEOUTs.

Written to the output folder (--out, else $OUT, else outputs/gpu_check/), seven files in all:
  table.txt      the table printed at the end
  results.json   every check and figure (rewritten after each check)
  logs.tar.gz    one log per process, each run's summary.json and metrics.csv (the folder logs/ while
                 the check runs; --keep keeps it)
  bench/         make bench's four JSON (BENCH_RESULTS points there; bench/results/ is left alone)
Run folders and checkpoints go to a scratch folder in /tmp, removed at the end unless --keep.

Phases (a check is PASS, WARN: ran but a figure is off, FAIL, TIMEOUT or SKIP):
  env         torch, CUDA and the GPU; hydra and the configs importable; the data found
  syncdebug   one bf16 epoch of each dynamic strategy under torch.cuda.set_sync_debug_mode("error")
              around the batch loop only (bench/sync_check.py): no host sync in the step
  precision   bf16, fp16, fp32 runs (one sweep): each trains, stays finite, learns, runs the precision asked
  loaders     trainer.loader=device and =dataloader (one sweep): both train the same plan
  bench       make bench: the four benchmarks, their figures held to the issue's thresholds
              (loop efficiency >= 0.9, savings realisation >= 0.9, device loader >= 2x the DataLoader)
  compile     trainer.compile=true, in the background of the next three phases: it trains, and no
              recompilation after the first epoch
  strategies  every prune= option for 3 epochs (one sweep): each finishes, prunes (full never), static
              ones charge their scoring; the sweep report is written
  resume      a run killed with SIGKILL after its first epoch, then resume=auto, against an uninterrupted
              run (deterministic algorithms on both): the same metrics rows, times aside
  torchrun    torchrun --nproc_per_node=1: one run folder, one closing line
"""

import argparse
import csv
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("full", "short_schedule", "infobatch", "seta", "random_dynamic", "rs2", "epsilon_greedy", "ucb", "el2n",
              "grand", "forgetting", "static_random")
SCORED = ("el2n", "grand", "forgetting")  # static strategies with a scoring phase
BENCHMARKS = ("strategy_overhead", "loop_efficiency", "savings", "loader_speed", "optimizer_speed")  # make bench, less startup (not a GPU figure)
FASHION_MNIST = (ROOT / ".data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))
SEVERITY = ("FAIL", "TIMEOUT", "WARN", "PASS", "SKIP")  # a phase shows its worst check
THRESHOLDS = {"loop efficiency": 0.9, "savings realisation": 0.9, "loader speed-up": 2.0}
# The resume comparison runs both trainings with deterministic kernels (warn_only: an op without a
# deterministic version says so in the log instead of failing), so that equal rows are expected on CUDA too.
DETERMINISTIC_CLI = ("import runpy, torch; torch.use_deterministic_algorithms(True, warn_only=True); "
                     "runpy.run_module('infobatch_runner.cli', run_name='__main__', alter_sys=True)")


@dataclass(frozen=True)
class Sizes:
    model: str
    image_size: int
    batch: int
    n_timed: int  # precision and loader runs, whose images/s are figures
    n: int  # the other runs
    n_test: int
    workers: int  # DataLoader workers
    bench_args: str  # make bench's BENCH_ARGS, besides --device


SIZES = {
    # 49 and 16 full batches of 512 and a partial one; the GPU box has 16 cores.
    "cuda": Sizes("resnet18", 32, 512, 25_388, 8_492, 2_000, 8, "--repeats 2"),
    "cpu": Sizes("cnn_small", 16, 64, 1_000, 600, 128, 2, "--smoke"),
}


@dataclass(frozen=True)
class Phase:
    need_s: int  # seconds it needs to start; the phases before it leave them if they can
    cap_s: int  # the longest it may take
    background: bool = False  # runs beside the phases after it (timings there are not figures)


PHASES = {
    "env": Phase(5, 60),
    "syncdebug": Phase(30, 150),
    "precision": Phase(40, 180),
    "loaders": Phase(30, 150),
    "bench": Phase(90, 330),
    "compile": Phase(60, 300, background=True),
    "strategies": Phase(60, 240),
    "resume": Phase(40, 180),
    "torchrun": Phase(25, 120),
}


class Stopped(Exception):
    """SIGTERM, SIGINT or the budget's alarm: stop the processes and print the table."""


@dataclass
class Check:
    phase: str
    name: str
    status: str
    detail: str


@dataclass
class Proc:
    rc: int | None
    timed_out: bool
    log: Path
    seconds: float


@dataclass
class Run:
    """What one training run came to: its check's status and detail, its summary and last-epoch images/s."""

    status: str
    detail: str
    summary: dict | None = None
    images_per_s: float = 0.0


class GpuCheck:
    def __init__(self, args):
        self.device, self.budget, self.keep = args.device, args.budget, args.keep
        self.cuda = self.device == "cuda"
        self.sizes = SIZES[self.device]
        self.bench_args = self.sizes.bench_args if args.bench_args is None else args.bench_args
        self.selected = args.phases
        self.out = args.out
        self.logs = self.out / "logs"
        for stale in (self.logs, self.out / "bench"):
            shutil.rmtree(stale, ignore_errors=True)
        (self.out / "logs.tar.gz").unlink(missing_ok=True)
        self.logs.mkdir(parents=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu_check."))
        self.start = time.monotonic()
        self.deadline = self.start + self.budget
        self.checks: list[Check] = []
        self.figures: list[tuple[str, str]] = []
        self.live: set[subprocess.Popen] = set()
        self.background: dict[str, tuple[subprocess.Popen, Path, float]] = {}
        self.machine = "-"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
                    "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        self.env.pop("HYDRA_FULL_ERROR", None)
        if not self.cuda:  # a small shared CPU: one thread per process, as two of them run at once at times
            self.env.setdefault("OMP_NUM_THREADS", "1")

    # ------------------------------------------------------------------ bookkeeping
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def add(self, phase: str, name: str, status: str, detail: str = "") -> None:
        self.checks.append(Check(phase, name, status, detail))
        print(f"[{self.elapsed():4.0f}s] {phase:10s} {name:28s} {status:7s} {detail}", flush=True)
        self.save()

    def figure(self, name: str, value: str) -> None:
        self.figures.append((name, value))

    def judge(self, phase: str, name: str, value: float, key: str, detail: str, smoke: bool) -> None:
        """A figure held to its threshold: PASS or WARN (not judged at smoke sizes)."""
        threshold = THRESHOLDS[key]
        label = f"{name} >= {threshold:g}"
        if smoke:
            self.add(phase, label, "SKIP", f"{value:.2f} at --smoke sizes on {self.device}: not judged")
        else:
            self.add(phase, label, "PASS" if value >= threshold else "WARN", f"{value:.2f} ({detail})")

    def save(self) -> None:
        status = "FAIL" if any(c.status in ("FAIL", "TIMEOUT") for c in self.checks) else "PASS"
        (self.out / "results.json").write_text(json.dumps({
            "device": self.device, "machine": self.machine, "budget_s": self.budget, "elapsed_s": round(self.elapsed(), 1),
            "status": status, "checks": [asdict(c) for c in self.checks],
            "figures": [{"name": n, "value": v} for n, v in self.figures]}, indent=2) + "\n")

    # ------------------------------------------------------------------ processes
    def spawn(self, name: str, argv: list, extra_env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.logs / f"{name}.log"
        with open(log, "w") as f:
            f.write("$ " + shlex.join(map(str, argv)) + "\n")
            f.flush()
            p = subprocess.Popen([str(a) for a in argv], cwd=self.scratch, stdout=f, stderr=subprocess.STDOUT,
                                 env={**self.env, **(extra_env or {})}, start_new_session=True)
        self.live.add(p)
        return p, log

    def reap(self, p: subprocess.Popen, log: Path, deadline: float, started: float) -> Proc:
        try:
            rc, timed_out = p.wait(timeout=max(1.0, min(deadline, self.deadline) - time.monotonic())), False
        except subprocess.TimeoutExpired:
            self.kill(p)
            rc, timed_out = p.returncode, True
            with open(log, "a") as f:
                f.write(f"\n[gpu_check] stopped at its time limit after {time.monotonic() - started:.0f}s\n")
        self.live.discard(p)
        return Proc(rc, timed_out, log, time.monotonic() - started)

    def run(self, name: str, argv: list, deadline: float, extra_env: dict | None = None) -> Proc:
        started = time.monotonic()
        p, log = self.spawn(name, argv, extra_env)
        return self.reap(p, log, deadline, started)

    def kill(self, p: subprocess.Popen, sig=signal.SIGTERM) -> None:
        """Stop a process and its children (its own session): `sig`, then SIGKILL after 10 s."""
        try:
            os.killpg(p.pid, sig)
            p.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.live.discard(p)

    # ------------------------------------------------------------------ training runs
    def base(self, n: int) -> list[str]:
        s = self.sizes
        return ["dataset=synthetic", f"dataset.num_train={n}", f"dataset.num_test={s.n_test}",
                f"dataset.image_size={s.image_size}", "dataset.channels=3", "dataset.augment.crop_padding=4",
                "dataset.augment.flip=true", f"model={s.model}", f"trainer.batch_size={s.batch}",
                f"trainer.device={self.device}", "trainer.progress=false", "logger=none"]

    @staticmethod
    def cli(*overrides) -> list:
        return [sys.executable, "-m", "infobatch_runner.cli", *overrides]

    def inspect(self, run_dir: Path, proc: Proc, epochs: int, expect=None) -> Run:
        """Judge one training run by its folder; `expect(summary, rows)` lists further problems."""
        name = run_dir.name
        for f in ("summary.json", "metrics.csv", "failed.json"):
            if (run_dir / f).exists():
                shutil.copy(run_dir / f, self.logs / f"{proc.log.stem}.{name}.{f}")
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        except (OSError, ValueError):
            if (run_dir / "failed.json").exists():
                return Run("FAIL", json.loads((run_dir / "failed.json").read_text())["error"][:200])
            return Run("TIMEOUT" if proc.timed_out else "FAIL", f"rc {proc.rc}: {last_error(proc.log)}")
        problems, warnings = [], []
        if len(rows) != epochs:
            problems.append(f"{len(rows)} metric rows for {epochs} epochs")
        trained = [r for r in rows if float(r["train/kept_fraction"]) > 0]  # short_schedule's last epochs train nothing
        acc, loss = summary["final/test_acc"], float(trained[-1]["train/loss"]) if trained else math.nan
        if not (math.isfinite(acc) and math.isfinite(loss)):
            problems.append("non-finite loss or accuracy")
        elif self.cuda and acc < 0.2:  # 10 classes: twice chance (the CPU's tiny runs may well stay below)
            warnings.append(f"learned little (test acc {acc:.3f})")
        problems += expect(summary, rows) if expect else []
        kept = "/".join(f"{float(r['train/kept_fraction']):.2f}" for r in rows)
        ips = images_per_s(summary, rows) if rows else 0.0
        detail = f"{summary['precision']} acc {acc:.3f} kept {kept} {ips:.0f} img/s"
        status = "FAIL" if problems else "WARN" if warnings else "PASS"
        return Run(status, " | ".join(["; ".join(problems + warnings)] * (status != "PASS") + [detail]), summary, ips)

    # ------------------------------------------------------------------ phases
    def phase_env(self, deadline: float) -> None:
        try:
            import torch
            from hydra import compose, initialize_config_module
            import infobatch_runner
            with initialize_config_module(version_base="1.3", config_module="infobatch_runner.conf"):
                compose(config_name="config", overrides=["prune=infobatch"])
        except Exception as exc:
            self.add("env", "imports and configs", "FAIL", f"{type(exc).__name__}: {exc}"[:200])
            return
        self.add("env", "imports and configs", "PASS",
                 f"torch {torch.__version__}, infobatch_runner from {Path(infobatch_runner.__file__).parent}")
        if self.cuda:
            if not torch.cuda.is_available():
                self.add("env", "cuda", "FAIL", "no CUDA device visible (--device cpu runs the dry run)")
                return
            p = torch.cuda.get_device_properties(0)
            self.machine = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}"
            self.add("env", "cuda", "PASS", f"{self.machine}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                                            f"bf16 {torch.cuda.is_bf16_supported()}")
            if shutil.which("nvidia-smi"):
                (self.logs / "nvidia-smi.txt").write_text(subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
        else:
            from infobatch_runner.engine.runtime import device_name
            self.machine = device_name(torch.device("cpu"))
            self.add("env", "cuda", "SKIP", "--device cpu: dry run, CUDA-only checks SKIP")
        fmnist = self.fashion_mnist()
        self.add("env", "data", "PASS", f"synthetic; Fashion-MNIST {'in ' + str(fmnist) if fmnist else 'not found (loaders use synthetic)'}")

    def phase_syncdebug(self, deadline: float) -> None:
        s, report = self.sizes, self.logs / "syncdebug.json"
        proc = self.run("syncdebug", [sys.executable, "-m", "bench.sync_check", "--device", self.device, "--model", s.model,
                                      "--batch", s.batch, "--n", s.n, "--image-size", s.image_size, "--json", report],
                        deadline)
        if not report.exists():
            self.add("syncdebug", "sync_check", "TIMEOUT" if proc.timed_out else "FAIL", f"rc {proc.rc}: {last_error(proc.log)}")
            return
        for name, r in json.loads(report.read_text()).items():
            self.add("syncdebug", f"bf16 epoch, prune={name}", r["status"], r["detail"])

    def phase_precision(self, deadline: float) -> None:
        precisions = ["bf16", "fp16", "fp32"] if self.cuda else ["bf16", "fp32"]
        if not self.cuda:
            self.add("precision", "fp16", "SKIP", "needs CUDA")
        sweep = self.scratch / "precision"
        # grad_clip: fp16 then unscales before clipping; fp32 runs as tf32 on CUDA unless trainer.tf32=false
        proc = self.run("precision", self.cli("-m", *self.base(self.sizes.n_timed), "trainer.epochs=2", "prune=full",
                                              "trainer.grad_clip=1.0", f"trainer.precision={','.join(precisions)}",
                                              f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${trainer.precision}"),
                        deadline)
        for p in precisions:
            def expect(summary, rows, p=p):
                ok = {"fp32": ("fp32", "tf32")}.get(p, (p,))
                return [] if summary["precision"] in ok else [f"ran {summary['precision']}, asked {p}"]
            run = self.inspect(sweep / p, proc, 2, expect)
            self.add("precision", p, run.status, run.detail)
            if run.summary:
                self.figure(f"img/s {self.sizes.model} b{self.sizes.batch} {run.summary['precision']} (epoch 2)",
                            f"{run.images_per_s:.0f}")

    def phase_loaders(self, deadline: float) -> None:
        s, fmnist = self.sizes, self.fashion_mnist()
        data = (["dataset=fashion_mnist", f"dataset.root={fmnist}", f"dataset.limit_train={s.n_timed}",
                 f"dataset.limit_test={s.n_test}", f"model={s.model}", f"trainer.batch_size={s.batch}",
                 f"trainer.device={self.device}", "trainer.progress=false", "logger=none"]
                if fmnist else self.base(s.n_timed))
        sweep = self.scratch / "loaders"
        proc = self.run("loaders", self.cli("-m", *data, "trainer.epochs=2", "prune=infobatch", "prune.delta=1.0",
                                            f"trainer.num_workers={s.workers}",
                                            "trainer.loader=device,dataloader", f"hydra.sweep.dir={sweep}",
                                            "hydra.sweep.subdir=${trainer.loader}"), deadline)
        speed = {}
        for loader in ("device", "dataloader"):
            run = self.inspect(sweep / loader, proc, 2)
            self.add("loaders", f"loader={loader}", run.status, f"{'fashion_mnist' if fmnist else 'synthetic'}: {run.detail}")
            if run.summary:
                speed[loader] = run.images_per_s
        if len(speed) == 2:
            self.figure(f"img/s training, device loader / DataLoader ({s.workers} workers)",
                        f"{speed['device']:.0f} / {speed['dataloader']:.0f} = {speed['device'] / max(speed['dataloader'], 1e-9):.2f}x")

    def phase_bench(self, deadline: float) -> None:
        results = self.out / "bench"
        results.mkdir(parents=True, exist_ok=True)
        bench_args = f"--device {self.device} {self.bench_args}".strip()
        if shutil.which("make"):
            argv = ["make", "--no-print-directory", "-C", ROOT, "bench", f"PY={sys.executable}", f"BENCH_ARGS={bench_args}"]
        else:  # the recipe of `make bench`
            py = shlex.quote(sys.executable)
            argv = ["sh", "-c", " && ".join([f"{py} -m bench.{b} {bench_args}" for b in BENCHMARKS] + [f"{py} -m bench.table"])]
        proc = self.run("bench", argv, deadline, {"BENCH_RESULTS": str(results)})
        got = {b: json.loads(p.read_text()) for b in BENCHMARKS if (p := results / f"{b}.json").exists()}
        missing = [b for b in BENCHMARKS if b not in got]
        wrong = [b for b, r in got.items() if self.cuda and r["device"].startswith("cpu")]
        status = "TIMEOUT" if proc.timed_out else "FAIL" if proc.rc or missing or wrong else "PASS"
        self.add("bench", "make bench", status, f"BENCH_ARGS='{bench_args}' rc {proc.rc}, {proc.seconds:.0f}s"
                 + (f"; missing {', '.join(missing)}" if missing else "") + (f"; on the CPU: {wrong}" if wrong else "")
                 + (f": {last_error(proc.log)}" if proc.rc and not proc.timed_out else ""))
        if loop := got.get("loop_efficiency"):
            self.judge("bench", f"loop efficiency {loop['model']} b{loop['batch']} {loop['precision']}", loop["efficiency"],
                       "loop efficiency", f"real {loop['real_images_per_s']:.0f} / bare {loop['bare_images_per_s']:.0f} img/s",
                       loop.get("smoke", False))
            self.figure(f"img/s real loop / bare steps, {loop['model']} b{loop['batch']} {loop['precision']}",
                        f"{loop['real_images_per_s']:.0f} / {loop['bare_images_per_s']:.0f}")
        if savings := got.get("savings"):
            for name, r in savings["strategies"].items():
                self.judge("bench", f"savings realisation {name}", r["realisation"], "savings realisation",
                           f"saving samples {r['saving_samples']:.3f}, wall {r['saving_wall']:.3f}", savings.get("smoke", False))
            self.figure(f"savings: full-data time_cost_s ({savings['repeats']} repeats)", f"{savings['full_time_cost_s']:.1f}")
        if loader := got.get("loader_speed"):
            self.judge("bench", "loader speed-up, device vs DataLoader", loader["speedup"], "loader speed-up",
                       f"{loader['device_epoch_s']:.3f} vs {loader['dataloader_epoch_s']:.3f} s/epoch, {loader['n']:,} images, "
                       f"{loader['workers']} workers", loader.get("smoke", False))
        if overhead := got.get("strategy_overhead"):
            for n, rows in overhead["sizes"].items():
                ours, ref = rows["infobatch"], rows["reference (published style)"]
                self.figure(f"infobatch plan ms / observe us, N={int(n):,}",
                            f"{ours['plan_ms']:.1f} / {ours['observe_us']:.1f} (published style {ref['plan_ms']:.1f} / "
                            f"{ref['observe_us']:.1f})")

    def phase_compile(self, deadline: float) -> None:
        run_dir = self.scratch / "compile"
        overrides = [*self.base(self.sizes.n), "trainer.epochs=2", "prune=infobatch", "prune.delta=1.0", "trainer.compile=true",
                     f"hydra.run.dir={run_dir}"]
        if not self.cuda:
            overrides.append("trainer.compile_backend=eager")  # inductor's C++ build takes minutes on a small CPU
        p, log = self.spawn("compile", self.cli(*overrides), {"TORCH_LOGS": "recompiles"})
        self.background["compile"] = (p, log, time.monotonic())
        print(f"[{self.elapsed():4.0f}s] compile    started in the background", flush=True)

    def finish_compile(self, deadline: float) -> None:
        p, log, started = self.background.pop("compile")
        proc = self.reap(p, log, deadline, started)
        run = self.inspect(self.scratch / "compile", proc, 2,
                           lambda summary, rows: [] if summary["time_compile_s"] > 0 else ["nothing compiled ahead"])
        if run.summary:
            text = log.read_text(errors="replace")
            late = text.split("epoch 1/2", 1)[1].count("Recompiling function") if "epoch 1/2" in text else 0
            backend = "inductor" if self.cuda else "eager backend on cpu"
            run.detail = f"{backend}, compiled ahead in {run.summary['time_compile_s']:.1f}s, {run.detail}"
            if late and run.status == "PASS":  # known for a partial last batch of a new size (docs/speed.md)
                run.status, run.detail = "WARN", f"{late} recompiles in epoch 2 (TORCH_LOGS=recompiles: logs/compile.log) | {run.detail}"
            self.figure(f"compile ({backend}): time_compile_s, recompiles all / in epoch 2",
                        f"{run.summary['time_compile_s']:.1f} s, {text.count('Recompiling function')} / {late}")
        self.add("compile", "trainer.compile=true", run.status, run.detail)

    def phase_strategies(self, deadline: float) -> None:
        sweep = self.scratch / "strategies"
        # 3 epochs: with delta 0.875 InfoBatch prunes epoch 1 and anneals from floor(0.875 x 3) = 2
        proc = self.run("strategies", self.cli("-m", *self.base(self.sizes.n), "trainer.epochs=3",
                                               f"prune={','.join(STRATEGIES)}", f"hydra.sweep.dir={sweep}",
                                               "hydra.sweep.subdir=${prune.name}"), deadline)
        for name in STRATEGIES:
            def expect(summary, rows, name=name):
                kept = [float(r["train/kept_fraction"]) for r in rows]
                problems = []
                if name == "full" and min(kept) < 1:
                    problems.append("full data pruned")
                if name != "full" and min(kept) >= 1:
                    problems.append("never pruned")
                if (summary["samples_scoring"] > 0) != (name in SCORED):
                    problems.append(f"samples_scoring {summary['samples_scoring']}")
                return problems
            run = self.inspect(sweep / name, proc, 3, expect)
            if run.summary:
                wall = run.summary["saving_wall"]
                run.detail += f", saved samples {run.summary['saving_samples']:.2f}" + (f" wall {wall:.2f}" if wall is not None else "")
            self.add("strategies", f"prune={name}", run.status, run.detail)
        report = sweep / "report.md"
        self.add("strategies", "sweep report", "PASS" if report.exists() else ("TIMEOUT" if proc.timed_out else "FAIL"),
                 f"sweep rc {proc.rc}, {proc.seconds:.0f}s" + ("" if report.exists() else ", no report.md"))

    def phase_resume(self, deadline: float) -> None:
        epochs = 6
        argv = [sys.executable, "-c", DETERMINISTIC_CLI, *self.base(self.sizes.n), f"trainer.epochs={epochs}", "prune=infobatch",
                "trainer.cudnn_benchmark=false"]
        env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
        ref_dir, run_dir = self.scratch / "resume_reference", self.scratch / "resume_killed"
        started = time.monotonic()
        ref, ref_log = self.spawn("resume_reference", [*argv, f"hydra.run.dir={ref_dir}"], env)
        victim, _ = self.spawn("resume_victim", [*argv, f"hydra.run.dir={run_dir}"], env)
        while victim.poll() is None and time.monotonic() < min(deadline, self.deadline):
            if (run_dir / "checkpoints" / "last.pt").exists():  # epoch 1 done and saved: kill it in epoch 2
                break
            time.sleep(0.02)
        name = "kill -9, resume=auto"
        if victim.poll() is not None or not (run_dir / "checkpoints" / "last.pt").exists():
            self.add("resume", name, "FAIL" if victim.poll() is not None else "TIMEOUT",
                     f"the run ended (rc {victim.returncode}) before it could be killed" if victim.poll() is not None
                     else "no checkpoint of epoch 1 within the time")
            self.kill(victim)
            self.kill(ref)
            return
        self.kill(victim, signal.SIGKILL)
        rows_at_kill = len((run_dir / "metrics.csv").read_text().splitlines()) - 1
        resumed = self.run("resume_auto", [*argv, f"hydra.run.dir={run_dir}", "resume=auto"], deadline, env)
        reference = self.reap(ref, ref_log, deadline, started)
        for d, p, what in ((ref_dir, reference, "uninterrupted"), (run_dir, resumed, "resumed")):
            if (run := self.inspect(d, p, epochs)).status != "PASS":
                self.add("resume", name, run.status, f"{what} run: {run.detail}")
                return
        text = resumed.log.read_text(errors="replace")
        if "resuming after epoch" not in text:
            self.add("resume", name, "FAIL", "the second run did not resume ('resuming after epoch' missing from its log)")
            return
        a, b = metric_rows(ref_dir), metric_rows(run_dir)
        where = f"killed after {rows_at_kill} of {epochs} epochs"
        if a == b:
            self.add("resume", name, "PASS", f"{where}; all {len(a)} metrics rows equal to the uninterrupted run's (times aside)")
        elif rows_close(a, b):  # the same run up to float noise: a kernel without a deterministic version
            warned = sorted(set(re.findall(r"(\w+) does not have a deterministic implementation", text)))
            self.add("resume", name, "WARN", f"{where}; rows equal within 1% but not bit-exact, first difference at "
                     f"{first_difference(a, b)}" + (f"; nondeterministic: {', '.join(warned)}" if warned else ""))
        else:
            self.add("resume", name, "FAIL", f"{where}; rows differ from the uninterrupted run's, first at {first_difference(a, b)}")

    def phase_torchrun(self, deadline: float) -> None:
        run_dir = self.scratch / "torchrun"
        proc = self.run("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                                     "-m", "infobatch_runner.cli", *self.base(self.sizes.n), "trainer.epochs=2",
                                     "prune=infobatch", "prune.delta=1.0", f"hydra.run.dir={run_dir}"], deadline)

        def expect(summary, rows):
            closing = proc.log.read_text(errors="replace").count("final test acc")
            return [] if closing == 1 else [f"{closing} closing lines"]

        run = self.inspect(run_dir, proc, 2, expect)
        self.add("torchrun", "torchrun --nproc_per_node=1", run.status, run.detail)

    # ------------------------------------------------------------------ the whole check
    def fashion_mnist(self) -> Path | None:
        return next((d for d in FASHION_MNIST if (d / "train-images-idx3-ubyte.gz").exists()), None)

    def main(self) -> int:
        order = list(PHASES)
        try:
            for i, name in enumerate(order):
                phase = PHASES[name]
                if name not in self.selected:
                    self.add(name, "-", "SKIP", "not in --phases")
                    continue
                if name != "env" and any(c.phase == "env" and c.status == "FAIL" for c in self.checks):
                    self.add(name, "-", "SKIP", "the environment is not usable")
                    continue
                if self.left() < phase.need_s:
                    self.add(name, "-", "SKIP", f"out of time: {self.left():.0f}s left, it needs {phase.need_s}s")
                    continue
                # in order: it may take up to its cap, less what the phases after it need to start
                later = sum(PHASES[p].need_s for p in order[i + 1:] if p in self.selected and not PHASES[p].background)
                allowed = min(phase.cap_s, max(phase.need_s, self.left() - later))
                self.guarded(name, getattr(self, f"phase_{name}"), time.monotonic() + allowed)
            if "compile" in self.background:
                self.guarded("compile", self.finish_compile, time.monotonic() + PHASES["compile"].cap_s)
        except Stopped as why:
            for p in list(self.live):
                self.kill(p)
            self.add("gpu_check", "stopped", "FAIL", f"by {why} after {self.elapsed():.0f}s")
            for name in PHASES:
                if not any(c.phase == name for c in self.checks):
                    self.add(name, "-", "SKIP", f"stopped by {why} before it finished")
        return self.finish()

    def guarded(self, name: str, phase, deadline: float) -> None:
        """Run a phase; a bug in it (or in what it reads) is its FAIL, and the next phase still runs."""
        try:
            phase(deadline)
        except Stopped:
            raise
        except Exception as exc:
            (self.logs / f"{name}.gpu_check-error.txt").write_text(traceback.format_exc())
            self.add(name, "(gpu_check)", "FAIL", f"{type(exc).__name__}: {exc} (logs/{name}.gpu_check-error.txt)"[:240])

    def finish(self) -> int:
        signal.alarm(0)
        table = self.table()
        print("\n" + table, flush=True)
        (self.out / "table.txt").write_text(table + "\n")
        self.save()
        with tarfile.open(self.out / "logs.tar.gz", "w:gz") as tar:
            tar.add(self.logs, arcname="logs")
        if self.keep:
            print(f"logs kept in {self.logs}, runs and checkpoints in {self.scratch}")
        else:
            shutil.rmtree(self.logs, ignore_errors=True)
            shutil.rmtree(self.scratch, ignore_errors=True)
        return 1 if any(c.status in ("FAIL", "TIMEOUT") for c in self.checks) else 0

    def table(self) -> str:
        rank = {p: i for i, p in enumerate([*PHASES, "gpu_check"])}
        checks = sorted(self.checks, key=lambda c: rank.get(c.phase, len(rank)))  # stable: compile's rows in place
        width = max([30, *(len(c.name) for c in checks)])
        lines = [f"==== gpu-check on {self.device} ({self.machine}): {self.elapsed():.0f}s of a {self.budget:.0f}s budget; "
                 f"output in {self.out} ====",
                 f"{'PHASE':11s} {'CHECK':{width}s} {'STATUS':7s} DETAIL"]
        lines += [f"{c.phase:11s} {c.name:{width}s} {c.status:7s} {c.detail}" for c in checks]
        lines.append("---- figures ----")
        lines += [f"  {n:70s} {v}" for n, v in self.figures] or ["  (none)"]
        phases = []
        for p in rank:
            statuses = [c.status for c in checks if c.phase == p]
            if statuses:
                phases.append(f"{p} {min(statuses, key=SEVERITY.index)}")
        counts = ", ".join(f"{sum(c.status == s for c in checks)} {s}" for s in SEVERITY)
        failed = any(c.status in ("FAIL", "TIMEOUT") for c in checks)
        lines += ["---- phases: " + " | ".join(phases), f"RESULT: {'FAIL' if failed else 'PASS'} ({counts})"]
        return "\n".join(lines)


def images_per_s(summary: dict, rows: list[dict]) -> float:
    """Training images per second in the last epoch (its kept samples over its time)."""
    last = rows[-1]
    return float(last["train/kept_fraction"]) * summary["num_train"] / max(float(last["train/epoch_time_s"]), 1e-9)


def metric_rows(run_dir: Path) -> list[dict]:
    """metrics.csv without its wall-clock columns: what an interrupted and resumed run must reproduce."""
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if "time" not in k} for row in csv.DictReader(f)]


def first_difference(a: list[dict], b: list[dict]) -> str:
    if len(a) != len(b):
        return f"{len(b)} rows vs {len(a)}"
    return next((f"epoch {x['epoch']} {k}: {y[k]} vs {x[k]}" for x, y in zip(a, b) for k in x if x[k] != y[k]), "-")


def rows_close(a: list[dict], b: list[dict], rel: float = 1e-2) -> bool:
    return len(a) == len(b) and all(abs(float(x[k]) - float(y[k])) <= rel * max(1.0, abs(float(x[k])))
                                    for x, y in zip(a, b) for k in x)


def last_error(log: Path) -> str:
    """The line of a log that says what went wrong (or its last line)."""
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if re.search(r"error|Error|Exception|Killed|out of memory", line) and "HYDRA_FULL_ERROR" not in line:
            return line[:220]
    return lines[-1][:220] if lines else "empty log"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default=os.environ.get("GPU_CHECK_DEVICE", "cuda"),
                        help="cpu: the dry run, tiny sizes, CUDA-only checks SKIP (default $GPU_CHECK_DEVICE, else cuda)")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET_S", 470)),
                        help="seconds for the whole check, table included (default $GPU_CHECK_BUDGET_S, else 470)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"a comma-separated selection of {','.join(PHASES)} (env runs in any case)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "outputs" / "gpu_check"))
    parser.add_argument("--bench-args", help="make bench's BENCH_ARGS besides --device (default: '--repeats 2' on "
                                             "cuda, '--smoke' on cpu; '' for the benchmarks' own defaults)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders and checkpoints (scratch in /tmp)")
    args = parser.parse_args(argv)
    args.phases = ["env", *(p.strip() for p in args.phases.split(",") if p.strip())]
    unknown = [p for p in args.phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    args.out = args.out.resolve()
    return args


def main(argv=None) -> None:
    check = GpuCheck(parse_args(argv))

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Stopped("the budget's last-resort alarm" if signum == signal.SIGALRM else signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, stop)
    signal.alarm(int(check.budget) + 30)  # the last resort: every process is cut at the budget already
    sys.exit(check.main())


if __name__ == "__main__":
    main()
