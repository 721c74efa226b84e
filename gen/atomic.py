"""Write a directory all at once: every generated tree appears complete or not at all."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["write_tree"]


def write_tree(dst: Path, files: dict[str, bytes], *, keep: tuple[str, ...] = ()) -> None:
    """Replace directory ``dst`` by one holding exactly ``files`` ({relative path: bytes}).

    Files go to a temporary sibling first, which then takes ``dst``'s place; on any failure the
    temporary tree is removed and ``dst`` is left as it was. Entries of the old ``dst`` named in
    ``keep`` (e.g. build products) are moved into the new tree unless it has them itself.
    """
    dst = Path(dst).resolve()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        os.chmod(tmp, 0o755)
        old = None
        if dst.exists():
            for name in keep:
                if (dst / name).exists() and not (tmp / name).exists():
                    os.replace(dst / name, tmp / name)
            old = dst.parent / f".{dst.name}.old-{os.getpid()}"
            os.replace(dst, old)
        os.replace(tmp, dst)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
