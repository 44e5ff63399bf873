"""spacy-seqlab: structured sequence labeling (linear-chain CRF) for spaCy."""
from setuptools import find_packages, setup

# hypothesis 6.170 needs Python >= 3.11; 6.168.5 is the last release for 3.10
HYPOTHESIS = 'hypothesis==6.170.17; python_version >= "3.11"', 'hypothesis==6.168.5; python_version < "3.11"'
# pyarrow 26 needs Python >= 3.11; 25.0.1 is the last release for 3.10
PYARROW = 'pyarrow==26.0.1; python_version >= "3.11"', 'pyarrow==25.0.1; python_version < "3.11"'

setup(
    name="spacy-seqlab",
    version="0.1.0",
    description="Linear-chain CRF taggers and entity recognizers for spaCy",
    long_description=open("README.md", encoding="utf8").read(),
    long_description_content_type="text/markdown",
    # tests/test_python_compat.py keeps the code parseable by 3.10; README: how the
    # pinned stack was resolved for each version
    python_requires=">=3.10,<3.14",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
    packages=find_packages(include=["spacy_seqlab", "spacy_seqlab.*"]),
    # exact pins: constraints.txt
    install_requires=["spacy>=3.8.0,<3.9.0", "thinc>=8.3.12,<8.4.0", "numpy>=1.24"],
    extras_require={
        # torch runs the recurrent layers (RNNEncoder, CharBiLSTM); without it they raise
        # an ImportError naming this extra
        "recurrent": ["torch==2.13.0"],
        "transformers": ["spacy-transformers==1.4.0", "transformers==4.53.2", "torch==2.13.0"],
        # the transformer tests build a tiny BERT locally (spacy-transformers); the compare
        # workflow test draws its accuracy/speed plot (matplotlib)
        "test": ["pytest==9.0.3", *HYPOTHESIS, "torch==2.13.0", "spacy-transformers==1.4.0",
                 "transformers==4.53.2", "matplotlib==3.10.9", "ray[data]==2.60.0",
                 *PYARROW,
                 # tests/test_packaging.py: `spacy package --build wheel` runs `python -m build`
                 "build==1.6.1"],
        "bench": ["torch==2.13.0", "pytorch-crf==0.7.2", "seqeval==1.2.2", "matplotlib==3.10.9"],
        # seqlab-annotate: --engine ray (Ray Data), and Parquet input (pyarrow, which
        # ray[data] brings too)
        "ray": ["ray[data]==2.60.0", *PYARROW],
        "parquet": [*PYARROW],
    },
    entry_points={
        "spacy_cli": [
            "seqlab-annotate = spacy_seqlab.cli.annotate:annotate_cli",
            "seqlab-calibrate = spacy_seqlab.cli.calibrate:calibrate_cli",
            "seqlab-debug-data = spacy_seqlab.cli.debug_data:debug_data_cli",
            "seqlab-least-confident = spacy_seqlab.cli.least_confident:least_confident_cli",
        ],
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
            "spacy_seqlab.TransformerCharWordEmbed.v1 = spacy_seqlab.embeddings:build_transformer_char_word_embed",
            "spacy_seqlab.RNNEncoder.v1 = spacy_seqlab.layers.rnn:RNNEncoder",
            "spacy_seqlab.FineTunedVectors.v1 = spacy_seqlab.layers.word_vectors:FineTunedVectors",
            "spacy_seqlab.WordCharEmbed.v1 = spacy_seqlab.embeddings:build_word_char_embed",
            "spacy_seqlab.SentenceTok2Vec.v1 = spacy_seqlab.layers.sentences:SentenceTok2Vec",
        ],
        "spacy_callbacks": [
            "spacy_seqlab.require_extra.v1 = spacy_seqlab.extras:make_require_extra",
        ],
        "thinc_optimizers": [
            "spacy_seqlab.SGDMomentum.v1 = spacy_seqlab.optimizers:make_sgd_momentum",
        ],
        "thinc_schedules": [
            "spacy_seqlab.warmup_linear.v1 = spacy_seqlab.schedules:make_warmup_linear",
        ],
        "spacy_readers": [
            "spacy_seqlab.SentenceCorpus.v1 = spacy_seqlab.readers:create_sentence_corpus",
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
