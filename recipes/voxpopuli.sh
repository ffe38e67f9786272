#!/usr/bin/env bash
# VoxPopuli English ASR recipe: manifests (ogg -> 16 kHz FLAC) -> LM -> SEW/SEW-D pretraining on the train
# split -> CTC fine-tuning on train -> decoding and scoring of dev and test.
#
# Inputs : --corpus-dir: the --root given to VoxPopuli's `python -m voxpopuli.get_asr_data --root ROOT --lang en`
#          (ROOT/transcribed_data/en/asr_{train,dev,test}.tsv + <year>/<id>.ogg), or that en/ folder itself.
# Outputs: $work/data/        train/dev/test .tsv/.wrd/.ltr/.report.json, dict.ltr.txt, lexicon.txt, lm.txt,
#                             audio/<year>/<id>.flac (16 kHz mono)
#          $work/lm/          lexicon.txt and lm.arpa (order --lm-order) from the train transcripts
#          $work/pretrain_$preset/          ckpt/checkpoint_{best,last}.pt, train.log
#          $work/finetune_$preset_$ft/      ckpt/, train.log, decode-<split>-{viterbi,kenlm}/ (trn, tsv, json)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  manifests and 16 kHz FLAC audio (sew-manifest voxpopuli; re-runs keep converted files)
#   1  lexicon and n-gram word LM (sew-lm; or give --lm-arpa)
#   2  pretraining: recipes/pretraining/$preset.yaml on train, valid dev (sew-train)
#   3  fine-tuning: recipes/finetuning/$ft.yaml hyper-parameters on train, valid dev
#   4  decoding of dev and test with viterbi and KenLM (sew-infer), WER table
set -euo pipefail
. "$(dirname "$0")/lib/stages.sh"   # log, parse_common_option, init_work, stage_lm ... stage_decode

corpus_dir=/data/voxpopuli
audio_dest=              # default: $work/data/audio
work=exp/voxpopuli
decode_splits="dev test"

usage() { print_usage "--corpus-dir DIR --audio-dest DIR --lm-text FILE"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --audio-dest) audio_dest=$2; shift 2 ;;
    --lm-text) lm_text=$2; shift 2 ;;
    *) parse_common_option "$@"; shift "$nargs" ;;
  esac
done
init_work

if run_stage 0; then
  log "stage 0: manifests of $corpus_dir in $data"
  audio_args=()
  [ -n "$audio_dest" ] && audio_args=(--audio-dest "$audio_dest")
  sew-manifest voxpopuli --root "$corpus_dir" --dest "$data" --workers "$workers" "${audio_args[@]}"
fi
if run_stage 1; then stage_lm "$lm_text"; fi
if run_stage 2; then stage_pretrain train train dev; fi
if run_stage 3; then stage_finetune "on train " ++dataset.train_subset=train ++dataset.valid_subset=dev; fi
if run_stage 4; then stage_decode 8 rtf; fi
