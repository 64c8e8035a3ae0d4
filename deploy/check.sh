#!/usr/bin/env bash
# Checks the deploy kit with the tools it is meant for (CI runs this after `swift test`):
#   promtool check rules / test rules          deploy/prometheus
#   systemd-analyze verify, security --offline  deploy/systemd (exposure must be 2.0 or lower)
#   kubectl kustomize                            deploy/kubernetes (when kubectl is installed)
# Needs a built sluice binary (SLUICE=path, default .build/debug/sluice): systemd-analyze
# verify insists that ExecStart's binary exists.
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-$PWD/.build/debug/sluice}

promtool check rules deploy/prometheus/sluice-rules.yaml
(cd deploy/prometheus && promtool test rules sluice-rules.test.yaml)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/sluice|$SLUICE|g" deploy/systemd/sluice.service > "$tmp/sluice.service"
# verify exits 0 on unknown or invalid settings and only prints them: any output is a failure.
out=$(systemd-analyze verify "$tmp/sluice.service" 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "systemd-analyze verify:"; echo "$out"; exit 1; fi
echo "systemd-analyze verify: clean"
score=$(systemd-analyze security --offline=yes "$tmp/sluice.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || { echo "exposure above 2.0"; exit 1; }

if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize deploy/kubernetes > "$tmp/kustomized.yaml"
    echo "kubectl kustomize: $(grep -c '^kind:' "$tmp/kustomized.yaml") objects"
fi
echo "deploy checks: ok"
