/// The dashboard: one page, shipped in the binary, no build step. It follows
/// `/api/v1/events` (server-sent events, a snapshot a second) and draws the three tiers as
/// HAProxy's stats page draws its servers: the switch's backends, the nodes, their processes and
/// the objects, with drain/ready, migrate and kill as buttons that call the API with the token
/// (given once in the page, or as `#token=...` in its address, which never reaches the server).
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Ferry cluster</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
          body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f4f5f7; }
          header { background: #1d2330; color: #fff; padding: 10px 18px; display: flex; gap: 18px; align-items: center; }
          header h1 { font-size: 16px; margin: 0; }
          header .live { font-size: 12px; color: #9fb3c8; }
          header input { margin-left: auto; width: 260px; font: inherit; padding: 3px 6px; }
          main { padding: 12px 18px; display: grid; gap: 14px; }
          section { background: #fff; border: 1px solid #d8dbe2; border-radius: 4px; }
          section h2 { font-size: 13px; margin: 0; padding: 6px 10px; background: #e6e9ef; border-bottom: 1px solid #d8dbe2; }
          table { border-collapse: collapse; width: 100%; }
          th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
          th { font-weight: 600; color: #5a6475; font-size: 12px; }
          td.num { text-align: right; font-variant-numeric: tabular-nums; }
          .state { font-weight: 600; border-radius: 3px; padding: 1px 6px; }
          .up, .running, .active, .healthy, .moved { background: #c9f0d3; color: #135c2a; }
          .down, .failed, .unhealthy { background: #f7c6c6; color: #7a1414; }
          .draining, .moving, .waiting { background: #fbe7b5; color: #6b4a00; }
          .exited, .stored { background: #e3e6eb; color: #434b58; }
          button { font: inherit; font-size: 12px; padding: 1px 8px; cursor: pointer; }
          .bar { width: 140px; height: 8px; background: #e3e6eb; border-radius: 4px; display: inline-block; vertical-align: middle; }
          .bar > span { display: block; height: 100%; background: #3a7bd5; border-radius: 4px; }
          #status { padding: 0 18px; min-height: 18px; color: #5a6475; }
          #errors { color: #7a1414; padding: 0 18px; }
          .empty { color: #8a93a3; padding: 6px 10px; }
        </style>
        </head>
        <body>
        <header>
          <h1>Ferry cluster</h1>
          <span class="live" id="live">connecting…</span>
          <input id="token" type="password" placeholder="control token (for the buttons)" autocomplete="off">
        </header>
        <div id="status"></div>
        <div id="errors"></div>
        <main>
          <section><h2>Front: the switch's backends</h2><div id="switch"></div></section>
          <section><h2>Nodes</h2><div id="nodes"></div></section>
          <section><h2>Processes and where they run</h2><div id="processes"></div></section>
          <section><h2>Moves started here</h2><div id="moves"></div></section>
          <section><h2>Objects and their activations</h2><div id="objects"></div></section>
          <section><h2>Services at the endpoint daemon</h2><div id="services"></div></section>
        </main>
        <script>
        "use strict";
        const tokenInput = document.getElementById("token");
        const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
        if (fromHash) { sessionStorage.setItem("ferry-token", fromHash); history.replaceState(null, "", location.pathname); }
        tokenInput.value = sessionStorage.getItem("ferry-token") || "";
        tokenInput.addEventListener("change", () => sessionStorage.setItem("ferry-token", tokenInput.value.trim()));
        let nodes = [];

        function esc(value) {
          return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
        }
        function size(bytes) {
          const units = ["B", "KiB", "MiB", "GiB"]; let i = 0; let n = bytes || 0;
          while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return (i ? n.toFixed(1) : n) + " " + units[i];
        }
        function table(headers, rows, attrs) {
          if (!rows.length) return '<div class="empty">none</div>';
          return "<table><tr>" + headers.map(h => "<th>" + h + "</th>").join("") + "</tr>" +
            rows.map((r, i) => "<tr " + (attrs ? attrs[i] : "") + ">" + r.join("") + "</tr>").join("") + "</table>";
        }
        const td = v => "<td>" + esc(v) + "</td>";
        const num = v => '<td class="num">' + esc(v) + "</td>";
        const state = v => '<td><span class="state ' + esc(v) + '">' + esc(v) + "</span></td>";

        async function act(path, body) {
          const status = document.getElementById("status");
          status.textContent = "POST " + path + " …";
          try {
            const response = await fetch(path, {
              method: "POST",
              headers: {"Authorization": "Bearer " + (tokenInput.value.trim()), "Content-Type": "application/json"},
              body: body ? JSON.stringify(body) : undefined,
            });
            const answer = await response.json();
            status.textContent = response.ok ? (answer.result || ("done: " + JSON.stringify(answer))) : ("refused (" + response.status + "): " + answer.error);
          } catch (error) {
            status.textContent = "cannot reach the node: " + error;
          }
        }
        document.addEventListener("click", event => {
          const button = event.target.closest("button[data-action]");
          if (!button) return;
          const action = button.dataset.action;
          if (action === "drain" || action === "ready") {
            act("/api/v1/switch/backends/" + encodeURIComponent(button.dataset.backend) + "/" + action);
          } else if (action === "migrate") {
            const row = button.closest("tr");
            act("/api/v1/processes/" + encodeURIComponent(button.dataset.process) + "/migrate",
                {to: row.querySelector("select.to").value, mode: row.querySelector("select.mode").value});
          } else if (action === "kill") {
            act("/api/v1/processes/" + encodeURIComponent(button.dataset.process) + "/kill");
          }
        });

        // A section is redrawn only when its content changed, and a row's chosen options are kept,
        // so a button or a menu under the pointer is not replaced while it is used.
        const shown = {};
        function show(id, html) {
          if (shown[id] === html) return;
          shown[id] = html;
          const element = document.getElementById(id);
          const chosen = [...element.querySelectorAll("tr[data-process] select")].map(select =>
            [select.closest("tr").dataset.process, select.className, select.value]);
          element.innerHTML = html;
          for (const [process, kind, value] of chosen) {
            const select = element.querySelector('tr[data-process="' + CSS.escape(process) + '"] select.' + kind);
            if (select && [...select.options].some(option => option.value === value)) select.value = value;
          }
        }

        function render(s) {
          nodes = s.cluster.nodes.map(n => n.name);
          const backends = s.switch ? s.switch.backends : [];
          show("switch", s.switch ? table(
            ["backend", "group", "weight", "state", "open", "total", "failures", "req/s", "latency ms", ""],
            backends.map(b => [td(b.address), td(b.group), num(b.weight), state(b.state), num(b.open), num(b.total),
              num(b.failures), num(b.rate.toFixed(1)), num(b.latency_ms.toFixed(2)),
              "<td>" + (b.state === "draining"
                ? '<button data-action="ready" class="ready" data-backend="' + esc(b.address) + '">ready</button>'
                : '<button data-action="drain" class="drain" data-backend="' + esc(b.address) + '">drain</button>') + "</td>"]),
            backends.map(b => 'data-backend="' + esc(b.address) + '"')) : '<div class="empty">no switch registered</div>');
          show("nodes", table(
            ["node", "address", "health", "run queue", "processes", "CPU", "memory", "dashboard"],
            s.cluster.nodes.map(n => [td(n.name), td(n.address), state(n.healthy ? "healthy" : "unhealthy"),
              num(n.run_queue), num(n.processes), num(n.cpu_use.toFixed(2) + " / " + n.cpus.toFixed(2)),
              num(size(n.memory_bytes)),
              "<td>" + (n.http ? '<a href="http://' + esc(n.http) + '/">' + esc(n.http) + "</a>" : "") + "</td>"]),
            s.cluster.nodes.map(n => 'data-node="' + esc(n.name) + '"')));
          const options = names => names.map(n => "<option>" + esc(n) + "</option>").join("");
          show("processes", table(
            ["process", "node", "state", "epoch", "memory", "CPU", "moves", "move to", ""],
            s.processes.map(p => [td(p.name), td(p.node), state(p.state), num(p.epoch), num(size(p.memory_bytes)),
              num(p.cpu_ms + " ms"), num(p.moves + (p.pinned ? " (pinned)" : "")),
              '<td><select class="to">' + options(nodes.filter(n => n !== p.node)) + '</select> <select class="mode">' +
              options(["strong", "weak", "pre-copy", "post-copy", "hybrid"]) + "</select></td>",
              '<td><button data-action="migrate" data-process="' + esc(p.name) + '">migrate</button> ' +
              '<button data-action="kill" data-process="' + esc(p.name) + '">kill</button></td>']),
            s.processes.map(p => 'data-process="' + esc(p.name) + '"')));
          show("moves", table(
            ["process", "to", "mode", "state", "progress", ""],
            s.moves.map(m => {
              const percent = m.total_bytes ? Math.round(100 * m.sent_bytes / m.total_bytes) : (m.state === "moved" ? 100 : 0);
              return [td(m.process), td(m.to), td(m.mode), state(m.state),
                '<td><span class="bar"><span style="width:' + percent + '%"></span></span> ' + percent + "% of " + size(m.total_bytes) + "</td>",
                td(m.detail || "")];
            })));
          show("objects", table(
            ["object", "type", "policy", "node", "epoch", "state", "calls"],
            s.objects.map(o => [td(o.object), td(o.type), td(o.policy), td(o.node), num(o.epoch), state(o.state), num(o.calls)])));
          show("services", table(
            ["name", "endpoints", "metadata"],
            s.cluster.services.map(v => [td(v.name), td(v.endpoints.join(", ")),
              td(Object.entries(v.metadata).map(([k, x]) => k + "=" + x).join(" "))])));
          document.getElementById("errors").textContent = s.errors.join("; ");
          document.getElementById("live").textContent = "live · daemon " + s.cluster.daemon + " · " + new Date().toLocaleTimeString();
        }

        const events = new EventSource("/api/v1/events");
        events.onmessage = message => render(JSON.parse(message.data));
        events.onerror = () => { document.getElementById("live").textContent = "reconnecting…"; };
        </script>
        </body>
        </html>
        """#
}
