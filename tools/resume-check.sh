#!/usr/bin/env bash
# `atu run --preset toy` on a tiny random checkpoint, killed mid-stage and resumed, must end with the files of an
# uninterrupted run (issue 6). Usage: tools/resume-check.sh [WORKDIR]   (about 2 minutes on 2 cores)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
dotnet build "$repo/src/Cli" -c Release -v q -nologo >/dev/null
atu() { dotnet "$repo/src/Cli/bin/Release/net10.0/atu.dll" "$@"; }
[ -d world ] || atu toy world --seed 1 --out world >/dev/null
# tiny-llama-gqa's shapes with 3 layers and the world tokenizer's vocabulary
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 3/; s/"vocab_size": 512/"vocab_size": 1408/; s/"max_position_embeddings": 256/"max_position_embeddings": 512/' \
  "$repo/models/tiny-llama-gqa.json" > cfg.json
[ -d art ] || { atu export --random cfg.json --out art --encoder minilm --device cpu >/dev/null; cp world/tokenizer/* art/; }
run() { atu run --artifacts art --rwku world --target 1 --preset toy --device cpu "$@"; }
run --out whole >/dev/null
dotnet "$repo/src/Cli/bin/Release/net10.0/atu.dll" run --artifacts art --rwku world --target 1 --preset toy --device cpu --out cut >/dev/null 2>&1 &
pid=$!   # the atu process itself, so that kill -9 stops it where it is
until grep -q "unlearn 3 step" cut/run.log 2>/dev/null; do sleep 0.5; done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "killed at: $(tail -1 cut/run.log)"
run --out cut --resume >/dev/null
grep "resumed from" cut/run.log
cmp whole/stages.json cut/stages.json
for d in final forget-below-50 forget-below-35 forget-below-20; do
  [ -d "whole/$d" ] || continue
  cmp "whole/$d/model.safetensors" "cut/$d/model.safetensors"; cmp "whole/$d/head.safetensors" "cut/$d/head.safetensors"
done
echo "identical: stage table, final model and every named checkpoint"
