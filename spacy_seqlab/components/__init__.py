"""spaCy pipeline components of spacy-seqlab."""
