# Shared by the bench scripts (sourced).

# best CMD...: the best of $RUNS wall times of CMD, in seconds; what CMD prints is dropped.
best() {
  local b="" t0 t1 t
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"${TMPDIR:-/tmp}/best.err" || { echo "failed: $*" >&2; tail -5 "${TMPDIR:-/tmp}/best.err" >&2; return 1; }
    t1=$(date +%s.%N)
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    b=$(awk -v b="$b" -v t="$t" 'BEGIN { print (b == "" || t < b) ? t : b }')
  done
  echo "$b"
}

# record NAME SECTION: puts SECTION (which starts with "## NAME") in bench/RESULTS.md in place
# of the section of that name (up to the next "## " heading), keeping every other section.
record() {
  local f=bench/RESULTS.md
  touch "$f"
  awk -v name="## $1" -v sec="$2" '
    /^## / { if (skip) skip = 0; if ($0 == name) { skip = 1; print sec; done = 1; next } }
    !skip { print }
    END { if (!done) { print ""; print sec } }' "$f" > "$f.tmp" && mv "$f.tmp" "$f"
}
