#!/usr/bin/env bash
# Noisy neighbours: how well each kind of isolation shields a victim from another tenant on the
# same machine (the seed's "VMs versus containers", Felter et al. 2015, and the noisy-neighbour
# literature). Two victims, each measured alone first, then beside each neighbour:
#   files    ferry serve files (its default event-driven model) under wrk -t1 -c16 --latency on a
#            1 KiB file: requests/s and p99 latency
#   sha256   sha256sum over a 64 MiB file in the page cache, again and again: MiB/s
# The neighbours, each started SETTLE s before the victim's measurement and killed after it; the
# same busybox sh program (the static busybox of Examples/rootfs.sh) in the plain and the
# container column:
#   cpu      two busy shell loops, one per core
#   membw    two `dd if=/dev/zero of=/dev/null bs=32M`: the kernel zeroes a 32 MiB buffer (far
#            beyond the L3) on every read, so each streams writes to memory
#   fork     a fork bomb that keeps forking: every shell forks two more and waits for them
#   mem      a memory bomb: two `tail /dev/zero` (a line that never ends), restarted when killed
#   disk     `dd bs=1M count=64 oflag=direct` to a host folder, over and over
# Each neighbour runs as
#   plain      a process with no limits. Safety nets for shared machines: its processes sit in a
#              pids cgroup of PLAIN_PIDS_MAX (default 1024; `max` lifts it), so the fork bomb
#              cannot take every pid of the machine (and is frozen to be killed), and
#              oom_score_adj is 1000, so a machine-wide OOM kill takes the bomb first
#   container  ferry container run --init --cpus CPUS --cpu-shares CPU_SHARES --memory MEMORY
#              --pids PIDS_LIMIT (0.5, 2, 128M, 64): a quota, and the lowest weight, as a batch
#              tenant is run beside a service (it yields the CPU whenever the victim wants it)
#   guest      ferry guest run with its limits: --max-memory MEMORY, --deadline of the window
#              (SETTLE + DURATION) and a second, and --fuel worth CPUS of one core over the window
#              (calibrated on Guests/spin.wasm at start; GUEST_FUEL=N sets it). Fuel is a budget,
#              not a rate: the guest spends it at full speed and then stops. The CPU hog is
#              Guests/spin.wasm, the memory-bandwidth hog Guests/writer.wasm (a word into every
#              4 KiB page of 64 MiB, as fast as the interpreter goes), the memory bomb
#              Guests/membomb.wasm. One guest is one single-threaded process. A guest cannot fork,
#              and no example guest writes a file in bulk: those cells are n/a.
# Prints, per victim, the victim's throughput beside each neighbour as a fraction of alone (the
# file server also its p99 against alone); goal: with container and guest at least 0.90 against
# every neighbour, and the machine stays up. Writes interference.svg beside itself, a heat map.
# Nothing is pinned to a core. Runs as root.
#
# Usage: Benchmarks/interference.sh      (DURATION=5 SETTLE=0.5 NO_BUILD=1
#        ONLY=cpu,membw,fork,mem,disk KINDS=plain,container,guest VICTIMS=files,sha256
#        CPUS=0.5 CPU_SHARES=2 MEMORY=128M PIDS_LIMIT=64 PLAIN_PIDS_MAX=1024 GUEST_FUEL=...)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5}
SETTLE=${SETTLE:-0.5}
ONLY=${ONLY:-cpu,membw,fork,mem,disk}
KINDS=${KINDS:-plain,container,guest}
VICTIMS=${VICTIMS:-files,sha256}
CPUS=${CPUS:-0.5}
CPU_SHARES=${CPU_SHARES:-2}
MEMORY=${MEMORY:-128M}
PIDS_LIMIT=${PIDS_LIMIT:-64} # not PIDS: lib.sh keeps its processes there
PLAIN_PIDS_MAX=${PLAIN_PIDS_MAX:-1024}

if [ "$(id -u)" -ne 0 ]; then
    echo "interference.sh: run it as root (containers make namespaces, mounts and cgroups; the plain" \
        "neighbours go into a pids cgroup)" >&2
    exit 1
fi
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "interference.sh: DURATION is whole seconds, got $DURATION" >&2; exit 1; }
require wrk python3 sha256sum:coreutils

[ -n "${NO_BUILD:-}" ] || build_release ferry
FERRY="$ROOT/.build/release/ferry"
GUESTS="$ROOT/Guests"
make_workdir interference-bench
NB_KIND= NB_PID= NB_NAME= PLAIN_CG= PLAIN_FREEZER=
CELL=0
trap on_exit EXIT

# ---------------------------------------------------------------------------------------------
# The neighbours. The same program for plain and container: busybox sh, with busybox's applets
# called by name. DATA is a host folder (bound at /data in a container).
declare -A PROGRAM=(
    [cpu]='spin() { while :; do :; done; }; spin & spin'
    [membw]='stream() { busybox dd if=/dev/zero of=/dev/null bs=32M 2>/dev/null; }; stream & stream'
    [fork]='f() { while :; do f & f & wait; done; }; f 2>/dev/null & exec busybox sleep 1000000'
    [mem]='bomb() { while :; do busybox tail /dev/zero; done; }; bomb 2>/dev/null & bomb 2>/dev/null'
    [disk]='while :; do busybox dd if=/dev/zero of="$DATA/disk.bin" bs=1M count=64 oflag=direct 2>/dev/null; done'
)
declare -A LABEL=(
    [cpu]="CPU hog" [membw]="memory bandwidth" [fork]="fork bomb" [mem]="memory bomb" [disk]="disk writer"
)
# The guest for each neighbour (module and arguments), or "n/a: REASON".
declare -A GUEST=(
    [cpu]="$GUESTS/spin.wasm --invoke spin"
    [membw]="$GUESTS/writer.wasm 64 0"
    [fork]="n/a: a guest cannot fork (WASI has no fork; one ferry guest run is one process)"
    [mem]="$GUESTS/membomb.wasm --invoke bomb 1000000"
    [disk]="n/a: no disk-writing guest (no example guest writes a file in bulk: files.wasm writes its arguments' text)"
)
IFS=, read -ra NEIGHBOURS <<<"$ONLY"
IFS=, read -ra KIND_LIST <<<"$KINDS"
IFS=, read -ra VICTIM_LIST <<<"$VICTIMS"
for n in "${NEIGHBOURS[@]}"; do
    [ -n "${PROGRAM[$n]:-}" ] || { echo "interference.sh: no neighbour '$n' (cpu membw fork mem disk)" >&2; exit 1; }
done
for k in "${KIND_LIST[@]}"; do
    case $k in plain | container | guest) ;; *) echo "interference.sh: no kind '$k'" >&2; exit 1 ;; esac
done
for v in "${VICTIM_LIST[@]}"; do
    case $v in files | sha256) ;; *) echo "interference.sh: no victim '$v'" >&2; exit 1 ;; esac
done

# The window a neighbour runs: settling and the measurement (a guest's deadline: and a second more).
WINDOW=$(python3 -c "print(round($SETTLE + $DURATION, 2))")
DEADLINE=$(python3 -c "print(round($WINDOW + 1, 2))")
MEMORY_GUEST="${MEMORY%[MmGgKk]}$(tr 'mgk' 'MGK' <<<"${MEMORY: -1}")iB" # 128M -> 128MiB

ROOTFS="$WORK/rootfs"
"$ROOT/Examples/rootfs.sh" "$ROOTFS" >/dev/null
mkdir -p "$WORK/state" "$WORK/data-plain" "$WORK/data-container" "$WORK/www"

# The plain neighbours' cgroups: pids, for the safety net and to find every process, and freezer,
# so that a fork bomb is stopped whole before it is killed (v2: one cgroup has both).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    grep -qw pids /sys/fs/cgroup/cgroup.subtree_control || echo +pids >/sys/fs/cgroup/cgroup.subtree_control
    PLAIN_CG=/sys/fs/cgroup/ferry-interference-$$
    PLAIN_FREEZER=$PLAIN_CG
    mkdir "$PLAIN_CG"
else
    PLAIN_CG=/sys/fs/cgroup/pids/ferry-interference-$$
    PLAIN_FREEZER=/sys/fs/cgroup/freezer/ferry-interference-$$
    mkdir "$PLAIN_CG" "$PLAIN_FREEZER"
fi
echo "$PLAIN_PIDS_MAX" >"$PLAIN_CG/pids.max"

# start_neighbour NEIGHBOUR KIND ERRFILE : starts it in the background.
start_neighbour() {
    local neighbour=$1 kind=$2 err=$3
    CELL=$((CELL + 1))
    NB_KIND=$kind
    case $kind in
    plain)
        # Into the cgroup and OOM-first before the program starts; every descendant inherits both.
        # (In a subshell that waits for it, so that its SIGKILL is not announced on stderr.)
        (env PATH="$ROOTFS/bin:/usr/bin:/bin" DATA="$WORK/data-plain" "$ROOTFS/bin/busybox" sh -c \
            'echo $$ >"$1/cgroup.procs" && echo $$ >"$2/cgroup.procs" && echo 1000 >/proc/self/oom_score_adj &&
             exec busybox sh -c "$3"' \
            plain "$PLAIN_CG" "$PLAIN_FREEZER" "${PROGRAM[$neighbour]}" </dev/null >/dev/null 2>"$err" || true) 2>/dev/null &
        ;;
    container)
        NB_NAME="neighbour-$CELL"
        "$FERRY" container run --state "$WORK/state" --name "$NB_NAME" --rootfs "$ROOTFS" --init \
            --cpus "$CPUS" --cpu-shares "$CPU_SHARES" --memory "$MEMORY" --pids "$PIDS_LIMIT" --mount "$WORK/data-container:/data" \
            --env DATA=/data -- sh -c "${PROGRAM[$neighbour]}" </dev/null >/dev/null 2>"$err" &
        ;;
    guest)
        local -a module
        read -ra module <<<"${GUEST[$neighbour]}"
        "$FERRY" guest run --fuel "$GUEST_FUEL" --deadline "$DEADLINE" --max-memory "$MEMORY_GUEST" \
            "${module[@]}" </dev/null >/dev/null 2>"$err" &
        ;;
    esac
    NB_PID=$!
}

# stop_neighbour : kills the running neighbour and everything it started, and waits for it.
stop_neighbour() {
    [ -n "$NB_KIND" ] || return 0
    case $NB_KIND in
    plain)
        if [ -f "$PLAIN_CG/cgroup.kill" ]; then
            echo 1 >"$PLAIN_CG/cgroup.kill"
        elif [ -f "$PLAIN_FREEZER/freezer.state" ]; then
            echo FROZEN >"$PLAIN_FREEZER/freezer.state"
            for _ in $(seq 500); do [ "$(cat "$PLAIN_FREEZER/freezer.state")" = FROZEN ] && break; sleep 0.01; done
        fi
        local pids
        for _ in $(seq 500); do
            pids=$(cat "$PLAIN_CG/cgroup.procs")
            [ -n "$pids" ] || break
            kill -9 $pids 2>/dev/null || true
            [ ! -f "$PLAIN_FREEZER/freezer.state" ] || echo THAWED >"$PLAIN_FREEZER/freezer.state"
            sleep 0.02
        done
        ;;
    container)
        "$FERRY" container stop --state "$WORK/state" --time 0 "$NB_NAME" >/dev/null 2>&1 || true
        ;;
    guest) kill "$NB_PID" 2>/dev/null || true ;;
    esac
    wait "$NB_PID" 2>/dev/null || true
    NB_KIND=
}

on_exit() {
    stop_neighbour
    local cg
    for cg in $PLAIN_CG $PLAIN_FREEZER; do
        for _ in $(seq 100); do # zombies leave it once reaped
            if [ ! -d "$cg" ] || rmdir "$cg" 2>/dev/null; then break; fi
            sleep 0.05
        done
    done
    cleanup
}

# ---------------------------------------------------------------------------------------------
# The victims.
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c $((64 << 20)) /dev/urandom >"$WORK/sha.bin"
SERVER_PID=
start_server() {
    "$FERRY" serve files --root "$WORK/www" --port 0 >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL="http://$(listening_address "$WORK/server.out")/1k.bin"
}

# measure_files -> "REQUESTS_PER_S P99_MS"
measure_files() {
    local out
    out=$(wrk -t1 -c16 -d"${DURATION}s" --latency "$URL" 2>&1 || true)
    echo "$out" >>"$WORK/wrk.log"
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /Requests\/sec/ { rate = $2 }
        $1 == "99%" { p99 = ms($2) }
        END { printf "%s %s\n", (rate == "" ? 0 : rate), (p99 == "" ? "-" : p99) }' <<<"$out"
}

# measure_sha256 -> "MIB_PER_S -" (and how many hashes could not start, e.g. with no pid left).
# The hash under way when DURATION is up counts with the bytes it has read (/proc/PID/io), so a
# starved victim does not stretch the window.
measure_sha256() {
    python3 - "$WORK/sha.bin" "$DURATION" <<'PY'
import os, subprocess, sys, time
path, duration = sys.argv[1], float(sys.argv[2])
hashed, failed = 0, 0
start = time.monotonic()
while time.monotonic() - start < duration:
    try:
        hash = subprocess.Popen(["sha256sum", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        failed += 1
        time.sleep(0.01)
        continue
    while hash.poll() is None and time.monotonic() - start < duration:
        time.sleep(0.005)
    if hash.poll() is None:
        try:
            hashed += int(dict(l.split(": ") for l in open(f"/proc/{hash.pid}/io"))["rchar"])
        except (OSError, KeyError, ValueError):
            pass
        hash.kill()
        hash.wait()
    elif hash.returncode == 0:
        hashed += os.path.getsize(path)
    else:
        failed += 1
elapsed = time.monotonic() - start
print(f"{hashed / 2**20 / elapsed:.1f} -" + (f" {failed}" if failed else ""))
PY
}

# ---------------------------------------------------------------------------------------------
if [[ ",$KINDS," == *,guest,* ]] && [ -z "${GUEST_FUEL:-}" ]; then
    # Fuel worth CPUS of one core over the window, at the rate the spin guest burns it here.
    start=$(date +%s%N)
    "$FERRY" guest run --fuel 1000000000 "$GUESTS/spin.wasm" --invoke spin >/dev/null 2>&1 || true
    elapsed=$(($(date +%s%N) - start))
    GUEST_FUEL=$(python3 -c "print(int(1e9 / ($elapsed / 1e9) * $CPUS * $WINDOW))")
    echo "guest fuel: $GUEST_FUEL units (spin burns $(python3 -c "print(round(1e9 / ($elapsed / 1e9) / 1e6))") M/s here; $CPUS of a core for $WINDOW s)" >&2
fi
GUEST_FUEL=${GUEST_FUEL:-0}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
oom_kills() { awk '$1 == "oom_kill" {print $2}' /proc/vmstat; }

# run_cell VICTIM NEIGHBOUR KIND : one measurement; appends a line to RESULTS.
run_cell() {
    local victim=$1 neighbour=$2 kind=$3 err="$WORK/neighbour.err" note="" result ooms
    if [ "$kind" = guest ] && [[ ${GUEST[$neighbour]} == n/a:* ]]; then
        printf '%s\t%s\t%s\tn/a\t-\t%s\n' "$victim" "$neighbour" "$kind" "${GUEST[$neighbour]#n/a: }" >>"$RESULTS"
        return
    fi
    local started=$SECONDS
    printf '  %s beside %s (%s)...' "$victim" "$neighbour" "$kind" >&2
    [ "$victim" != sha256 ] || cat "$WORK/sha.bin" >/dev/null # back in the page cache
    ooms=$(oom_kills)
    local events_before=0
    [ "$kind" != plain ] || events_before=$(awk '{print $2}' "$PLAIN_CG/pids.events")
    : >"$err"
    if [ "$kind" != - ]; then
        start_neighbour "$neighbour" "$kind" "$err"
        sleep "$SETTLE"
    fi
    result=$("measure_$victim")
    stop_neighbour
    # What happened to the neighbour, and whether the victim is still there.
    if [ "$kind" = plain ]; then
        local refused=$(($(awk '{print $2}' "$PLAIN_CG/pids.events") - events_before))
        [ "$refused" -eq 0 ] || note="$refused forks refused at the $PLAIN_PIDS_MAX-pid safety net"
    elif [ -s "$err" ]; then
        note=$(grep -E '^(ferry: container|guest stopped)' "$err" | tail -1 | sed 's/^ferry: container [^ ]* //' || true)
    fi
    ooms=$(($(oom_kills) - ooms))
    [ "$ooms" -eq 0 ] || note="${note:+$note; }$ooms OOM kills"
    read -r value p99 failed <<<"$result"
    [ -z "${failed:-}" ] || note="${note:+$note; }$failed hashes could not start"
    if [ "$victim" = files ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        note="${note:+$note; }THE FILE SERVER DIED (restarted)"
        start_server
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$victim" "$neighbour" "$kind" "$value" "$p99" "$note" >>"$RESULTS"
    echo " $value, $((SECONDS - started)) s" >&2
    sleep 0.3 # let freed memory and exited processes settle
}

for victim in "${VICTIM_LIST[@]}"; do
    echo "victim: $victim" >&2
    if [ "$victim" = files ]; then
        start_server
        wrk -t1 -c16 -d1s "$URL" >/dev/null 2>&1 || true # warm-up
    fi
    run_cell "$victim" alone -
    for neighbour in "${NEIGHBOURS[@]}"; do
        for kind in "${KIND_LIST[@]}"; do run_cell "$victim" "$neighbour" "$kind"; done
    done
    run_cell "$victim" after -
    if [ "$victim" = files ]; then stop_last; fi
done

echo
echo "Noisy neighbours: victim throughput beside each neighbour, as a fraction of alone" \
    "(DURATION=${DURATION}s, settle ${SETTLE}s, $(nproc) cores, nothing pinned, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
echo "container: --cpus $CPUS --cpu-shares $CPU_SHARES --memory $MEMORY --pids $PIDS_LIMIT --init; guest: --fuel $GUEST_FUEL --deadline $DEADLINE" \
    "--max-memory $MEMORY_GUEST; plain: no limits (pids safety net $PLAIN_PIDS_MAX, oom_score_adj 1000)"
echo "kernel $(uname -r), $( (wrk --version 2>&1 || true) | head -1 | awk '{print $1, $2}'), $(sha256sum --version | head -1)"
echo
python3 - "$RESULTS" "$(dirname "$0")/interference.svg" "$DURATION" "$ONLY" "$KINDS" <<'PY'
import html, sys

results, svg_path, duration = sys.argv[1], sys.argv[2], sys.argv[3]
neighbours, kinds = sys.argv[4].split(","), sys.argv[5].split(",")
ALL_KINDS = ["plain", "container", "guest"]
LABELS = {"cpu": "CPU hog", "membw": "memory bandwidth", "fork": "fork bomb", "mem": "memory bomb",
          "disk": "disk writer"}
TITLES = {"files": "file server: ferry serve files, wrk -t1 -c16, 1 KiB (req/s, p99)",
          "sha256": "sha256sum over 64 MiB in the page cache (MiB/s)"}
UNITS = {"files": "req/s", "sha256": "MiB/s"}

rows = {}
for line in open(results):
    victim, neighbour, kind, value, p99, note = line.rstrip("\n").split("\t")
    rows[(victim, neighbour, kind)] = (value, p99, note)
victims = list(dict.fromkeys(v for v, _, _ in rows))

def cell(victim, neighbour, kind):
    """(fraction or None, text, note)"""
    if (victim, neighbour, kind) not in rows:
        return None, "not run", ""
    value, p99, note = rows[(victim, neighbour, kind)]
    if value == "n/a":
        return None, "n/a", note
    alone_value, alone_p99, _ = rows[(victim, "alone", "-")]
    fraction = float(value) / float(alone_value) if float(alone_value) else 0.0
    text = f"{fraction:.2f}"
    if p99 != "-" and alone_p99 != "-" and float(alone_p99) > 0:
        text += f"  p99 {float(p99) / float(alone_p99):.1f}x"
    return fraction, text, note

misses, notes = [], []
for victim in victims:
    alone = rows[(victim, "alone", "-")]
    after = rows.get((victim, "after", "-"))
    p99 = f", p99 {float(alone[1]):.2f} ms" if alone[1] != "-" else ""
    print(f"{TITLES[victim]}")
    drift = float(after[0]) / float(alone[0]) if after and float(alone[0]) else 1.0
    print(f"alone: {float(alone[0]):.1f} {UNITS[victim]}{p99}"
          + (f"; alone again after the matrix: {drift:.2f} of that" if after else ""))
    if abs(drift - 1) > 0.10:
        print(f"warning: alone drifted by {abs(drift - 1):.0%} across the matrix: something else ran on this machine,"
              " and these fractions carry that much error")
    header = f"{'neighbour':<18}" + "".join(f"{k:>20}" for k in kinds)
    print(header)
    print("-" * len(header))
    for neighbour in neighbours:
        cells = []
        for kind in kinds:
            fraction, text, note = cell(victim, neighbour, kind)
            cells.append(f"{text:>20}")
            if note:
                notes.append(f"{victim} / {LABELS[neighbour]} / {kind}: {note}")
            if kind in ("container", "guest") and fraction is not None and fraction < 0.90:
                misses.append(f"{victim} beside {LABELS[neighbour]} ({kind}) {fraction:.2f}")
        print(f"{LABELS[neighbour]:<18}" + "".join(cells))
    print()

if notes:
    print("what happened to the neighbours (and the victim):")
    for note in notes:
        print(f"  {note}")
    print()
died = [n for n in notes if "DIED" in n]
print("goal: with container and guest at least 0.90 of alone against every neighbour, and the machine stays up")
print("  " + ("met" if not misses else "missed: " + "; ".join(misses)))
print("  machine: " + ("up throughout (the file server answered after every cell)" if not died
                       else "the file server died: " + "; ".join(died)))

# The heat map: one panel per victim, rows the neighbours, columns plain / container / guest.
cw, ch, left, top = 150, 34, 140, 56
panel_h = top + ch * len(neighbours) + 30
width, height = left + cw * len(ALL_KINDS) + 20, 40 + panel_h * len(victims) + 56

def colour(f):
    # red at 0.5 of alone or less, through yellow, to green at 1.0
    hue = 120 * max(0.0, min(1.0, (f - 0.5) / 0.5))
    return f"hsl({hue:.0f},70%,55%)"

parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">Noisy neighbours: victim throughput as a fraction of alone ({duration} s each)</text>']
for p, victim in enumerate(victims):
    y0 = 40 + panel_h * p
    parts.append(f'<text x="10" y="{y0 + 14}" font-weight="bold">{html.escape(TITLES[victim])}</text>')
    after, alone = rows.get((victim, "after", "-")), rows[(victim, "alone", "-")]
    if after and float(alone[0]) and abs(float(after[0]) / float(alone[0]) - 1) > 0.10:
        parts.append(f'<text x="10" y="{y0 + 30}" fill="#c33">alone drifted to {float(after[0]) / float(alone[0]):.2f}'
                     ' of itself by the end: the machine was not quiet</text>')
    for c, kind in enumerate(ALL_KINDS):
        parts.append(f'<text x="{left + cw * c + cw / 2}" y="{top + y0 - 10}" text-anchor="middle">{kind}</text>')
    for r, neighbour in enumerate(neighbours):
        y = y0 + top + ch * r
        parts.append(f'<text x="10" y="{y + ch / 2 + 4}">{LABELS[neighbour]}</text>')
        for c, kind in enumerate(ALL_KINDS):
            fraction, text, note = cell(victim, neighbour, kind) if kind in kinds else (None, "not run", "")
            fill = colour(fraction) if fraction is not None else "#ddd"
            x = left + cw * c
            title = html.escape(note or text)
            parts.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{fill}"><title>{title}</title></rect>')
            label = text if fraction is not None else (f"n/a: {note.split(' (')[0]}" if text == "n/a" else text)
            size = 12 if len(label) < 22 else 10
            parts.append(f'<text x="{x + (cw - 2) / 2}" y="{y + ch / 2 + 3}" text-anchor="middle" font-size="{size}">{html.escape(label)}</text>')
legend_y = height - 40
for i in range(11):
    f = 0.5 + 0.05 * i
    parts.append(f'<rect x="{left + 30 * i}" y="{legend_y}" width="30" height="12" fill="{colour(f)}"/>')
parts.append(f'<text x="10" y="{legend_y + 10}">fraction</text>')
parts.append(f'<text x="{left - 4}" y="{legend_y + 10}" text-anchor="end">≤0.50</text>')
parts.append(f'<text x="{left + 30 * 11 + 4}" y="{legend_y + 10}">1.00</text>')
parts.append(f'<text x="10" y="{legend_y + 30}">goal: at least 0.90 with container and guest; hover a cell for what happened to the neighbour</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
