#!/usr/bin/env bash
# Switchboard-1 recipe: manifests (+ Hub5'00) -> LM (Switchboard + Fisher text) -> SEW/SEW-D pretraining on
# Switchboard -> CTC fine-tuning -> decoding of eval2000, scored with sclite and the GLM (SWB, CallHome, all).
#
# Inputs : --swbd-dir: LDC97S62 (sw0NNNN.sph anywhere below); --transcripts: swb_ms98_transcriptions
#          (default: in or beside --swbd-dir); --hub5-audio: LDC2002S09 (english/*.sph); --hub5-transcripts:
#          LDC2002T43 (reference/hub5e00.english.000405.stm, en20000405_hub5.glm); --fisher-dirs (optional):
#          Fisher transcript folders (LDC2004T19, LDC2005T19), LM text only.
#          LDC ships the sph shorten-compressed: build sph2pipe (https://github.com/burrmill/sph2pipe, `make`;
#          Kaldi's tools/ and `lhotse install-sph2pipe` fetch the same v2.5) and pass --sph2pipe PATH.
#          Scoring needs NIST SCTK (`apt-get install sctk`, done by `make setup` where possible).
# Outputs: $work/data/        audio/<split>/<conversation>/*.flac (16 kHz), {train,dev,eval2000}.tsv/.wrd/.ltr/
#                             .report.json, dict.ltr.txt, lexicon.txt, lm.txt, eval2000.stm, eval2000.glm
#          $work/lm/          lexicon.txt and lm.arpa (order --lm-order)
#          $work/pretrain_$preset/          ckpt/checkpoint_{best,last}.pt, train.log
#          $work/finetune_$preset_$ft/      ckpt/, train.log, decode-<split>-{viterbi,kenlm}/ (trn, tsv, json,
#                                           sclite/ with hyp.ctm, sclite reports and scores.json for eval2000)
#
# Stages (run a range with --stage N --stop-stage M):
#   0  manifests: sides split, resampled to 16 kHz, segments cut; Switchboard normalisation (sew-manifest switchboard)
#   1  lexicon and n-gram word LM from Switchboard train (+ Fisher) text (sew-lm, or KenLM's lmplz when on PATH)
#   2  pretraining: recipes/pretraining/$preset.yaml on train, valid dev (sew-train)
#   3  fine-tuning: recipes/finetuning/$ft.yaml's hyper-parameters on Switchboard train, valid dev
#   4  decoding of dev and eval2000 with viterbi and KenLM (sew-infer); eval2000 scored by sclite + GLM
set -euo pipefail

stage=0
stop_stage=4
swbd_dir=/data/LDC97S62
transcripts=             # default: swb_ms98_transcriptions in or beside --swbd-dir
hub5_audio=/data/LDC2002S09/hub5e_00
hub5_transcripts=/data/LDC2002T43
fisher_dirs=             # e.g. "/data/LDC2004T19 /data/LDC2005T19"
sph2pipe=                # needed for LDC's shorten-compressed sph
dev_conversations=30
work=exp/switchboard
preset=sew_d_mid         # any recipes/pretraining/*.yaml
ft=100h                  # hyper-parameters of recipes/finetuning/$ft.yaml; the data is Switchboard train
pretrained=              # skip stage 2: fine-tune this checkpoint
lm_order=4
lm_arpa=                 # use this ARPA/KenLM binary instead of estimating one
ngpu=auto                # auto = all visible GPUs (0 -> CPU)
workers=8                # manifest workers
decode_splits="dev eval2000"
beam=500
pretrain_args=           # extra hydra overrides for stage 2, e.g. 'optimization.max_update=1000'
finetune_args=           # extra hydra overrides for stage 3

usage() { sed -n '2,/^set -e/{/^#/p}' "$0"; echo
  echo "Options: --stage N --stop-stage M --swbd-dir DIR --transcripts DIR --hub5-audio DIR --hub5-transcripts DIR"
  echo "         --fisher-dirs 'DIR DIR' --sph2pipe PATH --dev-conversations N --work-dir DIR --preset NAME"
  echo "         --finetune-config 10m|1h|10h|100h|960h --pretrained CKPT --lm-order N --lm-arpa FILE --ngpu N|auto"
  echo "         --workers N --decode-splits 'a b' --beam N --pretrain-args 'k=v ...' --finetune-args 'k=v ...'"
  echo "         (--hub5-audio '' skips eval2000)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --swbd-dir|--corpus-dir) swbd_dir=$2; shift 2 ;;
    --transcripts) transcripts=$2; shift 2 ;;
    --hub5-audio) hub5_audio=$2; shift 2 ;;
    --hub5-transcripts) hub5_transcripts=$2; shift 2 ;;
    --fisher-dirs) fisher_dirs=$2; shift 2 ;;
    --sph2pipe) sph2pipe=$2; shift 2 ;;
    --dev-conversations) dev_conversations=$2; shift 2 ;;
    --work-dir) work=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --finetune-config) ft=$2; shift 2 ;;
    --pretrained) pretrained=$2; shift 2 ;;
    --lm-order) lm_order=$2; shift 2 ;;
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

log() { echo "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)   # absolute: fairseq-hydra-train runs inside hydra.run.dir
data=$work/data
lm_dir=$work/lm

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
  log "stage 0: manifests of $swbd_dir${hub5_audio:+ and Hub5 2000 $hub5_audio} in $data"
  args=(--root "$swbd_dir" --dest "$data" --workers "$workers" --dev-conversations "$dev_conversations")
  [ -n "$transcripts" ] && args+=(--transcripts "$transcripts")
  [ -n "$hub5_audio" ] && args+=(--hub5-audio "$hub5_audio" --hub5-transcripts "$hub5_transcripts")
  [ -n "$sph2pipe" ] && args+=(--sph2pipe "$sph2pipe")
  # shellcheck disable=SC2206
  [ -n "$fisher_dirs" ] && args+=(--fisher-dir $fisher_dirs)
  sew-manifest switchboard "${args[@]}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: lexicon and ${lm_order}-gram LM from $data/lm.txt in $lm_dir"
  mkdir -p "$lm_dir"
  cp "$data/lexicon.txt" "$lm_dir/lexicon.txt"
  if [ -n "$lm_arpa" ]; then
    ln -sf "$(cd "$(dirname "$lm_arpa")" && pwd)/$(basename "$lm_arpa")" "$lm_dir/lm.arpa"
  elif command -v lmplz >/dev/null; then
    lmplz -o "$lm_order" --discount_fallback < "$data/lm.txt" > "$lm_dir/lm.arpa.tmp" && mv "$lm_dir/lm.arpa.tmp" "$lm_dir/lm.arpa"
  else
    sew-lm arpa --text "$data/lm.txt" --order "$lm_order" -o "$lm_dir/lm.arpa"
  fi
  sew-lm check --lm "$lm_dir/lm.arpa" --lexicon "$lm_dir/lexicon.txt"
fi

pt_dir=$work/pretrain_$preset
ft_dir=$work/finetune_${preset}_$ft
pretrained=${pretrained:-$pt_dir/ckpt/checkpoint_best.pt}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: pretrain $preset on Switchboard train (log: $pt_dir/train.log)"
  [ -f "$data/train.tsv" ] || { log "no $data/train.tsv: run stage 0"; exit 1; }
  mkdir -p "$pt_dir"
  # shellcheck disable=SC2046
  sew-train --config-dir "$here/pretraining" --config-name "$preset" task.data="$data" \
    ++dataset.train_subset=train ++dataset.valid_subset=dev \
    checkpoint.save_dir="$pt_dir/ckpt" hydra.run.dir="$pt_dir" $(device_args "$here/pretraining/$preset.yaml" 1) $pretrain_args \
    2>&1 | tee -a "$pt_dir/train.log"
  [ -f "$pt_dir/ckpt/checkpoint_best.pt" ] || { log "pretraining failed: see $pt_dir/train.log"; exit 1; }
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: fine-tune $pretrained on train with recipes/finetuning/$ft.yaml (log: $ft_dir/train.log)"
  [ -f "$pretrained" ] || { log "no pretrained checkpoint $pretrained (run stage 2 or give --pretrained)"; exit 1; }
  mkdir -p "$ft_dir"
  # shellcheck disable=SC2046
  sew-train --config-dir "$here/finetuning" --config-name "$ft" task.data="$data" model.w2v_path="$pretrained" \
    dataset.train_subset=train dataset.valid_subset=dev \
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
      if [ "$split" = eval2000 ]; then
        glm_args=()
        [ -f "$data/eval2000.glm" ] && glm_args=(--glm "$data/eval2000.glm")
        log "sclite: $split $decoder (SWB = sw_*, CallHome = en_*)"
        python -m sew_fairseq.cli.score --hyp-trn "$out/hyp.trn" --stm "$data/eval2000.stm" "${glm_args[@]}" \
          --out-dir "$out/sclite"
      fi
    done
  done
  python - "${done_dirs[@]}" <<'PY'
import json, os, sys
print(f"{'split':14}{'decoder':10}{'WER %':>8}{'CER %':>8}{'SWB %':>8}{'CH %':>8}{'all %':>8}")
for d in sys.argv[1:]:
    r = json.load(open(os.path.join(d, "results.json")))
    s = os.path.join(d, "sclite", "scores.json")
    sc = json.load(open(s)) if os.path.exists(s) else {}
    cols = "".join(f"{sc[k]['wer']:8.2f}" if k in sc else f"{'-':>8}" for k in ("swbd", "callhome", "all"))
    print(f"{os.path.basename(d)[7:].rsplit('-', 1)[0]:14}{r['decoder']:10}{r['wer']:8.2f}{r['cer']:8.2f}{cols}")
PY
fi
