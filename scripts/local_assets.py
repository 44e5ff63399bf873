"""Copy the treebank's CoNLL-U files from a local data dir into assets/.

Usage: python scripts/local_assets.py SRC_DIR [DEST_DIR]

If SRC_DIR does not exist, do nothing: `spacy project assets` then downloads the
files listed in project.yml (and it skips files that already match their checksum).
"""
import filecmp
import shutil
import sys
from pathlib import Path


def main(src: Path, dest: Path) -> None:
    if not src.is_dir():
        print(f"No local data in {src}: run `spacy project assets` to download it")
        return
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.conllu")):
        target = dest / path.name
        if target.exists() and filecmp.cmp(path, target, shallow=False):
            print(f"Up to date: {target}")
        else:
            shutil.copyfile(path, target)
            print(f"Copied {path} -> {target}")


if __name__ == "__main__":
    src = Path(sys.argv[1])
    main(src, Path(sys.argv[2]) if len(sys.argv) > 2 else Path("assets") / src.name)
