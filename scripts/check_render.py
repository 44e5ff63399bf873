"""Check an HTML page from scripts/render_confidences.py in a real browser: take a
headless Chromium screenshot and verify that displaCy's entity boxes were drawn in the
low (red) and high (green) confidence colours. Exit status 1 if not.

    python scripts/check_render.py PAGE.html SCREENSHOT.png [--chromium chromium]

Needs Chromium (Debian: ``apt-get install -y chromium``); not part of CI.
"""
import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spacy_seqlab.visualize import HIGH, LOW  # noqa: E402

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
]


def pixels_of(image: numpy.ndarray, color: str, tolerance: int = 6) -> int:
    """How many pixels of ``image`` (H, W, 3) are within ``tolerance`` of ``color``."""
    rgb = numpy.asarray([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((numpy.abs(image.astype(int) - rgb).max(axis=2) <= tolerance).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("screenshot", type=Path)
    parser.add_argument("--chromium", default="chromium")
    parser.add_argument("--size", default="1280,2400")
    args = parser.parse_args()
    if shutil.which(args.chromium) is None:
        sys.exit(f"{args.chromium} not found: apt-get install -y chromium")
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [args.chromium, *FLAGS, f"--window-size={args.size}", f"--screenshot={args.screenshot.resolve()}",
         args.page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    image = numpy.asarray(Image.open(args.screenshot).convert("RGB"))
    low, high = pixels_of(image, LOW), pixels_of(image, HIGH)
    print(f"{args.screenshot}: {image.shape[1]}x{image.shape[0]}, {low} low-confidence (red) and "
          f"{high} confident (green) entity pixels")
    if not low or not high:
        sys.exit("the screenshot shows no low- or no high-confidence entity boxes")


if __name__ == "__main__":
    main()
