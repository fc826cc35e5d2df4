#!/usr/bin/env bash
# Builds the binaries behind the test Kubernetes API server:
#   <cache>/bin/kube-apiserver-lite  (test/envtest/apiserver, built against Debian sid's Kubernetes libraries)
#   <cache>/bin/etcd                 (Debian trixie's etcd-server)
# Debian stable packages neither kube-apiserver nor a Go new enough for the Kubernetes 1.36 libraries, so
# the Go toolchain and the libraries come from sid as .debs, fetched with a private apt configuration
# (the system's sources are never changed) and unpacked with dpkg -x into the cache.
#
# Idempotent: each step leaves a stamp, and the server binary is keyed on a hash of its Go sources, so a
# second run with everything cached only hashes a few files.
#
# Environment:
#   DB_REFRESHER_ENVTEST_CACHE   cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/db-refresher/envtest)
#   KUBEBUILDER_ASSETS           a folder with a real kube-apiserver and etcd: if both are there, nothing is built
#   DB_REFRESHER_DEBIAN_MIRROR   Debian mirror URL (default: the one this machine's apt sources use)
set -euo pipefail

log() { printf '[envtest build] %s\n' "$*" >&2; }
die() { printf '[envtest build] error: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_dir=$here/apiserver
cache=${DB_REFRESHER_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/db-refresher/envtest}
bin=$cache/bin
apiserver_bin=$bin/kube-apiserver-lite

# Bumped when the way the binary is built changes, so old cached binaries are not reused.
build_format=2
go_pkg=golang-1.27
root_pkg=golang-k8s-apiextensions-apiserver-dev
etcd_suite=trixie
etcd_min_version=3.5.13
# Server-side apply on built-in types needs their OpenAPI models, which kube-apiserver generates into
# k8s.io/kubernetes (not packaged); openapi-gen makes the same from the packaged k8s.io/api sources.
openapi_pkgs=(
  k8s.io/api/core/v1 k8s.io/api/batch/v1 k8s.io/api/coordination/v1 k8s.io/api/events/v1 k8s.io/api/autoscaling/v1
  k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1 k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1
  k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version
  k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/api/resource
)

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has kube-apiserver and etcd; nothing to build"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; building our own"
fi

mkdir -p "$cache" "$bin"
# Two test runs starting at once (e.g. two vitest processes) must not unpack into the same folder.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "another build holds $cache/.build.lock; waiting"
  flock 9
fi

source_hash() {
  # Sorted file names and contents: renaming or editing any source file changes the hash.
  (
    cd "$src_dir"
    echo "build-format=$build_format go=$go_pkg openapi=${openapi_pkgs[*]}"
    find . -type f \( -name '*.go' -o -name 'go.mod' \) -print | LC_ALL=C sort | while read -r f; do
      echo "$f"
      sha256sum <"$f"
    done
  ) | sha256sum | cut -c1-16
}

[[ -d "$src_dir" ]] || die "Go sources not found at $src_dir"
want_hash=$(source_hash)

version_at_least() { # $1 >= $2, dotted versions
  [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]
}

etcd_ok() {
  [[ -x "$bin/etcd" ]] || return 1
  local v
  v=$("$bin/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: //p')
  [[ -n "$v" ]] && version_at_least "$v" "$etcd_min_version"
}

if [[ -x "$apiserver_bin" && "$(cat "$apiserver_bin.srchash" 2>/dev/null)" == "$want_hash" ]] && etcd_ok; then
  log "up to date: $apiserver_bin ($want_hash), $bin/etcd"
  exit 0
fi

# --- apt, privately ---------------------------------------------------------------------------------

# detect_mirror: the mirror this machine already uses for Debian.
source "$here/debian-mirror.sh"

mirror=${DB_REFRESHER_DEBIAN_MIRROR:-}
if [[ -z "$mirror" ]]; then
  mirror=$(detect_mirror || true)
  [[ -n "$mirror" ]] || die "could not find this machine's Debian mirror in /etc/apt/sources.list(.d); set DB_REFRESHER_DEBIAN_MIRROR"
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r "$keyring" ]] || die "$keyring missing (package debian-archive-keyring)"

# apt state per suite lives in the cache; the system's lists, status and sources stay untouched.
apt_dir() { echo "$cache/apt/$1"; }
apt_opts() {
  local d
  d=$(apt_dir "$1")
  printf '%s\n' \
    -o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o "Dir::State::status=$d/status" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
    -o "APT::Architectures=$(dpkg --print-architecture)" -o Debug::NoLocking=1 -o quiet=1
}
apt_update() { # suite; index refreshed at most once a day
  local suite=$1 d stamp
  d=$(apt_dir "$suite")
  stamp=$d/updated
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  touch "$d/status"
  echo "deb [signed-by=$keyring] $mirror $suite main" >"$d/sources.list.new"
  if [[ -f "$stamp" ]] && cmp -s "$d/sources.list" "$d/sources.list.new" && [[ -n "$(find "$stamp" -mmin -1440)" ]]; then
    rm -f "$d/sources.list.new"
    return
  fi
  mv "$d/sources.list.new" "$d/sources.list"
  log "apt-get update ($mirror $suite, private lists in $d)"
  local opts
  mapfile -t opts < <(apt_opts "$suite")
  apt-get "${opts[@]}" --error-on=any update >"$d/update.log" 2>&1 || {
    tail -n 20 "$d/update.log" >&2
    die "apt-get update for $suite from $mirror failed (log: $d/update.log)"
  }
  touch "$stamp"
}

# Downloads the named packages into $2; on failure, retries one by one to name each package that fails.
apt_download() { # suite dest pkg...
  local suite=$1 dest=$2
  shift 2
  local opts failed=() p
  mapfile -t opts < <(apt_opts "$suite")
  mkdir -p "$dest"
  if (cd "$dest" && apt-get "${opts[@]}" download "$@" >"$dest/download.log" 2>&1); then
    return 0
  fi
  log "apt-get download failed; retrying package by package to find which"
  for p in "$@"; do
    (cd "$dest" && apt-get "${opts[@]}" download "$p" >>"$dest/download.log" 2>&1) || failed+=("$p")
  done
  ((${#failed[@]} == 0)) && return 0
  tail -n 10 "$dest/download.log" >&2
  die "apt-get download from $mirror ($suite) failed for: ${failed[*]} (log: $dest/download.log)"
}

# Unpacks every .deb of $1 into $2, once per distinct set of .debs.
unpack_debs() { # debdir root
  local debdir=$1 root=$2 key f
  key=$(cd "$debdir" && ls -1 -- *.deb | sha256sum | cut -c1-16)
  if [[ "$(cat "$root/.unpacked" 2>/dev/null)" == "$key" ]]; then
    return
  fi
  log "unpacking $(ls -1 "$debdir"/*.deb | wc -l) packages into $root"
  rm -rf "$root"
  mkdir -p "$root"
  for f in "$debdir"/*.deb; do
    dpkg -x "$f" "$root" || die "dpkg -x failed for $(basename "$f")"
  done
  echo "$key" >"$root/.unpacked"
}

# --- etcd ------------------------------------------------------------------------------------------------

if ! etcd_ok; then
  apt_update "$etcd_suite"
  etcd_debs=$cache/debs/etcd
  if ! compgen -G "$etcd_debs/etcd-server_*.deb" >/dev/null; then
    log "downloading etcd-server from $etcd_suite"
    rm -rf "$etcd_debs"
    apt_download "$etcd_suite" "$etcd_debs" "etcd-server/$etcd_suite"
  fi
  unpack_debs "$etcd_debs" "$cache/root-etcd"
  [[ -x "$cache/root-etcd/usr/bin/etcd" ]] || die "etcd-server package has no usr/bin/etcd"
  cp -f "$cache/root-etcd/usr/bin/etcd" "$bin/etcd.tmp"
  mv -f "$bin/etcd.tmp" "$bin/etcd"
  etcd_ok || die "$bin/etcd is not etcd >= $etcd_min_version: $("$bin/etcd" --version 2>&1 | head -n1)"
  log "etcd ready: $("$bin/etcd" --version | head -n1)"
fi

# --- Go toolchain and Kubernetes libraries -------------------------------------------------------------

if [[ -x "$apiserver_bin" && "$(cat "$apiserver_bin.srchash" 2>/dev/null)" == "$want_hash" ]]; then
  log "up to date: $apiserver_bin ($want_hash)"
  exit 0
fi

go_debs=$cache/debs/go
root=$cache/root
if [[ ! -f "$go_debs/.complete" ]]; then
  apt_update sid
  mapfile -t apt_sid < <(apt_opts sid)
  # The libraries' -dev closure plus the toolchain; non-Go runtime depends (libc, tzdata, …) are not
  # needed to compile, and <virtual> names are followed to their providers by --recurse.
  mapfile -t pkgs < <(
    {
      apt-cache "${apt_sid[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$root_pkg" golang-k8s-api-dev golang-k8s-apiserver-dev |
        grep -E '^golang-[^ ]*-dev$' || true
      echo "$go_pkg-go"
      echo "$go_pkg-src"
    } | LC_ALL=C sort -u
  )
  ((${#pkgs[@]} > 10)) || die "dependency list of $root_pkg from sid is implausibly short (${#pkgs[@]} packages)"
  log "downloading ${#pkgs[@]} packages from $mirror sid (about 280 MB; once)"
  rm -rf "$go_debs"
  apt_download sid "$go_debs" "${pkgs[@]}"
  printf '%s\n' "${pkgs[@]}" >"$go_debs/.complete"
fi
unpack_debs "$go_debs" "$root"

goroot=$root/usr/lib/go-1.27
[[ -x "$goroot/bin/go" ]] || die "Go toolchain missing at $goroot (package $go_pkg-go)"

# GOPATH mode: the server's package must sit under <gopath>/src; a copy (not a symlink) so the hash in
# the stamp is the hash of what was compiled.
gopath=$cache/gopath
pkg_dir=$gopath/src/db-refresher/envtest/apiserver
rm -rf "$pkg_dir"
mkdir -p "$pkg_dir"
cp "$src_dir"/*.go "$pkg_dir/"

go_env=(
  env -u GOFLAGS -u GOOS -u GOARCH
  GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
  GOROOT="$goroot" GOPATH="$gopath:$root/usr/share/gocode" PATH="$goroot/bin:$PATH"
  GOCACHE="$cache/gocache" GOTMPDIR="$cache/build"
)
mkdir -p "$cache/gocache" "$cache/build"
openapi_gen=$cache/build/openapi-gen
if [[ ! -x "$openapi_gen" ]]; then
  log "compiling openapi-gen"
  (cd "$cache/build" && "${go_env[@]}" "$goroot/bin/go" build -trimpath -o "$openapi_gen.tmp" k8s.io/kube-openapi/cmd/openapi-gen) ||
    die "go build of k8s.io/kube-openapi/cmd/openapi-gen failed (package golang-k8s-kube-openapi-dev)"
  mv -f "$openapi_gen.tmp" "$openapi_gen"
fi
log "generating OpenAPI models for the built-in types"
: >"$cache/build/boilerplate.txt"
(cd "$pkg_dir" && "${go_env[@]}" "$openapi_gen" --output-dir "$pkg_dir/openapi" \
  --output-pkg db-refresher/envtest/apiserver/openapi --output-file zz_generated.openapi.go \
  --go-header-file "$cache/build/boilerplate.txt" --report-filename "$cache/build/openapi-violations.txt" \
  "${openapi_pkgs[@]}" >"$cache/build/openapi-gen.log" 2>&1) || {
  tail -n 20 "$cache/build/openapi-gen.log" >&2
  die "openapi-gen failed (log: $cache/build/openapi-gen.log)"
}

log "compiling kube-apiserver-lite ($want_hash; about 2 min on 2 cores when GOCACHE is cold)"
# /version reports the Kubernetes release the libraries come from (golang-k8s-apiserver-dev 0.36.4 is
# Kubernetes 1.36.4); kubectl refuses the libraries' placeholder "v0.0.0-master+$Format:%H$".
lib_version=$(dpkg-deb -f "$(ls "$go_debs"/golang-k8s-apiserver-dev_*.deb | head -n1)" Version)
lib_version=${lib_version#*:}
lib_version=${lib_version%%-*}
[[ "$lib_version" =~ ^0\.([0-9]+)\.([0-9]+)$ ]] || die "unexpected golang-k8s-apiserver-dev version: $lib_version"
minor=${BASH_REMATCH[1]}
kube_version=v1.$minor.${BASH_REMATCH[2]}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

start=$SECONDS
out=$cache/build/kube-apiserver-lite-$want_hash
(cd "$pkg_dir" && "${go_env[@]}" "$goroot/bin/go" build -trimpath -ldflags="$ldflags" -o "$out.tmp" .) ||
  die "go build failed (sources: $src_dir)"
mv -f "$out.tmp" "$out"
cp -f "$out" "$apiserver_bin.tmp"
mv -f "$apiserver_bin.tmp" "$apiserver_bin"
echo "$want_hash" >"$apiserver_bin.srchash"
# Keep only the current build's keyed binary.
find "$cache/build" -maxdepth 1 -name 'kube-apiserver-lite-*' ! -name "kube-apiserver-lite-$want_hash" -delete
log "built $apiserver_bin ($kube_version) in $((SECONDS - start)) s"
