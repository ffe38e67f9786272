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

stage=0
stop_stage=4
corpus_dir=/data/LibriSpeech
finetuning_dir=          # default: <corpus-dir>/librispeech_finetuning or <corpus-dir>/../librispeech_finetuning
work=exp/librispeech
preset=sew_d_mid         # any recipes/pretraining/*.yaml
ft=100h                  # any recipes/finetuning/*.yaml: 10m 1h 10h 100h 960h (+ _stable variants)
pretrained=              # skip stage 2: fine-tune this checkpoint instead
lm_order=4
lm_text=                 # default: $work/data/lm.txt (the training transcripts)
lm_arpa=                 # use this ARPA/KenLM binary instead of estimating one
ngpu=auto                # auto = all visible GPUs (0 -> CPU)
workers=8                # manifest workers
decode_splits="dev-clean dev-other test-clean test-other"
beam=500
pretrain_args=           # extra hydra overrides for stage 2, e.g. 'optimization.max_update=1000'
finetune_args=           # extra hydra overrides for stage 3

usage() { sed -n '2,/^set -e/{/^#/p}' "$0"; echo
  echo "Options: --stage N --stop-stage M --corpus-dir DIR --finetuning-dir DIR --work-dir DIR --preset NAME"
  echo "         --finetune-config 10m|1h|10h|100h|960h --pretrained CKPT --lm-order N --lm-text FILE --lm-arpa FILE"
  echo "         --ngpu N|auto --workers N --decode-splits 'a b' --beam N --pretrain-args 'k=v ...' --finetune-args 'k=v ...'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    --finetuning-dir) finetuning_dir=$2; shift 2 ;;
    --work-dir) work=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --finetune-config|--finetune-split) ft=$2; shift 2 ;;
    --pretrained) pretrained=$2; shift 2 ;;
    --lm-order) lm_order=$2; shift 2 ;;
    --lm-text) lm_text=$2; shift 2 ;;
    --lm-arpa) lm_arpa=$2; shift 2 ;;
    --ngpu) ngpu=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --decode-splits) decode_splits=$2; shift 2 ;;
    --beam) beam=$2; shift 2 ;;
    --pretrain-args) pretrain_args=$2; shift 2 ;;
    --finetune-args) finetune_args=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$ft" in train-10m) ft=10m ;; train-1h) ft=1h ;; train-10h) ft=10h ;; train-clean-100) ft=100h ;; train-960) ft=960h ;; esac

log() { echo "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)   # absolute: fairseq-hydra-train runs inside hydra.run.dir
data=$work/data
lm_dir=$work/lm
lm_text=${lm_text:-$data/lm.txt}

# GPUs: world size and update_freq keep the release's effective batch (the yaml's update_freq is for 1 GPU
# in pretraining and 2 GPUs in fine-tuning).
device_args() {  # $1 = yaml, $2 = GPUs the yaml's update_freq assumes
  local n=$ngpu freq
  [ "$n" = auto ] && n=$(python -c 'import torch; print(torch.cuda.device_count())')
  freq=$(sed -n 's/^ *update_freq: *\[\([0-9]*\)\].*/\1/p' "$1")
  if [ "$n" -eq 0 ]; then
    echo "common.cpu=true distributed_training.distributed_world_size=1 optimization.update_freq=[$(( freq * $2 ))]"
  else
    local f=$(( freq * $2 / n )); [ "$f" -lt 1 ] && f=1
    echo "distributed_training.distributed_world_size=$n optimization.update_freq=[$f]"
  fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: manifests of $corpus_dir in $data"
  ft_args=()
  [ -n "$finetuning_dir" ] && ft_args=(--finetuning-root "$finetuning_dir")
  sew-manifest librispeech --root "$corpus_dir" --dest "$data" --workers "$workers" "${ft_args[@]}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: lexicon and ${lm_order}-gram LM from $lm_text in $lm_dir"
  mkdir -p "$lm_dir"
  if [ "$lm_text" = "$data/lm.txt" ]; then
    cp "$data/lexicon.txt" "$lm_dir/lexicon.txt"
  else
    sew-lm lexicon --wrd "$lm_text" -o "$lm_dir/lexicon.txt"
  fi
  if [ -n "$lm_arpa" ]; then
    ln -sf "$(cd "$(dirname "$lm_arpa")" && pwd)/$(basename "$lm_arpa")" "$lm_dir/lm.arpa"
  elif command -v lmplz >/dev/null; then
    lmplz -o "$lm_order" --discount_fallback < "$lm_text" > "$lm_dir/lm.arpa.tmp" && mv "$lm_dir/lm.arpa.tmp" "$lm_dir/lm.arpa"
  else
    sew-lm arpa --text "$lm_text" --order "$lm_order" -o "$lm_dir/lm.arpa"
  fi
  sew-lm check --lm "$lm_dir/lm.arpa" --lexicon "$lm_dir/lexicon.txt"
fi

pt_dir=$work/pretrain_$preset
ft_dir=$work/finetune_${preset}_$ft
pretrained=${pretrained:-$pt_dir/ckpt/checkpoint_best.pt}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: pretrain $preset on train-960 (log: $pt_dir/train.log)"
  [ -f "$data/train-960.tsv" ] || { log "no $data/train-960.tsv: stage 0 needs train-clean-100, -360 and train-other-500"; exit 1; }
  mkdir -p "$pt_dir"
  # shellcheck disable=SC2046
  sew-train --config-dir "$here/pretraining" --config-name "$preset" task.data="$data" \
    ++dataset.train_subset=train-960 ++dataset.valid_subset=dev-other \
    checkpoint.save_dir="$pt_dir/ckpt" hydra.run.dir="$pt_dir" $(device_args "$here/pretraining/$preset.yaml" 1) $pretrain_args \
    2>&1 | tee -a "$pt_dir/train.log"
  [ -f "$pt_dir/ckpt/checkpoint_best.pt" ] || { log "pretraining failed: see $pt_dir/train.log"; exit 1; }
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: fine-tune $pretrained with recipes/finetuning/$ft.yaml (log: $ft_dir/train.log)"
  [ -f "$pretrained" ] || { log "no pretrained checkpoint $pretrained (run stage 2 or give --pretrained)"; exit 1; }
  mkdir -p "$ft_dir"
  # shellcheck disable=SC2046
  sew-train --config-dir "$here/finetuning" --config-name "$ft" task.data="$data" model.w2v_path="$pretrained" \
    checkpoint.save_dir="$ft_dir/ckpt" hydra.run.dir="$ft_dir" $(device_args "$here/finetuning/$ft.yaml" 2) $finetune_args \
    2>&1 | tee -a "$ft_dir/train.log"
  [ -f "$ft_dir/ckpt/checkpoint_best.pt" ] || { log "fine-tuning failed: see $ft_dir/train.log"; exit 1; }
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: decode $decode_splits with $ft_dir/ckpt/checkpoint_best.pt"
  done_dirs=()
  for split in $decode_splits; do
    [ -f "$data/$split.tsv" ] || { log "skip $split: no $data/$split.tsv"; continue; }
    for decoder in viterbi kenlm; do
      lm_args=()
      [ "$decoder" = kenlm ] && lm_args=(--lexicon "$lm_dir/lexicon.txt" --lm "$lm_dir/lm.arpa" --beam "$beam")
      out=$ft_dir/decode-$split-$decoder
      sew-infer "$ft_dir/ckpt/checkpoint_best.pt" --data "$data" --split "$split" --decoder "$decoder" \
        "${lm_args[@]}" --results-dir "$out" --quiet
      done_dirs+=("$out")
    done
  done
  python - "${done_dirs[@]}" <<'PY'
import json, os, sys
print(f"{'split':14}{'decoder':10}{'WER %':>8}{'CER %':>8}{'RTF':>9}")
for d in sys.argv[1:]:
    r = json.load(open(os.path.join(d, "results.json")))
    print(f"{os.path.basename(d)[7:].rsplit('-', 1)[0]:14}{r['decoder']:10}{r['wer']:8.2f}{r['cer']:8.2f}{r['rtf']:9.4f}")
PY
fi
