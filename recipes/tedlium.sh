#!/usr/bin/env bash
# TED-LIUM 3 recipe: manifests -> LM -> SEW/SEW-D pretraining on TED-LIUM train -> CTC fine-tuning on train
# -> decoding and scoring of dev/test.
#
# Inputs : --corpus-dir: TEDLIUM_release-3/ as unpacked from openslr.org/51 ({legacy,speaker-adaptation}/
#          {train,dev,test}/{sph,stm}); --layout picks the split definition (legacy = TED-LIUM 2's dev/test).
# Outputs: $work/data/        audio/<split>/<talk>/*.flac (16 kHz segments), <split>.tsv/.wrd/.ltr/.report.json,
#                             dict.ltr.txt, lexicon.txt, lm.txt
#          $work/lm/          lexicon.txt and lm.arpa (order --lm-order) from the training transcripts
#          $work/pretrain_$preset/          ckpt/checkpoint_{best,last}.pt, train.log
#          $work/finetune_$preset_$ft/      ckpt/, train.log, decode-<split>-{viterbi,kenlm}/ (trn, tsv, json)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  manifests: STM segments cut from the sph into 16 kHz FLAC, normalised text (sew-manifest tedlium)
#   1  lexicon and n-gram word LM (sew-lm, or KenLM's lmplz when on PATH; or give --lm-arpa / --lm-text,
#      e.g. the TED-LIUM 3 LM corpus unpacked to one sentence per line, upper case)
#   2  pretraining: recipes/pretraining/$preset.yaml on train, valid dev (sew-train)
#   3  fine-tuning: recipes/finetuning/$ft.yaml's hyper-parameters on TED-LIUM train, valid dev
#   4  decoding of dev and test with viterbi and KenLM (sew-infer), WER table
set -euo pipefail
. "$(dirname "$0")/lib/stages.sh"   # log, parse_common_option, init_work, stage_lm ... stage_decode

corpus_dir=/data/TEDLIUM_release-3
layout=legacy            # legacy | speaker-adaptation
work=exp/tedlium
decode_splits="dev test"

usage() { print_usage "--corpus-dir DIR --layout legacy|speaker-adaptation --lm-text FILE"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --layout) layout=$2; shift 2 ;;
    --lm-text) lm_text=$2; shift 2 ;;
    *) parse_common_option "$@"; shift "$nargs" ;;
  esac
done
init_work

if run_stage 0; then
  log "stage 0: manifests of $corpus_dir ($layout) in $data"
  sew-manifest tedlium --root "$corpus_dir" --layout "$layout" --dest "$data" --workers "$workers"
fi
if run_stage 1; then stage_lm "$data/lm.txt" "$lm_text"; fi   # lexicon: TED-LIUM train + --lm-text words
if run_stage 2; then stage_pretrain "TED-LIUM train" train dev "run stage 0"; fi
if run_stage 3; then stage_finetune "on train " dataset.train_subset=train dataset.valid_subset=dev; fi
if run_stage 4; then stage_decode 14 rtf; fi
