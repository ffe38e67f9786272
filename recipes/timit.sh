#!/usr/bin/env bash
# TIMIT phone recognition recipe (as wav2vec 2.0's TIMIT experiment): manifests with Kaldi's splits and 39-phone
# labels -> CTC fine-tuning of a pretrained SEW / SEW-D / wav2vec 2.0 checkpoint on the phones -> greedy decoding of
# dev and the core test set, phone error rate (PER, sil not scored).
#
# Inputs : --corpus-dir: TIMIT as distributed by LDC (LDC93S1: TRAIN/ and TEST/ with DR1..DR8/<SPEAKER>/*.WAV,PHN,TXT,
#          upper or lower case); --pretrained: a pretrained checkpoint (e.g. stage 2 of recipes/librispeech.sh).
# Outputs: $work/data/               train/dev/test .tsv .phn .wrd .ltr .report.json, dict.phn.txt (39 phones), ...
#          $work/finetune_$ft/        ckpt/checkpoint_{best,last}.pt, train.log, decode-<split>/ (trn, tsv, json)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  manifests: train (462 speakers, SA sentences left out), dev (Kaldi's 50 speakers), test (the 24-speaker core
#      test set); .WAV referenced in place (sew-manifest timit)
#   1  fine-tuning: recipes/finetuning/$ft.yaml (default timit: phone CTC, task.labels=phn) from --pretrained
#   2  decoding of --decode-splits (default dev test), greedy, token by token (sew-infer --labels phn), PER table
set -euo pipefail
. "$(dirname "$0")/lib/stages.sh"   # log, parse_common_option, init_work, device_args, stage_finetune

corpus_dir=/data/timit/TIMIT
work=exp/timit
ft=timit
ft_stage=1
stop_stage=2
decode_splits="dev test"

usage() {
  sed -n '2,/^set -e/{/^#/p}' "$0"; echo
  echo "Options: --corpus-dir DIR --pretrained CKPT --work-dir DIR --finetune-config NAME (default timit)"
  echo "         --stage N --stop-stage M --ngpu N|auto --workers N --decode-splits 'dev test' --finetune-args 'k=v ...'"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    *) parse_common_option "$@"; shift "$nargs" ;;
  esac
done
if run_stage 1 && [ -z "$pretrained" ]; then
  echo "stage 1 fine-tunes a pretrained checkpoint: give --pretrained CKPT (SEW, SEW-D or wav2vec 2.0)" >&2
  usage >&2
  exit 2
fi
init_work
ft_dir=$work/finetune_$ft   # no pretraining stage here: named after the fine-tuning config only
if [ -f "$pretrained" ]; then   # absolute: fairseq-hydra-train runs inside hydra.run.dir
  pretrained=$(cd "$(dirname "$pretrained")" && pwd)/$(basename "$pretrained")
fi

if run_stage 0; then
  log "stage 0: manifests of $corpus_dir in $data"
  sew-manifest timit --root "$corpus_dir" --dest "$data" --workers "$workers"
fi
if run_stage 1; then stage_finetune "on train (valid dev) "; fi
if run_stage 2; then
  log "stage 2: decode $decode_splits with $ft_dir/ckpt/checkpoint_best.pt (phones, greedy)"
  dirs=()
  for split in $decode_splits; do
    [ -f "$data/$split.tsv" ] || { log "skip $split: no $data/$split.tsv"; continue; }
    sew-infer "$ft_dir/ckpt/checkpoint_best.pt" --data "$data" --split "$split" --labels phn \
      --results-dir "$ft_dir/decode-$split" --quiet
    dirs+=("$ft_dir/decode-$split")
  done
  [ ${#dirs[@]} -gt 0 ] || { log "nothing decoded: none of $decode_splits has a manifest in $data"; exit 1; }
  python - "${dirs[@]}" <<'PY'
import json, os, sys
print(f"{'split':8}{'utts':>6}{'PER %':>8}{'PER+sil %':>11}{'RTF':>9}")
for d in sys.argv[1:]:
    r = json.load(open(os.path.join(d, "results.json")))
    print(f"{r['split']:8}{r['utterances']:6d}{r['per']:8.2f}{r['per_with_sil']:11.2f}{r['rtf']:9.4f}")
PY
fi
