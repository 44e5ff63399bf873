"""Copy corpus files from a local data dir into assets/, and unpack downloaded zips.

Usage: python scripts/local_assets.py SRC_DIR DEST_DIR PATTERN [PATTERN ...]

Files in SRC_DIR matching a glob PATTERN are copied to DEST_DIR (unless identical
already). If SRC_DIR does not exist, nothing is copied: `spacy project assets` then
downloads the files listed in project.yml. Members of zips in DEST_DIR whose names match
a PATTERN are extracted into DEST_DIR (the CoNLL-2000 asset is NLTK's zip).
"""
import filecmp
import fnmatch
import shutil
import sys
import zipfile
from pathlib import Path
from typing import List


def copy_local(src: Path, dest: Path, patterns: List[str]) -> None:
    if not src.is_dir():
        print(f"No local data in {src}: run `spacy project assets` (--extra for CoNLL) to download it")
        return
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted({p for pattern in patterns for p in src.glob(pattern)}):
        target = dest / path.name
        if target.exists() and filecmp.cmp(path, target, shallow=False):
            print(f"Up to date: {target}")
        else:
            shutil.copyfile(path, target)
            print(f"Copied {path} -> {target}")


def unpack_zips(dest: Path, patterns: List[str]) -> None:
    for archive in sorted(dest.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                name = Path(member).name
                if name and any(fnmatch.fnmatch(name, p) for p in patterns) and not (dest / name).exists():
                    (dest / name).write_bytes(zf.read(member))
                    print(f"Extracted {archive.name}:{member} -> {dest / name}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, dest, patterns = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    copy_local(src, dest, patterns)
    if dest.is_dir():
        unpack_zips(dest, patterns)
