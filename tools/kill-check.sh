#!/usr/bin/env bash
# Each `atu attack` kind and `atu ship --quantize int4`, killed with SIGKILL mid-way and run again, must leave no
# leftover anywhere (beside the output, in the working folder, in the system's temporary folder) and end with the files
# of an uninterrupted run (issue 29). A tiny random checkpoint on the toy world's tokenizer; about a minute on 2 cores.
# (`atu sweep run` killed the same way: SweepFaultTests.A_sweep_run_killed_with_SIGKILL_leaves_no_orphan_...)
# Usage: tools/kill-check.sh [WORKDIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
dotnet build "$repo/src/Cli" -c Release -v q -nologo >/dev/null
dll="$repo/src/Cli/bin/Release/net10.0/atu.dll"
atu() { dotnet "$dll" "$@"; }
[ -d world ] || atu toy world --seed 1 --out world >/dev/null
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 3/; s/"vocab_size": 512/"vocab_size": 1408/; s/"max_position_embeddings": 256/"max_position_embeddings": 512/' \
  "$repo/models/tiny-llama-gqa.json" > cfg.json
[ -d art ] || { atu export --random cfg.json --out art --encoder minilm --device cpu >/dev/null; cp world/tokenizer/* art/; }
tmp_before=$(ls -a "${TMPDIR:-/tmp}" | grep '^atu' || true)

eval_options=(--artifacts art --rwku world --targets 1 --device cpu)
declare -A commands=(
  [quantize]="attack quantize --bits 4 ${eval_options[*]}"
  [cast]="attack cast --to bf16 ${eval_options[*]}"
  [sample]="attack sample -n 2 --temperature 0.7 --seed 3 ${eval_options[*]}"
  [relearn]="attack relearn --examples 2 --steps 4 ${eval_options[*]}"
  [ship-int4]="ship --artifacts art --weights art/weights.safetensors --quantize int4"
)
failed=0
for name in quantize cast sample relearn ship-int4; do
  read -r -a command <<< "${commands[$name]}"
  rm -rf "whole-$name" "cut-$name" ".cut-$name".* ".cut-$name"-*
  atu "${command[@]}" --out "whole-$name" >/dev/null
  # Killed as soon as its staging (a dot-folder beside the output) exists, plus a moment, so that it dies mid-way.
  dotnet "$dll" "${command[@]}" --out "cut-$name" >"cut-$name.log" 2>&1 &
  pid=$!   # the atu process itself: kill -9 stops it where it is, with no code of its own run
  for _ in $(seq 1 600); do
    compgen -G ".cut-$name*" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # A moment into its work (ship int4 of the tiny model takes well under a second once its staging exists).
  if [ "$name" = ship-int4 ]; then sleep 0.05; else sleep 0.3; fi
  if kill -9 "$pid" 2>/dev/null; then state="killed with $(compgen -G ".cut-$name*" | wc -l) staging entries left"; else state="finished before the kill"; fi
  wait "$pid" 2>/dev/null || true
  if [ -e "cut-$name" ]; then
    # The kill came after the output was moved into place (outputs appear whole or not at all): it must be complete,
    # and the same command again refuses to replace it without --force, as for any existing output.
    state="killed after its output was complete"
    if atu "${command[@]}" --out "cut-$name" > "cut-$name.rerun.log" 2>&1 || ! grep -q "already exists" "cut-$name.rerun.log"; then
      echo "$name: the rerun over a complete output was not refused:"; cat "cut-$name.rerun.log"; failed=1
    fi
  else
    atu "${command[@]}" --out "cut-$name" > "cut-$name.rerun.log" 2>&1 || { echo "$name: the rerun failed:"; cat "cut-$name.rerun.log"; failed=1; continue; }
  fi
  leftovers=$(compgen -G ".cut-$name*" || true)
  [ -z "$leftovers" ] || { echo "$name: leftovers after the rerun: $leftovers"; failed=1; }
  if diff -r "whole-$name" "cut-$name" >/dev/null; then echo "$name: $state; the files equal an uninterrupted run's, no leftover"
  else echo "$name: the rerun's files differ from an uninterrupted run's:"; diff -r "whole-$name" "cut-$name" | head -5; failed=1; fi
done
tmp_after=$(ls -a "${TMPDIR:-/tmp}" | grep '^atu' || true)
[ "$tmp_before" == "$tmp_after" ] || { echo "new entries in ${TMPDIR:-/tmp}: $(comm -13 <(echo "$tmp_before") <(echo "$tmp_after"))"; failed=1; }
exit "$failed"
