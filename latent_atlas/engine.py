"""One way to run independent tasks (one training, one comparison): a local pool of worker
processes by default, a Ray cluster when asked.

    with make_engine(EngineConfig("local", jobs=2)) as engine:
        for outcome in engine.run([Task("a", fn, (1,)), Task("b", fn, (2,))]):
            ...  # in completion order; outcome.value, or outcome.error (one line)

Rules every engine keeps:

- **Results travel back through the engine** (a pipe, or Ray's object store) as picklable
  values: bytes and arrays, never paths into a filesystem the parent may not share. A task that
  builds files packs them with :func:`pack_folder`; the parent writes them with
  :func:`unpack_folder` (atomically).
- **A failing task never stops the others.** Any exception, of any type, is caught in the
  worker and comes back as an :class:`Outcome` with one error line and the worker's traceback;
  a worker that dies (a crash, the OOM killer) is reported by task name too.
- **One task per process.** Every task starts in a fresh process (``spawn``, not ``fork``): no
  torch/OpenMP or onnxruntime thread state inherited from the parent, no global state carried
  from one task to the next, so a task gives the same bytes whichever engine or worker ran it.
- **Interrupts stop everything, promptly.** SIGINT, or SIGTERM (turned into
  :class:`Terminated`, a ``KeyboardInterrupt``, while an engine is open in the main thread),
  makes the parent terminate its workers (SIGTERM, so they remove their scratch folders; SIGKILL
  after a grace period), and each worker dies with its parent even if the parent is killed
  outright (Linux ``PR_SET_PDEATHSIG``).
  Ray: pending tasks are cancelled and a Ray instance the engine started is shut down.

Inputs (datasets, model folders) are read by path in the worker: on a Ray cluster every node
needs latent-atlas installed and the data at the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path, PurePosixPath
from types import FrameType, TracebackType
from typing import Any

from latent_atlas.toolkit.atomic import MARKER, atomic_dir, write_bytes
from latent_atlas.toolkit.errors import AtlasError

ENGINES = ("local", "ray")
GRACE_SECONDS = 3.0  # a worker told to stop (SIGTERM) gets this long before SIGKILL


class Terminated(KeyboardInterrupt):
    """SIGTERM to the parent while an engine is open: unwinds like Ctrl-C, so every
    ``finally`` (stop the workers, remove temporary files) runs."""


@dataclass(frozen=True)
class EngineConfig:
    """Which engine runs the tasks.

    ``local``: ``jobs`` worker processes on this machine. ``ray``: a Ray cluster at ``address``
    (``"auto"``, ``"ray://host:10001"`` …); without an address, the Ray instance this process
    is already connected to, else a local Ray instance with ``jobs`` CPUs, shut down at the end.
    """

    kind: str = "local"
    jobs: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise AtlasError(f"--engine {self.kind!r}: expected one of {', '.join(ENGINES)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise AtlasError(f"--jobs: {self.jobs!r}, expected >= 1")
        if self.address is not None and self.kind != "ray":
            raise AtlasError(f"--address {self.address!r}: only used with --engine ray")
        if self.address is not None and not self.address.strip():
            raise AtlasError("--address: empty; expected a Ray address such as auto or ray://host")


@dataclass(frozen=True)
class Task:
    """One independent piece of work: ``fn(*args, **kwargs)`` in a worker.

    ``fn`` must be importable by name (a module-level function), and ``args``/``kwargs``
    picklable. ``cpus`` is what the task asks of a Ray node (the local engine runs ``jobs``
    tasks at once whatever their size).
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cpus: int = 1


@dataclass(frozen=True)
class Outcome:
    """What came back for one task: its ``value``, or ``error`` (one line naming the exception
    type, or an ``AtlasError``'s message as is) with ``detail`` (the worker's traceback)."""

    name: str
    value: Any = None
    error: str | None = None
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def error_line(exc: BaseException) -> str:
    """One line for a failed task: an ``AtlasError``'s message, else ``Type: message``."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, AtlasError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _call(fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> tuple:
    """Run a task in a worker; every exception becomes ``("error", line, traceback)``."""
    start = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
    except _Stop:
        raise
    except BaseException as exc:  # any type: the parent names the task and goes on
        return ("error", error_line(exc), traceback.format_exc(), time.perf_counter() - start)
    return ("ok", value, "", time.perf_counter() - start)


def _outcome(name: str, message: tuple) -> Outcome:
    kind, payload, detail, seconds = message
    if kind == "ok":
        return Outcome(name, value=payload, seconds=seconds)
    return Outcome(name, error=payload, detail=detail, seconds=seconds)


# ---------------------------------------------------------------------------- the base
class Engine:
    """Runs tasks; use as a context manager (``with make_engine(cfg) as engine``), which
    turns SIGTERM into :class:`Terminated` and stops every worker on the way out."""

    kind = ""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._old_sigterm: Any = None

    def __enter__(self) -> Engine:
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            self.open()
        except BaseException:
            self._restore_signal()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        finally:
            self._restore_signal()

    def _restore_signal(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def open(self) -> None:
        """Acquire what the engine needs (a Ray connection); the local engine needs nothing."""

    def close(self) -> None:
        """Stop whatever still runs."""

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Run ``tasks`` and yield one :class:`Outcome` per task, in completion order."""
        raise NotImplementedError


@contextlib.contextmanager
def keeping_signal_handlers() -> Iterator[None]:
    """Put SIGINT's and SIGTERM's handlers back as they were after the block. ``ray.init``
    replaces SIGTERM's with one that calls ``sys.exit`` and never restores it, so without this
    a process that once used Ray met SIGTERM with ``SystemExit`` instead of :class:`Terminated`
    (and the engine, seeing a handler already set, would not install its own)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


def _unique(tasks: Iterable[Task]) -> list[Task]:
    tasks = list(tasks)
    names = [t.name for t in tasks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AtlasError(f"tasks: duplicate name(s) {dup}; every task needs its own name")
    return tasks


# ---------------------------------------------------------------------------- local processes
class _Stop(SystemExit):
    """Raised in a worker by SIGTERM: unwinds the task (its ``finally`` blocks and temporary
    folders) and exits the process quietly (``SystemExit``)."""


def _stop_worker(signum: int, frame: FrameType | None) -> None:
    raise _Stop(128 + signum)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies, however it dies (even by
    SIGKILL, which the parent cannot act on). SIGKILL, not SIGTERM: task code may ignore
    SIGTERM, and with the parent gone nobody would follow up. Elsewhere this is a no-op."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _worker(conn: Connection, parent_pid: int, fn: Callable, args: tuple, kwargs: dict) -> None:
    """The body of one worker process: run one task, send back one message, exit."""
    signal.signal(signal.SIGTERM, _stop_worker)
    # Ctrl-C reaches the whole process group; the parent decides, and stops us with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    message = _call(fn, args, kwargs)
    try:
        conn.send(message)
    except _Stop:
        raise
    except Exception as exc:  # e.g. an unpicklable result
        line = f"the result cannot be sent back ({error_line(exc)})"
        conn.send(("error", line, traceback.format_exc(), message[3]))
    conn.close()


@dataclass
class _Running:
    task: Task
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    start: float


class LocalEngine(Engine):
    """``jobs`` worker processes on this machine, one fresh (spawned) process per task."""

    kind = "local"

    def __init__(self, jobs: int = 1) -> None:
        super().__init__(jobs)
        self._ctx = mp.get_context("spawn")
        self._running: dict[int, _Running] = {}

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        pending = deque(_unique(tasks))
        try:
            while pending or self._running:
                while pending and len(self._running) < self.jobs:
                    started = self._start(pending.popleft())
                    if isinstance(started, Outcome):
                        yield started
                if not self._running:
                    continue
                # a result is ready to read, or a worker ended (possibly without one)
                ready = set(wait([r.conn for r in self._running.values()] + list(self._running)))
                for key, item in list(self._running.items()):
                    if item.conn in ready or key in ready:
                        del self._running[key]
                        yield self._collect(item)
        finally:
            self.close()

    def _start(self, task: Task) -> _Running | Outcome:
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker,
            args=(send, os.getpid(), task.fn, task.args, dict(task.kwargs)),
            name=f"latent-atlas: {task.name}",
            daemon=True,
        )
        try:
            process.start()  # pickles fn and args for the new process
        except Exception as exc:
            receive.close()
            return Outcome(task.name, error=f"cannot be sent to a worker ({error_line(exc)})")
        finally:
            send.close()  # the worker holds its own end; ours would hide its exit (no EOF)
        self._running[process.sentinel] = _Running(task, process, receive, time.perf_counter())
        return self._running[process.sentinel]

    def _collect(self, item: _Running) -> Outcome:
        message = None
        try:
            if item.conn.poll():
                message = item.conn.recv()
        except (EOFError, OSError):
            message = None
        except Exception as exc:  # the result arrived but cannot be unpickled here
            message = ("error", f"the result cannot be read ({error_line(exc)})", "", 0.0)
        item.process.join(GRACE_SECONDS)  # it exits right after sending
        if item.process.is_alive():
            item.process.kill()
            item.process.join()
        item.conn.close()
        if message is None:
            code = item.process.exitcode
            how = (
                f"killed by {signal.Signals(-code).name}"
                if code is not None and code < 0 and -code in signal.valid_signals()
                else f"exit code {code}"
            )
            return Outcome(
                item.task.name,
                error=f"worker process died ({how}) before returning a result",
                seconds=time.perf_counter() - item.start,
            )
        return _outcome(item.task.name, message)

    def close(self) -> None:
        """Stop every running worker: SIGTERM (it cleans up), then SIGKILL after the grace."""
        running, self._running = list(self._running.values()), {}
        for item in running:
            if item.process.is_alive():
                with contextlib.suppress(OSError):
                    item.process.terminate()
        deadline = time.monotonic() + GRACE_SECONDS
        for item in running:
            item.process.join(max(0.0, deadline - time.monotonic()))
            if item.process.is_alive():
                item.process.kill()
                item.process.join()
            item.conn.close()


# ---------------------------------------------------------------------------- Ray
def _ray_call(fn: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> tuple:
    return _call(fn, args, kwargs)


class RayEngine(Engine):
    """Tasks as Ray remote functions (one task per worker process: ``max_calls=1``); results
    come back through Ray's object store."""

    kind = "ray"

    def __init__(self, jobs: int = 1, address: str | None = None) -> None:
        super().__init__(jobs)
        self.address = address
        self._owns_connection = False
        self._pending: list[Any] = []

    def open(self) -> None:
        try:
            import ray
        except ImportError:
            raise AtlasError(
                "--engine ray: Ray is not installed; install it with "
                "`pip install 'latent-atlas[ray]'`"
            ) from None
        if ray.is_initialized():
            return  # the caller's connection: used, and left open
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
        try:
            with keeping_signal_handlers():  # ray.init installs a SIGTERM -> sys.exit handler
                if self.address:
                    ray.init(address=self.address, **quiet)  # type: ignore[arg-type]
                else:  # a local instance sized for this run, shut down at the end
                    ray.init(num_cpus=self.jobs, include_dashboard=False, **quiet)  # type: ignore[arg-type]
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise AtlasError(
                f"--engine ray: cannot start or reach {where} ({error_line(exc)})"
            ) from None
        self._owns_connection = True

    def run(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        import ray

        # one task per worker process; no retries: a crash is reported by name (a sweep is
        # resumable, so running it again retries what failed)
        remote = ray.remote(max_calls=1, max_retries=0)(_ray_call)
        names: dict[Any, str] = {}
        for task in _unique(tasks):
            ref = remote.options(name=task.name, num_cpus=task.cpus).remote(
                task.fn, task.args, dict(task.kwargs)
            )
            names[ref] = task.name
        self._pending = list(names)
        try:
            while self._pending:
                ready, self._pending = ray.wait(self._pending, num_returns=1)
                for ref in ready:
                    try:
                        message = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died, or was cancelled
                        yield Outcome(names[ref], error=f"Ray: {error_line(exc)}")
                        continue
                    yield _outcome(names[ref], message)
        finally:
            self.close()

    def close(self) -> None:
        pending, self._pending = self._pending, []
        if pending or self._owns_connection:
            import ray

            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if self._owns_connection:
                self._owns_connection = False
                with keeping_signal_handlers():
                    ray.shutdown()  # a local instance we started stops with its processes


def make_engine(cfg: EngineConfig) -> Engine:
    """The engine ``cfg`` asks for (not yet open: use it in a ``with`` block)."""
    if cfg.kind == "ray":
        return RayEngine(cfg.jobs, cfg.address)
    return LocalEngine(cfg.jobs)


# ---------------------------------------------------------------------------- files as bytes
def pack_folder(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` as ``{relative POSIX path: bytes}`` (what a task returns
    instead of leaving files behind)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != MARKER  # unpack marks anew
    }


def unpack_folder(
    files: Mapping[str, bytes],
    folder: Path,
    overwrite: bool = False,
    protect: Sequence[Path | str | None] = (),
) -> Path:
    """Write ``files`` (from :func:`pack_folder`) as the folder ``folder``, atomically: the
    whole folder appears at once, or (on any failure) the previous one stays. It replaces
    only a folder latent-atlas wrote (or any, with ``overwrite``), never one of ``protect``."""
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise AtlasError(f"{folder}: a result names the path {rel!r}; expected a relative path")
    with atomic_dir(Path(folder), overwrite, protect) as tmp:
        for rel, data in files.items():
            write_bytes(tmp / rel, data)
    return Path(folder)


SCRATCH_PREFIX = "latent-atlas-scratch-"


def _pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, dead but not yet waited for, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    with contextlib.suppress(OSError, IndexError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    return True


def reap_scratch(root: Path | None = None) -> int:
    """Remove scratch folders left by workers that were killed outright (SIGKILL, or their
    parent SIGKILLed: nothing runs to clean up then): those of this user whose process is
    gone. Returns how many were removed."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    with contextlib.suppress(OSError):
        for p in root.glob(f"{SCRATCH_PREFIX}*-*"):
            pid = p.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
            with contextlib.suppress(OSError):
                st = p.lstat()
                if (not pid.isdigit() or not stat.S_ISDIR(st.st_mode)
                        or st.st_uid != os.getuid() or _pid_alive(int(pid))):  # fmt: skip
                    continue
                shutil.rmtree(p)
                removed += 1
    return removed


@contextlib.contextmanager
def scratch_folder(prefix: str = SCRATCH_PREFIX) -> Iterator[Path]:
    """A private temporary folder on the worker's own disk, removed when the task ends (also
    when it is stopped by SIGTERM). Its name carries the worker's pid, so a later run removes
    it if the worker was killed outright (:func:`reap_scratch`)."""
    reap_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as tmp:
        yield Path(tmp)
