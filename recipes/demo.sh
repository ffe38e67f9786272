#!/usr/bin/env bash
# Demo recipe (what `make demo` runs): embedded corpus -> pretrain a reduced SEW-D -> fine-tune it with CTC
# -> decode the held-out split greedily and with a KenLM beam search.
#
# Inputs : nothing; the corpus is synthetic speech generated here (sew-demo-data, espeak-ng voices).
# Outputs: $work/corpus/        fairseq manifests, letter labels, 16 kHz audio (about 16 min)
#          $work/pretrain_TARGETS/  checkpoints (ckpt/checkpoint_last.pt, checkpoint_best.pt) and train.log
#          $work/lm/            lexicon.txt and a 3-gram lm.arpa from the training transcripts
#          $work/finetune_TARGETS/  CTC checkpoints and train.log; decode-valid-{viterbi,kenlm}/ (trn, tsv, json)
#          $work/align/         (stage 6) held-out speech aligned with its text: recording, text, results.json
#          $work/early_exit_TARGETS/  (stages 7-8) exit-branch checkpoints, train.log, tradeoff-valid/ (csv, png)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  generate the demo corpus                  (seconds; skipped when complete with the same options)
#   1  pretrain the reduced SEW-D of recipes/demo/pretrain.yaml, continuous targets by default
#                                                (about 3 min on 2 CPU cores; a rerun resumes or is a no-op)
#   2  print the logged pretraining losses as a table
#   3  lexicon and word LM from the training transcripts (sew-lm)
#   4  CTC fine-tuning of the pretrained model (recipes/demo/finetune.yaml, LM WER at validation; ~3 min)
#   5  decode the valid split with viterbi and with KenLM (sew-infer) and print a WER/CER table
#   6  forced alignment (sew-align's search): 2 minutes of held-out utterances joined by random pauses, aligned with
#      their text plus one line that is not spoken; boundary accuracy and the skipped line (~20 s)
#   7  (optional, --stop-stage 8) early exit, two-stage: freeze the fine-tuned model, train exit branches after
#      layers 1, 2, 3 of 4 (recipes/demo/early_exit.yaml; ~3 min)
#   8  (optional) sew-bench tradeoff on the valid split: WER against inference time, CSV + PNG
set -euo pipefail

stage=0
stop_stage=6
work=demo_work
utterances=400
max_update=400
ft_max_update=600
ee_max_update=400
device=auto   # auto | cpu | cuda
targets=continuous   # continuous | quantized (the paper's; stays near chance for hundreds of updates here)
voices=1      # eSpeak NG voices in the corpus: one voice is the most regular speech
seed=1        # common.seed of every training stage (the yaml files say 1)

usage() { sed -n '2,22p' "$0"; echo; echo "Options: --stage N --stop-stage M --work DIR --utterances N --voices N --max-update N --ft-max-update N"
  echo "         --ee-max-update N (stage 7) --seed N"
  echo "         --device auto|cpu|cuda --targets continuous|quantized"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --utterances) utterances=$2; shift 2 ;;
    --max-update) max_update=$2; shift 2 ;;
    --ft-max-update) ft_max_update=$2; shift 2 ;;
    --ee-max-update) ee_max_update=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --voices) voices=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)   # absolute: fairseq-hydra-train runs inside hydra.run.dir

if [ "$device" = auto ]; then
  device=$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
common_args=(common.seed="$seed")
[ "$device" = cpu ] && common_args+=(common.cpu=true)
extra_args=("${common_args[@]}")
case "$targets" in
  continuous) ;;
  quantized) extra_args+=(model.quantize_targets=true 'criterion.loss_weights=[0.1,10]') ;;
  *) echo "--targets must be continuous or quantized, not $targets" >&2; exit 2 ;;
esac

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "stage 0: demo corpus in $work/corpus ($utterances utterances, $voices voice(s))"
  sew-demo-data --dest "$work/corpus" --num-utterances "$utterances" --voices "$voices"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: pretrain a reduced SEW-D ($targets targets) for $max_update updates on $device (log: $work/pretrain_$targets/train.log)"
  mkdir -p "$work/pretrain_$targets"
  sew-train --config-dir "$here/demo" --config-name pretrain \
    task.data="$work/corpus" checkpoint.save_dir="$work/pretrain_$targets/ckpt" hydra.run.dir="$work/pretrain_$targets" \
    optimization.max_update="$max_update" lr_scheduler.total_num_update="$max_update" "${extra_args[@]}" \
    2>&1 | tee -a "$work/pretrain_$targets/train.log" | grep --line-buffered -E '\[(train_inner|valid)\]|Error|error' || true
  [ -f "$work/pretrain_$targets/ckpt/checkpoint_last.pt" ] || { log "pretraining failed: see $work/pretrain_$targets/train.log"; exit 1; }
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: losses logged during pretraining (contrastive loss at chance: log2(1 + 50 negatives) = 5.67 bits, accuracy about 0.02)"
  sew-log-summary "$work/pretrain_$targets/train.log"
fi

lm_dir="$work/lm"
ft_dir="$work/finetune_$targets"

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: lexicon and 3-gram word LM from $work/corpus/train.wrd in $lm_dir"
  mkdir -p "$lm_dir"
  sew-lm lexicon --wrd "$work/corpus/train.wrd" -o "$lm_dir/lexicon.txt"
  sew-lm arpa --text "$work/corpus/train.wrd" --order 3 -o "$lm_dir/lm.arpa"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: CTC fine-tuning for $ft_max_update updates (log: $ft_dir/train.log)"
  mkdir -p "$ft_dir"
  sew-train --config-dir "$here/demo" --config-name finetune \
    task.data="$work/corpus" model.w2v_path="$work/pretrain_$targets/ckpt/checkpoint_best.pt" \
    +criterion.wer_kenlm_model="$lm_dir/lm.arpa" +criterion.wer_lexicon="$lm_dir/lexicon.txt" \
    checkpoint.save_dir="$ft_dir/ckpt" hydra.run.dir="$ft_dir" optimization.max_update="$ft_max_update" \
    "${common_args[@]}" 2>&1 | tee -a "$ft_dir/train.log" | grep --line-buffered -E '\[valid\]|Error|error' || true
  [ -f "$ft_dir/ckpt/checkpoint_best.pt" ] || { log "fine-tuning failed: see $ft_dir/train.log"; exit 1; }
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: decode $work/corpus/valid (held out) with the fine-tuned model"
  for decoder in viterbi kenlm; do
    lm_args=()
    [ "$decoder" = kenlm ] && lm_args=(--lexicon "$lm_dir/lexicon.txt" --lm "$lm_dir/lm.arpa" --beam 50)
    sew-infer "$ft_dir/ckpt/checkpoint_best.pt" --data "$work/corpus" --split valid --decoder "$decoder" \
      "${lm_args[@]}" --results-dir "$ft_dir/decode-valid-$decoder" --quiet
  done
  python - "$ft_dir" <<'PY'
import json, sys
rows = [json.load(open(f"{sys.argv[1]}/decode-valid-{d}/results.json")) for d in ("viterbi", "kenlm")]
print(f"{'decoder':10}{'WER %':>8}{'CER %':>8}{'RTF':>9}")
for r in rows:
    print(f"{r['decoder']:10}{r['wer']:8.2f}{r['cer']:8.2f}{r['rtf']:9.4f}")
PY
fi

ee_dir="$work/early_exit_$targets"

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "stage 6: align 2 minutes of held-out speech with its text plus one unspoken line ($work/align)"
  sew-bench align "$ft_dir/ckpt/checkpoint_best.pt" --data "$work/corpus" --split valid --foreign-split train \
    --minutes 2 --unspoken 1 --no-ctc-segmentation --threads 2 --out-dir "$work/align"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "stage 7: early exit, two-stage: exit branches on the frozen fine-tuned model, $ee_max_update updates (log: $ee_dir/train.log)"
  mkdir -p "$ee_dir"
  sew-train --config-dir "$here/demo" --config-name early_exit \
    task.data="$work/corpus" model.finetuned_path="$ft_dir/ckpt/checkpoint_best.pt" \
    checkpoint.save_dir="$ee_dir/ckpt" hydra.run.dir="$ee_dir" optimization.max_update="$ee_max_update" \
    "${common_args[@]}" 2>&1 | tee -a "$ee_dir/train.log" | grep --line-buffered -E '\[valid\]|Error|error' || true
  [ -f "$ee_dir/ckpt/checkpoint_last.pt" ] || { log "early-exit training failed: see $ee_dir/train.log"; exit 1; }
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  log "stage 8: sew-bench tradeoff on $work/corpus/valid -> $ee_dir/tradeoff-valid/tradeoff.{csv,png}"
  sew-bench tradeoff "$ee_dir/ckpt/checkpoint_last.pt" --data "$work/corpus" --split valid \
    --threads 1 --out-dir "$ee_dir/tradeoff-valid" --quiet   # one thread: robust on a shared machine
fi
