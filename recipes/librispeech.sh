#!/usr/bin/env bash
# LibriSpeech (+ Libri-light limited supervision) recipe: manifests -> LM -> SEW/SEW-D pretraining on 960 h
# -> CTC fine-tuning on a labelled subset -> decoding and scoring of dev/test.
#
# Inputs : --corpus-dir: LibriSpeech/ as unpacked from openslr.org/12 (train-clean-100 ... test-other) and,
#          for the 10m/1h/10h fine-tuning sets, Libri-light's librispeech_finetuning/ inside or beside it.
# Outputs: $work/data/        <split>.tsv/.wrd/.ltr/.report.json, dict.ltr.txt, lexicon.txt, lm.txt
#          $work/lm/          lexicon.txt and lm.arpa (order --lm-order) from the training transcripts
#          $work/pretrain_$preset/          ckpt/checkpoint_{best,last}.pt, train.log
#          $work/finetune_$preset_$ft/      ckpt/, train.log, decode-<split>-{viterbi,kenlm}/ (trn, tsv, json)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  manifests of every split found (sew-manifest librispeech; reads flac headers only, no conversion)
#   1  lexicon and n-gram word LM (sew-lm; or give --lm-arpa, e.g. openslr's 4-gram.arpa)
#   2  pretraining: recipes/pretraining/$preset.yaml on train-960, valid dev-other (sew-train)
#   3  fine-tuning: recipes/finetuning/$ft.yaml (10m|1h|10h|100h|960h) from the pretrained checkpoint
#   4  decoding of dev-clean dev-other test-clean test-other with viterbi and KenLM (sew-infer), WER table
set -euo pipefail
. "$(dirname "$0")/lib/stages.sh"   # log, parse_common_option, init_work, stage_lm ... stage_decode

corpus_dir=/data/LibriSpeech
finetuning_dir=          # default: <corpus-dir>/librispeech_finetuning or <corpus-dir>/../librispeech_finetuning
work=exp/librispeech
decode_splits="dev-clean dev-other test-clean test-other"

usage() { print_usage "--corpus-dir DIR --finetuning-dir DIR --lm-text FILE"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --finetuning-dir) finetuning_dir=$2; shift 2 ;;
    --finetune-split) ft=$2; shift 2 ;;
    --lm-text) lm_text=$2; shift 2 ;;
    *) parse_common_option "$@"; shift "$nargs" ;;
  esac
done
case "$ft" in train-10m) ft=10m ;; train-1h) ft=1h ;; train-10h) ft=10h ;; train-clean-100) ft=100h ;; train-960) ft=960h ;; esac
init_work

if run_stage 0; then
  log "stage 0: manifests of $corpus_dir in $data"
  ft_args=()
  [ -n "$finetuning_dir" ] && ft_args=(--finetuning-root "$finetuning_dir")
  sew-manifest librispeech --root "$corpus_dir" --dest "$data" --workers "$workers" "${ft_args[@]}"
fi
if run_stage 1; then stage_lm "$lm_text"; fi
if run_stage 2; then
  stage_pretrain train-960 train-960 dev-other "stage 0 needs train-clean-100, -360 and train-other-500"
fi
if run_stage 3; then stage_finetune ""; fi
if run_stage 4; then stage_decode 14 rtf; fi
