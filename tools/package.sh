#!/usr/bin/env bash
# Builds the self-contained Linux x64 `atu` (the .NET runtime, ONNX Runtime's CPU and CUDA providers, the bundled
# all-MiniLM-L6-v2 encoder) into one archive with its SHA-256 beside it:
#   tools/package.sh [OUTDIR]   ->  OUTDIR/atu-VERSION-linux-x64.tar.gz and .tar.gz.sha256 (OUTDIR: artifacts/)
# Unpack it anywhere and run ./atu-VERSION-linux-x64/atu; no .NET SDK is needed. A plain folder, neither single-file
# nor trimmed: ONNX Runtime loads its providers as files beside it, and CommandLineParser reads the verbs by reflection.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/artifacts}" && cd "${1:-$root/artifacts}" && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Its own intermediate folders (--artifacts-path), so that the RID-specific restore leaves the ordinary build's obj/ alone.
dotnet publish "$root/src/Cli" -c Release -r linux-x64 --self-contained true -p:SourceRevisionId="$commit" \
  --artifacts-path "$stage/build" -o "$stage/publish" >&2
version=$("$stage/publish/atu" --version | awk 'NR == 1 { print $2 }')
name="atu-$version-linux-x64"
mv "$stage/publish" "$stage/$name"
# Nothing for another platform may travel (the csproj drops them; this catches a package that adds new ones).
stray=$(cd "$stage/$name" && find . \( -name '*.dll' -a -name 'onnxruntime*' \) -o -path './runtimes/*' -o -name '*.dylib' | head -5)
[ -z "$stray" ] || { echo "package.sh: other platforms' native files in the build: $stray" >&2; exit 1; }
archive="$out/$name.tar.gz"
tar -C "$stage" --owner=0 --group=0 --sort=name -cf - "$name" | gzip -6 > "$archive.tmp"
mv "$archive.tmp" "$archive"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "$archive"
