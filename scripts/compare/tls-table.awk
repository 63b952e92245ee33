# Markdown table of the TLS section (matrix "t1-tls") from the per-run TSV written by
# compare-backends.sh: one row per backend with the same cell over ws:// and wss://, and
# the encryption cost per delivered frame = server CPU µs per frame over wss − over ws
# (server CPU % of one core from perf task-clock; µs per frame = CPU % × 10^4 / frames/s).
# Usage: awk -f tls-table.awk runs.tsv
# Columns of the TSV: matrix subs size inflight backend fps p50 p99 lost cpu
# syscalls_per_frame sqes_per_frame gen_cpu status duration transport.
function num(v) { return v != "n/a" && v != "" }
function f0(v) { return num(v) ? sprintf("%.0f", v) : "n/a" }
function f1(v) { return num(v) ? sprintf("%.1f", v) : "n/a" }
function f2(v) { return num(v) ? sprintf("%.2f", v) : "n/a" }
function us_per_frame(cpu, fps) { return (num(cpu) && num(fps) && fps > 0) ? cpu * 1e4 / fps : "n/a" }
BEGIN { FS = "\t"; nb = 0 }
$1 == "t1-tls" {
  b = $5; t = $16
  if (!(b in seen)) { seen[b] = 1; order[++nb] = b }
  fps[b, t] = $6; p50[b, t] = $7; p99[b, t] = $8; lost[b, t] = $9; cpu[b, t] = $10
  gen[b, t] = $13; st[b, t] = $14
}
END {
  print "| backend | ws frames/s | wss frames/s | wss/ws | server CPU % ws / wss | server CPU µs per frame ws / wss | **encryption cost µs per frame** (wss − ws) | p50 / p99 µs ws | p50 / p99 µs wss | lost ws / wss | generator CPU % ws / wss |"
  print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for (i = 1; i <= nb; i++) {
    b = order[i]
    w = fps[b, "ws"]; s = fps[b, "wss"]
    ratio = (num(w) && num(s) && w > 0) ? sprintf("%.2f", s / w) : "n/a"
    uw = us_per_frame(cpu[b, "ws"], w); us = us_per_frame(cpu[b, "wss"], s)
    cost = (num(uw) && num(us)) ? sprintf("**%.2f**", us - uw) : "n/a"
    note = ""
    if (st[b, "ws"] != "ok" && st[b, "ws"] != "") note = note " ws: " st[b, "ws"] ";"
    if (st[b, "wss"] != "ok" && st[b, "wss"] != "") note = note " wss: " st[b, "wss"] ";"
    printf "| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s / %s%s | %s / %s |\n", \
      (b == "uring" ? "io_uring" : b), f0(w), f0(s), ratio, f0(cpu[b, "ws"]), f0(cpu[b, "wss"]), \
      f2(uw), f2(us), cost, f1(p50[b, "ws"]), f1(p99[b, "ws"]), f1(p50[b, "wss"]), f1(p99[b, "wss"]), \
      lost[b, "ws"], lost[b, "wss"], (note == "" ? "" : " ⚠" note), f0(gen[b, "ws"]), f0(gen[b, "wss"])
  }
}
