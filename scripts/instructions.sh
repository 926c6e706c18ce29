#!/usr/bin/env bash
# Instructions per request through an axum router, counted by callgrind: no layer (`open`), a
# pass-through layer (`noop`: axum's own cost of any layer), the layer with a cached token
# (`reused`), the layer with a new token each time (`fresh`).
#
#   scripts/instructions.sh            # N=1000 (2N requests in the second run)
#   N=200 scripts/instructions.sh      # quicker
#
# Each route runs twice, with N and 2N requests, in one process each; callgrind counts only
# inside `measured` (benches/instructions.rs), so setup is left out, and
# (I(2N) - I(N)) / N also cancels what `measured` pays once per run. The count is of
# instructions, not time: it does not depend on the machine's load. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
# Extra cargo flags (for example CARGO_FLAGS=--all-features); default: a resource server's
# build (default features).
CARGO_FLAGS=${CARGO_FLAGS:-}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

# shellcheck disable=SC2086
bin=$(cargo bench --bench instructions --no-run $CARGO_FLAGS --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*instructions[^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not build benches/instructions.rs" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions (Ir) callgrind counted inside `measured` for one run.
count() {
  local route=$1 n=$2 file="$out/callgrind.$1.$2"
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='instructions::measured' \
    --callgrind-out-file="$file" "$bin" "$route" "$n" >"$out/log.$route.$n" 2>&1 ||
    { cat "$out/log.$route.$n" >&2; exit 1; }
  local total
  total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file")
  [ -n "$total" ] && [ "$total" -gt 0 ] || { echo "no instructions counted for $route" >&2; exit 1; }
  echo "$total"
}

declare -A per
printf '%-8s %15s %15s %14s\n' route "I(N=$N)" "I(2N=$((2 * N)))" "per request"
for route in open noop reused fresh; do
  one=$(count "$route" "$N")
  two=$(count "$route" $((2 * N)))
  per[$route]=$(( (two - one) / N ))
  printf '%-8s %15d %15d %14d\n' "$route" "$one" "$two" "${per[$route]}"
done
echo
echo "layer's share, reused token (reused - open): $(( per[reused] - per[open] )) instructions per request"
echo "  of which axum's cost of any layer (noop - open): $(( per[noop] - per[open] ))"
echo "  the layer's own work (reused - noop): $(( per[reused] - per[noop] ))"
echo "layer's share, fresh token (fresh - open): $(( per[fresh] - per[open] )) instructions per request"
