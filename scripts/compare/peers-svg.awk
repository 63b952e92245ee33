# Hand-made SVG bar chart (no external tools) of compare-peers.sh's runs.tsv: one group
# of bars per cell (subscribers × size × in flight), one bar per server, height = median
# frames/s over the clean runs (no loss, status ok), min–max as a whisker. Usage:
#   awk -f peers-svg.awk runs.tsv > out.svg
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
function label(v) {
  if (v >= 1e6) return sprintf("%.2fM", v / 1e6)
  if (v >= 1e3) return sprintf("%.0fk", v / 1e3)
  return sprintf("%.0f", v)
}
function human(b) { return b >= 1024 ? (b / 1024) "KiB" : b "B" }
function median(key,   i, j, t, a, m) {
  m = clean[key]; if (m == 0) return -1
  for (i = 1; i <= m; i++) a[i] = fps[key, i] + 0
  for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
BEGIN { FS = "\t"; ng = 0; ns = 0; max = 0 }
NR == 1 { next }
{
  g = $1 SUBSEP $2 SUBSEP $3
  if (!(g in gi)) { gi[g] = ++ng; gname[ng] = g; glabel[ng] = ($1 >= 1000 ? $1 / 1000 "k" : $1) " × " human($2) " × " $3 }
  if (!($4 in si)) { si[$4] = ++ns; sname[ns] = $4 }
  k = g SUBSEP $4
  if ($11 == "ok" && $6 != "n/a" && $6 != "") {
    n = ++clean[k]; fps[k, n] = $6
    if (!(k in lo) || $6 + 0 < lo[k]) lo[k] = $6 + 0
    if (!(k in hi) || $6 + 0 > hi[k]) hi[k] = $6 + 0
    if ($6 + 0 > max) max = $6 + 0
  }
}
END {
  W = 1100; H = 560; L = 90; R = 20; T = 60; B = 110
  pw = W - L - R; ph = H - T - B
  if (max <= 0) max = 1
  m = max * 1.1; e = 1; while (e * 10 <= m) e *= 10
  top = (m <= e) ? e : (m <= 2 * e) ? 2 * e : (m <= 5 * e) ? 5 * e : 10 * e
  split("#1f5fa8 #c2571a #3a9a3a #8e44ad #b8860b #555555", palette, " ")
  gw = pw / (ng > 0 ? ng : 1); bw = gw * 0.84 / (ns > 0 ? ns : 1)
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, H, W, H
  printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
  printf "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"18\">%s</text>\n", W / 2, "Fan-out, server pinned to one core: delivered frames/s (median, min–max)"
  for (k = 0; k <= 5; k++) {
    y = T + ph - ph * k / 5
    printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y
    printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%s</text>\n", L - 8, y + 4, label(top * k / 5)
  }
  printf "<text x=\"20\" y=\"%d\" font-size=\"13\" transform=\"rotate(-90 20 %d)\" text-anchor=\"middle\">delivered frames/s</text>\n", T + ph / 2, T + ph / 2
  for (g = 1; g <= ng; g++) {
    x0 = L + (g - 1) * gw + gw * 0.08
    for (s = 1; s <= ns; s++) {
      k = gname[g] SUBSEP sname[s]; x = x0 + (s - 1) * bw
      v = median(k)
      if (v < 0) {
        printf "<text x=\"%.1f\" y=\"%d\" font-size=\"9\" text-anchor=\"middle\">n/a</text>\n", x + bw / 2, T + ph - 4
        continue
      }
      h = ph * v / top
      printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s, %s: %.0f frames/s</title></rect>\n", \
        x, T + ph - h, bw * 0.9, h, palette[s], esc(sname[s]), esc(glabel[g]), v
      xm = x + bw * 0.45
      printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", xm, T + ph - ph * lo[k] / top, xm, T + ph - ph * hi[k] / top
    }
    printf "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n", L + (g - 0.5) * gw, T + ph + 18, esc(glabel[g])
  }
  printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">subscribers × message size × in flight</text>\n", L + pw / 2, T + ph + 38
  printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph
  printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, T + ph
  lx = L; ly = H - 36
  for (s = 1; s <= ns; s++) {
    nm = sname[s]; if (nm ~ /^(uring|epoll)/) { sub(/-sse$/, " SSE", nm); nm = "ringcast " nm }
    printf "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", lx, ly, palette[s]
    printf "<text x=\"%d\" y=\"%d\" font-size=\"12\">%s</text>\n", lx + 20, ly + 12, esc(nm)
    lx += 180
  }
  print "</svg>"
}
