#!/usr/bin/env bash
# Ferry across three hosts, built as network namespaces on this machine: each host (h1, h2, h3)
# has its own network stack and address (10.77.0.1-3/24), joined by veth pairs to one bridge.
# On them run: etcd (one member per host), PostgreSQL (on h1), an object node
# (`ferry serve objects`, its objects in PostgreSQL, its names in etcd) and a file server on each
# host, and the l7 switch (on h3) in front of the file servers, which it finds in etcd.
#
# Then, checking each step and stopping at the first that fails:
#   1. an object is called from every host, and the switch answers from every host;
#   2. the object moves between hosts (`ferry objects relocate`) and is called again;
#   3. the host that holds it is cut off (its veth set down): another host claims it within one
#      lease, and its value holds every acknowledged increment.
#
# Usage: Examples/multihost.sh            (as root; needs ip, etcd, PostgreSQL and a built ferry)
# Environment: FERRY (the ferry binary; default .build/debug/ferry, built if missing).
# The last line is "multihost: ok" when every check passed. Everything it made is removed at exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() {
    echo "multihost: $*" >&2
    # What each program said last, to see why.
    for log in "${WORK:-/nonexistent}"/*.log; do
        [ -f "$log" ] && { echo "--- $(basename "$log"):"; tail -n 12 "$log"; } >&2
    done
    exit 1
}
say() { echo "multihost: $*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (it makes network namespaces, veth pairs and a bridge)"
command -v ip >/dev/null || die "needs ip (Debian: iproute2)"
ETCD=$(command -v etcd) || die "needs etcd (Debian: etcd-server)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || die "needs PostgreSQL (Debian: postgresql)"
id postgres >/dev/null 2>&1 || die "needs the postgres user (Debian's postgresql package makes it)"
FERRY=${FERRY:-$REPO/.build/debug/ferry}
[ -x "$FERRY" ] || (cd "$REPO" && swift build --product ferry) >/dev/null
FERRY=$(cd "$(dirname "$FERRY")" && pwd)/$(basename "$FERRY")

TAG=$$
WORK=$(mktemp -d /tmp/ferry-multihost-XXXXXX)
chmod 755 "$WORK" # PostgreSQL, run as its own user, reaches its directory through it
BRIDGE=fmb$TAG
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for host in 1 2 3; do ip netns del "fm$TAG-h$host" 2>/dev/null || true; done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- the hosts ---------------------------------------------------------------------------
ip link add "$BRIDGE" type bridge
ip addr add 10.77.0.254/24 dev "$BRIDGE"
ip link set "$BRIDGE" up
for host in 1 2 3; do
    ns=fm$TAG-h$host
    ip netns add "$ns"
    ip link add "fm$TAG-v$host" type veth peer name eth0 netns "$ns"
    ip link set "fm$TAG-v$host" master "$BRIDGE" up
    ip -n "$ns" addr add "10.77.0.$host/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
done
on() { local host=$1; shift; ip netns exec "fm$TAG-h$host" "$@"; }
# Starts a long-running program on a host, its output in WORK/NAME.log.
start() {
    local host=$1 name=$2; shift 2
    # ip execs the program in the host's namespace: $! is the program itself.
    ip netns exec "fm$TAG-h$host" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    disown $! # killed at exit without the shell reporting it
}
# Waits until COMMAND succeeds, for at most SECONDS.
until_ok() {
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what did not happen within ${seconds}s"
        sleep 0.2
    done
}
say "hosts h1 h2 h3 at 10.77.0.1-3, joined by bridge $BRIDGE"

# --- etcd, one member per host -------------------------------------------------------------
CLUSTER=h1=http://10.77.0.1:2380,h2=http://10.77.0.2:2380,h3=http://10.77.0.3:2380
for host in 1 2 3; do
    start "$host" "etcd-h$host" "$ETCD" --name "h$host" --data-dir "$WORK/etcd-h$host" \
        --listen-client-urls "http://10.77.0.$host:2379" --advertise-client-urls "http://10.77.0.$host:2379" \
        --listen-peer-urls "http://10.77.0.$host:2380" --initial-advertise-peer-urls "http://10.77.0.$host:2380" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "fm$TAG" \
        --heartbeat-interval 100 --election-timeout 1000
done
REGISTRY=etcd://10.77.0.1:2379,10.77.0.2:2379,10.77.0.3:2379
for host in 1 2 3; do
    until_ok 30 "etcd on h$host" on "$host" bash -c "exec 3<>/dev/tcp/10.77.0.$host/2379"
done
until_ok 30 "etcd's quorum" on 1 "$FERRY" endpoints --registry "$REGISTRY" ls
say "etcd: three members, $REGISTRY"

# --- PostgreSQL on h1 --------------------------------------------------------------------
mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/initdb" -D "$WORK/pg/data" -U ferry \
    --auth=trust -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$WORK/initdb.log")"
echo "host all all 10.77.0.0/24 trust" >>"$WORK/pg/data/pg_hba.conf"
start 1 postgres setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBIN/postgres" -D "$WORK/pg/data" \
    -k "$WORK/pg" -c listen_addresses=10.77.0.1
until_ok 30 "PostgreSQL on h1" on 1 "$PGBIN/pg_isready" -q -h 10.77.0.1 -U ferry
STORE="postgres://ferry@10.77.0.1:5432/postgres?sslmode=disable"
say "PostgreSQL on h1: $STORE"

# --- Ferry on every host -----------------------------------------------------------------
export FERRY_DATA_DIR=$WORK/ferry # no cluster credentials here: FerryWire without TLS
mkdir -p "$FERRY_DATA_DIR" "$WORK/www"
echo "hello from the files" >"$WORK/www/hello.txt"
for host in 1 2 3; do
    start "$host" "objects-h$host" "$FERRY" serve objects --host "10.77.0.$host" --port 7500 \
        --store "$STORE" --registry "$REGISTRY"
    start "$host" "files-h$host" "$FERRY" serve files --root "$WORK/www" --host "10.77.0.$host" --port 8080
    start "$host" "web-h$host" "$FERRY" endpoints --registry "$REGISTRY" register web "10.77.0.$host:8080" --ttl 5
done
start 3 switch "$FERRY" switch --mode l7 --listen 10.77.0.3:8000 --discover web --registry "$REGISTRY"
nodes() { on 1 "$FERRY" endpoints --registry "$REGISTRY" lookup objects:counter --json | grep -o '"host":"10.77.0.[0-9]"' | sort -u | wc -l; }
three_nodes() { [ "$(nodes)" -eq 3 ]; }
until_ok 30 "the three object nodes registering" three_nodes
say "an object node and a file server on each host; the switch on h3"

# --- 1. calls from every host --------------------------------------------------------------
ACKED=0
call() { # HOST: one increment of counter/multihost from that host; prints the new value
    on "$1" "$FERRY" call --registry "$REGISTRY" --timeout 30 counter/multihost increment '[1]'
}
for host in 1 2 3; do
    value=$(call "$host") || die "the call from h$host failed: $value"
    ACKED=$((ACKED + 1))
    [ "$value" = "$ACKED" ] || die "the call from h$host answered $value, not $ACKED"
    until_ok 30 "the switch answering h$host" on "$host" curl -sf "http://10.77.0.3:8000/hello.txt"
done
say "calls from h1, h2 and h3 reached one activation (value $ACKED); the switch answers every host"

holder() { # the host (1-3) whose node holds counter/multihost
    on 1 "$FERRY" endpoints --registry "$REGISTRY" lookup object:counter/multihost --json |
        grep -o '"host":"10.77.0.[0-9]"' | head -1 | grep -o '[0-9]"$' | tr -d '"'
}

# --- 2. a move between hosts ---------------------------------------------------------------
from=$(holder)
to=$((from % 3 + 1))
on 1 "$FERRY" objects relocate --registry "$REGISTRY" --to "10.77.0.$to:7500" counter/multihost
holds() { [ "$(holder)" = "$1" ]; }
until_ok 10 "the claim naming h$to" holds "$to"
value=$(call 1) || die "the call after the move failed: $value"
ACKED=$((ACKED + 1))
[ "$value" = "$ACKED" ] || die "after the move the counter answered $value, not $ACKED"
say "moved counter/multihost from h$from to h$to with its state (value $ACKED)"

# --- 3. a host cut off -------------------------------------------------------------------
cut=$(holder)
caller=$((cut % 3 + 1))
ip link set "fm$TAG-v$cut" down
started=$SECONDS
value=$(call "$caller") || die "the call after cutting h$cut off failed: $value"
took=$((SECONDS - started))
ACKED=$((ACKED + 1))
[ "$value" = "$ACKED" ] || die "after cutting h$cut off the counter answered $value, not $ACKED (acknowledged lost)"
now=$(holder)
[ -n "$now" ] && [ "$now" != "$cut" ] || die "the object is still claimed by the cut-off h$cut"
say "cut h$cut off: h$now holds counter/multihost, the call that found it took ${took}s (the claim's lease is 5 s, the connect timeout to the cut-off host 5 s); value $ACKED, nothing acknowledged lost"
say "ok"
