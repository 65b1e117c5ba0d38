#!/usr/bin/env bash
# Ferry's CDN side by side with the tools operators use, in one run:
#  1. DNS answers per second (dnsperf, every query with an EDNS Client Subnet): ferry redirector
#     (answers chosen by policy) against dnsmasq serving the same name statically and PowerDNS
#     with a LUA record (coverage by netmask, health by ifportup).
#  2. An edge's hot-object throughput (wrk -t2 -c64, 1 KiB and 64 KiB): ferry edge against nginx
#     proxy_cache and Varnish, each in front of the same nginx origin.
#  3. Clients in three regions fetching a Zipf-distributed object set through the HTTP
#     redirector: median and p99 latency and origin requests, against fetching from the origin;
#     hit ratio per edge with consistent hashing (HTTP, path known) and without (DNS answers).
#  4. Failover: kill -9 an edge under load; time until DNS and HTTP stop sending clients to it.
# Regions stand on loopback addresses (127.0.1.0/24, 127.0.2.0/24, 127.0.3.0/24). This kernel has
# no netem, so in part 3 the wide area's latency is added in user space: the origin sits behind a
# delay relay (ORIGIN_RTT ms, default 100), and the load generator waits out each client round trip
# (4 ms within a region, 40-90 ms between regions). Writes cdn.svg beside itself.
#
# Usage: Benchmarks/cdn.sh      (DURATION=8)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-8}

require nginx wrk dnsperf dnsmasq:dnsmasq-base pdns_server:pdns-server varnishd:varnish dig:dnsutils
[ -f /usr/lib/x86_64-linux-gnu/pdns/libbindbackend.so ] || apt_install pdns-backend-bind

build_release ferry
FERRY="$ROOT/.build/release/ferry"
make_workdir cdn-bench
chmod 755 "$WORK" # Varnish's worker drops to its own user
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 65536 /dev/urandom >"$WORK/www/64k.bin"
python3 - "$WORK/www" <<'PY'
import os, random, sys
random.seed(7)
os.makedirs(f"{sys.argv[1]}/z", exist_ok=True)
for i in range(2000):
    open(f"{sys.argv[1]}/z/{i}.bin", "wb").write(os.urandom(random.randint(1024, 32768)))
PY

# The origin (nginx, an hour of freshness) and nginx's own caching proxy in front of it. The cache
# turns tcp_nopush off: with it on (lib.sh's default for serving files), every 64 KiB hit from the
# cache stalls 40 ms on a delayed ACK here (1.5k req/s instead of 39k).
ORIGIN_PORT=$(free_port)
PROXY_CACHE_PORT=$(free_port)
mkdir -p "$WORK/nginx-cache"
EXTRA_NGINX_SERVERS="upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    proxy_cache_path $WORK/nginx-cache keys_zone=edge:10m max_size=256m;
    server { listen 127.0.0.1:$ORIGIN_PORT; root $WORK/www; expires 1h; }
    server { listen 127.0.0.1:$PROXY_CACHE_PORT; tcp_nopush off; location / { proxy_pass http://origin; proxy_http_version 1.1;
        proxy_set_header Connection \"\"; proxy_cache edge; } }"
start_nginx
ORIGIN="127.0.0.1:$ORIGIN_PORT"

VARNISH_PORT=$(free_port)
varnishd -F -a "127.0.0.1:$VARNISH_PORT" -b "$ORIGIN" -s malloc,256m -n "$WORK/varnish" \
    >"$WORK/varnish.log" 2>&1 &
PIDS+=($!)

# The origin stands far away: a delay relay in front of it holds every chunk, each way, for half
# of ORIGIN_RTT (user space: this kernel has no netem). Edges and far clients reach it through the
# relay (Benchmarks/delay-relay.py); the relay delays data, not the TCP handshake.
ORIGIN_RTT=${ORIGIN_RTT:-100}
RELAY_PORT=$(free_port)
python3 "$ROOT/Benchmarks/delay-relay.py" "$RELAY_PORT" 127.0.0.1 "$ORIGIN_PORT" "$ORIGIN_RTT" \
    >"$WORK/relay.log" 2>&1 &
PIDS+=($!)
FAR_ORIGIN="127.0.0.1:$RELAY_PORT"
for _ in $(seq 100); do curl -sf -o /dev/null "http://$FAR_ORIGIN/1k.bin" && break; sleep 0.05; done

# Six ferry edges, two per region, on their own loopback addresses and one port, each in front of
# the far origin.
EDGE_PORT=$(free_port)
declare -A EDGE_REGION=([e1]=east [e2]=east [e3]=west [e4]=west [e5]=north [e6]=north)
declare -A EDGE_ADDRESS=([e1]=127.0.0.11 [e2]=127.0.0.12 [e3]=127.0.0.13 [e4]=127.0.0.14 [e5]=127.0.0.15 [e6]=127.0.0.16)
declare -A EDGE_PID
for edge in e1 e2 e3 e4 e5 e6; do
    "$FERRY" edge --origin "http://$FAR_ORIGIN" --host "${EDGE_ADDRESS[$edge]}" --port "$EDGE_PORT" --name "$edge" \
        --region "${EDGE_REGION[$edge]}" --control "$WORK/$edge.sock" >"$WORK/$edge.out" 2>"$WORK/$edge.err" &
    PIDS+=($!)
    EDGE_PID[$edge]=$!
    listening_address "$WORK/$edge.out" >/dev/null
done
FERRY_EDGE="127.0.0.11:$EDGE_PORT"

cat >"$WORK/redirector.yaml" <<YAML
zone: cdn.test
origin: http://$FAR_ORIGIN
ttl: 5
check_interval: 1
regions:
  east: {networks: [127.0.1.0/24, 10.1.0.0/16]}
  west: {networks: [127.0.2.0/24, 10.2.0.0/16]}
  north: {networks: [127.0.3.0/24, 10.3.0.0/16]}
distances: {east: {west: 70, north: 40}, west: {north: 90}}
edges:
$(for edge in e1 e2 e3 e4 e5 e6; do echo "  - {name: $edge, region: ${EDGE_REGION[$edge]}, address: ${EDGE_ADDRESS[$edge]}:$EDGE_PORT, capacity: 100000}"; done)
YAML
"$FERRY" redirector --config "$WORK/redirector.yaml" >"$WORK/redirector.out" 2>"$WORK/redirector.err" &
PIDS+=($!)
REDIRECTOR=$(listening_address "$WORK/redirector.out")
for _ in $(seq 100); do grep -q '^dns on' "$WORK/redirector.out" && break; sleep 0.05; done
FERRY_DNS=$(sed -n 's/^dns on //p' "$WORK/redirector.out")

# dnsmasq: the same name, static.
DNSMASQ_PORT=$(free_port)
dnsmasq --no-daemon --port="$DNSMASQ_PORT" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --host-record=www.cdn.test,127.0.0.11 --pid-file="$WORK/dnsmasq.pid" >"$WORK/dnsmasq.log" 2>&1 &
PIDS+=($!)

# PowerDNS: a LUA record choosing by client network (ECS honoured) among edges that are up.
PDNS_PORT=$(free_port)
cat >"$WORK/cdn.test.zone" <<ZONE
\$ORIGIN cdn.test.
@ 5 IN SOA ns.cdn.test. hostmaster.cdn.test. 1 3600 600 86400 5
@ 5 IN NS ns.cdn.test.
www 5 IN LUA A ";if netmask({'127.0.2.0/24','10.2.0.0/16'}) then return ifportup($EDGE_PORT, {'127.0.0.13','127.0.0.14'}) elseif netmask({'127.0.3.0/24','10.3.0.0/16'}) then return ifportup($EDGE_PORT, {'127.0.0.15','127.0.0.16'}) else return ifportup($EDGE_PORT, {'127.0.0.11','127.0.0.12'}) end"
ZONE
echo "zone \"cdn.test\" { type master; file \"$WORK/cdn.test.zone\"; };" >"$WORK/named.conf"
pdns_server --daemon=no --guardian=no --disable-syslog --write-pid=no --socket-dir="$WORK" --config-dir="$WORK" \
    --launch=bind --bind-config="$WORK/named.conf" --enable-lua-records=yes --edns-subnet-processing=yes \
    --local-address=127.0.0.1 --local-port="$PDNS_PORT" >"$WORK/pdns.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 100); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$PDNS_PORT" www.cdn.test | grep -q . && break
    sleep 0.1
done

echo "www.cdn.test A" >"$WORK/queries.txt"
# dnsperf_rate HOST:PORT : answers per second for the query file, each with ECS 10.1.2.0/24.
dnsperf_rate() {
    local out
    out=$(dnsperf -s "${1%:*}" -p "${1##*:}" -d "$WORK/queries.txt" -l "$DURATION" -c 4 -T 2 -q 200 \
        -E 8:000118000a0102 2>&1)
    echo "$out" >>"$WORK/../ferry-bench-dnsperf.log"
    awk '/Queries per second:/ {print $4}' <<<"$out"
}

echo "== 1. DNS answers per second (dnsperf -c 4 -T 2, ECS 10.1.2.0/24) ==" >&2
declare -A DNS
DNS[ferry]=$(dnsperf_rate "$FERRY_DNS")
DNS[dnsmasq]=$(dnsperf_rate "127.0.0.1:$DNSMASQ_PORT")
DNS[pdns-lua]=$(dnsperf_rate "127.0.0.1:$PDNS_PORT")
printf '%-22s | %12s\n' "server" "answers/s"
for name in ferry dnsmasq pdns-lua; do printf '%-22s | %12s\n' "$name" "${DNS[$name]}"; done
echo "ferry / dnsmasq: $(ratio "${DNS[ferry]}" "${DNS[dnsmasq]}") (goal: at least 1.0x); ferry / powerdns lua: $(ratio "${DNS[ferry]}" "${DNS[pdns-lua]}") (goal: at least 3x)"
echo "answers: ferry $(dig +short @127.0.0.1 -p "${FERRY_DNS##*:}" www.cdn.test +subnet=10.2.0.0/16), powerdns $(dig +short @127.0.0.1 -p "$PDNS_PORT" www.cdn.test +subnet=10.2.0.0/16) for a client in 10.2.0.0/16"
echo

echo "== 2. Hot objects through an edge (wrk -t2 -c64, ${DURATION}s) ==" >&2
declare -A TARGETS=([ferry-edge]="$FERRY_EDGE" [nginx-proxy_cache]="127.0.0.1:$PROXY_CACHE_PORT"
    [varnish]="127.0.0.1:$VARNISH_PORT" [origin]="$ORIGIN")
ORDER=(origin ferry-edge nginx-proxy_cache varnish)
for name in "${ORDER[@]}"; do
    for size in 1k 64k; do curl -sf -o /dev/null "http://${TARGETS[$name]}/$size.bin"; done
done
declare -A RATE
for size in 1k 64k; do
    for name in "${ORDER[@]}"; do
        echo "$name, $size..." >&2
        RATE[$name.$size]=$(wrk_rate -t2 -c64 -d"${DURATION}s" "http://${TARGETS[$name]}/$size.bin")
    done
done
printf '%-18s | %12s | %12s\n' "edge" "1KiB req/s" "64KiB req/s"
for name in "${ORDER[@]}"; do printf '%-18s | %12s | %12s\n' "$name" "${RATE[$name.1k]}" "${RATE[$name.64k]}"; done
best() { python3 -c "import sys; print(max(float(a) for a in sys.argv[1:]))" "$@"; }
echo "ferry edge / best of nginx proxy_cache and varnish: 1KiB $(ratio "${RATE[ferry-edge.1k]}" "$(best "${RATE[nginx-proxy_cache.1k]}" "${RATE[varnish.1k]}")"), 64KiB $(ratio "${RATE[ferry-edge.64k]}" "$(best "${RATE[nginx-proxy_cache.64k]}" "${RATE[varnish.64k]}")") (goal: at least 1.0x)"
echo

echo "== 3. Zipf clients in three regions ==" >&2
python3 - "$REDIRECTOR" "$FAR_ORIGIN" "$FERRY_DNS" "$WORK" "$(dirname "$0")/cdn.svg" "$FERRY" "$ORIGIN_RTT" \
    $(for edge in e1 e2 e3 e4 e5 e6; do echo "${EDGE_ADDRESS[$edge]},${EDGE_REGION[$edge]}"; done) <<'PY'
import http.client, json, random, socket, statistics, subprocess, sys, threading, time, struct
redirector, origin, dns, work, svg_path, ferry, origin_rtt = sys.argv[1:8]
origin_rtt = float(origin_rtt)
edge_region = dict(pair.split(",") for pair in sys.argv[8:])
edges = list(edge_region)
regions = {"east": "127.0.1.", "west": "127.0.2.", "north": "127.0.3."}
objects, requests_per_client, clients_per_region = 2000, 300, 3
weights = [1 / (rank + 1) ** 0.9 for rank in range(objects)]
# Round trips in ms between regions (the redirector's distance table; 4 ms within a region). The
# load generator waits them out per round trip: a new connection costs two (handshake, request),
# a DNS query one. The redirector stands in east. The origin's are added by the delay relay.
RTT = {("east", "west"): 70, ("east", "north"): 40, ("west", "north"): 90}
def rtt(a, b):
    return 4 if a == b else RTT.get((a, b), RTT.get((b, a)))
def wait(ms):
    time.sleep(ms / 1000)
print(f"latency added in user space (no netem here): client round trips by the load generator, "
      f"4 ms within a region, 40-90 ms between; the origin {origin_rtt:.0f} ms away behind a delay relay")

def fetch(host, port, path, source):
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response

def dns_answer(source, name="www.cdn.test"):
    query = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0)); s.settimeout(2)
    host, port = dns.split(":")
    s.sendto(query, (host, int(port)))
    answer = s.recv(512); s.close()
    return socket.inet_ntoa(answer[-4:])

def run(mode):
    latencies, lock = [], threading.Lock()
    def client(region, index):
        rng = random.Random(f"{region}{index}")
        source = regions[region] + str(10 + index)
        mine = []
        resolved, resolved_until = None, 0.0  # the client's resolver cache (TTL 5 s)
        for _ in range(requests_per_client):
            path = f"/z/{rng.choices(range(objects), weights)[0]}.bin"
            start = time.perf_counter()
            if mode == "origin":
                wait(origin_rtt)  # the handshake; the relay delays the request and answer
                fetch(*origin.split(":"), path, source)
            elif mode == "http":
                wait(2 * rtt(region, "east"))
                location = fetch(*redirector.split(":"), path, source).getheader("Location")
                hostport = location.split("/")[2]
                wait(2 * rtt(region, edge_region.get(hostport.split(":")[0], "east")))
                fetch(*hostport.split(":"), path, source)
            else:  # dns: the address the redirector answers (no path known), on the edges' port
                if time.perf_counter() >= resolved_until:
                    wait(rtt(region, "east"))
                    resolved, resolved_until = dns_answer(source), time.perf_counter() + 5
                wait(2 * rtt(region, edge_region.get(resolved, "east")))
                fetch(resolved, edges_port, path, source)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
    threads = [threading.Thread(target=client, args=(r, i)) for r in regions for i in range(clients_per_region)]
    for t in threads: t.start()
    for t in threads: t.join()
    return latencies

def stats_of(address):
    conn = http.client.HTTPConnection(address, timeout=5)
    conn.request("GET", "/.ferry/status")
    return json.loads(conn.getresponse().read())

edges_port = int(open(f"{work}/e1.out").readline().split(":")[-1])
results = {}
for mode in ["origin", "http", "dns"]:
    # Each way starts from cold edges.
    for i in range(1, 7):
        subprocess.run([ferry, "edge", "purge", "--control", f"{work}/e{i}.sock", "--prefix", "/z/"],
                       check=True, stdout=subprocess.DEVNULL)
    snapshot = {e: stats_of(f"{e}:{edges_port}") for e in edges}
    latencies = run(mode)
    after = {e: stats_of(f"{e}:{edges_port}") for e in edges}
    origin_requests = sum(after[e]["origin_requests"] - snapshot[e]["origin_requests"] for e in edges)
    per_edge = {}
    for e in edges:
        hits = after[e]["hits"] - snapshot[e]["hits"] + after[e]["stale"] - snapshot[e]["stale"]
        misses = after[e]["misses"] - snapshot[e]["misses"]
        per_edge[after[e]["name"]] = (hits, misses)
    latencies.sort()
    results[mode] = (statistics.median(latencies), latencies[int(len(latencies) * 0.99)], origin_requests, per_edge, len(latencies))

print(f"{'clients fetch':<28} | {'median ms':>9} | {'p99 ms':>8} | {'origin requests':>15} | requests")
for mode, label in [("origin", "from the origin"), ("http", "via HTTP redirect (hashed)"), ("dns", "via DNS answer (no path)")]:
    median, p99, origin_requests, _, count = results[mode]
    shown = count if mode == "origin" else origin_requests
    print(f"{label:<28} | {median*1000:9.2f} | {p99*1000:8.2f} | {shown:>15} | {count}")
for mode in ["http", "dns"]:
    per_edge = results[mode][3]
    cells = ", ".join(f"{name} {h/(h+m):.2f}" if h + m else f"{name} -" for name, (h, m) in sorted(per_edge.items()))
    print(f"hit ratio per edge, {mode:<4}: {cells}")

# The chart: median and p99 per way of fetching.
labels = ["origin", "HTTP redirect", "DNS answer"]
medians = [results[m][0] * 1000 for m in ["origin", "http", "dns"]]
p99s = [results[m][1] * 1000 for m in ["origin", "http", "dns"]]
top = max(p99s) * 1.15 or 1
width, height, left, bottom = 520, 300, 60, 250
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="{width/2}" y="18" text-anchor="middle">Zipf clients in three regions: latency (ms)</text>']
for i, label in enumerate(labels):
    x = left + 30 + i * 150
    for j, (value, colour) in enumerate([(medians[i], "#4a7ab5"), (p99s[i], "#d9822b")]):
        h = value / top * (bottom - 40)
        parts.append(f'<rect x="{x + j*45}" y="{bottom - h}" width="40" height="{h}" fill="{colour}"/>')
        parts.append(f'<text x="{x + j*45 + 20}" y="{bottom - h - 4}" text-anchor="middle">{value:.2f}</text>')
    parts.append(f'<text x="{x + 42}" y="{bottom + 16}" text-anchor="middle">{label}</text>')
parts.append(f'<text x="{left}" y="{bottom + 40}" fill="#4a7ab5">median</text><text x="{left + 70}" y="{bottom + 40}" fill="#d9822b">p99</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
echo

echo "== 4. Failover: kill -9 e1 under load ==" >&2
python3 - "$REDIRECTOR" "$FERRY_DNS" "${EDGE_ADDRESS[e1]}" "${EDGE_PID[e1]}" <<'PY'
import http.client, os, signal, socket, struct, sys, threading, time
redirector, dns, dead, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def dns_answer():
    query = struct.pack(">HHHHHH", 2, 0x0100, 1, 0, 0, 0) + b"\3www\3cdn\4test\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.1.20", 0)); s.settimeout(2)
    host, port = dns.split(":"); s.sendto(query, (host, int(port)))
    answer = s.recv(512); s.close()
    return socket.inet_ntoa(answer[-4:])
def http_location(path):
    conn = http.client.HTTPConnection(*redirector.split(":"), timeout=5, source_address=("127.0.1.20", 0))
    conn.request("GET", path); location = conn.getresponse().getheader("Location"); conn.close()
    return location
failed, done = [0], [False]
def client():
    # HTTP-redirected clients that retry once through the redirector when an edge fails them.
    i = 0
    while not done[0]:
        i += 1
        for attempt in range(2):
            try:
                hostport = http_location(f"/z/{i % 50}.bin").split("/")[2]
                conn = http.client.HTTPConnection(hostport, timeout=5); conn.request("GET", f"/z/{i % 50}.bin")
                conn.getresponse().read(); conn.close()
                break
            except OSError:
                if attempt == 1: failed[0] += 1
# A path the redirector sends to e1 (paths are hashed over the region's edges).
probe = next(f"/z/{i}.bin" for i in range(1000) if dead in http_location(f"/z/{i}.bin"))
threads = [threading.Thread(target=client) for _ in range(4)]
for t in threads: t.start()
time.sleep(1)
killed = time.monotonic()
os.kill(pid, signal.SIGKILL)
dns_gone = http_gone = None
while dns_gone is None or http_gone is None:
    now = time.monotonic() - killed
    if dns_gone is None and dns_answer() != dead: dns_gone = now
    if http_gone is None and dead not in http_location(probe): http_gone = now
    time.sleep(0.001)
time.sleep(1)
done[0] = True
for t in threads: t.join()
print(f"after kill -9 of e1 ({dead}): DNS stops answering it after {dns_gone*1000:.0f} ms (+ TTL 5 s in resolvers' caches), HTTP after {http_gone*1000:.0f} ms; check interval 1 s (goal: <= 1 interval + TTL)")
print(f"HTTP-redirected clients that retried once: {failed[0]} failed requests (goal: 0)")
PY
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(varnish-[^ ]*\).*/\1/'), dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}'), PowerDNS $(pdns_server --version 2>&1 | awk '/Authoritative/ {print $6; exit}'), $(nproc) cores, load generators on the same machine"
