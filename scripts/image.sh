#!/usr/bin/env bash
# Builds the stockcast image from deploy/Dockerfile (make image).
#
#   scripts/image.sh [extra `docker build` options]
#
#   STOCKCAST_IMAGE       the tag to build (stockcast:latest)
#   STOCKCAST_IMAGE_BASE  auto (default): use the base images the Dockerfile names when present,
#                         else pull them, else build them from Debian packages;
#                         pull: never build a base; bootstrap: build missing bases, never pull
#
# Where no registry can be reached (these build machines), a base the Dockerfile names and
# cannot pull (python:3.11-slim-bookworm) is made from Debian packages instead: debootstrap
# --variant=minbase of that Debian release from the mirror apt uses here, with python3,
# python3-venv, python3-pip, python-is-python3 and ca-certificates, pip's EXTERNALLY-MANAGED
# marker removed (the official image's pip has none), this machine's CA bundle and apt settings
# copied in (SSL_CERT_FILE, PIP_CERT and UV_SYSTEM_CERTS set so pip and uv use the bundle),
# then `docker import`ed under the name the Dockerfile uses. The Dockerfile itself is the same
# everywhere; with the official base (GitHub's runners) this script only builds.
#
# Builds use the host's network when the daemon has no bridge, as the one started here
# (STOCKCAST_IMAGE_NETWORK overrides), and the package-index settings of this machine that a
# build can use (http(s) index URLs in PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, UV_DEFAULT_INDEX,
# UV_INDEX, UV_INDEX_URL, UV_EXTRA_INDEX_URL) are passed as build arguments of the build
# stages, never into the image.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${STOCKCAST_IMAGE:-stockcast:latest}
DOCKERFILE=deploy/Dockerfile
MODE=${STOCKCAST_IMAGE_BASE:-auto}
case "$MODE" in auto | pull | bootstrap) ;; *)
  echo "STOCKCAST_IMAGE_BASE must be auto, pull or bootstrap, not '$MODE'" >&2
  exit 2
  ;;
esac

say() { printf '[image] %s\n' "$*" >&2; }
die() {
  printf '[image] %s\n' "$*" >&2
  exit 1
}

command -v docker >/dev/null || die "no docker command (Debian: apt-get install docker.io)"
# No daemon: start Debian's dockerd when we may (root), without a bridge or iptables rules (the
# builds and the containers of the tests use the host's network, bound to loopback). It keeps
# running for the image to be used; the log and how to stop it are printed.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || [ "$(id -u)" -ne 0 ]; then
    die "no Docker daemon answers (Debian: apt-get install docker.io, then start dockerd as root)"
  fi
  log=${TMPDIR:-/tmp}/stockcast-dockerd.log
  setsid dockerd --iptables=false --ip6tables=false --bridge=none > "$log" 2>&1 < /dev/null &
  daemon=$!
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$daemon" 2>/dev/null || { tail -n 20 "$log" >&2; die "dockerd exited (log above)"; }
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s (log: $log)"
  say "started dockerd (pid $daemon, log $log); it keeps running: kill $daemon stops it"
fi

# The images the Dockerfile starts FROM, without its own stage names.
base_images() {
  awk 'toupper($1) == "FROM" {
         image = ""; stage = ""
         for (i = 2; i <= NF; i++) {
           if ($i ~ /^--/) continue
           if (image == "") image = $i
           else if (toupper($i) == "AS") stage = $(i + 1)
         }
         if (!(image in stages)) print image
         if (stage != "") stages[stage] = 1
       }' "$1" | sort -u
}

# The Debian mirror (or security mirror with "security") apt uses on this machine.
debian_mirror() {
  local want=$1 suite=$2 uri
  uri=$(
    {
      cat /etc/apt/sources.list 2>/dev/null || true
      cat /etc/apt/sources.list.d/*.list 2>/dev/null || true
    } | awk -v suite="$suite" -v want="$want" '
        $1 == "deb" {
          i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ((want == "security") == ($(i + 1) ~ /-security$/) && index($(i + 1), suite) == 1) { print $i; exit }
        }'
  )
  if [ -z "$uri" ]; then
    uri=$(
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v suite="$suite" -v want="$want" '
        BEGIN { RS = ""; FS = "\n" }
        {
          uris = ""; suites = ""; deb = 0
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
            if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
            if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
          }
          if (!deb) next
          n = split(suites, s, /[ \t]+/)
          for (j = 1; j <= n; j++)
            if (index(s[j], suite) == 1 && (want == "security") == (s[j] ~ /-security$/)) {
              split(uris, u, /[ \t]+/); print u[1]; exit
            }
        }'
    )
  fi
  if [ -z "$uri" ]; then
    if [ "$want" = security ]; then uri=http://deb.debian.org/debian-security; else uri=http://deb.debian.org/debian; fi
  fi
  printf '%s\n' "${uri%/}"
}

# Makes $1 (python:X.Y-...-<release> or debian:<release>...) from Debian packages.
bootstrap_base() {
  local image=$1 release python_wanted="" mirror security root python_found cabundle
  case "$image" in
    python:*) python_wanted=${image#python:} python_wanted=${python_wanted%%-*} ;;
    debian:*) ;;
    *) die "cannot build the base $image from Debian packages (only python:* and debian:* bases)" ;;
  esac
  release=""
  for candidate in bookworm trixie bullseye; do
    case "$image" in *"$candidate"*) release=$candidate ;; esac
  done
  [ -n "$release" ] || die "the base $image names no Debian release (bookworm, trixie, bullseye)"
  [ "$(id -u)" -eq 0 ] || die "building the base $image needs root (debootstrap, chroot)"
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  }
  mirror=$(debian_mirror main "$release")
  security=$(debian_mirror security "$release")
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/stockcast-base.XXXXXX")
  # shellcheck disable=SC2064 # the folder of this call, removed however the script ends
  trap "rm -rf --one-file-system '$root'" EXIT
  say "building $image from Debian $release packages ($mirror)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    "$release" "$root/fs" "$mirror" > "$root/debootstrap.log" 2>&1 ||
    { tail -n 30 "$root/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

  # apt inside the image: the same mirrors, and the settings apt needs to use them here
  # (for instance a snapshot mirror's expired Release files).
  rm -f "$root/fs/etc/apt/sources.list"
  cat > "$root/fs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|ftp::Proxy) ' \
    > "$root/fs/etc/apt/apt.conf.d/90build-machine" || true
  # As in Docker's official Debian images: no binary package caches and no downloaded .debs
  # left in a layer (77 MB in every image that runs apt-get otherwise).
  cat > "$root/fs/etc/apt/apt.conf.d/90image-no-cache" <<'EOF'
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF

  # This machine's CA bundle (a TLS proxy's CA among them), so pip and uv in a build reach the
  # package index: SSL_CERT_FILE and PIP_CERT name it, UV_SYSTEM_CERTS makes uv read it (the
  # uv the Dockerfile pins calls UV_NATIVE_TLS, its older name, deprecated).
  cabundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  [ -f "$cabundle" ] || cabundle=/etc/ssl/certs/ca-certificates.crt
  if [ -d /usr/local/share/ca-certificates ]; then
    cp -a /usr/local/share/ca-certificates/. "$root/fs/usr/local/share/ca-certificates/"
  fi
  cp /etc/resolv.conf "$root/fs/etc/resolv.conf"
  chroot "$root/fs" /bin/sh -c '
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get upgrade -y -qq >/dev/null && apt-get clean
      update-ca-certificates >/dev/null 2>&1 || true' ||
    die "updating the base's packages failed"
  cp "$cabundle" "$root/fs/etc/ssl/certs/ca-certificates.crt"
  : > "$root/fs/etc/resolv.conf"

  # pip installs into an environment of its own choosing, as in the official image.
  rm -f "$root"/fs/usr/lib/python3*/EXTERNALLY-MANAGED
  python_found=$(chroot "$root/fs" python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ -n "$python_wanted" ] && [ "$python_found" != "$python_wanted" ]; then
    die "Debian $release has Python $python_found, the Dockerfile wants $python_wanted"
  fi
  rm -rf "$root"/fs/var/lib/apt/lists/* "$root"/fs/var/cache/apt/* "$root"/fs/var/log/*.log \
    "$root"/fs/usr/share/doc/* "$root"/fs/usr/share/man/* "$root"/fs/usr/share/info/*

  tar --numeric-owner -C "$root/fs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV UV_SYSTEM_CERTS=1' \
    --change "LABEL org.stockcast.base=\"debootstrap $release (python3 $python_found), made by scripts/image.sh\"" \
    --change 'CMD ["python3"]' \
    - "$image" >/dev/null
  rm -rf --one-file-system "$root"
  trap - EXIT
  say "made $image: $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
}

for image in $(base_images "$DOCKERFILE"); do
  docker image inspect "$image" >/dev/null 2>&1 && continue # pulled or made before
  if [ "$MODE" != bootstrap ] && docker pull -q "$image" >/dev/null 2>&1; then
    say "pulled $image"
    continue
  fi
  [ "$MODE" = pull ] && die "cannot pull $image (STOCKCAST_IMAGE_BASE=pull)"
  say "cannot pull $image; building it from Debian packages"
  bootstrap_base "$image"
done

build=(build -f "$DOCKERFILE" -t "$TAG")
# The host's network where the daemon has no bridge (as started here); Docker's default elsewhere.
network=${STOCKCAST_IMAGE_NETWORK:-}
if [ -z "$network" ] && ! docker network inspect bridge >/dev/null 2>&1; then network=host; fi
if [ -n "$network" ]; then build+=(--network "$network"); fi
for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL UV_DEFAULT_INDEX UV_INDEX UV_INDEX_URL UV_EXTRA_INDEX_URL; do
  value=${!name:-}
  # Only what a build can reach: file:// indexes and find-links folders stay on this machine.
  case "$value" in http://* | https://*) build+=(--build-arg "$name=$value") ;; esac
done
# Without the buildx plugin (Debian's docker.io), the classic builder: same Dockerfile, same image.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

say "building $TAG from $DOCKERFILE"
start=$(date +%s)
docker "${build[@]}" "$@" .
say "built $TAG in $(($(date +%s) - start)) s: $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1 / 1e6}')"
