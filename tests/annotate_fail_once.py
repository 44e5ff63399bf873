"""A test component for seqlab-annotate (imported with ``--code``): the first time it sees
a doc whose text is ``trigger``, it creates ``marker`` and then raises (``mode="raise"``:
an interrupted run) or ends its process (``mode="exit"``: a dead Ray worker)."""
import os

from spacy.language import Language
from spacy.tokens import Doc


@Language.factory("seqlab_test_fail_once", default_config={"marker": "", "trigger": "", "mode": "raise"})
def make_fail_once(nlp: Language, name: str, marker: str, trigger: str, mode: str):
    def fail_once(doc: Doc) -> Doc:
        if doc.text == trigger and not os.path.exists(marker):
            open(marker, "w").close()
            if mode == "exit":
                os._exit(1)
            raise RuntimeError("seqlab_test_fail_once: simulated interruption")
        return doc

    return fail_once
