#!/usr/bin/env bash
# Builds <cache>/bin/chart-render: the Helm-engine subset in test/charts/render/, which renders the
# charts in charts/ with Go's text/template and sprig (what Helm itself uses) and decodes what they
# render strictly into k8s.io/api types. The machine has no helm binary.
#
# It reuses what test/envtest/build.sh leaves in the same cache: Debian sid's Go 1.27 toolchain and
# the Kubernetes libraries (running that script first when they are missing), plus a few more sid
# packages fetched the same way, with a private apt configuration (the system's apt setup is never
# touched): golang-github-masterminds-sprig-dev, golang-github-santhosh-tekuri-jsonschema-dev and
# whatever -dev packages of theirs the envtest set lacks.
#
# The binary is keyed on a hash of its Go sources and build settings: a second run only hashes a few
# files (well under a second), a source change rebuilds in seconds with a warm GOCACHE.
#
# Environment: DB_REFRESHER_ENVTEST_CACHE, DB_REFRESHER_DEBIAN_MIRROR (as test/envtest/build.sh).
set -euo pipefail

log() { printf '[chart-render build] %s\n' "$*" >&2; }
die() { printf '[chart-render build] error: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=$here/render
envtest_build=$here/../envtest/build.sh
cache=${DB_REFRESHER_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/db-refresher/envtest}
bin=$cache/bin
out_bin=$bin/chart-render

build_format=1
go_pkg=golang-1.27
extra_roots=(golang-github-masterminds-sprig-dev golang-github-santhosh-tekuri-jsonschema-dev)

source_hash() {
  (
    cd "$src_dir"
    echo "build-format=$build_format go=$go_pkg extra=${extra_roots[*]}"
    find . -type f -name '*.go' -print | LC_ALL=C sort | while read -r f; do
      echo "$f"
      sha256sum <"$f"
    done
  ) | sha256sum | cut -c1-16
}

[[ -d "$src_dir" ]] || die "Go sources not found at $src_dir"
want_hash=$(source_hash)
if [[ -x "$out_bin" && "$(cat "$out_bin.srchash" 2>/dev/null)" == "$want_hash" ]]; then
  log "up to date: $out_bin ($want_hash)"
  exit 0
fi

root=$cache/root
goroot=$root/usr/lib/go-1.27
# The toolchain and the Kubernetes libraries come from the envtest build (it takes its own lock).
if [[ ! -x "$goroot/bin/go" || ! -f "$cache/debs/go/.complete" || ! -d "$root/usr/share/gocode/src/k8s.io/apiserver" ]]; then
  log "the Go toolchain and Kubernetes libraries are not in $cache yet: running test/envtest/build.sh (about 3 minutes, once)"
  bash "$envtest_build" || die "test/envtest/build.sh failed"
fi
[[ -x "$goroot/bin/go" ]] || die "Go toolchain missing at $goroot after test/envtest/build.sh"

mkdir -p "$bin"
exec 8>"$cache/.chart-render-build.lock"
if ! flock -n 8; then
  log "another build holds $cache/.chart-render-build.lock; waiting"
  flock 8
  if [[ -x "$out_bin" && "$(cat "$out_bin.srchash" 2>/dev/null)" == "$want_hash" ]]; then
    log "up to date: $out_bin ($want_hash)"
    exit 0
  fi
fi

# --- the extra sid packages, with the private apt state test/envtest/build.sh keeps in the cache ------

# The same mirror detection as the envtest build.
source "$here/../envtest/debian-mirror.sh"

extra_debs=$cache/debs/chart-render
extra_root=$cache/root-chart-render
if [[ ! -f "$extra_debs/.complete" ]]; then
  apt_d=$cache/apt/sid
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  apt_opts=(
    -o "Dir::Etc::SourceList=$apt_d/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_d/lists" -o "Dir::Cache=$apt_d/cache" -o "Dir::State::status=$apt_d/status"
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o "APT::Architectures=$(dpkg --print-architecture)" -o Debug::NoLocking=1 -o quiet=1
  )
  if ! compgen -G "$apt_d/lists/*_Packages*" >/dev/null; then
    mirror=${DB_REFRESHER_DEBIAN_MIRROR:-$(detect_mirror || true)}
    [[ -n "$mirror" ]] || die "could not find this machine's Debian mirror; set DB_REFRESHER_DEBIAN_MIRROR"
    mkdir -p "$apt_d/lists/partial" "$apt_d/cache/archives/partial"
    touch "$apt_d/status"
    echo "deb [signed-by=$keyring] $mirror sid main" >"$apt_d/sources.list"
    log "apt-get update ($mirror sid, private lists in $apt_d)"
    apt-get "${apt_opts[@]}" --error-on=any update >"$apt_d/update.log" 2>&1 ||
      die "apt-get update for sid failed (log: $apt_d/update.log)"
  fi
  mapfile -t wanted < <(
    apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${extra_roots[@]}" | grep -E '^golang-[^ ]*-dev$' | LC_ALL=C sort -u
  )
  ((${#wanted[@]} >= ${#extra_roots[@]})) || die "apt-cache found no dependency list for ${extra_roots[*]} in sid"
  pkgs=()
  for p in "${wanted[@]}"; do
    grep -qx "$p" "$cache/debs/go/.complete" || pkgs+=("$p")
  done
  log "downloading ${#pkgs[@]} packages from sid: ${pkgs[*]}"
  rm -rf "$extra_debs"
  mkdir -p "$extra_debs"
  (cd "$extra_debs" && apt-get "${apt_opts[@]}" download "${pkgs[@]}" >"$extra_debs/download.log" 2>&1) || {
    tail -n 10 "$extra_debs/download.log" >&2
    die "apt-get download from sid failed for some of: ${pkgs[*]} (log: $extra_debs/download.log)"
  }
  printf '%s\n' "${pkgs[@]}" >"$extra_debs/.complete"
fi
key=$(cd "$extra_debs" && ls -1 -- *.deb | sha256sum | cut -c1-16)
if [[ "$(cat "$extra_root/.unpacked" 2>/dev/null)" != "$key" ]]; then
  rm -rf "$extra_root"
  mkdir -p "$extra_root"
  for f in "$extra_debs"/*.deb; do
    dpkg -x "$f" "$extra_root" || die "dpkg -x failed for $(basename "$f")"
  done
  echo "$key" >"$extra_root/.unpacked"
fi

# --- compile in GOPATH mode ----------------------------------------------------------------------------

gopath=$cache/gopath-chart-render
pkg_dir=$gopath/src/db-refresher/charts/render
rm -rf "$gopath"
mkdir -p "$pkg_dir" "$cache/gocache" "$cache/build"
cp "$src_dir"/*.go "$pkg_dir/"
# Debian installs a module github.com/x/y/vN at github.com/x/y; GOPATH mode needs the /vN path, so link
# every such module (declared in its go.mod) under the renderer's own GOPATH.
for gocode in "$extra_root/usr/share/gocode/src" "$root/usr/share/gocode/src"; do
  while IFS= read -r mod; do
    dir=$(dirname "$mod")
    module=$(sed -n 's/^module[[:space:]]*//p' "$mod" | head -n1 | tr -d '"[:space:]')
    [[ "$module" =~ /v[0-9]+$ && "${dir#"$gocode"/}" != "$module" ]] || continue
    [[ -e "$gopath/src/$module" ]] && continue
    mkdir -p "$(dirname "$gopath/src/$module")"
    ln -s "$dir" "$gopath/src/$module"
  done < <(find "$gocode" -name go.mod -not -path '*/testdata/*' 2>/dev/null)
done
go_env=(
  env -u GOFLAGS -u GOOS -u GOARCH
  GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
  GOROOT="$goroot" GOPATH="$gopath:$extra_root/usr/share/gocode:$root/usr/share/gocode" PATH="$goroot/bin:$PATH"
  GOCACHE="$cache/gocache" GOTMPDIR="$cache/build"
)
start=$SECONDS
log "compiling chart-render ($want_hash)"
(cd "$pkg_dir" && "${go_env[@]}" "$goroot/bin/go" vet . && "${go_env[@]}" "$goroot/bin/go" build -trimpath -ldflags="-s -w" -o "$out_bin.tmp" .) ||
  die "go build failed (sources: $src_dir)"
mv -f "$out_bin.tmp" "$out_bin"
echo "$want_hash" >"$out_bin.srchash"
log "built $out_bin in $((SECONDS - start)) s"
