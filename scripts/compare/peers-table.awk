# Markdown table of compare-peers.sh's runs.tsv: one row per cell × server with the
# median frames/s over its clean runs (no loss, status ok), their min–max, the ratio to
# the fastest peer's median in that cell (peers: every server but ringcast's uring and
# epoll), the median server CPU µs per delivered frame, the median server and generator
# CPU % of one core, the median idle RSS per connection, and clean/total runs; then the
# runs that were flagged (loss or failure). Usage: awk -f peers-table.awk runs.tsv
# Columns: subs size inflight server rep fps lost cpu_us_per_frame cpu_pct gen_cpu status load1
# idle_rss_kib_per_conn. Servers named uring*, epoll* are ringcast; the others are peers.
function num(v) { return v != "n/a" && v != "" }
function ringcast(n) { return n ~ /^(uring|epoll)/ }
function shown(n) { if (!ringcast(n)) return n; sub(/-sse$/, " (SSE subscribers)", n); return "ringcast " n }
function human(b) { return b >= 1024 ? (b / 1024) " KiB" : b " B" }
function median(key, arr, cnt,   i, j, t, a, m) {
  m = cnt[key]; if (m == 0) return "n/a"
  for (i = 1; i <= m; i++) a[i] = arr[key, i] + 0
  for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
BEGIN { FS = "\t"; cells = 0; ns = 0 }
NR == 1 { next }
{
  cell = $1 SUBSEP $2 SUBSEP $3
  if (!(cell in seen)) { seen[cell] = 1; order[++cells] = cell; subs[cell] = $1; size[cell] = $2; infl[cell] = $3 }
  if (!($4 in sidx)) { sidx[$4] = ++ns; sname[ns] = $4 }
  k = cell SUBSEP $4
  total[k]++
  if ($11 == "ok" && num($6)) {
    n = ++clean[k]; fps[k, n] = $6
    if (!(k in lo) || $6 + 0 < lo[k]) lo[k] = $6 + 0
    if (!(k in hi) || $6 + 0 > hi[k]) hi[k] = $6 + 0
    if (num($8)) { c = ++ncpu[k]; cpu[k, c] = $8 }
    if (num($9)) { c = ++npct[k]; pct[k, c] = $9 }
    if (num($10)) { c = ++ngen[k]; gen[k, c] = $10 }
    if (num($13)) { c = ++nrss[k]; rss[k, c] = $13 }
  } else {
    flagged[++nf] = sprintf("%s subscribers × %s × %s in flight, %s run %s: %s (frames/s %s)", $1, human($2), $3, $4, $5, $11, num($6) ? sprintf("%.0f", $6) : "n/a")
  }
}
END {
  print "| subscribers | size | in flight | server | frames/s (median) | min–max | ratio to fastest peer | server CPU µs/frame | server / generator CPU % | idle RSS KiB/conn | clean runs |"
  print "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for (i = 1; i <= cells; i++) {
    c = order[i]; best = 0
    for (s = 1; s <= ns; s++) {
      k = c SUBSEP sname[s]
      med[k] = median(k, fps, clean)
      if (!ringcast(sname[s]) && num(med[k]) && med[k] > best) best = med[k]
    }
    for (s = 1; s <= ns; s++) {
      k = c SUBSEP sname[s]
      if (!(k in total)) continue
      m = med[k]
      ratio = (num(m) && best > 0) ? sprintf("%.2f", m / best) : "n/a"
      if (ringcast(sname[s])) ratio = "**" ratio "**"
      cm = median(k, cpu, ncpu); sp = median(k, pct, npct); gp = median(k, gen, ngen); rm = median(k, rss, nrss)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %d/%d |\n", subs[c], human(size[c]), infl[c], \
        shown(sname[s]), \
        num(m) ? sprintf("%.0f", m) : "n/a", \
        (k in lo) ? sprintf("%.0f–%.0f", lo[k], hi[k]) : "n/a", ratio, \
        num(cm) ? sprintf("%.3f", cm) : "n/a", num(sp) ? sprintf("%.0f", sp) : "n/a", \
        num(gp) ? sprintf("%.0f", gp) : "n/a", num(rm) ? sprintf("%.2f", rm) : "n/a", clean[k] + 0, total[k]
    }
  }
  if (nf > 0) {
    print ""
    print "Flagged runs (not in the medians):"
    print ""
    for (i = 1; i <= nf; i++) print "* " flagged[i]
  }
}
