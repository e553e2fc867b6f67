// The pqmcp dashboard: polls /dashboard/data and renders it. No external
// scripts, fonts or styles; text is set with textContent only.
"use strict";
(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const dataUrl = "/dashboard/data" + (token ? "?token=" + encodeURIComponent(token) : "");
  const svgNs = "http://www.w3.org/2000/svg";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function shortId(id) { return id ? (id.length > 20 ? id.slice(0, 20) + "…" : id) : "—"; }
  function time(ts) { return ts ? ts.replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }
  function age(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function fill(id, rows, columns, emptyText) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", emptyText, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const c of cells) {
        tr.appendChild(c instanceof Node ? c : el("td", c));
      }
      body.appendChild(tr);
    }
  }
  function groupCell(group, safe) {
    const td = el("td");
    if (!group) { td.textContent = "—"; return td; }
    td.appendChild(el("span", group, safe ? "pq" : "classical"));
    return td;
  }
  function isPq(group) { return /MLKEM/i.test(group || ""); }

  function renderPosture(p) {
    const total = p.handshakes || 0;
    const summary = document.getElementById("posture-summary");
    if (!total) {
      summary.textContent = "no connections yet";
      summary.className = "empty";
    } else {
      const pq = Object.entries(p.by_group).filter(([g]) => isPq(g)).reduce((a, [, n]) => a + n, 0);
      summary.className = p.classical ? "classical" : "pq";
      summary.textContent = (100 * pq / total).toFixed(1) + "% of " + total +
        " connections quantum-safe" + (p.classical ? " — " + p.classical + " classical!" : "") +
        (p.failed ? " (" + p.failed + " handshakes failed)" : "") +
        (p.classical_signatures ? "; " + p.classical_signatures +
          " authenticated with the classical browser certificate" : "");
    }
    const rows = Object.entries(p.by_group).sort((a, b) => b[1] - a[1]).map(([g, n]) => {
      const share = total ? n / total : 0;
      const bar = el("td");
      const span = el("span", null, isPq(g) ? "bar" : "bar classical-bar");
      span.style.width = Math.round(share * 120) + "px";
      bar.appendChild(span);
      return [groupCell(g, isPq(g)), n, (100 * share).toFixed(1) + "%", bar];
    });
    fill("posture", rows, 4, "no connections yet");
  }

  function renderChart(series) {
    const svg = document.getElementById("chart");
    svg.replaceChildren();
    const pts = series.points || [];
    document.getElementById("chart-interval").textContent = series.interval_s;
    const w = 600, h = 160, pad = 18;
    const max = Math.max(1, ...pts.map((p) => p[1]));
    const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, pts.length - 1);
    const y = (v) => h - pad - (v * (h - 2 * pad)) / max;
    for (const [values, color, name] of [[pts.map((p) => p[1]), "#2b59c3", "requests"], [pts.map((p) => p[2]), "#b42318", "denials"]]) {
      const line = document.createElementNS(svgNs, "polyline");
      line.setAttribute("points", values.map((v, i) => x(i) + "," + y(v)).join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", color);
      line.setAttribute("stroke-width", "2");
      line.setAttribute("data-series", name);
      svg.appendChild(line);
    }
    const label = document.createElementNS(svgNs, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", "12");
    label.textContent = "max " + max;
    svg.appendChild(label);
  }

  function render(d) {
    const gw = d.gateway || {};
    document.getElementById("gw-peer").textContent = "peer " + (gw.peer_id || "?");
    document.getElementById("gw-profile").textContent =
      "profile " + (gw.profile || "?") + " · " + (gw.version || "") + " · up " + age(gw.uptime_s || 0);
    renderPosture(d.posture);
    renderChart(d.series);
    fill("sessions", d.sessions.map((s) => [
      el("td", s.id, "mono"),
      el("td", s.peer_id ? s.peer_id + (s.peer_name ? " (" + s.peer_name + ")" : "") : "no client certificate", "mono"),
      s.remote, groupCell(s.group, isPq(s.group)), s.signature || "—", age(s.age_s), s.requests, s.denied,
    ]), 8, "no live sessions");
    fill("decisions", d.decisions.map((r) => [
      time(r.ts), el("td", (r.session || "").slice(0, 8), "mono"), el("td", shortId(r.identity), "mono"),
      r.method, r.target || "", el("td", r.decision, r.decision), r.rule || "", r.latency_us + " µs",
    ]), 8, "no requests yet");
    fill("alerts", d.alerts.map((a) => [
      time(a.ts), a.upstream || "", a.event, a.item || "", a.rule || "", el("td", a.severity || "", a.severity || ""), a.action || "",
    ]), 7, "no integrity alerts");
    fill("connections", d.connections.map((c) => [
      time(c.ts), c.remote, el("td", c.result === "ok" ? "ok" : c.error || "failed", c.result === "ok" ? "ok" : "failed"),
      groupCell(c.group, c.quantum_safe), c.own_signature || "—", el("td", shortId(c.peer_id), "mono"),
    ]), 6, "no connections yet");
    document.body.setAttribute("data-loaded", "true");
  }

  async function poll() {
    const status = document.getElementById("status");
    try {
      const res = await fetch(dataUrl, { cache: "no-store" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      render(await res.json());
      status.textContent = "updated " + new Date().toLocaleTimeString();
      status.className = "";
    } catch (e) {
      status.textContent = "no data: " + e.message;
      status.className = "stale";
    }
  }
  poll();
  setInterval(poll, 2000);
})();
