# Sourced by test/envtest/build.sh and test/charts/build.sh: finds the Debian mirror this machine uses,
# so both can download sid/trixie packages from it with a private apt state.

# The mirror this machine already uses for Debian: the first main-archive source whose suite is this
# release's codename (not -security/-updates). Debian mirrors carry every suite, sid and trixie included.
detect_mirror() {
  local codename files f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ -n "$codename" ]] || return 1
  files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 1
  awk -v cn="$codename" '
    function emit(u) { sub(/\/+$/, "", u); print u; found = 1; exit }
    # one-line format: deb [options] URI suite components...
    /^[[:space:]]*deb[[:space:]]/ {
      line = $0; sub(/\[[^]]*\]/, "", line); n = split(line, w, /[[:space:]]+/)
      i = (w[1] == "") ? 2 : 1
      if (w[i+2] == cn) emit(w[i+1])
      next
    }
    # deb822 format: stanzas separated by blank lines
    /^[[:space:]]*$/ { if (uris != "" && hit && deb) emit(uris); uris = ""; hit = 0; deb = 0; next }
    /^URIs:/   { uris = $2 }
    /^Types:/  { for (j = 2; j <= NF; j++) if ($j == "deb") deb = 1 }
    /^Suites:/ { for (j = 2; j <= NF; j++) if ($j == cn) hit = 1 }
    END { if (!found && uris != "" && hit && deb) { sub(/\/+$/, "", uris); print uris } }
  ' "${files[@]}" | head -n1
}
