"""Thinc layers of spacy-seqlab."""
