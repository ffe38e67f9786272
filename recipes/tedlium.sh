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

stage=0
stop_stage=4
corpus_dir=/data/TEDLIUM_release-3
layout=legacy            # legacy | speaker-adaptation
work=exp/tedlium
preset=sew_d_mid         # any recipes/pretraining/*.yaml
ft=100h                  # hyper-parameters of recipes/finetuning/$ft.yaml; the data is TED-LIUM train
pretrained=              # skip stage 2: fine-tune this checkpoint (e.g. a LibriSpeech-pretrained one)
lm_order=4
lm_text=                 # default: $work/data/lm.txt (the training transcripts)
lm_arpa=                 # use this ARPA/KenLM binary instead of estimating one
ngpu=auto                # auto = all visible GPUs (0 -> CPU)
workers=8                # manifest workers
decode_splits="dev test"
beam=500
pretrain_args=           # extra hydra overrides for stage 2, e.g. 'optimization.max_update=1000'
finetune_args=           # extra hydra overrides for stage 3

usage() { sed -n '2,/^set -e/{/^#/p}' "$0"; echo
  echo "Options: --stage N --stop-stage M --corpus-dir DIR --layout legacy|speaker-adaptation --work-dir DIR"
  echo "         --preset NAME --finetune-config 10m|1h|10h|100h|960h --pretrained CKPT --lm-order N --lm-text FILE"
  echo "         --lm-arpa FILE --ngpu N|auto --workers N --decode-splits 'a b' --beam N"
  echo "         --pretrain-args 'k=v ...' --finetune-args 'k=v ...'"; }
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
