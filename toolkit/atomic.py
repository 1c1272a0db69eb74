"""Every file and folder the tool writes goes through here.

Two rules, enforced in this one module:

* **Nothing half-written.** A file is written under a unique temporary name in the same folder
  (created with the process's umask), fsynced, then moved into place; a folder is built under a
  unique temporary name and swapped in with one atomic exchange. SIGINT and SIGTERM (see
  ``signals``) are held while a swap happens, and every temporary is removed on any failure.
* **The tool only ever replaces what it wrote itself.** Folders it creates carry a marker file,
  ``.latent-atlas``: tool name, version and a record of each entry it wrote there and which
  command wrote it (``set_command``). An existing file is replaced only where the nearest
  marker records it as this command's, an existing folder only when it is marked itself (or
  empty); anything else is refused with one line unless the caller passes ``overwrite=True``
  (the CLI's ``--overwrite``). Replacing a folder drops only this command's stale entries;
  anything else found in it (a user's notes, another command's output) is moved into the new
  folder, and an entry of the new output whose name is taken by one of those is refused
  without ``overwrite``. Never an input of the same run (``protect``), a folder that holds one
  or a place inside one, never a file where a folder is expected or the reverse, never a mount
  point.

OS errors (no space left, file too large, permission) become one ``AtlasError`` line naming
the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import io
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from latent_atlas.toolkit.errors import AtlasError
from latent_atlas.toolkit.signals import critical

MARKER = ".latent-atlas"
TOOL = "latent-atlas"
OVERWRITE_HINT = "choose another output or pass --overwrite to replace it"

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------- the marker
@functools.cache
def _version() -> str:
    try:
        from importlib.metadata import version

        return version(TOOL)
    except Exception:  # not installed (a source checkout on sys.path)
        return "unknown"


_MARKER_CAP = 16 << 20  # a marker lists a folder's entries: a sweep's is a few kB


def _read_marker(folder: Path) -> dict | None:
    marker = Path(folder) / MARKER
    try:
        st = marker.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MARKER_CAP:
            return None
        body = json.loads(marker.read_bytes())
    except (OSError, ValueError, RecursionError):  # deep nesting: not a marker of ours
        return None
    return body if isinstance(body, dict) and body.get("tool") == TOOL else None


def is_marked(folder: Path) -> bool:
    """True when ``folder`` holds a marker written by this tool."""
    return _read_marker(folder) is not None


Record = dict[str, str | None]  # relative POSIX path -> the command that wrote it

_COMMAND: str | None = None  # the CLI command running (``set_command``); None: the API


def set_command(name: str | None) -> None:
    """Name the command whose outputs this process writes (``latent-atlas analyze`` sets
    "analyze"): markers record it per entry, so one command never takes another's output for
    its own stale files."""
    global _COMMAND
    _COMMAND = name
    if name is not None:  # a new command: nothing written yet (kept after it, for its message)
        _written.clear()


def written_here(folder: Path) -> Record | None:
    """What the tool's marker in ``folder`` says it wrote there, entry by entry (relative
    POSIX path -> command); None for an unmarked folder or a marker without a record (0.1)."""
    body = _read_marker(folder)
    if body is None or "files" not in body:
        return None
    files = body["files"]
    if not isinstance(files, dict):  # a record that is not one: nothing in it is the tool's
        return {}
    return {
        k: v for k, v in files.items() if isinstance(k, str) and (v is None or isinstance(v, str))
    }


def _ours(record: Record | None) -> set[str]:
    """The entries of ``record`` this command may replace or drop: those it wrote itself (or
    that any command may: written through the API, or recorded without a command)."""
    if record is None:
        return set()
    return {r for r, cmd in record.items() if cmd is None or _COMMAND is None or cmd == _COMMAND}


def _entries(folder: Path) -> list[str]:
    """Every file, link and folder under ``folder`` (not following links), relative, sorted;
    the marker excluded."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        for name in (*dirnames, *filenames):
            rel = (base / name).as_posix()
            if rel != MARKER:
                found.append(rel)
    return sorted(found)


def _write_marker(folder: Path, files: Record | None = None, new: bool = False) -> None:
    """A marker; ``files`` None: without a record (a folder being built, recorded whole at
    its swap), else the record of what is in it. ``new``: only if there is none yet (two runs
    creating the same folder: the second must not wipe the first one's record)."""
    body: dict[str, Any] = {"tool": TOOL, "version": _version()}
    if files is not None:
        body["files"] = dict(sorted(files.items()))
    text = json.dumps(body) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    try:
        fd = os.open(folder / MARKER, flags, 0o666)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _nearest_marked(folder: Path) -> Path | None:
    folder = Path(os.path.realpath(folder))
    return next((d for d in (folder, *folder.parents) if is_marked(d)), None)


def _home(target: Path) -> tuple[Path, str] | None:
    """The nearest marked folder above the file ``target`` and ``target``'s path relative to
    it (as a record names it); None where no folder above is marked."""
    parent = Path(os.path.realpath(target.parent))
    home = _nearest_marked(parent)
    return None if home is None else (home, (parent / target.name).relative_to(home).as_posix())


def _record(target: Path) -> None:
    """Add ``target`` (about to be moved into place) to the record of the nearest marked
    folder above it, under a lock (batch workers write beside each other). Markers without a
    record (a folder being built; 0.1) are left as they are."""
    found = _home(target)
    if found is None:
        return
    home, rel = found
    marker = home / MARKER
    with contextlib.suppress(OSError, ValueError):
        fd = os.open(marker, os.O_RDWR)
        with os.fdopen(fd, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            body = json.loads(fh.read())
            files = body.get("files")
            if not isinstance(files, dict):
                return
            files[rel] = _COMMAND
            body["files"] = dict(sorted(files.items()))
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(body) + "\n")


def inside_marked(folder: Path) -> bool:
    """True when ``folder`` or one of its ancestors is marked: the tool made that tree."""
    return _nearest_marked(folder) is not None


# ---------------------------------------------------------------------------- checks
def _oserror(exc: OSError, what: str) -> AtlasError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += "; free some space (or raise the file-size limit) and run again"
    return AtlasError(f"{what}: cannot write it ({reason})")


def _canonical(path: PathLike) -> Path:
    """Absolute path with the parent's symlinks resolved and the last component kept, so a
    symlink as target is seen as the link (which a rename would replace), not its target.
    ``.``, ``..`` and ``/`` resolve to the folder they name."""
    p = Path(path)
    if p.name in ("", ".", ".."):
        return Path(os.path.realpath(p))
    return Path(os.path.realpath(p.parent)) / p.name


def _protected(target: Path, protect: Iterable[PathLike | None], what: str) -> None:
    """Refuse a target that is, or holds, an input of this run."""
    for q in protect:
        if q is None:
            continue
        real = Path(os.path.realpath(q))
        if real == target or target in real.parents:
            raise AtlasError(
                f"{what} {target}: is or holds {q}, an input of this run; "
                "choose an output outside the inputs"
            )
        if real in target.parents and real.is_dir():
            raise AtlasError(
                f"{what} {target}: lies inside {q}, an input of this run; "
                "choose an output outside the inputs"
            )
        with contextlib.suppress(OSError):
            if os.path.lexists(target) and os.path.samefile(target, real):
                raise AtlasError(
                    f"{what} {target}: is the same file as {q}, an input of this run; "
                    "choose an output outside the inputs"
                )


def check_outside_inputs(
    path: PathLike, protect: Iterable[PathLike | None], what: str = "output folder"
) -> Path:
    """Refuse a folder that receives outputs (``report --out``) when it is, holds or lies in
    an input of this run (never written beside a user's models); its canonical path else."""
    target = _canonical(path)
    _protected(target, protect, what)
    return target


def check_file_target(
    path: PathLike, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Path:
    """Where a file write may go, or an ``AtlasError``: no folder, FIFO or device there, no
    input of this run, and an existing file only if the tool wrote it (or ``overwrite``)."""
    if Path(path).name in ("", ".", ".."):
        raise AtlasError(f"output file {path}: names a folder; expected a file name")
    target = _canonical(path)
    _protected(target, protect, "output file")
    try:
        st = target.lstat()
    except FileNotFoundError:
        return target
    except OSError as exc:  # ENOTDIR: a file where a folder is expected on the way
        raise AtlasError(f"output file {path}: cannot reach it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AtlasError(f"output file {path}: is a folder; expected a file name")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise AtlasError(f"output file {path}: exists and is not a regular file")
    if overwrite:
        return target
    if stat.S_ISLNK(st.st_mode):
        raise AtlasError(
            f"output file {path}: exists and was not written by latent-atlas (a symbolic "
            f"link); {OVERWRITE_HINT}"
        )
    found = _home(target)
    if found is not None:
        home, rel = found
        record = written_here(home)
        if record is None:
            return target  # a folder marked by 0.1, which kept no record: the tool's whole tree
        if rel in _ours(record):
            return target
        if rel in record:
            raise AtlasError(
                f"output file {path}: was written by `latent-atlas {record[rel]}`, not by this "
                f"command; {OVERWRITE_HINT}"
            )
    raise AtlasError(
        f"output file {path}: exists and was not written by latent-atlas (no {MARKER} "
        f"marker records it; the tool marks only folders it creates); {OVERWRITE_HINT}"
    )


def check_dir_target(
    path: PathLike, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Path:
    """Where a folder that replaces any previous one may go, or an ``AtlasError``."""
    target = _canonical(path)
    what = "output folder"
    if target.parent == target:
        raise AtlasError(f"{what} {path}: is the file-system root; name a new folder")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise AtlasError(
            f"{what} {path}: is or holds the current folder, which the new output would "
            "replace; name a new folder"
        )
    _protected(target, protect, what)
    try:
        st = target.lstat()
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise AtlasError(f"{what} {path}: cannot reach it ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        if overwrite:
            return target
        raise AtlasError(f"{what} {path}: is a symbolic link; {OVERWRITE_HINT}")
    if not stat.S_ISDIR(st.st_mode):
        raise AtlasError(f"{what} {path}: exists and is not a folder; expected a folder name")
    if os.path.ismount(target):
        raise AtlasError(f"{what} {path}: is a mount point; name a new folder inside it")
    if is_marked(target) or overwrite:
        return target
    try:
        empty = not any(target.iterdir())
    except OSError as exc:
        raise AtlasError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if not empty:
        raise AtlasError(
            f"{what} {path}: exists and was not written by latent-atlas (no {MARKER} marker); "
            f"{OVERWRITE_HINT}"
        )
    return target


def check_output_dir(path: PathLike) -> Path:
    """A folder that will receive outputs (without being replaced): refuse early what
    :func:`output_dir` would refuse later, creating nothing."""
    target = _canonical(path)
    for d in (target, *target.parents):
        try:
            st = d.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise AtlasError(f"output folder {path}: cannot create it ({exc.strerror})") from None
        if not stat.S_ISDIR(st.st_mode):
            raise AtlasError(f"output folder {path}: cannot create it ({d} is not a folder)")
        break
    return target


# ---------------------------------------------------------------------------- folders
def _make_dirs(folder: Path, adopt_empty: bool = False, created: list[Path] | None = None) -> Path:
    """Create ``folder`` and missing parents; mark the topmost folder created here unless it
    lies in a tree the tool already marked. ``adopt_empty``: mark an existing empty folder.
    ``created``: receives the folders created here, deepest first (to undo them)."""
    folder = Path(folder)
    check_output_dir(folder)
    missing = []
    d = folder
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AtlasError(f"output folder {folder}: cannot create it ({exc.strerror})") from None
    if not folder.is_dir():
        raise AtlasError(f"output folder {folder}: exists and is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AtlasError(
            f"output folder {folder}: not writable; expected a folder you can write to"
        )
    if created is not None:
        created.extend(missing)
    top = missing[-1] if missing else None
    if top is None and adopt_empty and not any(folder.iterdir()):
        top = folder
    if top is not None and not inside_marked(top.parent):
        try:
            _write_marker(top, {}, new=True)
        except OSError as exc:
            raise _oserror(exc, f"output folder {top}") from None
    return folder


def output_dir(path: PathLike) -> Path:
    """A folder that receives outputs beside other files (``grid --out``, the parent of report
    folders): created and marked if missing, marked if empty, otherwise used as it is (files in
    it are still replaced only if the tool wrote them)."""
    return _make_dirs(Path(path), adopt_empty=True)


def ensure_writable_dir(path: PathLike) -> Path:
    """Create ``path`` (and parents) and check that files can be created in it."""
    return output_dir(path)


def _unmake_dirs(created: list[Path]) -> None:
    """Remove the folders ``_make_dirs`` created (deepest first) that still hold nothing but
    their marker: an output that failed leaves its parent as it was."""
    for d in created:
        with contextlib.suppress(OSError):
            if set(os.listdir(d)) <= {MARKER}:
                (d / MARKER).unlink(missing_ok=True)
                d.rmdir()


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name[:100]}.{secrets.token_hex(6)}.tmp")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(
    path: PathLike, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Iterator[Path]:
    """Build a whole folder under a temporary name beside ``path``, then swap it into place.

    The new folder carries the marker. If the body fails or the process is interrupted, the
    previous folder (if any) is untouched, no temporary is left, and the folders created for
    it (its parent, if missing) are removed again.

    The swap is one step: ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+, on file systems that
    support it) exchanges the new folder and the previous one atomically, so a reader (or a
    crash) sees the whole previous report or the whole new one, never a mix. Elsewhere it is
    two renames (previous aside, new into place): a crash or SIGKILL between them leaves no
    folder at ``path`` and the previous one whole under a hidden ``.NAME.*.tmp`` name beside
    it. SIGINT and SIGTERM are held during the swap either way (``signals.critical``): one
    that arrives then ends the command right after it, the new folder in place and recorded
    in :func:`written` (the CLI says so).
    """
    protect = list(protect)
    target = check_dir_target(path, overwrite, protect)
    made: list[Path] = []
    _make_dirs(target.parent, created=made)
    tmp: Path | None = None
    swapped = False
    try:
        with critical():
            tmp = _temp_name(target)
            os.mkdir(tmp, 0o777)  # the umask decides the mode
            _building.add(tmp)
        _write_marker(tmp)
        yield tmp
        with critical():
            check_dir_target(path, overwrite, protect)  # may have changed meanwhile
            record: Record = dict.fromkeys(_entries(tmp), _COMMAND)  # what this run wrote
            if not os.path.lexists(target):
                _write_marker(tmp, record)
                _building.discard(tmp)
                os.rename(tmp, target)
                tmp, swapped = None, True
                _written.append(target)
                return
            kept: list[tuple[Path, Path]] = []
            try:
                if os.path.isdir(target) and not os.path.islink(target):
                    previous = written_here(target)
                    ours = _ours(previous)
                    if not overwrite:
                        clash = _clash(target, tmp, ours)
                        if clash is not None:
                            raise AtlasError(
                                f"output folder {path}: holds {clash}, which this command did "
                                "not write and would replace; move it away, choose another "
                                "output, or pass --overwrite"
                            )
                    _keep_foreign(target, tmp, frozenset(ours), kept)
                    for _, dst in kept:  # kept entries keep what the old record said of them
                        rel = dst.relative_to(tmp).as_posix()
                        for r, cmd in (previous or {}).items():
                            if r == rel or r.startswith(rel + "/"):
                                record[r] = cmd
                _write_marker(tmp, record)
                _building.discard(tmp)
                tmp = _swap(tmp, target)
            except BaseException:
                for src, dst in reversed(kept):  # give the user's entries back
                    with contextlib.suppress(OSError):
                        os.rename(dst, src)
                raise
            swapped = True
            _written.append(target)
            _remove(tmp)  # now the previous folder, without the entries kept
            tmp = None
    except OSError as exc:
        if exc.errno is None:
            raise
        raise _oserror(exc, f"output folder {path}") from None
    finally:
        if tmp is not None:
            _building.discard(tmp)
            _remove(tmp)
        if not swapped:
            _unmake_dirs(made)


def _swap(new: Path, target: Path) -> Path:
    """Put the folder ``new`` at ``target``; returns where the previous ``target`` now lies
    (for the caller to remove). One atomic exchange where the kernel and file system support
    it, else two renames (the window between them is described in :func:`atomic_dir`); the
    previous folder is put back if the second rename fails."""
    if _exchange(new, target):
        return new
    aside = _temp_name(target)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


# Outputs this command finished (folders swapped in, files moved into place outside a folder
# being built), in order: what an interrupted command has already replaced (``written``).
_written: list[Path] = []
_building: set[Path] = set()  # temporary folders being filled (their files are not outputs)


def written() -> tuple[Path, ...]:
    """The outputs (folders and files) this command has finished writing, each whole, since
    :func:`set_command`: an interrupt that ends the command after them leaves them in place."""
    return tuple(_written)


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _clash(old: Path, new: Path, ours: set[str], rel: str = "") -> str | None:
    """The first entry of ``old`` that ``new`` would replace (same name, not both folders)
    and that is not ``ours``; None if there is none."""
    for entry in sorted(os.listdir(old / rel) if rel else os.listdir(old)):
        r = f"{rel}/{entry}" if rel else entry
        src, dst = old / r, new / r
        if r == MARKER or not os.path.lexists(dst):
            continue
        if _real_dir(src) and _real_dir(dst):
            found = _clash(old, new, ours, r)
            if found is not None:
                return found
        elif r not in ours:
            return r
    return None


def _keep_foreign(
    old: Path, new: Path, ours: frozenset[str], kept: list[tuple[Path, Path]], rel: str = ""
) -> None:
    """Move into ``new`` every entry of ``old`` that the tool did not write (not in ``ours``)
    and that ``new`` has no entry of the same name for; descend where both have a folder.
    ``kept`` records each move (to undo them)."""
    for entry in sorted(os.listdir(old / rel) if rel else os.listdir(old)):
        r = f"{rel}/{entry}" if rel else entry
        if r == MARKER:
            continue
        src, dst = old / r, new / r
        if os.path.lexists(dst):
            if _real_dir(src) and _real_dir(dst):
                _keep_foreign(old, new, ours, kept, r)
            continue  # replaced by the new output's entry of the same name
        if r in ours:  # written by the tool last time, not this time: goes with the old folder
            if _real_dir(src):  # ... but not what a user added inside
                os.mkdir(dst)
                before = len(kept)
                _keep_foreign(old, new, ours, kept, r)
                if len(kept) == before:
                    os.rmdir(dst)
            continue
        os.rename(src, dst)
        kept.append((src, dst))


# ---------------------------------------------------------------------------- files
def _allocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes now, so a full disk is an error here and not a SIGBUS later in
    a memory map."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
    else:  # pragma: no cover (not Linux)
        os.ftruncate(fd, size)


@contextlib.contextmanager
def atomic_open(
    path: PathLike,
    mode: str = "wb",
    overwrite: bool = False,
    protect: Iterable[PathLike | None] = (),
    size: int | None = None,
) -> Iterator[IO[Any]]:
    """Open a unique temporary file beside ``path``; on success fsync and move it into place.

    ``size``: preallocate that many bytes first (for files filled through a memory map).
    """
    protect = list(protect)
    target = check_file_target(path, overwrite, protect)
    _make_dirs(target.parent)
    tmp: Path | None = None
    try:
        with critical():
            tmp = _temp_name(target)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        if size:
            try:
                _allocate(fd, size)
            except BaseException:
                os.close(fd)
                raise
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with critical():
            check_file_target(path, overwrite, protect)
            _record(target)  # first: a run beside this one sees the file as recorded at once
            os.replace(tmp, target)
            tmp = None
            if not any(b in target.parents for b in _building):
                _written.append(target)
    except OSError as exc:
        if exc.errno is None:  # raised by the caller's writer, not by the file system
            raise
        raise _oserror(exc, f"output file {path}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_bytes(
    path: PathLike, data: bytes, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Path:
    with atomic_open(path, "wb", overwrite, protect) as fh:
        fh.write(data)
    return Path(path)


def write_text(
    path: PathLike, text: str, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Path:
    # Lone surrogates (undecodable bytes of a file name) become visible escapes, not a crash.
    return write_bytes(path, text.encode("utf-8", "backslashreplace"), overwrite, protect)


def write_json(
    path: PathLike, obj: Any, overwrite: bool = False, protect: Iterable[PathLike | None] = ()
) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return write_text(path, text, overwrite, protect)


def write_with(
    path: PathLike,
    writer: Callable[[IO[bytes]], None],
    overwrite: bool = False,
    protect: Iterable[PathLike | None] = (),
) -> Path:
    """Let ``writer`` fill a binary file handle (``np.save``, ``fig.savefig``, ``torch.save``)."""
    with atomic_open(path, "wb", overwrite, protect) as fh:
        writer(fh)
    return Path(path)


@contextlib.contextmanager
def open_npy(
    path: PathLike,
    shape: tuple[int, ...],
    dtype: Any = np.float32,
    overwrite: bool = False,
    protect: Iterable[PathLike | None] = (),
) -> Iterator[np.ndarray]:
    """A ``.npy`` file filled through a memory map: header written, space preallocated (a full
    disk is one ``AtlasError`` line, never a SIGBUS), unique temporary name (two runs writing
    the same file cannot truncate each other's map), moved into place when the block ends."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": tuple(int(n) for n in shape)}  # fmt: skip
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, header)
    offset = len(head.getvalue())
    with atomic_open(path, "w+b", overwrite, protect, size=offset + nbytes) as fh:
        fh.write(head.getvalue())
        fh.flush()
        array = np.memmap(fh, dtype=dtype, mode="r+", offset=offset, shape=tuple(shape))
        try:
            yield array
            array.flush()
        finally:
            del array
