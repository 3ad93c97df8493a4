"""Device, precision and honest timing: wall-clock measured after the device has finished."""

import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from infobatch_runner.errors import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def requeued() -> bool:
    """True in a SLURM job that SLURM started again (preempted, or requeued by submitit before its
    time limit): the same command runs again and must continue its run, not refuse its own folder."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
    except ValueError:
        return False
# How torch's allocators word a failed allocation (the CPU's DefaultCPUAllocator, CUDA's caching allocator).
ALLOCATION_FAILED = ("can't allocate memory", "out of memory")


def out_of_memory(exc: BaseException) -> UserError | None:
    """A failed allocation as one sentence with what to lower, or None for any other exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
            isinstance(exc, RuntimeError) and any(words in text for words in ALLOCATION_FAILED)):
        return UserError(f"out of memory ({text[:160]}); lower trainer.batch_size, trainer.eval_batch_size or "
                         "dataset.image_size, or choose a smaller model.")
    return None


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"trainer.device must be auto, cpu, cuda or cuda:N (got {spec!r}).") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"trainer.device must be auto, cpu, cuda or cuda:N (got {spec!r}).")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("trainer.device=cuda but PyTorch sees no CUDA device here; use trainer.device=cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"trainer.device={spec} but only {torch.cuda.device_count()} CUDA device(s) are visible.")
    return device


def resolve_precision(spec: str, device: torch.device, tf32: bool = False) -> str:
    """How a run computes, as its summary and its setting say: bf16 or fp16 (autocast), or, without
    autocast, "tf32" on a CUDA device whose fp32 matmuls and convolutions may use TensorFloat-32
    (trainer.tf32, the default there), else "fp32" (every CPU run). Pure but for `auto` on CUDA,
    which asks the device whether it supports bf16."""
    if spec not in PRECISIONS:
        raise UserError(f"trainer.precision must be one of {', '.join(PRECISIONS)} (got {spec!r}).")
    if spec == "fp16" and device.type != "cuda":
        raise UserError("trainer.precision=fp16 needs a CUDA device; on CPU use bf16 or fp32.")
    if spec == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if spec == "fp32" and device.type == "cuda" and tf32:
        return "tf32"
    return spec


def allow_tf32(enabled: bool) -> None:
    """TensorFloat-32 for CUDA's fp32 matmuls (cuBLAS) and convolutions (cuDNN), or true fp32.
    Through the legacy flags only: torch refuses to read them once mixed with the newer
    `fp32_precision` settings, and torch.compile reads these."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def autocast(device: torch.device, precision: str):
    """bf16 or fp16 autocast; fp32 and tf32 run without (tf32 is a flag of the device, allow_tf32)."""
    if precision in ("fp32", "tf32"):
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"cpu: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return "cpu"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_now(device: torch.device) -> float:
    """perf_counter() once everything queued on the device has run."""
    synchronize(device)
    return time.perf_counter()


class SectionClock:
    """Sums the time spent in a code section without syncing the host each time: CUDA events
    on a GPU (read once, by collect(), after the epoch's sync), perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.total = 0.0

    @contextmanager
    def __call__(self):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.pending.append((start, end))
        else:
            t0 = time.perf_counter()
            yield
            self.total += time.perf_counter() - t0

    def collect(self) -> float:
        """Total seconds so far; call after the device is synchronised."""
        self.total += sum(s.elapsed_time(e) for s, e in self.pending) / 1000.0
        self.pending.clear()
        return self.total
