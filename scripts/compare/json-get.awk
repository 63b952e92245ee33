# Reads fields out of a ringcast-load `--json` report (serde_json pretty output: two
# spaces per level) without jq. Usage:
#   awk -v want="ok traffic.lost_frames latency.p50_us" -f json-get.awk report.json
# prints the values of the wanted top-level or second-level fields, tab-separated, in
# the order asked, and "n/a" for a field that is absent or null.
BEGIN { n = split(want, keys, " "); section = "" }
/^  "[A-Za-z0-9_]+": / {
  line = $0
  sub(/^  "/, "", line)
  key = line; sub(/".*/, "", key)
  val = line; sub(/^[^"]*": /, "", val); sub(/,$/, "", val)
  if (val == "{") { section = key } else { section = ""; got[key] = val }
  next
}
/^    "[A-Za-z0-9_]+": / {
  if (section == "") next
  line = $0
  sub(/^    "/, "", line)
  key = line; sub(/".*/, "", key)
  val = line; sub(/^[^"]*": /, "", val); sub(/,$/, "", val)
  got[section "." key] = val
  next
}
END {
  for (i = 1; i <= n; i++) {
    v = (keys[i] in got) ? got[keys[i]] : "n/a"
    if (v == "null" || v == "{" || v == "[") v = "n/a"
    gsub(/"/, "", v)
    printf "%s%s", v, (i < n ? "\t" : "\n")
  }
}
