#!/usr/bin/env bash
# Writes docs/cli.md from the program's own help (`atu cli-docs`: one heading per verb, its options as --help shows
# them). Run it after changing a verb or an option; CliDocsTests fails while docs/cli.md is stale.
#   tools/gen-cli-docs.sh [ATU]   (ATU: an atu program to ask; default: this checkout built with dotnet run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -gt 0 ]; then "$1" cli-docs > "$root/docs/cli.md.tmp"
else dotnet run -c Release --project "$root/src/Cli" -- cli-docs > "$root/docs/cli.md.tmp"; fi
mv "$root/docs/cli.md.tmp" "$root/docs/cli.md"
echo "wrote $root/docs/cli.md"
