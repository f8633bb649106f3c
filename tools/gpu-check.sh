#!/usr/bin/env bash
# The acceptance run for the first lent GPU (issue 23), and how atu gets to a machine that has no .NET.
#
# The device machine has an NVIDIA GPU, CUDA 13, cuDNN 9 and PyTorch, but no .NET; one `run` call carries at most
# 64 MiB of ignored files, and ONNX Runtime's CUDA provider alone is 284 MB. So atu travels as a bundle made here,
# compressed (tar | xz -1: -6 gains little on these binaries and is several times slower) and split into parts, one
# part per call to the same warm machine (it keeps ignored files between calls).
# The bundle (.gpu-pack/bundle/ once unpacked there):
#   dotnet/  the .NET runtime of this machine's SDK (dotnet host, hostfxr, Microsoft.NETCore.App): what a
#            self-contained publish embeds, once for atu, vstest and the test host (the linux-x64 runtime pack that
#            `dotnet publish --self-contained` needs is not in the offline package cache);
#   app/     the test project's Release output, which holds atu.dll with its runtimeconfig and deps files too;
#            runtimes/ trimmed to linux-x64, no TensorRT provider, no satellite resources;
#   vstest/  vstest.console from the SDK, which runs the xunit tests without an SDK;
#   icu/     libicu 72 (.NET's globalisation), put on LD_LIBRARY_PATH only where the machine has no libicu.
#
# Step by step:
#   1. here:     bash tools/gpu-check.sh pack          (SKIP_BUILD=1: use the Release output as it is)
#                builds Release, writes .gpu-pack/parts/atu-bundle.tar.xz.00, .01, ... (each <= PART_MIB, default 60 MiB)
#                and .gpu-pack/parts/SHA256SUMS (each part and the whole), and prints the calls of steps 2 and 3.
#   2. call k (k = 0 .. N-2), on the same warm machine:
#                run(command="bash tools/gpu-check.sh receive",
#                    carry=[".gpu-pack/parts/SHA256SUMS", ".gpu-pack/parts/atu-bundle.tar.xz.<k>"])
#                each call carries one part; `receive` checks the SHA-256 of every part present and lists those missing.
#   3. last call, with the last part:
#                run(command="bash tools/gpu-check.sh run", timeout_s=600,
#                    carry=[".gpu-pack/parts/SHA256SUMS", ".gpu-pack/parts/atu-bundle.tar.xz.<N-1>"])
#                `run` checks every part, joins them, checks the whole SHA-256, unpacks and runs the check below.
#   If the machine went back between calls (a fresh one has no parts), `receive` says which parts are missing.
#
# The check (`run`; each part prints its wall time):
#   a. atu info --device cuda: versions, the session settings (deterministic compute, TF32 off, arena), a CUDA
#      session opened with them;
#   b. the placement report, if this build has one (tests named *Placement*, on the device);
#   c. the gradient, runtime and method tests on the device (ATU_TEST_DEVICE=cuda; the bit-identical resume tests
#      stay on the CPU, as they must);
#   d. a Phi-3-mini-shaped random model (models/phi3-mini-8-layers.json with all 32 layers, random weights by
#      `atu export --random`, the toy world's tokenizer and RWKU-style files, the MiniLM encoder) running the paper
#      preset's alignment and unlearning (its head, optimizers, batch 16 x 256) for --steps steps each at --layer 29:
#      steps/s and peak device memory (nvidia-smi) printed next to the memory plan's prediction (`atu plan`, when
#      this build has that verb; else "no plan").
#
# Options of `run`: --device cuda|cpu (cpu: a dry run of the same steps), --config FILE (default: Phi-3-mini, 32
# layers), --layer N (29), --steps N (3), --dtype f16|f32 (the artifact's, f16 by default: 7.6 GB instead of 15 GB
# on the machine's 64 GiB disk, which also holds the run's checkpoints), --tests FILTER (a vstest filter replacing
# c.), --skip-tests, --skip-model. If c. and d. do not fit one 10-minute call together, run them in two calls on the
# warm machine (`run --skip-model`, then `run --skip-tests`): the unpacked bundle and the world stay there.
# A dry run on a machine with .NET:  bash tools/gpu-check.sh pack && bash tools/gpu-check.sh run --device cpu \
#   --config models/tiny-phi3.json --layer 1 --steps 2 --tests "FullyQualifiedName~RowScatterAddTests"
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PACK=$REPO/.gpu-pack
PARTS=$PACK/parts
SUMS=$PARTS/SHA256SUMS
NAME=atu-bundle.tar.xz
BUNDLE=$PACK/bundle
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

timed() {
    local start=$SECONDS
    "$@"
    echo "== $((SECONDS - start)) s: $*"
}

# ---------------------------------------------------------------- pack (here, with .NET)
pack() {
    local part_mib=${PART_MIB:-60}
    local sdk runtime_version fxr_version
    sdk=$(dirname "$(readlink -f "$(command -v dotnet)")")
    runtime_version=$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2 } END { print v }')
    fxr_version=$(ls "$sdk/host/fxr" | sort -V | tail -1)
    [[ ${SKIP_BUILD:-0} == 1 ]] || timed dotnet build tests/AlignThenUnlearn.Tests -c Release
    local stage=$PACK/stage
    rm -rf "$stage" "$PARTS" && mkdir -p "$stage/dotnet/host/fxr" "$stage/dotnet/shared/Microsoft.NETCore.App" "$stage/vstest" "$stage/icu" "$PARTS"

    cp "$sdk/dotnet" "$stage/dotnet/"
    cp -r "$sdk/host/fxr/$fxr_version" "$stage/dotnet/host/fxr/"
    cp -r "$sdk/shared/Microsoft.NETCore.App/$runtime_version" "$stage/dotnet/shared/Microsoft.NETCore.App/"

    cp -r tests/AlignThenUnlearn.Tests/bin/Release/net10.0 "$stage/app"
    find "$stage/app/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
    rm -f "$stage/app/runtimes/linux-x64/native/libonnxruntime_providers_tensorrt.so"
    find "$stage/app" -mindepth 1 -maxdepth 1 -type d -regex '.*/[a-z][a-z]\(-[A-Za-z]+\)?' -exec rm -rf {} +   # cs, de, ..., zh-Hant

    local vstest_sdk
    vstest_sdk=$(dirname "$(find "$sdk/sdk" -maxdepth 2 -name vstest.console.dll | sort -V | tail -1)")
    # vstest.console's deps file names only the test platform; it also loads these three from the SDK's folder.
    cp "$vstest_sdk"/vstest.console.* "$vstest_sdk"/Microsoft.TestPlatform.*.dll "$vstest_sdk"/Microsoft.VisualStudio.TestPlatform.*.dll \
        "$vstest_sdk"/Newtonsoft.Json.dll "$vstest_sdk"/Microsoft.Extensions.FileSystemGlobbing.dll "$vstest_sdk"/Microsoft.Extensions.DependencyModel.dll \
        "$stage/vstest/"
    mkdir -p "$stage/vstest/Extensions" && cp "$vstest_sdk"/Extensions/*.dll "$stage/vstest/Extensions/"

    local icu
    for icu in $(ldconfig -p | awk '/libicu(uc|i18n|data)\.so\.[0-9]+ / { print $NF }'); do cp -L "$icu" "$stage/icu/"; done

    echo "bundle: $(du -sh "$stage" | cut -f1) before compression"
    rm -f "$PACK/$NAME"
    timed bash -c "tar -C '$stage' -cf - dotnet app vstest icu | xz -T0 -1 > '$PACK/$NAME'"
    split -b "${part_mib}M" -d -a 2 "$PACK/$NAME" "$PARTS/$NAME."
    (cd "$PARTS" && sha256sum "$NAME".?? > SHA256SUMS && (cd .. && sha256sum "$NAME") | sed 's|  .*/|  |' >> SHA256SUMS)
    rm -rf "$stage" "$PACK/$NAME"

    local parts=("$PARTS/$NAME".??) n last
    n=${#parts[@]}; last=$(printf '%02d' $((n - 1)))
    ls -l "$PARTS"
    echo
    echo "$n parts. On the device machine, one call per part to the same warm machine:"
    for ((k = 0; k < n - 1; k++)); do
        printf '  run(command="bash tools/gpu-check.sh receive", carry=[".gpu-pack/parts/SHA256SUMS", ".gpu-pack/parts/%s.%02d"])\n' "$NAME" "$k"
    done
    printf '  run(command="bash tools/gpu-check.sh run", timeout_s=600, carry=[".gpu-pack/parts/SHA256SUMS", ".gpu-pack/parts/%s.%s"])\n' "$NAME" "$last"
}

# ---------------------------------------------------------------- receive (there: after each call)
# Checks the parts that have arrived; returns 1 when one is corrupt, prints the missing ones.
receive() {
    [[ -f $SUMS ]] || { echo "no $SUMS: carry it with every call (see the header of $0)"; return 1; }
    local have=0 total=0 missing=() sum file
    while read -r sum file; do
        [[ $file == "$NAME" ]] && continue
        total=$((total + 1))
        if [[ ! -f $PARTS/$file ]]; then missing+=("$file"); continue; fi
        if [[ $(sha256sum "$PARTS/$file" | cut -d' ' -f1) != "$sum" ]]; then echo "$file: SHA-256 differs from SHA256SUMS (corrupt transfer: carry it again)"; return 1; fi
        have=$((have + 1))
    done < "$SUMS"
    echo "parts: $have of $total present and verified${missing[*]:+; missing: ${missing[*]}}"
    [[ ${#missing[@]} -eq 0 ]]
}

# Joins the parts, checks the whole file's SHA-256 and unpacks into $BUNDLE (once per bundle).
unpack() {
    receive || { echo "cannot unpack: parts missing or corrupt"; return 1; }
    local whole
    whole=$(awk -v n="$NAME" '$2 == n { print $1 }' "$SUMS")
    if [[ -f $BUNDLE/.sha256 && $(cat "$BUNDLE/.sha256") == "$whole" ]]; then echo "bundle $whole already unpacked"; return 0; fi
    local joined
    joined=$(cat "$PARTS/$NAME".?? | sha256sum | cut -d' ' -f1)
    [[ $joined == "$whole" ]] || { echo "joined parts: SHA-256 $joined, SHA256SUMS says $whole"; return 1; }
    rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
    cat "$PARTS/$NAME".?? | xz -d | tar -C "$BUNDLE" -xf -
    echo "$whole" > "$BUNDLE/.sha256"
    echo "bundle $whole unpacked: $(du -sh "$BUNDLE" | cut -f1)"
}

# ---------------------------------------------------------------- run (there)
atu() { "$BUNDLE/dotnet/dotnet" "$BUNDLE/app/atu.dll" "$@"; }

# Runs "$@" while sampling memory; PEAK[label] is the peak in MiB: the GPU's used memory above what was used before
# (nvidia-smi) on CUDA, the process's peak resident set (VmHWM) on the CPU.
with_peak_memory() {
    local label=$1 samples=$PACK/work/memory-$1.txt rc=0; shift
    : > "$samples"
    if [[ $DEVICE == cuda ]] && command -v nvidia-smi > /dev/null; then
        local base sampler
        base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$samples" &
        sampler=$!
        "$@" || rc=$?
        kill "$sampler" 2> /dev/null; wait "$sampler" 2> /dev/null || true
        PEAK[$label]=$(awk -v b="$base" 'BEGIN { m = 0 } { if ($1 - b > m) m = $1 - b } END { print m }' "$samples")
        PEAK_KIND="GPU memory in use above the idle level (nvidia-smi, every 200 ms)"
        return $rc
    fi
    "$@" & local child=$!   # an external command: the background child is the process itself
    while kill -0 "$child" 2> /dev/null; do
        awk '/^VmHWM/ { print int($2 / 1024) }' /proc/"$child"/status >> "$samples" 2> /dev/null || true
        sleep 0.5
    done
    wait "$child" || rc=$?
    PEAK[$label]=$(sort -n "$samples" | tail -1)
    PEAK_KIND="peak resident memory of the process (VmHWM, sampled every 0.5 s)"
    return $rc
}

# Steps per second of a phase from run.log's lines "<time> <phase>: N steps ..." (start) and "<time> <phase>: N steps,
# mean loss ..." (end): whole seconds, the first step's session setup included.
steps_per_second() {
    local log=$1 phase=$2 first last steps seconds
    first=$(grep -m1 -E "^[^ ]+ $phase: [0-9]+ steps( |\$)" "$log" || true)
    last=$(grep -m1 -E "^[^ ]+ $phase: [0-9]+ steps, mean loss" "$log" || true)
    [[ -n $first && -n $last ]] || { echo "phase '$phase' not found in $log"; return 0; }
    steps=$(sed -E "s/^[^ ]+ $phase: ([0-9]+) steps.*/\1/" <<< "$first")
    seconds=$(( $(date -d "${last%% *}" +%s) - $(date -d "${first%% *}" +%s) ))
    awk -v n="$steps" -v s="$seconds" 'BEGIN { printf "%d steps in %d s (run.log): %.3g steps/s", n, s, n / (s > 0 ? s : 1) }'
}

run_check() {
    DEVICE=cuda; FAILED=(); local config="" layer=29 steps=3 tests="" skip_tests=0 skip_model=0 dtype=f16
    while [[ $# -gt 0 ]]; do
        case $1 in
            --device) DEVICE=$2; shift 2 ;;
            --config) config=$2; shift 2 ;;
            --layer) layer=$2; shift 2 ;;
            --steps) steps=$2; shift 2 ;;
            --dtype) dtype=$2; shift 2 ;;
            --tests) tests=$2; shift 2 ;;
            --skip-tests) skip_tests=1; shift ;;
            --skip-model) skip_model=1; shift ;;
            *) echo "unknown option $1 (see the header of $0)"; return 2 ;;
        esac
    done
    timed unpack
    export DOTNET_ROOT=$BUNDLE/dotnet DOTNET_HOST_PATH=$BUNDLE/dotnet/dotnet PATH=$BUNDLE/dotnet:$PATH
    if ! ldconfig -p 2> /dev/null | grep -q 'libicuuc\.so'; then export LD_LIBRARY_PATH=$BUNDLE/icu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; echo "no libicu here: using the bundle's"; fi
    mkdir -p "$PACK/work"
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

    echo "== a. atu info --device $DEVICE"
    timed atu info --device "$DEVICE"

    local vstest=("$BUNDLE/dotnet/dotnet" "$BUNDLE/vstest/vstest.console.dll" "$BUNDLE/app/AlignThenUnlearn.Tests.dll")
    if [[ $skip_tests == 0 ]]; then
        echo "== b. placement report on $DEVICE"
        local placement=$PACK/work/placement.log
        ATU_TEST_DEVICE=$DEVICE timed "${vstest[@]}" --TestCaseFilter:"FullyQualifiedName~Placement" --logger:"console;verbosity=normal" > "$placement" 2>&1 || true
        if grep -q "No test matches the given testcase filter" "$placement"; then echo "no placement report in this build (no tests named *Placement*)"; else cat "$placement"; fi
        echo "== c. tests on $DEVICE"
        ATU_TEST_DEVICE=$DEVICE timed "${vstest[@]}" \
            --TestCaseFilter:"${tests:-FullyQualifiedName~AlignThenUnlearn.Tests.Autodiff|FullyQualifiedName~AlignThenUnlearn.Tests.Runtime|FullyQualifiedName~AlignThenUnlearn.Tests.Unlearning}" \
            || FAILED+=("c. tests on $DEVICE")   # d. still runs: its numbers are wanted either way
    fi
    [[ $skip_model == 1 ]] && { report_failures; return; }

    echo "== d. the paper preset on a random model, layer $layer, $steps steps per phase"
    local work=$PACK/work model=$PACK/work/model world=$PACK/work/world preset=$PACK/work/preset.json run=$PACK/work/run
    if [[ -z $config ]]; then
        config=$work/phi3-mini.json
        sed 's/"num_hidden_layers": 8,/"num_hidden_layers": 32,/' models/phi3-mini-8-layers.json > "$config"
        grep -q '"num_hidden_layers": 32,' "$config" || { echo "models/phi3-mini-8-layers.json: num_hidden_layers 8 not found"; return 1; }
    fi
    [[ -d $world ]] || timed atu toy world --out "$world" --seed 1
    timed atu export --random "$config" --out "$model" --seed 1 --dtype "$dtype" --force
    cp "$world"/tokenizer/* "$model"/          # files beside the manifest's are not hashed; the toy ids lie inside any vocabulary here
    timed atu export --encoder minilm --out "$model" --device "$DEVICE"
    # The paper preset with `steps` steps of alignment and one stage of `steps` unlearning steps, on the toy world's files.
    awk -v steps="$steps" '
        /"tau":/ { if (!seen) { seen = 1; sub(/"unlearn_steps": [0-9]+/, "\"unlearn_steps\": " steps); sub(/"realign_steps": [0-9]+/, "\"realign_steps\": 0"); sub(/\},[ \t]*$/, "}"); print } next }
        /"alignment":/ { sub(/"steps": [0-9]+/, "\"steps\": " steps) }
        { sub(/"name": "paper"/, "\"name\": \"paper-gpu-check\""); sub(/"forget_corpus": "positive_phi.json"/, "\"forget_corpus\": \"passage.json\""); print }' \
        src/Unlearning/Presets/paper.json > "$preset"

    local plan=$work/plan.json prediction="no plan (this build has no \`atu plan\`)"
    if atu --help 2>&1 | grep -qE '^ *plan '; then
        if timed atu plan --artifacts "$model" --preset "$preset" --layer "$layer" --json "$plan"; then prediction="see $plan:"; else prediction="atu plan failed"; fi
    fi

    declare -gA PEAK=()
    rm -rf "$run"
    local common=(--artifacts "$model" --rwku "$world" --target 1 --preset "$preset" --layer "$layer" --out "$run" --cache "$work/window-cache" --device "$DEVICE")
    local atu_exe=("$BUNDLE/dotnet/dotnet" "$BUNDLE/app/atu.dll")
    timed with_peak_memory align "${atu_exe[@]}" align "${common[@]}"
    timed with_peak_memory unlearn "${atu_exe[@]}" unlearn "${common[@]}" --no-eval

    echo
    echo "== summary: $config ($(grep -o '"num_hidden_layers": [0-9]*' "$config")), layer $layer, device $DEVICE"
    echo "alignment:  $(steps_per_second "$run/run.log" align), peak ${PEAK[align]} MiB"
    echo "unlearning: $(steps_per_second "$run/run.log" "unlearn 1"), peak ${PEAK[unlearn]} MiB"
    echo "memory measured as: $PEAK_KIND"
    echo "memory plan: $prediction"
    [[ -f $plan ]] && cat "$plan"
    report_failures
}

report_failures() {
    [[ ${#FAILED[@]} -eq 0 ]] && { echo "gpu-check: every part passed"; return 0; }
    echo "gpu-check: FAILED: ${FAILED[*]}"
    return 1
}

case ${1:-} in
    pack) pack ;;
    receive) receive ;;
    run) shift; run_check "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
