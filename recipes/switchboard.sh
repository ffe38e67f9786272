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
. "$(dirname "$0")/lib/stages.sh"   # log, parse_common_option, init_work, stage_lm ... stage_decode

swbd_dir=/data/LDC97S62
transcripts=             # default: swb_ms98_transcriptions in or beside --swbd-dir
hub5_audio=/data/LDC2002S09/hub5e_00
hub5_transcripts=/data/LDC2002T43
fisher_dirs=             # e.g. "/data/LDC2004T19 /data/LDC2005T19"
sph2pipe=                # needed for LDC's shorten-compressed sph
dev_conversations=30
work=exp/switchboard
decode_splits="dev eval2000"

usage() { print_usage "--swbd-dir DIR --transcripts DIR --hub5-audio DIR (--hub5-audio '' skips eval2000)" \
  "--hub5-transcripts DIR --fisher-dirs 'DIR DIR' --sph2pipe PATH --dev-conversations N"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --swbd-dir|--corpus-dir) swbd_dir=$2; shift 2 ;;
    --transcripts) transcripts=$2; shift 2 ;;
    --hub5-audio) hub5_audio=$2; shift 2 ;;
    --hub5-transcripts) hub5_transcripts=$2; shift 2 ;;
    --fisher-dirs) fisher_dirs=$2; shift 2 ;;
    --sph2pipe) sph2pipe=$2; shift 2 ;;
    --dev-conversations) dev_conversations=$2; shift 2 ;;
    *) parse_common_option "$@"; shift "$nargs" ;;
  esac
done
lm_text=                 # no --lm-text here: the LM text is always stage 0's $data/lm.txt (+ Fisher)
init_work

if run_stage 0; then
  log "stage 0: manifests of $swbd_dir${hub5_audio:+ and Hub5 2000 $hub5_audio} in $data"
  args=(--root "$swbd_dir" --dest "$data" --workers "$workers" --dev-conversations "$dev_conversations")
  [ -n "$transcripts" ] && args+=(--transcripts "$transcripts")
  [ -n "$hub5_audio" ] && args+=(--hub5-audio "$hub5_audio" --hub5-transcripts "$hub5_transcripts")
  [ -n "$sph2pipe" ] && args+=(--sph2pipe "$sph2pipe")
  # shellcheck disable=SC2206
  [ -n "$fisher_dirs" ] && args+=(--fisher-dir $fisher_dirs)
  sew-manifest switchboard "${args[@]}"
fi
if run_stage 1; then stage_lm; fi
if run_stage 2; then stage_pretrain "Switchboard train" train dev "run stage 0"; fi
if run_stage 3; then stage_finetune "on train " dataset.train_subset=train dataset.valid_subset=dev; fi

# stage 4's scoring, run by stage_decode after each decoding: eval2000 by sclite with the GLM
after_decode() {  # $1 = split, $2 = decoder, $3 = decode dir
  [ "$1" = eval2000 ] || return 0
  glm_args=()
  [ -f "$data/eval2000.glm" ] && glm_args=(--glm "$data/eval2000.glm")
  log "sclite: $1 $2 (SWB = sw_*, CallHome = en_*)"
  sew-score --hyp-trn "$3/hyp.trn" --stm "$data/eval2000.stm" "${glm_args[@]}" --out-dir "$3/sclite"
}
if run_stage 4; then stage_decode 14 sclite; fi
