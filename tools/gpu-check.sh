#!/usr/bin/env bash
# GPU check in one command, on a machine with an NVIDIA GPU, CUDA 13 and cuDNN 9:
#   bash tools/gpu-check.sh
# 1. `atu info --device cuda` (fails naming the missing library when the CUDA provider cannot load);
# 2. the gradient, runtime and loss tests on CUDA (ATU_TEST_DEVICE=cuda: GradCheck and the tests that use
#    TestDevice run there; the bit-identical resume tests stay on the CPU, as they must);
# 3. training steps of the tiny and the small model on CUDA (tools/Benchmarks train).
# Each part prints its wall time; the script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

timed() {
    local start=$SECONDS
    "$@"
    echo "== $((SECONDS - start)) s: $*"
}

timed dotnet build AlignThenUnlearn.sln -c Release
timed dotnet run -c Release --no-build --project src/Cli -- info --device cuda
timed env ATU_TEST_DEVICE=cuda dotnet test tests/AlignThenUnlearn.Tests -c Release --no-build \
    --filter "FullyQualifiedName~AlignThenUnlearn.Tests.Autodiff|FullyQualifiedName~AlignThenUnlearn.Tests.Runtime|FullyQualifiedName~AlignThenUnlearn.Tests.Unlearning"
timed dotnet run -c Release --no-build --project tools/Benchmarks -- train --device cuda --steps 10
