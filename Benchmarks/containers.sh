#!/usr/bin/env bash
# Container start-to-exit: the wall time from launching a container running /bin/true until the
# launcher has exited, for Ferry against crun and bubblewrap, in one hyperfine run (RUNS runs of
# each, after WARMUP). Every row starts the same busybox root file system (Examples/rootfs.sh):
#   crun run                       the OCI bundle as `crun spec` makes it (namespaces, a read-only
#                                  root, cgroups through cgroupfs), deleted again when it exits
#   bwrap                          --unshare-all with /proc, /dev and /tmp, as bubblewrap's users
#                                  run it: no cgroups, no seccomp profile, no config.json to read
#   ferry container run --bundle   the same bundle, config.json and all
#   ferry container run --rootfs   the bundle's root file system, Ferry's own defaults
# Ferry's rows also mount an overlay (every Ferry container writes into an upper layer of its
# own); crun and bwrap start from the plain folder. Prints mean, standard deviation and
# the ratio to crun (goal for Ferry: at most 1.0x), and writes containers.svg beside itself.
# Runs as root.
#
# Usage: Benchmarks/containers.sh      (RUNS=100 WARMUP=5 NO_BUILD=1 FERRY_SKIP=1 to leave Ferry out)
set -euo pipefail

source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-100}
WARMUP=${WARMUP:-5}

if [ "$(id -u)" -ne 0 ]; then
    echo "containers.sh: run it as root (crun, bubblewrap and Ferry make namespaces, mounts and cgroups)" >&2
    exit 1
fi
require crun bwrap:bubblewrap hyperfine python3

if [ -z "${FERRY_SKIP:-}" ]; then
    [ -n "${NO_BUILD:-}" ] || build_release ferry
    FERRY="$ROOT/.build/release/ferry"
fi
make_workdir containers-bench
BUNDLE="$WORK/bundle"
"$ROOT/Examples/rootfs.sh" --bundle "$BUNDLE" >/dev/null

# crun refuses to start anything on a hybrid cgroup machine whose cgroup v2 hierarchy holds a
# controller (here hugetlb: "cgroups in hybrid mode not supported"). Where that is so, the runs
# happen in a mount namespace of their own without /sys/fs/cgroup/unified: crun then sees plain
# cgroup v1 and uses it. Made once around all of hyperfine, so no run pays for it, and every row
# sees the same cgroups.
IN_NAMESPACE=()
V2_CONTROLLERS=$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)
if [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] && [ -n "$V2_CONTROLLERS" ]; then
    echo "hybrid cgroups with controllers in v2 ($V2_CONTROLLERS):" \
        "running without /sys/fs/cgroup/unified, cgroup v1 only" >&2
    IN_NAMESPACE=(unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh)
fi

# `crun run` deletes the container when its process exits (checked: `crun list` is empty after
# it, and the same id starts again), so one id serves every run; no wrapper making fresh ids.
NAMES=(crun bwrap)
COMMANDS=(
    "crun run --bundle $(printf %q "$BUNDLE") ferry-bench"
    "bwrap --unshare-all --die-with-parent --ro-bind $(printf %q "$BUNDLE/rootfs") / --proc /proc --dev /dev --tmpfs /tmp /bin/true"
)
if [ -z "${FERRY_SKIP:-}" ]; then
    NAMES+=("ferry --bundle" "ferry --rootfs")
    COMMANDS+=(
        "$(printf %q "$FERRY") container run --bundle $(printf %q "$BUNDLE")"
        "$(printf %q "$FERRY") container run --rootfs $(printf %q "$BUNDLE/rootfs") -- /bin/true"
    )
fi

# Each command once first, so a failure shows its own message rather than hyperfine's.
for i in "${!COMMANDS[@]}"; do
    if ! "${IN_NAMESPACE[@]}" bash -c "${COMMANDS[$i]}" </dev/null >"$WORK/check.out" 2>&1; then
        echo "containers.sh: '${COMMANDS[$i]}' failed:" >&2
        cat "$WORK/check.out" >&2
        exit 1
    fi
done

# --shell=none: hyperfine starts each launcher itself, so no shell's start-up is in the times.
ARGS=(--runs "$RUNS" --warmup "$WARMUP" --shell=none --export-json "$WORK/times.json")
for i in "${!COMMANDS[@]}"; do ARGS+=(--command-name "${NAMES[$i]}" "${COMMANDS[$i]}"); done
echo "running ${#COMMANDS[@]} launchers, $RUNS runs each..." >&2
"${IN_NAMESPACE[@]}" hyperfine "${ARGS[@]}" >&2

echo
echo "Container start-to-exit of /bin/true (busybox root), hyperfine --runs $RUNS --warmup $WARMUP, $(nproc) cores"
echo "$(crun --version | head -1), bubblewrap $(bwrap --version | awk '{print $2}'), $(hyperfine --version), kernel $(uname -r)"
echo
python3 - "$WORK/times.json" "$(dirname "$0")/containers.svg" "$RUNS" <<'PY'
import json, sys

times, svg_path, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [(r["command"], r["mean"] * 1000, r["stddev"] * 1000) for r in json.load(open(times))["results"]]
crun = next(mean for name, mean, _ in rows if name == "crun")

header = f"{'command':<16} {'mean ms':>9} {'stddev ms':>10} {'vs crun':>8}"
print(header)
print("-" * len(header))
for name, mean, stddev in rows:
    print(f"{name:<16} {mean:>9.2f} {stddev:>10.2f} {mean / crun:>7.2f}x")
print()
print("goal: Ferry at most 1.0x crun; bubblewrap sets up no cgroups (and none of them an overlay)")

# The chart: mean per launcher with a whisker of one standard deviation, crun's mean dashed.
width, height, left, top, bar = 680, 80 + 30 * len(rows), 130, 40, 20
scale = (width - left - 150) / max(mean + stddev for _, mean, stddev in rows)
colors = {"crun": "#999", "bwrap": "#d9822b"}
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="10" y="20" font-size="14">Container start-to-exit of /bin/true, mean ms over {runs} runs (lower is better)</text>']
x = left + scale * crun
parts.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 30}" stroke="#c33" stroke-dasharray="4 3"/>')
parts.append(f'<text x="{x + 4:.1f}" y="{height - 18}" fill="#c33">crun {crun:.2f} ms (goal)</text>')
for i, (name, mean, stddev) in enumerate(rows):
    y = top + 30 * i
    parts.append(f'<text x="10" y="{y + 14}">{name}</text>')
    parts.append(f'<rect x="{left}" y="{y}" width="{scale * mean:.1f}" height="{bar}" fill="{colors.get(name, "#4a7ab5")}"/>')
    lo, hi = left + scale * max(mean - stddev, 0), left + scale * (mean + stddev)
    parts.append(f'<line x1="{lo:.1f}" y1="{y + bar / 2}" x2="{hi:.1f}" y2="{y + bar / 2}" stroke="#333"/>')
    parts.append(f'<text x="{hi + 6:.1f}" y="{y + 14}">{mean:.2f} ms, {mean / crun:.2f}x</text>')
parts.append('</svg>')
open(svg_path, "w").write("\n".join(parts) + "\n")
print(f"chart: {svg_path}")
PY
