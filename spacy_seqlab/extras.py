"""Optional dependencies (pip extras) and the error that names the extra to install.

A config that needs an extra says so in ``[nlp.before_creation]`` with
``spacy_seqlab.require_extra.v1``: spaCy resolves ``[nlp]`` before it creates any
component, so without the extra ``spacy train``, ``spacy debug config`` and
``spacy.load`` stop there with the ``pip install`` line, instead of a bare
"[E002] Can't find factory for 'transformer'" from the first missing component.
"""
import importlib
from typing import Callable, Dict, Tuple, Type

from spacy.language import Language
from spacy.util import registry

# extra -> the modules it installs that the code imports
EXTRAS: Dict[str, Tuple[str, ...]] = {
    "transformers": ("spacy_transformers",),
    "recurrent": ("torch",),
}


def install_hint(extra: str) -> str:
    return f'pip install "spacy-seqlab[{extra}]"'


def require_extra(extra: str, what: str) -> None:
    """Raise ImportError naming ``extra`` if one of its modules does not import."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown spacy-seqlab extra {extra!r}; the extras are {sorted(EXTRAS)}")
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}, which is not installed. Install the "
            f"{extra} extra: {install_hint(extra)}"
        )


@registry.callbacks("spacy_seqlab.require_extra.v1")
def make_require_extra(extra: str) -> Callable[[Type[Language]], Type[Language]]:
    """A ``[nlp.before_creation]`` callback: checks, when the config is resolved, that
    the modules of ``extra`` import (else ImportError with the ``pip install`` line),
    and leaves the language class as it is."""
    require_extra(extra, f"This pipeline (its config requires the {extra!r} extra)")
    return _same_class


def _same_class(lang_cls: Type[Language]) -> Type[Language]:
    return lang_cls
