# Sourceable: the apt sources a machine already has, read from an etc folder (default /etc) as apt reads them:
# one-line ETC/apt/sources.list and sources.list.d/*.list, deb822 sources.list.d/*.sources. Other file names
# (*.disabled, *.save, ...), comments, deb-src entries and "Enabled: no" stanzas are ignored. None of the
# functions fails on a missing or empty layout. Used by scripts/setup_arm64.sh; tests/test_setup_scripts.py.

apt_suites() {  # apt_suites [ETC]: one "URI SUITE" line per configured deb source, URI without trailing slash
  local etc="${1:-/etc}" files=() f
  for f in "$etc/apt/sources.list" "$etc"/apt/sources.list.d/*.list "$etc"/apt/sources.list.d/*.sources; do
    if [ -f "$f" ]; then files+=("$f"); fi
  done
  [ ${#files[@]} -eq 0 ] || awk '
    function emit(uri, suite) { sub(/\/+$/, "", uri); print uri, suite }
    function stanza(   nu, ns, u, s, i, j) {  # a deb822 stanza ends: print its deb sources, start the next
      if ((" " types " ") ~ /[ \t]deb[ \t]/ && tolower(enabled) !~ /^[ \t]*no/) {
        nu = split(uris, u, " "); ns = split(suites, s, " ")
        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) emit(u[i], s[j])
      }
      types = uris = suites = enabled = field = ""
    }
    FNR == 1 { stanza() }
    FILENAME !~ /\.sources$/ {  # one-line format: deb [options] URI SUITE COMPONENT... (a comment: first word #)
      gsub(/\[[^]]*\]/, " ")
      if ($1 == "deb" && NF >= 3) emit($2, $3)
      next
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { stanza(); next }
    /^[^ \t]/ { field = tolower(substr($0, 1, index($0, ":") - 1)); $0 = substr($0, index($0, ":") + 1) }
    field == "types" { types = types " " $0 }
    field == "uris" { uris = uris " " $0 }
    field == "suites" { suites = suites " " $0 }
    field == "enabled" { enabled = enabled $0 }
    END { stanza() }
  ' "${files[@]}"
}

debian_mirror() {  # debian_mirror [ETC]: the first http(s) Debian archive apt uses (URI ending /debian), or nothing
  apt_suites "${1:-/etc}" | awk '!m && $1 ~ /^https?:\/\/.*\/debian$/ { m = $1 } END { if (m) print m }'
}

has_backports() {  # has_backports ETC CODENAME: exit 0 when apt already has CODENAME-backports (any archive)
  apt_suites "$1" | awk -v want="$2-backports" '$2 == want { found = 1 } END { exit !found }'
}

debian_codename() {  # debian_codename [ETC]: VERSION_CODENAME of ETC/os-release, or nothing
  local release="${1:-/etc}/os-release"
  [ ! -f "$release" ] || (. "$release" && echo "${VERSION_CODENAME:-}")
}
