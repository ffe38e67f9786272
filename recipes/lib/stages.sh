# Stages and helpers shared by the corpus recipes (librispeech.sh, voxpopuli.sh, tedlium.sh, switchboard.sh,
# timit.sh).
# Sourced, not run. Sourcing sets the defaults every recipe shares (below); a recipe then sets its own (corpus
# folders, work, decode_splits), parses its own flags (falling back to parse_common_option), calls init_work,
# runs its own stage 0 and then these stages. They read the recipe's variables:
#   stage stop_stage work preset ft pretrained lm_order lm_text lm_arpa ngpu decode_splits beam
#   pretrain_args finetune_args
# and init_work sets: here data lm_dir pt_dir ft_dir (and the defaults of lm_text and pretrained).

# Defaults shared by the recipes; each has a flag in parse_common_option.
stage=0
stop_stage=4
preset=sew_d_mid         # any recipes/pretraining/*.yaml
ft=100h                  # any recipes/finetuning/*.yaml: 10m 1h 10h 100h 960h (+ _stable variants)
pretrained=              # skip stage 2: fine-tune this checkpoint instead
lm_order=4
lm_text=                 # default: $work/data/lm.txt (stage 0's training transcripts)
lm_arpa=                 # use this ARPA/KenLM binary instead of estimating one
ngpu=auto                # auto = all visible GPUs (0 -> CPU)
workers=8                # manifest workers
beam=500
pretrain_args=           # extra hydra overrides for stage 2, e.g. 'optimization.max_update=1000'
finetune_args=           # extra hydra overrides for stage 3

# The recipe's header comment, then "Options:" with the recipe's own options ($@, one line each) and the
# common ones of parse_common_option.
print_usage() {
  sed -n '2,/^set -e/{/^#/p}' "$0"; echo
  local prefix="Options:"
  for line in "$@"; do echo "$prefix $line"; prefix="        "; done
  echo "$prefix --stage N --stop-stage M --work-dir DIR --preset NAME --finetune-config 10m|1h|10h|100h|960h"
  echo "         --pretrained CKPT --lm-order N --lm-arpa FILE --ngpu N|auto --workers N --decode-splits 'a b'"
  echo "         --beam N --pretrain-args 'k=v ...' --finetune-args 'k=v ...'"
}

# "date time (recipe.sh:line) message"; the line is the recipe's, also for messages of the stages below.
log() {
  local n=${#BASH_SOURCE[@]}
  echo "$(date '+%F %T') (${BASH_SOURCE[n-1]##*/}:${BASH_LINENO[n-2]}) $*"
}

# The options every recipe has. Call from the recipe's `case` fallback as
#   *) parse_common_option "$@"; shift "$nargs" ;;
# sets the variable and nargs (how many words it used); --help prints the recipe's usage and exits.
parse_common_option() {
  nargs=2
  case "$1" in
    --stage) stage=$2 ;;
    --stop-stage) stop_stage=$2 ;;
    --work-dir) work=$2 ;;
    --preset) preset=$2 ;;
    --finetune-config) ft=$2 ;;
    --pretrained) pretrained=$2 ;;
    --lm-order) lm_order=$2 ;;
    --lm-arpa) lm_arpa=$2 ;;
    --ngpu) ngpu=$2 ;;
    --workers) workers=$2 ;;
    --decode-splits) decode_splits=$2 ;;
    --beam) beam=$2 ;;
    --pretrain-args) pretrain_args=$2 ;;
    --finetune-args) finetune_args=$2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
}

# true when stage $1 is in --stage .. --stop-stage
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

# After option parsing: absolute work dir and the paths the stages share.
init_work() {
  here=$(cd "$(dirname "$0")" && pwd)
  mkdir -p "$work"
  work=$(cd "$work" && pwd)   # absolute: fairseq-hydra-train runs inside hydra.run.dir
  data=$work/data
  lm_dir=$work/lm
  lm_text=${lm_text:-$data/lm.txt}
  pt_dir=$work/pretrain_$preset
  ft_dir=$work/finetune_${preset}_$ft
  pretrained=${pretrained:-$pt_dir/ckpt/checkpoint_best.pt}
}

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

# Stage 1: $lm_dir/lexicon.txt and $lm_dir/lm.arpa. The lexicon is stage 0's when the LM text is stage 0's
# lm.txt, else built from the word files given as arguments. The LM: --lm-arpa linked, else KenLM's lmplz
# when on PATH, else sew-lm arpa.
stage_lm() {  # $@ = word files for the lexicon when --lm-text is not $data/lm.txt
  log "stage 1: lexicon and ${lm_order}-gram LM from $lm_text in $lm_dir"
  mkdir -p "$lm_dir"
  if [ "$lm_text" = "$data/lm.txt" ]; then
    cp "$data/lexicon.txt" "$lm_dir/lexicon.txt"
  else
    sew-lm lexicon --wrd "$@" -o "$lm_dir/lexicon.txt"
  fi
  if [ -n "$lm_arpa" ]; then
    ln -sf "$(cd "$(dirname "$lm_arpa")" && pwd)/$(basename "$lm_arpa")" "$lm_dir/lm.arpa"
  elif command -v lmplz >/dev/null; then
    lmplz -o "$lm_order" --discount_fallback < "$lm_text" > "$lm_dir/lm.arpa.tmp" && mv "$lm_dir/lm.arpa.tmp" "$lm_dir/lm.arpa"
  else
    sew-lm arpa --text "$lm_text" --order "$lm_order" -o "$lm_dir/lm.arpa"
  fi
  sew-lm check --lm "$lm_dir/lm.arpa" --lexicon "$lm_dir/lexicon.txt"
}

# Stage 2: sew-train with recipes/pretraining/$preset.yaml into $pt_dir.
stage_pretrain() {  # $1 = corpus words for the log, $2 = train subset, $3 = valid subset,
                    # $4 (optional) = hint logged when $data/<train subset>.tsv is missing
  log "stage 2: pretrain $preset on $1 (log: $pt_dir/train.log)"
  if [ $# -ge 4 ]; then
    [ -f "$data/$2.tsv" ] || { log "no $data/$2.tsv: $4"; exit 1; }
  fi
  mkdir -p "$pt_dir"
  # shellcheck disable=SC2046,SC2086
  sew-train --config-dir "$here/pretraining" --config-name "$preset" task.data="$data" \
    ++dataset.train_subset="$2" ++dataset.valid_subset="$3" \
    checkpoint.save_dir="$pt_dir/ckpt" hydra.run.dir="$pt_dir" $(device_args "$here/pretraining/$preset.yaml" 1) $pretrain_args \
    2>&1 | tee -a "$pt_dir/train.log"
  [ -f "$pt_dir/ckpt/checkpoint_best.pt" ] || { log "pretraining failed: see $pt_dir/train.log"; exit 1; }
}

# Stage 3 (${ft_stage:-3}: timit.sh has no pretraining and fine-tunes in stage 1): sew-train with
# recipes/finetuning/$ft.yaml from $pretrained into $ft_dir.
stage_finetune() {  # $1 = "on <subset> " for the log (or ""), $2... = extra overrides (e.g. the subsets)
  local on=$1; shift
  log "stage ${ft_stage:-3}: fine-tune $pretrained ${on}with recipes/finetuning/$ft.yaml (log: $ft_dir/train.log)"
  [ -f "$pretrained" ] || { log "no pretrained checkpoint $pretrained (run stage 2 or give --pretrained)"; exit 1; }
  mkdir -p "$ft_dir"
  # shellcheck disable=SC2046,SC2086
  sew-train --config-dir "$here/finetuning" --config-name "$ft" task.data="$data" model.w2v_path="$pretrained" \
    "$@" \
    checkpoint.save_dir="$ft_dir/ckpt" hydra.run.dir="$ft_dir" $(device_args "$here/finetuning/$ft.yaml" 2) $finetune_args \
    2>&1 | tee -a "$ft_dir/train.log"
  [ -f "$ft_dir/ckpt/checkpoint_best.pt" ] || { log "fine-tuning failed: see $ft_dir/train.log"; exit 1; }
}

# Stage 4: sew-infer of every --decode-splits split found with viterbi and KenLM into
# $ft_dir/decode-<split>-<decoder>/, then results_table. A recipe may define
# after_decode SPLIT DECODER OUT_DIR (switchboard.sh: sclite scoring), run after each decoding.
stage_decode() {  # $1 = split column width, $2 = table columns after CER: rtf | sclite
  log "stage 4: decode $decode_splits with $ft_dir/ckpt/checkpoint_best.pt"
  local split decoder out done_dirs=() lm_args
  for split in $decode_splits; do
    [ -f "$data/$split.tsv" ] || { log "skip $split: no $data/$split.tsv"; continue; }
    for decoder in viterbi kenlm; do
      lm_args=()
      [ "$decoder" = kenlm ] && lm_args=(--lexicon "$lm_dir/lexicon.txt" --lm "$lm_dir/lm.arpa" --beam "$beam")
      out=$ft_dir/decode-$split-$decoder
      sew-infer "$ft_dir/ckpt/checkpoint_best.pt" --data "$data" --split "$split" --decoder "$decoder" \
        "${lm_args[@]}" --results-dir "$out" --quiet
      done_dirs+=("$out")
      if declare -F after_decode >/dev/null; then after_decode "$split" "$decoder" "$out"; fi
    done
  done
  results_table "$1" "$2" "${done_dirs[@]}"
}

# WER table of decode dirs (their results.json; with sclite: sclite/scores.json's SWB, CallHome, all WER).
results_table() {  # $1 = split column width, $2 = rtf | sclite, $3... = decode dirs
  python - "$@" <<'PY'
import json, os, sys
width, cols, dirs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
extra = f"{'RTF':>9}" if cols == "rtf" else f"{'SWB %':>8}{'CH %':>8}{'all %':>8}"
print(f"{'split':{width}}{'decoder':10}{'WER %':>8}{'CER %':>8}{extra}")
for d in dirs:
    r = json.load(open(os.path.join(d, "results.json")))
    if cols == "rtf":
        extra = f"{r['rtf']:9.4f}"
    else:
        s = os.path.join(d, "sclite", "scores.json")
        sc = json.load(open(s)) if os.path.exists(s) else {}
        extra = "".join(f"{sc[k]['wer']:8.2f}" if k in sc else f"{'-':>8}" for k in ("swbd", "callhome", "all"))
    print(f"{os.path.basename(d)[7:].rsplit('-', 1)[0]:{width}}{r['decoder']:10}{r['wer']:8.2f}{r['cer']:8.2f}{extra}")
PY
}
