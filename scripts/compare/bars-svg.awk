# Hand-made SVG bar chart (no external tools): delivered frames/s by subscriber count,
# one bar per backend × in-flight value, for one matrix and one message size, from the
# per-run TSV of compare-backends.sh. Usage:
#   awk -v matrix=NAME -v size=64 -v title="..." -f bars-svg.awk runs.tsv > out.svg
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
function label(v) {
  if (v >= 1e6) return sprintf("%.1fM", v / 1e6)
  if (v >= 1e3) return sprintf("%.0fk", v / 1e3)
  return sprintf("%.0f", v)
}
BEGIN { FS = "\t"; ng = 0; ni = 0; max = 0 }
$1 == matrix && $3 == size {
  if (!($2 in gi)) { gi[$2] = ++ng; gname[ng] = $2 }
  if (!($4 in ii)) { ii[$4] = ++ni; iname[ni] = $4 }
  if ($6 != "n/a" && $6 != "") { v[$2, $4, $5] = $6; if ($6 + 0 > max) max = $6 + 0 }
}
END {
  W = 900; H = 520; L = 90; R = 20; T = 60; B = 90
  pw = W - L - R; ph = H - T - B
  if (max <= 0) max = 1
  # round the axis maximum up to 1, 2 or 5 × 10^k
  m = max * 1.1; e = 1; while (e * 10 <= m) e *= 10
  top = (m <= e) ? e : (m <= 2 * e) ? 2 * e : (m <= 5 * e) ? 5 * e : 10 * e
  nb = 2 * (ni > 0 ? ni : 1)
  gw = pw / (ng > 0 ? ng : 1); bw = gw * 0.8 / nb
  col["uring", 1] = "#1f5fa8"; col["uring", 2] = "#7fb0e6"
  col["epoll", 1] = "#c2571a"; col["epoll", 2] = "#f2a772"
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, H, W, H
  printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
  printf "<text x=\"%d\" y=\"30\" text-anchor=\"middle\" font-size=\"18\">%s</text>\n", W / 2, esc(title)
  for (k = 0; k <= 5; k++) {
    y = T + ph - ph * k / 5
    printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y
    printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%s</text>\n", L - 8, y + 4, label(top * k / 5)
  }
  printf "<text x=\"20\" y=\"%d\" font-size=\"13\" transform=\"rotate(-90 20 %d)\" text-anchor=\"middle\">delivered frames/s</text>\n", T + ph / 2, T + ph / 2
  for (g = 1; g <= ng; g++) {
    x0 = L + (g - 1) * gw + gw * 0.1
    n = 0
    for (i = 1; i <= ni; i++) {
      ku = gname[g] SUBSEP iname[i] SUBSEP "uring"; ke = gname[g] SUBSEP iname[i] SUBSEP "epoll"
      if ((ku in v) && (ke in v) && v[ke] > 0)
        printf "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">uring/epoll %.2f</text>\n", \
          x0 + (2 * i - 1) * bw, T + ph + 36, v[ku] / v[ke]
    }
    for (i = 1; i <= ni; i++) for (bi = 1; bi <= 2; bi++) {
      b = (bi == 1) ? "uring" : "epoll"
      x = x0 + n * bw; n++
      key = gname[g] SUBSEP iname[i] SUBSEP b
      if (!(key in v)) {
        printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">n/a</text>\n", x + bw / 2, T + ph - 4
        continue
      }
      h = ph * v[key] / top
      printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s, in flight %s: %.0f frames/s</title></rect>\n", \
        x, T + ph - h, bw * 0.92, h, col[b, (i > 2 ? 2 : i)], b, iname[i], v[key]
      printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n", x + bw * 0.46, T + ph - h - 3, label(v[key])
    }
    printf "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">%s subscribers</text>\n", L + (g - 0.5) * gw, T + ph + 18, gname[g]
  }
  printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph
  printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, T + ph
  lx = L; ly = H - 28
  for (i = 1; i <= ni; i++) for (bi = 1; bi <= 2; bi++) {
    b = (bi == 1) ? "io_uring" : "epoll"; c = col[(bi == 1) ? "uring" : "epoll", (i > 2 ? 2 : i)]
    printf "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", lx, ly, c
    printf "<text x=\"%d\" y=\"%d\" font-size=\"12\">%s, in flight %s</text>\n", lx + 20, ly + 12, b, iname[i]
    lx += 190
  }
  print "</svg>"
}
