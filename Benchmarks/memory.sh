#!/usr/bin/env bash
# Memory, measured and bounded: resident memory (VmRSS from /proc, summed over a process tree)
# of Ferry's parts at rest and per unit of what they hold, beside nginx, HAProxy and Wasmtime.
#
#   (a) an idle `ferry up` (the whole tree: ferry up and the `ferry node` processes it starts),
#       and one idle `ferry node`;
#   (b) per idle keep-alive connection: CONNECTIONS clients each send one `GET /1k.bin`, read the
#       answer and hold the connection; (RSS holding them - RSS before) / connections held (counted
#       with ss at the moment of measuring). The file server beside nginx; `ferry switch --mode l7`
#       beside HAProxy in http mode, both in front of the same nginx (only the switch's own RSS
#       counts). Every server's idle timeouts are set to 600 s so that nothing is closed meanwhile.
#       For scale, a bare SwiftNIO server (`ferry-bench bare-nio`: a channel and one stateless
#       handler per connection) is measured the same way: the floor of a channel per connection;
#   (c) per idle guest: GUESTS `Guests/echo.wasm` processes parked in ferry.receive_wait on one
#       `ferry node` (spawned over FerryWire, after one warm-up `ferry spawn`): the node's RSS
#       growth per guest beyond the guest's linear memory, both beyond what of it is resident
#       (smaps) and beyond its whole size as `ferry ps` reports it (pages never touched are not
#       resident, so that one falls below zero); beside Wasmtime (PyPI) instantiating the same
#       module GUESTS times in one Store;
#   (d) per idle active object: OBJECTS Swift counters (`counter/N`) activated by one call each on
#       `ferry serve objects`, less the cost of as many calls to one object on a second server
#       (the calls' own trace: the at-most-once ledger keeps each answer for 2 minutes).
#
# Prints a table (item, Ferry, anchor, goal, met?) and writes memory.svg (the per-unit rows)
# beside this script.
#
# Usage: Benchmarks/memory.sh     (CONNECTIONS=10000 GUESTS=1000 OBJECTS=10000 SETTLE=2; NO_BUILD=1
#                                  uses the release build as it is)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/guest/anchors.sh"
CONNECTIONS=${CONNECTIONS:-10000}
GUESTS=${GUESTS:-1000}
OBJECTS=${OBJECTS:-10000}
SETTLE=${SETTLE:-2}

require nginx haproxy ss:iproute2 wasm-opt:binaryen
[ -n "${NO_BUILD:-}" ] || build_release ferry ferry-bench
FERRY="$ROOT/.build/release/ferry"
BENCH="$ROOT/.build/release/ferry-bench"
make_workdir memory-bench
PYTHON=$(ensure_wasmtime)

# Every server here and the client holding the connections each need a descriptor per connection.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((CONNECTIONS + 1000)) ]; then
    echo "the descriptor limit ($(ulimit -n), hard $(ulimit -Hn)) is too low for CONNECTIONS=$CONNECTIONS" >&2
    exit 1
fi

mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"

# rss [--linear SIZE|--count|--each] PID... : the resident bytes of each PID and its descendants,
# summed. --linear SIZE: only what is resident in anonymous mappings of exactly SIZE bytes or of
# 1 GiB and more (WebAssembly linear memories: mapped at their size by WasmKit here, reserved whole
# by Wasmtime), and how many such mappings there are; --count: how many processes; --each: one
# line per process, its resident bytes and command line.
cat >"$WORK/rss.py" <<'PY'
import os, sys
args = sys.argv[1:]
mode = args.pop(0) if args[0].startswith("--") else None
size = int(args.pop(0)) if mode == "--linear" else None
children = {}
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
pids, todo = [], [int(p) for p in args]
while todo:
    pid = todo.pop(0)
    if pid not in pids:
        pids.append(pid)
        todo += sorted(children.get(pid, []))
if mode == "--count":
    sys.exit(print(len(pids)))
total = mappings = 0
each = []
for pid in pids:
    try:
        if mode == "--linear":
            matches = False
            for line in open(f"/proc/{pid}/smaps"):
                field = line.split()
                if "-" in field[0] and len(field) >= 5:
                    start, end = (int(x, 16) for x in field[0].split("-"))
                    matches = len(field) == 5 and field[1].startswith("rw") and (end - start == size or end - start >= 1 << 30)
                    mappings += matches
                elif field[0] == "Rss:" and matches:
                    total += int(field[1]) * 1024
        else:
            resident = next(int(line.split()[1]) * 1024 for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
            total += resident
            if mode == "--each":
                command = open(f"/proc/{pid}/cmdline").read().split("\0")
                words = [os.path.basename(command[0])] + command[1:2]
                words += [command[command.index("--name") + 1]] if "--name" in command else []
                each.append(f"{' '.join(words)} {resident / 2**20:.1f}")
    except (OSError, StopIteration):
        pass
if mode == "--linear":
    print(total, mappings)
elif mode == "--each":
    print(", ".join(each))
else:
    print(total)
PY
rss() { python3 "$WORK/rss.py" "$@"; }
mib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 2**20:.1f}')" "$1"; }

# hold.py HOST PORT COUNT [hold] : COUNT connections (at most 200 opening at once), each sends one
# GET /1k.bin and reads the whole answer; prints `held N failed M`, then, with `hold`, keeps them
# open until SIGTERM, printing `open N` (connections the server has not closed) on SIGUSR1.
cat >"$WORK/hold.py" <<'PY'
import asyncio, signal, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hold = sys.argv[4:] == ["hold"]
request = b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n"

async def one(gate, held, failed):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            lines = head.split(b"\r\n")
            length = next((int(v) for k, _, v in (l.partition(b":") for l in lines[1:])
                           if k.strip().lower() == b"content-length"), 0)
            await asyncio.wait_for(reader.readexactly(length), 30)
            if lines[0].split()[1] != b"200":
                failed.append(lines[0].decode())
            held.append((reader, writer))
        except Exception as error:
            failed.append(repr(error))

async def main():
    gate, held, failed = asyncio.Semaphore(200), [], []
    await asyncio.gather(*(one(gate, held, failed) for _ in range(count)))
    print(f"held {len(held)} failed {len(failed)}" + (f" (first: {failed[0]})" if failed else ""), flush=True)
    if hold:
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: print(f"open {sum(not r.at_eof() for r, _ in held)}", flush=True))
        await stop.wait()
    for _, writer in held:
        writer.close()

asyncio.run(main())
PY

# wire.py: FerryWire (plain TCP: lib.sh clears FERRY_CREDENTIALS) from Python, for the many
# requests that one `ferry` command each would take too long for.
#   wire.py objects HOST:PORT N    counter/0 .. counter/N-1 .increment(1), one call each
#   wire.py one HOST:PORT N        counter/one .increment(1), N times
#   wire.py spawn HOST:PORT DIGEST PREFIX N   N processes PREFIX-0.. of the module DIGEST (which
#                                  the node holds already), as `ferry spawn` asks a node
cat >"$WORK/wire.py" <<'PY'
import json, random, socket, struct, sys, time
mode, address = sys.argv[1], sys.argv[2]
host, port = address.rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

def frame(kind, request_id, payload):
    return struct.pack(">4sBBHQI", b"FRRY", 1, kind, 0, request_id, len(payload)) + payload

def exactly(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("wire.py: the server closed the connection")
        data += chunk
    return data

def answer():
    magic, version, kind, flags, request_id, length = struct.unpack(">4sBBHQI", exactly(20))
    return kind, flags, exactly(length)

def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80]); n >>= 7
    return out + bytes([n])

def text(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b

def run(requests, window=128):
    """Sends (kind, payload) requests, `window` outstanding; returns (answers, errors)."""
    answers, errors, sent = [], [], 0
    while sent < len(requests):
        batch = requests[sent:sent + window]
        sock.sendall(b"".join(frame(kind, sent + i + 1, payload) for i, (kind, payload) in enumerate(batch)))
        sent += len(batch)
        for _ in batch:
            kind, flags, payload = answer()
            (errors if flags & 2 else answers).append(payload)
    return answers, errors

started = time.time()
if mode in ("objects", "one"):
    n = int(sys.argv[3])
    client = random.getrandbits(63)
    arguments = bytes([7]) + varint(1) + bytes([3]) + varint(2)  # a list: [1]
    names = [f"counter/{i}" for i in range(n)] if mode == "objects" else ["counter/one"] * n
    requests = [(0x40, text(name) + text("increment") + struct.pack(">QQQI", 0, client, i + 1, 10000) + arguments)
                for i, name in enumerate(names)]
    answers, errors = run(requests)
    def integer(answer):
        # outcome 0 (a value), the epoch, then an integer value: tag 3 and a zigzag varint
        if answer[:1] != b"\x00" or answer[9:10] != b"\x03":
            return None
        shift = zigzag = 0
        for byte in answer[10:]:
            zigzag |= (byte & 0x7F) << shift; shift += 7
            if byte < 0x80: break
        return (zigzag >> 1) ^ -(zigzag & 1)
    # Answers to calls in flight together may come in any order: the highest count is the last.
    value = max((v for v in map(integer, answers) if v is not None), default=None)
    print(f"calls {len(answers)} errors {len(errors)} highest {value} seconds {time.time() - started:.1f}"
          + (f" (first error: {errors[0][6:].decode(errors='replace')})" if errors else ""))
elif mode == "spawn":
    digest, prefix, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
    spec = lambda i: {"name": f"{prefix}-{i}", "digest": digest, "arguments": [], "directories": [], "lowers": []}
    requests = [(0x50, json.dumps({"spawn": {"_0": spec(i)}}).encode()) for i in range(n)]
    answers, errors = run(requests, window=32)
    spawned = sum(1 for a in answers if b'"spawned"' in a)
    print(f"spawned {spawned} errors {len(errors) + len(answers) - spawned} seconds {time.time() - started:.1f}"
          + (f" (first error: {errors[0][6:] if errors else answers[0]})" if spawned < n else ""))
PY

# ---------------------------------------------------------------------------------------------
# (a) idle `ferry up`, its whole tree.
echo "ferry up, idle..." >&2
"$FERRY" up --port 0 --control-port 0 --endpoints-port 0 --kv-port 0 --objects-port 0 --redirector-port 0 \
    --dns-port 0 --dashboard-port 0 --data-dir "$WORK/data" >"$WORK/up.out" 2>"$WORK/up.err" &
UP=$!
PIDS+=($UP)
for _ in $(seq 600); do grep -q "^Ctrl-C stops" "$WORK/up.out" 2>/dev/null && break; sleep 0.1; done
grep -q "^Ctrl-C stops" "$WORK/up.out" || { echo "ferry up did not come up:" >&2; tail -5 "$WORK/up.err" >&2; exit 1; }
sleep $((SETTLE + 3))
UP_RSS=$(rss "$UP")
UP_PROCESSES=$(rss --count "$UP")
UP_EACH=$(rss --each "$UP")
# The largest of ferry up's nodes (each with its data directory, dashboard and balancer).
UP_NODE_MAX=$(python3 -c 'import sys; print(int(max([float(p.split()[-1]) for p in sys.argv[1].split(", ") if " node " in p] or [0]) * 2**20))' "$UP_EACH")
stop_last

# ---------------------------------------------------------------------------------------------
# (b) one idle `ferry node`, then (c) idle guests on it.
echo "ferry node, idle; then $GUESTS idle guests on it..." >&2
"$FERRY" endpointd --port 0 >"$WORK/endpointd.out" 2>"$WORK/endpointd.err" &
PIDS+=($!)
DAEMON=$(listening_address "$WORK/endpointd.out")
"$FERRY" node --name mem --endpoints "$DAEMON" --allow-unsigned >"$WORK/node.out" 2>"$WORK/node.err" &
NODE=$!
PIDS+=($NODE)
NODE_ADDR=$(listening_address "$WORK/node.out")
sleep $((SETTLE + 1))
NODE_RSS=$(rss "$NODE")

# ps_states : "STATE=COUNT,..." and the linear memory of the node's processes, summed.
ps_states() {
    "$FERRY" ps --endpoints "$DAEMON" --json | python3 -c '
import collections, json, sys
rows = json.load(sys.stdin)
states = collections.Counter(r["state"] for r in rows)
print(",".join(f"{k}={v}" for k, v in sorted(states.items())), sum(r["memory_bytes"] for r in rows), len(rows))'
}
# wait_parked COUNT : waits (at most 60 s) until COUNT processes are waiting in ferry.receive_wait.
wait_parked() {
    local line
    for _ in $(seq 120); do
        line=$(ps_states)
        [[ "$line" == "waiting=$1 "* ]] && break
        sleep 0.5
    done
    echo "$line"
}
# One guest through the command (it carries the code; the node makes it movable, loading
# Binaryen, once per module), as the warm-up: then the figure is what each further guest costs.
"$FERRY" spawn --endpoints "$DAEMON" --node mem "$ROOT/Guests/echo.wasm" --name idle-warm >/dev/null
# What `ferry ps` says a guest's linear memory is (its pages, and those the node added for Asyncify).
read -r _ GUEST_LINEAR _ <<<"$(wait_parked 1)"
sleep "$SETTLE"
GUEST_BEFORE=$(rss "$NODE")
read -r GUEST_LINEAR_BEFORE _ <<<"$(rss --linear "$GUEST_LINEAR" "$NODE")"
DIGEST=$(sha256sum "$ROOT/Guests/echo.wasm" | cut -d' ' -f1)
SPAWNED=$(python3 "$WORK/wire.py" spawn "$NODE_ADDR" "$DIGEST" idle "$GUESTS")
read -r PARKED GUEST_MEMORY GUEST_ROWS <<<"$(wait_parked $((GUESTS + 1)))"
sleep "$SETTLE"
GUEST_AFTER=$(rss "$NODE")
read -r GUEST_LINEAR_AFTER GUEST_MAPPINGS <<<"$(rss --linear "$GUEST_LINEAR" "$NODE")"
GUEST_THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$NODE/status")
[ "$GUEST_MEMORY" = $((GUEST_LINEAR * GUEST_ROWS)) ] || echo "warning: the guests' linear memories differ in size" >&2
GUEST_PAGES=$(python3 - "$ROOT/Guests/echo.wasm" <<'PY'
import sys
def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7F) << s; s += 7
        if x < 0x80: return r, i
b, i = open(sys.argv[1], "rb").read(), 8
while i < len(b):
    section, i = b[i], i + 1
    size, i = leb(b, i)
    if section == 5:
        _, j = leb(b, i); _, j = leb(b, j); print(leb(b, j)[0]); break
    i += size
PY
)
GUEST_HELD=$(grep -o '^spawned [0-9]*' <<<"$SPAWNED" | awk '{print $2}')
[ "${GUEST_HELD:-0}" -gt 0 ] || { echo "no guest spawned: $SPAWNED" >&2; exit 1; }
PER_GUEST=$(((GUEST_AFTER - GUEST_BEFORE) / GUEST_HELD))
PER_GUEST_RESIDENT_LINEAR=$(((GUEST_LINEAR_AFTER - GUEST_LINEAR_BEFORE) / GUEST_HELD))
# Beyond its linear memory: what of it is resident (the goal's reading: the host's own cost), and
# all of its size as `ferry ps` reports it (pages never touched are not resident, so this one can
# fall below zero).
PER_GUEST_BEYOND=$((PER_GUEST - PER_GUEST_RESIDENT_LINEAR))
PER_GUEST_BEYOND_SIZE=$((PER_GUEST - GUEST_LINEAR))
stop_last                  # the node
stop_last                  # the endpoint daemon

echo "wasmtime, $GUESTS instances..." >&2
WASMTIME=$("$PYTHON" - "$ROOT/Guests/echo.wasm" "$GUESTS" "$WORK/rss.py" <<'PY'
import os, subprocess, sys, wasmtime
path, n, rss_py = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rss(*flags):
    return int(subprocess.check_output([sys.executable, rss_py, *flags, str(os.getpid())]).split()[0])
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
module = wasmtime.Module.from_file(engine, path)
linker = wasmtime.Linker(engine)
linker.define_unknown_imports_as_traps(module)   # the ferry and WASI imports: never called here
instances = [linker.instantiate(store, module)]   # warm-up
before, linear_before = rss(), rss("--linear", "0")
instances += [linker.instantiate(store, module) for _ in range(n)]
after, linear_after = rss(), rss("--linear", "0")
memory = instances[-1].exports(store)["memory"]
print((after - before) // n, memory.data_len(store), (linear_after - linear_before) // n)
PY
)
read -r WT_PER WT_LINEAR WT_RESIDENT_LINEAR <<<"$WASMTIME"
WT_BEYOND=$((WT_PER - WT_RESIDENT_LINEAR))
WT_BEYOND_SIZE=$((WT_PER - WT_LINEAR))

# ---------------------------------------------------------------------------------------------
# (d) per connection.
# per_connection NAME PORT PID... : sets PER[NAME] (bytes a connection) and HELD[NAME].
declare -A PER HELD BEFORE AFTER
per_connection() {
    local name=$1 port=$2 out="$WORK/hold-$1.out" client held before after open
    shift 2
    echo "$name: $CONNECTIONS idle keep-alive connections..." >&2
    python3 "$WORK/hold.py" 127.0.0.1 "$port" 100 >/dev/null     # warm-up, closed at once
    sleep "$SETTLE"
    before=$(rss "$@")
    python3 "$WORK/hold.py" 127.0.0.1 "$port" "$CONNECTIONS" hold >"$out" 2>&1 &
    client=$!
    for _ in $(seq 1200); do grep -q '^held' "$out" 2>/dev/null && break; sleep 0.1; done
    sleep "$SETTLE"
    held=$(ss -tnH state established "( dport = :$port )" | wc -l)
    after=$(rss "$@")
    kill -USR1 "$client"
    sleep 0.3
    open=$(sed -n 's/^open //p' "$out" | tail -1)
    kill "$client"
    wait "$client" 2>/dev/null || true
    echo "  $(head -1 "$out"); established at measuring: ss $held, client ${open:-?}; RSS $(mib "$before") -> $(mib "$after") MiB" >&2
    if [ "$held" -lt "$CONNECTIONS" ]; then echo "  warning: only $held of $CONNECTIONS connections held" >&2; fi
    PER[$name]=$(((after - before) / (held > 0 ? held : 1)))
    HELD[$name]=$held
    BEFORE[$name]=$before
    AFTER[$name]=$after
    sleep 1
}

# per_ferry_connection NAME FERRY_ARGS... : starts `ferry FERRY_ARGS`, measures it as NAME, stops it.
per_ferry_connection() {
    local name=$1
    shift
    "$FERRY" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!
    PIDS+=($pid)
    per_connection "$name" "$(listening_address "$WORK/$name.out" | sed 's/.*://')" "$pid"
    stop_last
}

per_ferry_connection files serve files --root "$WORK/www" --port 0 --idle-timeout 600 --header-timeout 60

"$BENCH" bare-nio --port 0 >"$WORK/bare-nio.out" 2>"$WORK/bare-nio.err" &
PIDS+=($!)
per_connection bare-nio "$(listening_address "$WORK/bare-nio.out" | sed 's/.*://')" "$!"
stop_last

# nginx, as lib.sh's start_nginx but with room for every connection and long keep-alive.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
worker_rlimit_nofile $(ulimit -n);
user root;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections $((CONNECTIONS + 2000)); }
http {
    access_log off;
    sendfile on;
    keepalive_timeout 600s;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" &
NGINX=$!
PIDS+=($NGINX)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/1k.bin" && break; sleep 0.05; done
per_connection nginx "$NGINX_PORT" "$NGINX"

# The switch and HAProxy, each in front of that nginx.
per_ferry_connection switch switch --mode l7 --listen 127.0.0.1:0 --backend "127.0.0.1:$NGINX_PORT" \
    --idle-timeout 600 --header-timeout 60 --max-connections-per-source 0

HAPROXY_PORT=$(free_port)
cat >"$WORK/haproxy.cfg" <<CONF
global
    nbthread $(nproc)
    maxconn $((CONNECTIONS + 500))
    # It asks for two descriptors a connection and refuses to start short of them; here the
    # backend side holds a few, so the hard limit is room enough.
    no strict-limits
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
    timeout http-request 60s
frontend front
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend files
backend files
    http-reuse always
    server nginx 127.0.0.1:$NGINX_PORT
CONF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY=$!
PIDS+=($HAPROXY)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$HAPROXY_PORT/1k.bin" && break; sleep 0.05; done
per_connection haproxy "$HAPROXY_PORT" "$HAPROXY"
stop_last
stop_last                  # nginx

# ---------------------------------------------------------------------------------------------
# (e) per active object: OBJECTS objects on one server, OBJECTS calls to one object on another.
# objects_growth MODE : sets GROWTH[MODE], the RSS growth of a fresh `ferry serve objects` over
# OBJECTS calls of wire.py MODE.
declare -A GROWTH
objects_growth() {
    local out="$WORK/objects-$1.out" pid address before after
    "$FERRY" serve objects --db "$WORK/objects-$1.sqlite" >"$out" 2>"$WORK/objects-$1.err" &
    pid=$!
    PIDS+=($pid)
    address=$(listening_address "$out")
    "$FERRY" call --node "$address" counter/warm increment '[1]' >/dev/null
    sleep "$SETTLE"
    before=$(rss "$pid")
    python3 "$WORK/wire.py" "$1" "$address" "$OBJECTS" >"$WORK/wire-$1.out"
    sleep "$SETTLE"
    after=$(rss "$pid")
    echo "  $1: $(cat "$WORK/wire-$1.out"); RSS $(mib "$before") -> $(mib "$after") MiB" >&2
    # `ferry serve objects` deactivates an object idle for 60 s.
    if python3 -c "import sys; sys.exit(float(sys.argv[1]) + $SETTLE < 55)" "$(sed -n 's/.* seconds \([0-9.]*\).*/\1/p' "$WORK/wire-$1.out")"; then
        echo "  warning: the calls took so long that the first objects may have been deactivated before measuring" >&2
    fi
    stop_last
    GROWTH[$1]=$((after - before))
}
echo "objects: $OBJECTS active objects, and $OBJECTS calls to one..." >&2
objects_growth objects
objects_growth one
OBJECTS_GROWTH=${GROWTH[objects]}
CALLS_GROWTH=${GROWTH[one]}
OBJECT_CALLS_OK=$(awk '{print $2}' "$WORK/wire-objects.out")
PER_OBJECT=$(((OBJECTS_GROWTH - CALLS_GROWTH) / OBJECTS))
PER_OBJECT_RAW=$((OBJECTS_GROWTH / OBJECTS))

# ---------------------------------------------------------------------------------------------
kib() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1024:.1f} KiB')" "$1"; }
met() { if [ "$1" -le "$2" ]; then echo met; else echo missed; fi; }
echo
echo "Memory: resident (VmRSS), $(nproc) cores; nginx $(nginx -v 2>&1 | sed 's/.*\///'), HAProxy $(haproxy -v | head -1 | awk '{print $3}'), wasmtime $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("wasmtime"))') (PyPI)"
echo
printf '%-44s %14s %22s %18s %7s\n' item ferry anchor goal met?
printf '%-44s %14s %22s %18s %7s\n' -------------------------------------------- -------------- ---------------------- ------------------ -------
printf '%-44s %14s %22s %18s %7s\n' "idle ferry up ($UP_PROCESSES processes)" "$(mib "$UP_RSS") MiB" "-" "-" "-"
printf '%-44s %14s %22s %18s %7s\n' "idle ferry node" "$(mib "$NODE_RSS") MiB" "-" "<= 40 MiB" "$(met "$NODE_RSS" $((40 << 20)))"
printf '%-44s %14s %22s %18s %7s\n' "idle ferry node in ferry up (the largest)" "$(mib "$UP_NODE_MAX") MiB" "-" "<= 40 MiB" "$(met "$UP_NODE_MAX" $((40 << 20)))"
printf '%-44s %14s %22s %18s %7s\n' "per idle connection, file server" "${PER[files]} B" "nginx ${PER[nginx]} B" "<= nginx" "$(met "${PER[files]}" "${PER[nginx]}")"
printf '%-44s %14s %22s %18s %7s\n' "  bare SwiftNIO server, for scale" "${PER[bare-nio]} B" "-" "-" "-"
printf '%-44s %14s %22s %18s %7s\n' "per idle connection, switch (l7)" "${PER[switch]} B" "HAProxy ${PER[haproxy]} B" "<= HAProxy" "$(met "${PER[switch]}" "${PER[haproxy]}")"
printf '%-44s %14s %22s %18s %7s\n' "per idle guest, beyond resident linear memory" "$(kib "$PER_GUEST_BEYOND")" "wasmtime $(kib "$WT_BEYOND")" "<= 64 KiB" "$(met "$PER_GUEST_BEYOND" 65536)"
printf '%-44s %14s %22s %18s %7s\n' "per idle guest, beyond linear memory's size" "$(kib "$PER_GUEST_BEYOND_SIZE")" "wasmtime $(kib "$WT_BEYOND_SIZE")" "<= 64 KiB" "$(met "$PER_GUEST_BEYOND_SIZE" 65536)"
printf '%-44s %14s %22s %18s %7s\n' "per idle active object" "$PER_OBJECT B" "-" "<= 2 KiB" "$(met "$PER_OBJECT" 2048)"
echo
echo "ferry up: $(mib "$UP_RSS") MiB over $UP_PROCESSES processes, MiB: $UP_EACH"
echo "connections held when measured (ss, established): files ${HELD[files]}, nginx ${HELD[nginx]}, switch ${HELD[switch]}, HAProxy ${HELD[haproxy]} of $CONNECTIONS;"
echo "  RSS before -> holding, MiB: files $(mib "${BEFORE[files]}") -> $(mib "${AFTER[files]}"), nginx (master + $(nproc) workers) $(mib "${BEFORE[nginx]}") -> $(mib "${AFTER[nginx]}"),"
echo "  switch $(mib "${BEFORE[switch]}") -> $(mib "${AFTER[switch]}"), HAProxy $(mib "${BEFORE[haproxy]}") -> $(mib "${AFTER[haproxy]}") (each after a warm-up of 100 connections)"
echo "guests: $SPAWNED; ferry ps: $PARKED; node threads $GUEST_THREADS"
echo "  node RSS $(mib "$GUEST_BEFORE") -> $(mib "$GUEST_AFTER") MiB: $(kib "$PER_GUEST") a guest; its linear memory $(kib "$GUEST_LINEAR") (ferry ps;"
echo "  the module declares $GUEST_PAGES pages), $(kib "$PER_GUEST_RESIDENT_LINEAR") of it resident (smaps: $GUEST_MAPPINGS mappings of its size)"
echo "  wasmtime: $(kib "$WT_PER") an instance; its linear memory $(kib "$WT_LINEAR"), $(kib "$WT_RESIDENT_LINEAR") of it resident"
echo "objects: $OBJECT_CALLS_OK objects activated: $PER_OBJECT_RAW B each with their calls' trace; $OBJECTS calls to one object: $((CALLS_GROWTH / OBJECTS)) B each (subtracted)"

# The chart shows what each unit held costs (whole processes, tens of MiB, would flatten those
# bars to nothing: they are in the table).
{
    printf 'item\tferry\tanchor\n'
    printf 'file server, a connection\t%s\t%s\n' "${PER[files]}" "${PER[nginx]}"
    printf 'switch, a connection\t%s\t%s\n' "${PER[switch]}" "${PER[haproxy]}"
    printf 'node, a guest\t%s\t%s\n' "$PER_GUEST_BEYOND" "$WT_BEYOND"
    printf 'objects, an object\t%s\t-\n' "$PER_OBJECT"
} >"$WORK/rows.tsv"
python3 "$(dirname "$0")/chart.py" --title "Resident memory per idle unit held: Ferry beside nginx, HAProxy and Wasmtime" \
    --unit "bytes (a guest's beyond its resident linear memory)" --lower-is-better "$(dirname "$0")/memory.svg" <"$WORK/rows.tsv"
