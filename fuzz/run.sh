#!/usr/bin/env bash
# `make fuzz`: run each cargo-fuzz (libFuzzer) target for FUZZ_SECONDS (default 60) and
# print, per target, the executions, the time taken and whether a crash was found.
#
# Works on a stable toolchain: cargo fuzz needs unstable rustc flags (-Zsanitizer=address,
# sancov), which RUSTC_BOOTSTRAP=1 unlocks; on nightly the variable is harmless.
# Corpora grow in fuzz/corpus/<target> (git-ignored), seeded from fuzz/seeds/<target>;
# a crashing input is saved under fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-handshake frames}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed; installing it from crates.io (cargo install cargo-fuzz --locked)"
  if ! cargo install cargo-fuzz --locked; then
    echo "make fuzz: cannot install cargo-fuzz, so the fuzz targets cannot run here" >&2
    exit 1
  fi
fi
echo "$(cargo fuzz --version), $(rustc --version), RUSTC_BOOTSTRAP=1"

# Fuzzing-specific libFuzzer options per target: the handshake target re-parses every
# prefix (quadratic), so its inputs are kept shorter.
max_len() {
  case "$1" in
    handshake) echo 2048 ;;
    *) echo 8192 ;;
  esac
}

# Build once for all targets (release, debug assertions and overflow checks on, ASan).
if ! build_log=$(cargo fuzz build --debug-assertions 2>&1); then
  echo "$build_log" >&2
  echo "make fuzz: cargo fuzz build failed (see above): the targets cannot run" >&2
  exit 1
fi

status=0
summary=()
for target in $TARGETS; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  log="artifacts/$target/last-run.log"
  echo "== fuzzing $target for ${SECONDS_EACH}s (log: fuzz/$log)"
  started=$(date +%s)
  cargo fuzz run --debug-assertions "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$target")" -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - started))
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' | tail -1)
  [ -z "$runs" ] && runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  runs=${runs:-?}
  corpus=$(find "corpus/$target" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    line="$target: no crash; $runs executions in ${elapsed}s (corpus: $corpus inputs)"
  else
    status=1
    artifact=$(grep -o 'artifacts/[^ ]*' "$log" | grep -v last-run | tail -1)
    line="$target: CRASH (exit $rc) after $runs executions in ${elapsed}s; input: fuzz/${artifact:-artifacts/$target}"
    grep -m1 -A3 "panicked at" "$log" >&2 || tail -20 "$log" >&2
  fi
  echo "$line"
  summary+=("$line")
done
echo "== fuzz summary (${SECONDS_EACH}s per target)"
printf '  %s\n' "${summary[@]}"
exit $status
