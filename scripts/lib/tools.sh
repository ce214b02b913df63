# Shared by the scripts/setup-* scripts that install tools into the cache directory.
# Sourced; the caller defines DIR (the cache dir), MARKER (the name of the file that marks a
# finished install) and log.

# apt-get install "$@" as root, through passwordless sudo, or say what to run.
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            log "missing Debian packages: $* (install them as root: apt-get install -y $*)"
            return 1
        fi
    fi
    log "installing Debian packages: $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- npm installs ------------------------------------------------------------
# True when $1 holds a finished install of package $2 at version $3.
installed_ok() {
    local prefix=$1 pkg=$2 version=$3
    [ -f "$prefix/$MARKER" ] && [ "$(cat "$prefix/$MARKER")" = "$pkg@$version" ] &&
        [ -f "$prefix/node_modules/$pkg/package.json" ]
}

# npm-install package $2@$3 into $1 atomically: install into a temp dir next to
# it, write the marker, then rename into place.
npm_install_atomic() {
    local prefix=$1 pkg=$2 version=$3
    installed_ok "$prefix" "$pkg" "$version" && return 0
    if ! command -v npm >/dev/null 2>&1; then
        log "npm not found on PATH: using Debian's"
        apt_install npm
        command -v npm >/dev/null 2>&1 || {
            log "Debian's npm package installed no npm command"
            return 1
        }
    fi
    mkdir -p "$DIR"
    local tmp
    tmp=$(mktemp -d "$prefix.tmp.XXXXXX")
    chmod 755 "$tmp"
    log "installing $pkg@$version into $prefix (this takes a while the first time)"
    if ! npm install --no-audit --no-fund --no-save --loglevel=error --prefix "$tmp" "$pkg@$version" >&2; then
        rm -rf "$tmp"
        log "npm install $pkg@$version failed"
        return 1
    fi
    local got
    got=$(sed -n 's/^  "version": "\(.*\)",\{0,1\}$/\1/p' "$tmp/node_modules/$pkg/package.json" | head -n1)
    if [ "$got" != "$version" ]; then
        rm -rf "$tmp"
        log "expected $pkg@$version, npm installed '$got'"
        return 1
    fi
    printf '%s@%s\n' "$pkg" "$version" >"$tmp/$MARKER"
    rm -rf "$prefix"
    mv "$tmp" "$prefix"
}

# Remove temp dirs left behind by interrupted runs (called under the lock, so
# no other run is using them).
cleanup_stale() {
    find "$DIR" -maxdepth 1 -name '*.tmp.*' -type d -exec rm -rf {} + 2>/dev/null || true
}
