"""Which paths a command may write, and how it replaces them: a user's files are never lost.

Every command checks the paths it is about to write against the paths it reads (inputs, the
policy file) before it writes anything: no output may be an input, a run's own file (errors,
summary, checkpoints) can never be fed back as its input, and an output folder or file that
cannot be written is named before any work is paid for. `replace_together` writes a set of files
beside their targets and renames them over the targets only when all of them are complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class UnsafeOutput(ValueError):
    """An output path that would destroy or corrupt a file: names the path and what to do."""


def _real(path: Path) -> Path:
    """The path with every link followed; unlike `Path.resolve`, never raises on a link loop."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return _real(a) == _real(b)


def _writable_folder(path: Path) -> None:
    """The nearest existing ancestor of `path` must be a folder this process can write into."""
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise UnsafeOutput(f"{path}: {ancestor} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UnsafeOutput(f"{path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UnsafeOutput(f"{path}: the folder {ancestor} is not writable")


def check_outputs(reads: Iterable[Path | str], writes: Iterable[Path | str], *, folders: Iterable[Path] = ()) -> None:
    """Refuse, before anything is written, any path in `writes` that is read, unusable or read-only.

    `reads` are the command's inputs (files or dataset folders) and its policy file; `writes` are
    every file it may create or replace; `folders` are output folders (which must not be files).
    """
    read_paths = [Path(p) for p in reads]
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise UnsafeOutput(f"{folder}: is a file, not a folder; give a folder for the outputs")
        for read in read_paths:
            if read.exists() and _same_file(folder, read):
                raise UnsafeOutput(f"{folder}: is also an input; give another output folder")
    for write in (Path(p) for p in writes):
        if write.is_dir():
            raise UnsafeOutput(f"{write}: is a folder; give a file name for the output")
        for read in read_paths:
            if read.exists() and write.exists() and _same_file(write, read):
                raise UnsafeOutput(
                    f"{write}: is also an input of this command ({read}); it would be overwritten. "
                    "Choose another output name (-o)"
                )
            if _real(write) == _real(read):
                raise UnsafeOutput(f"{write}: is also an input of this command; choose another output name (-o)")
            if read.is_dir() and _real(write).is_relative_to(_real(read)):
                raise UnsafeOutput(f"{write}: is inside the input folder {read}; choose another output name (-o)")
        if write.exists() and not os.access(write, os.W_OK):
            raise UnsafeOutput(f"{write}: is read-only")
        _writable_folder(write)


@contextmanager
def replace_together(targets: Iterable[Path]) -> Iterator[list[Path]]:
    """Yield one temporary path beside each target; when the block succeeds, rename each over its
    target. On an error (or Ctrl-C) the temporary files are removed and every target is untouched.

    A reader sees either the old file or the new one, never a half-written file; the renames of
    one set follow each other at once, so the files of one export always belong together.
    """
    targets = list(targets)
    temporary: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
            os.close(handle)
            temporary.append(Path(name))
        yield temporary
        for path, target in zip(temporary, targets, strict=True):
            if path.exists():
                path.chmod(0o666 & ~_umask())
                path.replace(target)
            else:  # the block chose not to write this one: an older file of the set must go too
                target.unlink(missing_ok=True)
    finally:
        for path in temporary:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
