#!/usr/bin/env bash
# The .NET tool package: `dotnet pack src/Cli` makes atu.VERSION.nupkg, installed here into a temporary tool path as
# a user would (`dotnet tool install --global --add-source DIR atu` does the same into ~/.dotnet/tools), then
# `atu --version` and `atu info` run from it (ONNX Runtime's native library found through the tool's runtimes/).
#   tools/tool-check.sh [OUTDIR]   (OUTDIR keeps the package; default: a temporary folder)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$(mkdir -p "${1:-$work/packages}" && cd "${1:-$work/packages}" && pwd)
dotnet pack "$root/src/Cli" -c Release -o "$out" >&2
# This package and no other: a package of the same name on a public feed must not be installed instead.
cat > "$work/nuget.config" <<XML
<configuration><packageSources><clear /><add key="local" value="$out" /></packageSources></configuration>
XML
dotnet tool install atu --tool-path "$work/tools" --configfile "$work/nuget.config" >&2
"$work/tools/atu" --version | grep -E '^atu [0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{40}\)$'
"$work/tools/atu" info --device cpu
echo "tool-check: $(cd "$out" && ls atu.*.nupkg) ($(du -m "$out"/atu.*.nupkg | cut -f1) MiB) installs and runs atu --version and atu info"
