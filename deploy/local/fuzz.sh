#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 30), from the committed
# seeds (fuzz/seeds/<target>) in a throwaway corpus. A crash stops the script with its input saved
# under fuzz/artifacts/<target>/. Uses the nightly toolchain when rustup has one, else stable with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes unstable compiler flags); installs cargo-fuzz when missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

seconds="${FUZZ_SECONDS:-30}"
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install --locked cargo-fuzz >&2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
# Its own build folder: the fuzz build uses other compiler flags than the services'.
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/rsvp/target-fuzz}"
cd "$RSVP_ROOT/fuzz"
# The safe Rust under test has no memory errors for AddressSanitizer to find; panics and the
# targets' assertions are the oracle, and overflow checks are on (-a).
opts=(--sanitizer none --debug-assertions --target-dir "$target_dir")
log "building the fuzz targets"
env -u CARGO_TARGET_DIR "${fuzz[@]}" build "${opts[@]}" >&2
for target in $(env -u CARGO_TARGET_DIR "${fuzz[@]}" list); do
  corpus="$(mktemp -d)"
  log "fuzzing $target for ${seconds} s"
  env -u CARGO_TARGET_DIR "${fuzz[@]}" run "${opts[@]}" "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>"$corpus.log" \
    || { tail -n 60 "$corpus.log" >&2; die "fuzz target $target failed (input saved under fuzz/artifacts/$target/)"; }
  grep -E '^stat::number_of_executed_units|^Done' "$corpus.log" | sed "s/^/[$target] /" >&2 || true
  rm -rf "$corpus" "$corpus.log"
done
log "fuzzing: no crash"
