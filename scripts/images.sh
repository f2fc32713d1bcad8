#!/usr/bin/env bash
# Build, smoke-test and push the images in docker/ (cpu, train, serve, mlflow).
#   scripts/images.sh build NAME...   docker/NAME.Dockerfile -> $REGISTRY/globe-NAME:$VERSION (prints the time)
#   scripts/images.sh smoke NAME...   docker/smoke.py NAME inside the image as UID 1000 (prints the size)
#   scripts/images.sh push NAME...    push the built tags (log in to $REGISTRY first: docker/buildah login)
#   scripts/images.sh base            (buildah) rebuild the local bookworm base with mmdebstrap
#   scripts/images.sh mirror          (buildah) show the pip sources and mounts a build gets
#   scripts/images.sh clean           remove the built images (and the local base) from this machine
# Engine: `docker` when its daemon answers, else Debian's `buildah` (root, chroot isolation, no
# daemon). Missing buildah/mmdebstrap are installed with apt-get when run as root, as
# scripts/setup.sh installs chromium.
# Environment:
#   REGISTRY          default ghcr.io/globe-platform (what manifests/ and globe/kfp/settings.py name)
#   VERSION           default: pyproject.toml's version
#   BASE_IMAGE        build arg of every image. Unset: the Dockerfiles' defaults (official python
#                     slim / CUDA devel) with docker; with buildah the local bookworm base (mmdebstrap
#                     from the Debian mirror, so no container registry is needed). Set it to e.g.
#                     docker.io/library/python:3.11.14-slim-bookworm to use the official one.
#   TORCH_INDEX_URL   when set (even empty), overrides the images' torch index; empty = PyPI's CUDA torch
#   IMAGES_ENGINE     docker or buildah, instead of detecting
#   GLOBE_PIP_MIRROR  buildah only: 1 (default) passes this machine's pip wheel sources (pip config:
#                     find-links, file:// indexes) and its CA bundle into the build; 0 = PyPI only
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=(cpu serve mlflow train)
REGISTRY="${REGISTRY:-ghcr.io/globe-platform}"
VERSION="${VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)}"
LOCAL_BASE=localhost/globe-base:bookworm-python3.11
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { echo "images: $*"; }
die() { echo "images: $*" >&2; exit 1; }
tag_of() { echo "$REGISTRY/globe-$1:$VERSION"; }

check_names() {
  [ $# -gt 0 ] || die "name at least one image: ${NAMES[*]}"
  for name in "$@"; do
    [ -f "docker/$name.Dockerfile" ] || die "no docker/$name.Dockerfile (images: ${NAMES[*]})"
  done
}

ensure_buildah() {
  command -v buildah >/dev/null && command -v mmdebstrap >/dev/null && return
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "no Docker daemon and no buildah: install docker, or run as root with apt-get (buildah, mmdebstrap)"
  say "installing buildah and mmdebstrap (Debian packages)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      buildah mmdebstrap; } >/tmp/globe-apt-buildah.log 2>&1 \
    || die "apt-get install buildah mmdebstrap failed (see /tmp/globe-apt-buildah.log)"
}

# The bookworm base for registry-less builds: what the official python:3.11-slim-bookworm offers
# the Dockerfiles (python3 3.11 with venv, CA certificates, netbase, tzdata), built from the Debian
# mirror (with security updates) and imported as an image. Docs and man pages are left out, as in
# Debian's slim images; the exclusion stays in the image's dpkg config for later apt installs.
build_base() {
  local tmp c probe started=$SECONDS
  tmp=$(mktemp -d)
  say "building $LOCAL_BASE with mmdebstrap from $DEBIAN_MIRROR"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tmp/rootfs.tar" \
    "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main"
  c=$(buildah from scratch)
  buildah add --quiet "$c" "$tmp/rootfs.tar" / >/dev/null
  buildah config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["python3"]' --label org.opencontainers.image.description="Debian bookworm minbase + python3 (mmdebstrap)" "$c"
  buildah commit --quiet --rm "$c" "$LOCAL_BASE" >/dev/null
  rm -rf "$tmp"
  probe=$(buildah from --pull=false "$LOCAL_BASE")
  say "$LOCAL_BASE built in $((SECONDS - started)) s ($(buildah run --isolation chroot "$probe" -- python3 --version 2>&1))"
  buildah rm "$probe" >/dev/null
}

# buildah -v flags and a pip.conf that hand this machine's wheel sources to pip inside the build:
# find-links directories and file:// indexes are mounted read-only under /tmp/globe-pip (so torch
# and the other wheels on disk are not downloaded again), the host's CA bundle at its own path so
# pip trusts what the host trusts. Only empty mount points (/etc/xdg/pip, /tmp/globe-pip/*) stay in
# the image. Prints the flags one word per line.
pip_mirror_args() {  # $1: an empty directory for the pip.conf
  [ "${GLOBE_PIP_MIRROR:-1}" = 1 ] || return 0
  local py=python3 line key value words=() links=() indexes=() index_url="" cert="" conf=$1
  local mounts=() conf_links=() conf_indexes=() conf_index_url="" inside
  [ -x .venv/bin/python ] && py=.venv/bin/python
  while IFS= read -r line; do
    key=${line%%=*}; key=${key##*.}; value=${line#*=}; value=${value#\'}; value=${value%\'}
    read -ra words <<<"$value"
    case $key in
      find-links) links+=("${words[@]}") ;;
      extra-index-url) indexes+=("${words[@]}") ;;
      index-url) index_url=$value ;;
      cert) cert=$value ;;
    esac
  done < <("$py" -m pip config list 2>/dev/null || true)
  # mount_source VALUE: sets `inside` to what pip should use in the build ("" = not usable there).
  mount_source() {
    local src dst=/tmp/globe-pip/$((${#mounts[@]} / 2))
    case $1 in
      file://*) src=$(dirname "${1#file://}"); inside="file://$dst/$(basename "${1#file://}")" ;;  # files sit beside simple/
      /*) src=$1; inside=$dst ;;
      *) inside=$1; return ;;  # a remote index or mirror: usable as is
    esac
    if [ -d "$src" ]; then mounts+=("-v" "$src:$dst:ro"); else inside=""; fi
  }
  for value in $(printf '%s\n' "${links[@]}" | awk 'NF && !seen[$0]++'); do
    mount_source "$value"; [ -z "$inside" ] || conf_links+=("$inside")
  done
  for value in $(printf '%s\n' "${indexes[@]}" | awk 'NF && !seen[$0]++'); do
    mount_source "$value"; [ -z "$inside" ] || conf_indexes+=("$inside")
  done
  if [ -n "$index_url" ]; then mount_source "$index_url"; conf_index_url=$inside; fi
  {
    echo "[global]"
    [ -z "$conf_index_url" ] || echo "index-url = $conf_index_url"
    [ ${#conf_links[@]} = 0 ] || echo "find-links = ${conf_links[*]}"
    [ ${#conf_indexes[@]} = 0 ] || echo "extra-index-url = ${conf_indexes[*]}"
    [ -z "$cert" ] || [ ! -f "$cert" ] || echo "cert = $cert"
  } >"$conf/pip.conf"
  chmod -R a+rX "$conf"
  printf '%s\n' "${mounts[@]}"
  if [ -d /etc/ssl/certs ]; then printf '%s\n' -v /etc/ssl/certs:/etc/ssl/certs:ro; fi
  if [ -n "$cert" ] && [ -f "$cert" ] && [ "${cert#/etc/ssl/certs/}" = "$cert" ]; then printf '%s\n' -v "$cert:$cert:ro"; fi
  printf '%s\n' -v "$conf:/etc/xdg/pip:ro"
}

free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }

build_one() {
  local name=$1 tag started=$SECONDS revision args=() need
  tag=$(tag_of "$name")
  revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  [ -z "$(git status --porcelain 2>/dev/null)" ] || say "warning: uncommitted changes; the image is labelled with $revision but built from the working tree"
  # --label as well as the build args: buildah 1.28's layer cache reuses a LABEL step whose ARG changed.
  args=(--build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision"
    --label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.revision=$revision")
  [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  [ -n "${TORCH_INDEX_URL+set}" ] && args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
  # A stage named like the image is the target (train: not train-vllm, which buildah would also build).
  if grep -qiE "^FROM .+ AS $name\s*$" "docker/$name.Dockerfile"; then args+=(--target "$name"); fi
  if [ "$ENGINE" = docker ]; then
    say "docker build $name -> $tag"
    DOCKER_BUILDKIT=1 docker build -f "docker/$name.Dockerfile" -t "$tag" "${args[@]}" .
  else
    case $name in train) need=25 ;; mlflow) need=3 ;; *) need=15 ;; esac
    local store
    store=$(buildah info --format '{{.store.GraphRoot}}')
    mkdir -p "$store"
    [ "$(free_gb "$store")" -ge "$need" ] || die "$store has $(free_gb "$store") GB free; building $name needs about $need GB (scripts/images.sh clean)"
    if [ -z "${BASE_IMAGE:-}" ]; then
      buildah inspect --type image "$LOCAL_BASE" >/dev/null 2>&1 || build_base
      args+=(--build-arg "BASE_IMAGE=$LOCAL_BASE")
      started=$SECONDS  # the image's own time, without the base's (printed above)
    fi
    local conf mirror=()
    conf=$(mktemp -d /tmp/globe-pip-conf.XXXXXX)
    mapfile -t mirror < <(pip_mirror_args "$conf")
    say "buildah bud $name -> $tag (base ${BASE_IMAGE:-$LOCAL_BASE})"
    # pip's notes about the local indexes not holding a project are noise: drop them.
    buildah bud --isolation chroot --layers --pull=false -f "docker/$name.Dockerfile" -t "$tag" "${args[@]}" \
      "${mirror[@]}" . 2>&1 | { grep --line-buffered -v "is ignored: it is neither a file nor a directory" || true; } \
      || { rm -rf "$conf"; die "building $name failed"; }
    rm -rf "$conf"
  fi
  say "built $tag in $((SECONDS - started)) s"
}

image_size() {  # uncompressed, in SI units (what `docker images` / `buildah images` show)
  if [ "$ENGINE" = docker ]; then
    numfmt --to=si --format=%.2f --suffix=B "$(docker image inspect --format '{{.Size}}' "$1")"
  else
    buildah images --format '{{.Size}}' "$1" | head -1
  fi
}

image_user() { inspect_format "$1" '{{CFG.User}}'; }
image_label() { inspect_format "$1" "{{index CFG.Labels \"$2\"}}" | sed 's/^<no value>$//'; }
inspect_format() {  # $1 tag, $2 Go template with CFG standing for the image config
  if [ "$ENGINE" = docker ]; then
    docker image inspect --format "${2//CFG/.Config}" "$1"
  else
    buildah inspect --type image --format "${2//CFG/.OCIv1.Config}" "$1"
  fi
}

smoke_one() {
  local name=$1 tag started=$SECONDS tmp user revision rc=0
  tag=$(tag_of "$name")
  if [ "$ENGINE" = docker ]; then
    docker image inspect "$tag" >/dev/null 2>&1 || die "$tag is not built (scripts/images.sh build $name)"
  else
    buildah inspect --type image "$tag" >/dev/null 2>&1 || die "$tag is not built (scripts/images.sh build $name)"
  fi
  user=$(image_user "$tag")
  [ "$user" = "1000:1000" ] || die "$tag runs as '$user', expected 1000:1000"
  revision=$(image_label "$tag" org.opencontainers.image.revision)
  say "smoke $name in $tag (user $user, revision ${revision:-unlabelled})"
  tmp=$(mktemp -d /tmp/globe-smoke.XXXXXX)
  cp docker/smoke.py params.yaml "$tmp/"
  chmod -R a+rX "$tmp"
  if [ "$ENGINE" = docker ]; then
    docker run --rm --network none --user 1000:1000 -v "$tmp:/smoke:ro" "$tag" python /smoke/smoke.py "$name" || rc=$?
  else
    local ctr
    ctr=$(buildah from --pull=false "$tag")
    buildah run --isolation chroot --user 1000:1000 -v "$tmp:/smoke:ro" "$ctr" -- python /smoke/smoke.py "$name" || rc=$?
    buildah rm "$ctr" >/dev/null
  fi
  rm -rf "$tmp"
  say "$tag: size $(image_size "$tag"), smoke $([ $rc = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
  return $rc
}

push_one() {
  local tag
  tag=$(tag_of "$1")
  say "push $tag"
  if [ "$ENGINE" = docker ]; then docker push "$tag"; else buildah push "$tag" "docker://$tag"; fi
}

clean() {
  local name
  for name in "${NAMES[@]}"; do
    if [ "$ENGINE" = docker ]; then docker image rm "$(tag_of "$name")" 2>/dev/null || true
    else buildah rmi "$(tag_of "$name")" >/dev/null 2>&1 || true; fi
  done
  if [ "$ENGINE" = buildah ]; then
    buildah rm --all >/dev/null 2>&1 || true
    buildah rmi "$LOCAL_BASE" >/dev/null 2>&1 || true
    buildah rmi --prune >/dev/null 2>&1 || true
  fi
  say "removed the globe images"
}

cmd=${1:-}
shift || true
case $cmd in
  build | smoke | push) check_names "$@" ;;
  base | clean) ;;
  mirror)
    conf=$(mktemp -d /tmp/globe-pip-conf.XXXXXX)
    pip_mirror_args "$conf" | paste -d" " - -
    if [ -f "$conf/pip.conf" ]; then cat "$conf/pip.conf"; else say "GLOBE_PIP_MIRROR=0: builds use PyPI only"; fi
    rm -rf "$conf"
    exit 0 ;;
  *) die "usage: scripts/images.sh {build|smoke|push} NAME... | base | mirror | clean   (NAME: ${NAMES[*]})" ;;
esac
ENGINE=${IMAGES_ENGINE:-}
if [ -z "$ENGINE" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=buildah; fi
fi
if [ "$ENGINE" = buildah ]; then
  ensure_buildah
  [ "$(id -u)" = 0 ] || die "buildah builds here need root (chroot isolation); or use docker"
fi
case $cmd in
  build) for name in "$@"; do build_one "$name"; done ;;
  smoke) status=0; for name in "$@"; do smoke_one "$name" || status=1; done; exit $status ;;
  push) for name in "$@"; do push_one "$name"; done ;;
  base) [ "$ENGINE" = buildah ] || die "base: only for buildah (docker builds use the official base images)"; build_base ;;
  clean) clean ;;
esac
