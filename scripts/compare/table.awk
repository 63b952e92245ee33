# Markdown table of one matrix from the per-run TSV written by compare-backends.sh
# (one row per backend per cell). Usage: awk -v matrix=NAME -f table.awk runs.tsv
# Columns of the TSV: matrix subs size inflight backend fps p50 p99 lost cpu
# syscalls_per_frame sqes_per_frame gen_cpu status.
function num(v) { return v != "n/a" && v != "" }
function f0(v) { return num(v) ? sprintf("%.0f", v) : "n/a" }
function f1(v) { return num(v) ? sprintf("%.1f", v) : "n/a" }
function f3(v) { return num(v) ? sprintf("%.3f", v) : "n/a" }
function human(b) { return b >= 1024 ? (b / 1024) " KiB" : b " B" }
BEGIN { FS = "\t"; cells = 0 }
$1 == matrix {
  cell = $2 SUBSEP $3 SUBSEP $4
  if (!(cell in seen)) { seen[cell] = 1; order[++cells] = cell; subs[cell] = $2; size[cell] = $3; infl[cell] = $4 }
  b = $5
  fps[cell, b] = $6; p50[cell, b] = $7; p99[cell, b] = $8; lost[cell, b] = $9
  cpu[cell, b] = $10; sys[cell, b] = $11; sqe[cell, b] = $12; gen[cell, b] = $13; st[cell, b] = $14
}
END {
  print "| subscribers | size | in flight | uring frames/s | epoll frames/s | uring/epoll | uring p50 / p99 µs | epoll p50 / p99 µs | server CPU % uring / epoll | uring SQEs per frame (syscalls) | epoll syscalls per frame | lost uring / epoll | generator CPU % uring / epoll |"
  print "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for (i = 1; i <= cells; i++) {
    c = order[i]
    u = fps[c, "uring"]; e = fps[c, "epoll"]
    ratio = (num(u) && num(e) && e > 0) ? sprintf("**%.2f**", u / e) : "n/a"
    note = ""
    if (st[c, "uring"] != "ok" && st[c, "uring"] != "") note = note " uring: " st[c, "uring"] ";"
    if (st[c, "epoll"] != "ok" && st[c, "epoll"] != "") note = note " epoll: " st[c, "epoll"] ";"
    printf "| %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s | %s (%s) | %s | %s / %s%s | %s / %s |\n", \
      subs[c], human(size[c]), infl[c], f0(u), f0(e), ratio, \
      f1(p50[c, "uring"]), f1(p99[c, "uring"]), f1(p50[c, "epoll"]), f1(p99[c, "epoll"]), \
      f0(cpu[c, "uring"]), f0(cpu[c, "epoll"]), f3(sqe[c, "uring"]), f3(sys[c, "uring"]), \
      f3(sys[c, "epoll"]), lost[c, "uring"], lost[c, "epoll"], (note == "" ? "" : " ⚠" note), \
      f0(gen[c, "uring"]), f0(gen[c, "epoll"])
  }
}
