#!/usr/bin/env bash
# A small root file system for containers, made from Debian's busybox-static and nothing else:
# bin/ holds the static busybox and one symlink per applet (`busybox --list`); sbin, usr/bin and
# usr/sbin link to it, so the usual PATH finds every applet; etc/ has passwd (root, nobody 65534),
# group, hostname and hosts; proc/ sys/ dev/ tmp/ (1777) root/ var/ run/ are empty mount points.
#
# Usage: Examples/rootfs.sh [DIR]          builds DIR (default Examples/rootfs in the repository)
#        Examples/rootfs.sh --bundle DIR   builds DIR/rootfs and an OCI bundle's DIR/config.json:
#                                          `crun spec` with process.terminal=false and
#                                          process.args=["/bin/true"] (needs crun, and jq or python3)
# Re-running rebuilds in place; it refuses a non-empty folder it did not make. The last line on
# stdout is the folder built (the bundle with --bundle).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MARKER=.ferry-rootfs # in every root file system this script made, so it only ever rebuilds its own

die() { echo "rootfs.sh: $*" >&2; exit 1; }

BUNDLE=
case "${1:-}" in
--bundle)
    [ $# -eq 2 ] || die "usage: rootfs.sh --bundle DIR"
    BUNDLE=$2
    DIR=$2/rootfs
    ;;
-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) die "unknown option $1 (usage: rootfs.sh [DIR] | rootfs.sh --bundle DIR)" ;;
*)
    [ $# -le 1 ] || die "usage: rootfs.sh [DIR]"
    DIR=${1:-$REPO/Examples/rootfs}
    ;;
esac

# Debian's busybox (not -static) is linked against glibc and would not run in a root without it.
BUSYBOX=/bin/busybox
if [ ! -x "$BUSYBOX" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing busybox-static..." >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2
    else
        die "$BUSYBOX is missing: install it with 'sudo apt-get install -y busybox-static'"
    fi
fi
if command -v file >/dev/null && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
    die "$BUSYBOX is dynamically linked (Debian's busybox package?): install busybox-static instead"
fi

# Rebuild in place only a folder this script made (or an empty one), and never with anything
# mounted below it (a container left running, a bind mount): rm -rf would reach through.
if [ -n "$BUNDLE" ] && [ -e "$BUNDLE" ]; then
    [ -d "$BUNDLE" ] || die "$BUNDLE exists and is not a folder"
    for entry in "$BUNDLE"/* "$BUNDLE"/.[!.]*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        case "${entry##*/}" in rootfs | config.json) ;; *) die "$BUNDLE holds ${entry##*/}: not a bundle rootfs.sh made" ;; esac
    done
fi
if [ -e "$DIR" ]; then
    [ -d "$DIR" ] || die "$DIR exists and is not a folder"
    if [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/$MARKER" ]; then
        die "$DIR is not empty and was not made by rootfs.sh; refusing to replace it"
    fi
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
[ -z "$BUNDLE" ] || BUNDLE=$(cd "$BUNDLE" && pwd -P)
if awk -v d="$DIR/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "something is mounted under $DIR; unmount it first"
fi

echo "building $DIR from $BUSYBOX ($(dpkg-query -W -f '${Package} ${Version}' busybox-static 2>/dev/null || echo 'version unknown'))..." >&2
find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +

cd "$DIR"
# Every mode below is meant as written, whatever umask the caller runs with.
umask 022
mkdir -p bin etc proc sys dev tmp root var/tmp run usr
chmod 755 . bin etc proc sys dev var run usr
chmod 1777 tmp var/tmp
chmod 700 root
install -m 755 "$BUSYBOX" bin/busybox
# Every applet in bin/, the others pointing there (a merged /usr, as Debian has it today).
"$BUSYBOX" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -s busybox "bin/$applet"
done
ln -s bin sbin
ln -s ../bin usr/bin
ln -s ../bin usr/sbin
mkdir -p usr/local
ln -s ../../bin usr/local/bin
ln -s ../../bin usr/local/sbin

cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo ferry >etc/hostname
cat >etc/hosts <<'EOF'
127.0.0.1 localhost
::1 localhost
EOF
chmod 644 etc/passwd etc/group etc/hostname etc/hosts
echo "made by Examples/rootfs.sh; re-running it replaces this folder" >"$MARKER"

if [ -z "$BUNDLE" ]; then
    echo "$DIR"
    exit 0
fi

# The bundle's config.json: crun's default spec (namespaces, mounts, capabilities, a read-only
# root, hostname "crun"), running /bin/true without a terminal so it needs no tty.
command -v crun >/dev/null || die "crun is needed for --bundle (apt-get install -y crun)"
SPEC=$(mktemp -d)
trap 'rm -rf "$SPEC"' EXIT
(cd "$SPEC" && crun spec)
if command -v jq >/dev/null; then
    jq '.process.terminal = false | .process.args = ["/bin/true"]' "$SPEC/config.json" >"$BUNDLE/config.json"
elif command -v python3 >/dev/null; then
    python3 - "$SPEC/config.json" >"$BUNDLE/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
json.dump(spec, sys.stdout, indent=2)
print()
PY
else
    die "--bundle needs jq or python3 to edit config.json (apt-get install -y jq)"
fi
echo "$BUNDLE"
