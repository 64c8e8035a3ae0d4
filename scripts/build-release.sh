#!/usr/bin/env bash
# Builds the release binary Sluice ships: the Swift runtime linked in (--static-swift-stdlib),
# so it runs on a machine without a Swift toolchain; it needs only glibc, libstdc++ and libgcc_s
# (Debian/Ubuntu have them; on debian:bookworm-slim install libstdc++6). There is no musl
# Swift SDK here, so the C libraries stay dynamic.
#
#   scripts/build-release.sh            -> dist/sluice (stripped) and dist/sluice-<version>-linux-<arch>.tar.gz
#   OUT=/usr/local/bin scripts/build-release.sh   (install straight away)
#   SCRATCH=.build-release scripts/build-release.sh (a separate build folder)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-dist}
flags=(-c release --static-swift-stdlib --product sluice)
if [ -n "${SCRATCH:-}" ]; then flags+=(--scratch-path "$SCRATCH"); fi
swift build "${flags[@]}"
BIN=$(swift build "${flags[@]}" --show-bin-path)/sluice
mkdir -p "$OUT"
install -m 0755 "$BIN" "$OUT/sluice"
strip "$OUT/sluice" 2>/dev/null || true
version=$("$OUT/sluice" --version)
echo "built $OUT/sluice $version ($(du -h "$OUT/sluice" | cut -f1)), shared libraries:"
ldd "$OUT/sluice" | sed 's/^/  /'
if ldd "$OUT/sluice" | grep -q -i swift; then
    echo "error: the binary still links a Swift runtime library" >&2
    exit 1
fi
if [ "$OUT" = dist ]; then
    tar -C dist -czf "dist/sluice-$version-linux-$(uname -m).tar.gz" sluice
    echo "archive: dist/sluice-$version-linux-$(uname -m).tar.gz"
fi
