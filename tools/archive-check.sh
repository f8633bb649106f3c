#!/usr/bin/env bash
# The archive of tools/package.sh, unpacked in an empty folder and run with no .NET SDK on the PATH (env -i: only
# /usr/bin and /bin, a fresh HOME): --version, info, then the operator's path on a pre-trained toy world: one short
# Align-then-Unlearn run on one person, eval of its final weights, ship as f16 and as int4, eval of the int4 folder,
# and a short toy job (its own world and pre-training).
#   tools/archive-check.sh TOYDIR [ARCHIVE]
# TOYDIR: the folder of `atu toy --out TOYDIR` (its world/ and model/ are read, nothing is written there).
# ARCHIVE: an archive made before (default: tools/package.sh builds one into a temporary folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
toy=$(cd "${1:?usage: tools/archive-check.sh TOYDIR [ARCHIVE]}" && pwd)
for f in world model/manifest.json; do [ -e "$toy/$f" ] || { echo "archive-check: $toy/$f is missing (run atu toy --out $toy first)" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
archive=${2:-$("$root/tools/package.sh" "$work/dist")}
archive=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")
(cd "$(dirname "$archive")" && sha256sum -c "$(basename "$archive").sha256")
mkdir "$work/empty" && cd "$work/empty"
tar -xzf "$archive"
atu_dir=$(echo "$work"/empty/atu-*-linux-x64)
atu() { echo "+ atu $*" >&2; env -i PATH=/usr/bin:/bin HOME="$work/home" "$atu_dir/atu" "$@"; }
mkdir "$work/home"
atu --version | grep -E '^atu [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{40}\)$'
atu info --device cpu
# The toy preset with few steps: the path, not the result, is checked here (the toy job checks the figures).
sed -e 's/"steps": 300/"steps": 20/' -e 's/"unlearn_steps": 30, "realign_steps": 30/"unlearn_steps": 3, "realign_steps": 3/' \
    "$root/src/Unlearning/Presets/toy.json" > "$work/quick.json"
run="$work/runs/person-1"
atu run --artifacts "$toy/model" --rwku "$toy/world" --target 1 --preset "$work/quick.json" --device cpu --out "$run"
atu eval --artifacts "$toy/model" --weights "$run/final/model.safetensors" --rwku "$toy/world" --targets 1 --device cpu --out "$work/eval-final"
atu ship --artifacts "$toy/model" --weights "$run/final/model.safetensors" --out "$work/shipped-f16" --format onnx --dtype f16 --target "person 1"
atu ship --artifacts "$toy/model" --weights "$run/final/model.safetensors" --out "$work/shipped-int4" --format onnx --quantize int4 --target "person 1"
atu eval --artifacts "$work/shipped-int4" --rwku "$toy/world" --targets 1 --device cpu --out "$work/eval-int4"
# The toy job itself from the archive, short (30 pre-training steps, one person, two methods): CI's main job checks
# the figures, this that the archive alone runs it.
atu toy --seed 1 --people 1 --methods atu,ga --steps 30 --device cpu --out "$work/toy"
for f in "$work/toy/report/table.md" "$run/stages.md" "$run/final/model.safetensors" "$work/eval-final/results.md" "$work/shipped-f16/genai_config.json" \
         "$work/shipped-int4/model.onnx" "$work/eval-int4/results.md"; do
  [ -s "$f" ] || { echo "archive-check: $f was not written" >&2; exit 1; }
done
echo "archive-check: $(basename "$archive") ($(du -m "$archive" | cut -f1) MiB) ran --version, info, run, eval, ship f16 and int4, eval of int4 and a short toy job with no SDK on the PATH"
