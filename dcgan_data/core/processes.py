"""The training process: its device and process group, stop signals, and memory reuse.

Under torchrun each process drives one GPU (cuda:LOCAL_RANK; gloo on CPU). Ctrl-C or SIGTERM
(torchrun forwards both) makes every rank stop after the same step.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading

import torch

from dcgan_data.core.devices import resolve_device


def setup_processes(device_name: str, threads: int | None = None
                    ) -> tuple[int, int, int, torch.device]:
    """(rank, world_size, local_rank, device); joins the process group under torchrun.
    On a CPU each process uses `threads` torch threads [default: its share of the cores]."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device_name = resolve_device(device_name)
    if device_name == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    else:
        device = torch.device("cpu")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        # every core, shared out
        torch.set_num_threads(threads or max(1, (cores or 1) // local_world))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, local_rank, device


def any_rank(signum: int, world: int, device: torch.device) -> int:
    """The stop signal if any rank got one, so that every rank stops after the same step."""
    if world == 1:
        return signum
    flag = torch.tensor([signum], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return int(flag.item())


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each step and checkpoints first."""

    def __init__(self):
        self.signum = 0

    def __call__(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, keep the last checkpoint
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread may set handlers; signals then act as usual
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def one_torch_thread():
    """torch on one thread inside: a unit's sums then run in the same order on every engine
    and worker, so its results are bit-identical wherever it runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def reuse_freed_memory() -> bool:
    """Keep freed tensor memory in the process for reuse (Linux glibc; elsewhere a no-op).

    glibc serves every allocation above 32 MB with a fresh mmap and unmaps it when freed, and a
    DCGAN step on CPU allocates such blocks all the time (one 128 x 64 x 32 x 32 activation is
    33.5 MB). Each one then pays a page fault per 4 KB on first touch, which made element-wise
    ops (LeakyReLU backward, BatchNorm) 3-5x slower than memory allows. With mmap off and a high
    trim threshold, freed blocks go back to the heap and the next step reuses them. The cost:
    the process keeps its peak memory until it exits. Returns whether it was applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
