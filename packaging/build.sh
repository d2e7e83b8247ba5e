#!/usr/bin/env bash
# Builds the .deb and the .rpm into target/packaging/:
#   packaging/build.sh                 # release build (fat LTO, ~8 min)
#   PROFILE=ci packaging/build.sh      # CI's faster profile (what .ci/run packages)
# Needs cargo-deb and cargo-generate-rpm (cargo install cargo-deb cargo-generate-rpm).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
cargo build --profile "$profile" --bin balancerd
bin=target/$profile/balancerd
mkdir -p target/packaging
"$bin" man | gzip -9n > target/packaging/balancerd.1.gz
"$bin" completions bash > target/packaging/balancerd.bash
# Both tools read the `target/release/` assets from the chosen profile's folder.
cargo deb --no-build --profile "$profile" -o target/packaging/
cargo generate-rpm --profile "$profile" -o target/packaging/
ls -l target/packaging/*.deb target/packaging/*.rpm
