"""The package's commands, one module each, registered under spaCy's CLI through the
``spacy_cli`` entry point (``python -m spacy seqlab-annotate ...``)."""
