"""spacy-seqlab: structured sequence labeling (linear-chain CRF) for spaCy."""
from setuptools import find_packages, setup

setup(
    name="spacy-seqlab",
    version="0.1.0",
    description="Linear-chain CRF taggers and entity recognizers for spaCy",
    long_description=open("README.md", encoding="utf8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["spacy_seqlab", "spacy_seqlab.*"]),
    # torch runs the recurrent layers (RNNEncoder, CharBiLSTM); exact pins: constraints.txt
    install_requires=["spacy>=3.8.0,<3.9.0", "thinc>=8.3.12,<8.4.0", "numpy>=1.24", "torch>=2.1"],
    extras_require={
        "transformers": ["spacy-transformers==1.4.0", "transformers==4.53.2", "torch==2.13.0"],
        # the transformer tests build a tiny BERT locally (spacy-transformers); the compare
        # workflow test draws its accuracy/speed plot (matplotlib)
        "test": ["pytest==9.0.3", "torch==2.13.0", "spacy-transformers==1.4.0",
                 "transformers==4.53.2", "matplotlib==3.10.9"],
        "bench": ["torch==2.13.0", "pytorch-crf==0.7.2", "seqeval==1.2.2", "matplotlib==3.10.9"],
    },
    entry_points={
        "spacy_factories": [
            "crf_tagger = spacy_seqlab.components.crf_tagger:make_crf_tagger",
            "crf_ner = spacy_seqlab.components.crf_ner:make_crf_ner",
            "hmm_tagger = spacy_seqlab.components.hmm_tagger:make_hmm_tagger",
            "memm_tagger = spacy_seqlab.components.memm_tagger:make_memm_tagger",
        ],
        "spacy_architectures": [
            "spacy_seqlab.CRFTagger.v1 = spacy_seqlab.architectures:build_crf_tagger",
            "spacy_seqlab.MEMMTagger.v1 = spacy_seqlab.architectures:build_memm_tagger",
            "spacy_seqlab.HashFeatures.v1 = spacy_seqlab.architectures:build_hash_features",
            "spacy_seqlab.CharCNN.v1 = spacy_seqlab.layers.chars:CharCNN",
            "spacy_seqlab.CharBiLSTM.v1 = spacy_seqlab.layers.chars:CharBiLSTM",
            "spacy_seqlab.CharWordEmbed.v1 = spacy_seqlab.embeddings:build_char_word_embed",
            "spacy_seqlab.RNNEncoder.v1 = spacy_seqlab.layers.rnn:RNNEncoder",
        ],
        "spacy_scorers": [
            "spacy_seqlab.token_attr_scorer.v1 = spacy_seqlab.scorers:make_token_attr_scorer",
            "spacy_seqlab.span_scorer.v1 = spacy_seqlab.scorers:make_span_scorer",
        ],
        "thinc_layers": [
            "spacy_seqlab.CRF.v1 = spacy_seqlab.layers.crf:CRF",
            "spacy_seqlab.MEMM.v1 = spacy_seqlab.layers.memm:MEMM",
            "spacy_seqlab.PiecePooling.v1 = spacy_seqlab.layers.pooling:PiecePooling",
        ],
    },
)
