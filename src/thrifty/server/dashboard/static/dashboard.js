/* thrifty dashboard: fetches /dashboard/api/summary and draws it with Chart.js (vendored, no build). */
(function () {
  "use strict";

  const LEVERS = ["routing", "cascade", "cache_exact", "cache_semantic", "compression", "prompt_cache", "batching"];
  const LEVER_LABELS = {
    routing: "routing", cascade: "cascades", cache_exact: "exact cache", cache_semantic: "semantic cache",
    compression: "compression", prompt_cache: "prompt caching", batching: "batching",
  };
  const LEVER_COLORS = {
    routing: "#34d399", cascade: "#2dd4bf", cache_exact: "#a78bfa", cache_semantic: "#c084fc",
    compression: "#f472b6", prompt_cache: "#fb923c", batching: "#facc15",
  };
  const PALETTE = ["#60a5fa", "#34d399", "#fbbf24", "#a78bfa", "#f472b6", "#2dd4bf", "#f87171", "#94a3b8"];
  const state = { charts: {}, data: null, timer: null };
  window.thriftyDashboard = state;

  const $ = (id) => document.getElementById(id);

  function money(usd) {
    const abs = Math.abs(usd);
    const digits = abs === 0 ? 2 : abs < 0.01 ? 6 : abs < 1 ? 4 : 2;
    const text = abs.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    return (usd < 0 ? "−$" : "$") + text;
  }
  const pct = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " %");
  const rate = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");
  const count = (n) => Number(n).toLocaleString("en-US");
  const ms = (v) => (v === null || v === undefined ? "–" : v < 1000 ? v.toFixed(0) + " ms" : (v / 1000).toFixed(2) + " s");

  function setKpi(id, text, value) {
    const el = $(id);
    el.textContent = text;
    if (value !== undefined) el.dataset.value = String(value);
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function fillTable(id, rows, render, emptyText) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(emptyText || "nothing yet", "empty");
      td.colSpan = $(id).querySelectorAll("th").length;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const row of rows) body.appendChild(render(row));
  }

  function chart(id, config) {
    if (state.charts[id]) state.charts[id].destroy();
    state.charts[id] = new Chart($(id), config);
    return state.charts[id];
  }

  function baseOptions(extra) {
    return Object.assign({
      responsive: true, maintainAspectRatio: false, animation: { duration: 250 },
      plugins: { legend: { labels: { color: "#c7d0e0", boxWidth: 12 } } },
    }, extra || {});
  }
  const axis = (money_) => {
    const ticks = { color: "#8b97b0" };
    if (money_) ticks.callback = (v) => money(v);
    return { ticks, grid: { color: "rgba(139,151,176,.12)" } };
  };

  function renderKpis(report) {
    const t = report.totals;
    setKpi("kpi-baseline", money(t.baseline_usd), t.baseline_usd);
    $("kpi-baseline-hint").textContent = report.baseline_model
      ? "everything on " + report.baseline_model : "every request on the model it asked for";
    setKpi("kpi-saved", money(t.net_saved_usd), t.net_saved_usd);
    $("kpi-saved-pct").textContent = t.saved_pct === null ? "–" : "−" + t.saved_pct.toFixed(1) + " % vs baseline";
    setKpi("kpi-actual", money(t.actual_usd), t.actual_usd);
    setKpi("kpi-requests", count(t.requests), t.requests);
    $("kpi-tokens").textContent = count(t.input_tokens) + " in · " + count(t.output_tokens) + " out";
    setKpi("kpi-cache", rate(t.cache_hit_rate), t.cache_hits);
    $("kpi-cache-hint").textContent = count(t.cache_hits_exact) + " exact · " + count(t.cache_hits_semantic) + " semantic";
    setKpi("kpi-escalation", rate(t.escalation_rate), t.escalated);
    $("kpi-escalation-hint").textContent = count(t.rejected_attempts) + " tiers rejected";
    setKpi("kpi-errors", rate(t.error_rate), t.failed_requests);
    $("kpi-errors-hint").textContent = count(t.failed_attempts) + " failed attempts";
  }

  function renderWaterfall(report) {
    const steps = report.waterfall.filter((s) => (s.kind !== "lever" && s.kind !== "overhead") || Math.abs(s.usd) > 0);
    let running = 0;
    const bars = [];
    const colors = [];
    for (const s of steps) {
      if (s.kind === "start" || s.kind === "subtotal" || s.kind === "end") {
        bars.push([0, s.usd]);
        running = s.usd;
        colors.push(s.kind === "start" ? "#94a3b8" : s.kind === "end" ? "#38bdf8" : "#475569");
      } else {
        bars.push([running, running + s.usd]);
        running += s.usd;
        colors.push(s.kind === "lever" ? (LEVER_COLORS[s.key] || "#34d399") : "#fbbf24");
      }
    }
    chart("chart-waterfall", {
      type: "bar",
      data: {
        labels: steps.map((s) => s.label),
        datasets: [{ label: "USD", data: bars, backgroundColor: colors, borderRadius: 4, borderSkipped: false }],
      },
      options: baseOptions({
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => money(steps[ctx.dataIndex].usd) + "  (" + pct(steps[ctx.dataIndex].pct_of_baseline) + " of baseline)" } },
        },
        scales: { x: axis(false), y: Object.assign(axis(true), { beginAtZero: true }) },
      }),
    });
    fillTable("waterfall-table", report.waterfall, (s) => {
      const tr = document.createElement("tr");
      tr.className = s.kind === "lever" ? "lever" : s.kind === "overhead" ? "overhead" : s.kind === "end" || s.kind === "start" ? "total" : "";
      tr.dataset.step = s.key;
      tr.dataset.usd = String(s.usd);
      const sign = s.kind === "lever" ? "− " : s.kind === "overhead" ? "+ " : s.kind === "start" ? "" : "= ";
      tr.append(cell(sign + s.label), cell(money(s.usd), "num"), cell(pct(s.pct_of_baseline), "num"));
      return tr;
    });
  }

  function renderSeries(data) {
    const points = data.series;
    const labelFor = (ts) => {
      const d = new Date(ts * 1000);
      return data.bucket_s >= 86400 ? d.toISOString().slice(0, 10) : d.toISOString().slice(5, 16).replace("T", " ") + (data.bucket_s < 60 ? ":" + d.toISOString().slice(17, 19) : "");
    };
    const datasets = [{ label: "actual spend", data: points.map((p) => p.actual_usd), backgroundColor: "#38bdf8", stack: "s" }];
    for (const lever of LEVERS) {
      if (!points.some((p) => p["saved_" + lever] > 0)) continue;
      datasets.push({ label: "saved: " + LEVER_LABELS[lever], data: points.map((p) => p["saved_" + lever]), backgroundColor: LEVER_COLORS[lever], stack: "s" });
    }
    datasets.push({ type: "line", label: "baseline", data: points.map((p) => p.baseline_usd), borderColor: "#e2e8f0", borderDash: [5, 4], pointRadius: 0, tension: 0.25 });
    $("bucket-label").textContent = "per " + bucketName(data.bucket_s) + " (UTC)";
    chart("chart-series", {
      type: "bar",
      data: { labels: points.map((p) => labelFor(p.ts)), datasets },
      options: baseOptions({
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { color: "#c7d0e0", boxWidth: 12 } }, tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + money(ctx.parsed.y) } } },
        scales: { x: Object.assign(axis(false), { stacked: true }), y: Object.assign(axis(true), { stacked: true, beginAtZero: true }) },
      }),
    });
  }

  function bucketName(s) {
    if (s % 86400 === 0) return s === 86400 ? "day" : s / 86400 + " days";
    if (s % 3600 === 0) return s === 3600 ? "hour" : s / 3600 + " hours";
    if (s % 60 === 0) return s === 60 ? "minute" : s / 60 + " minutes";
    return s + " seconds";
  }

  function renderLevers(report) {
    const t = report.totals;
    const levers = LEVERS.filter((l) => t["saved_" + l] > 0);
    chart("chart-levers", {
      type: "doughnut",
      data: {
        labels: levers.length ? levers.map((l) => LEVER_LABELS[l]) : ["no savings yet"],
        datasets: [{ data: levers.length ? levers.map((l) => t["saved_" + l]) : [1], backgroundColor: levers.length ? levers.map((l) => LEVER_COLORS[l]) : ["#334155"], borderColor: "#161d2c" }],
      },
      options: baseOptions({ cutout: "62%", plugins: { legend: { position: "right", labels: { color: "#c7d0e0", boxWidth: 12 } }, tooltip: { callbacks: { label: (ctx) => ctx.label + ": " + (levers.length ? money(ctx.parsed) : "") } } } }),
    });
  }

  function renderModels(report) {
    const mix = report.model_mix;
    chart("chart-models", {
      type: "doughnut",
      data: {
        labels: mix.map((m) => m.model),
        datasets: [{ data: mix.map((m) => m.calls), backgroundColor: mix.map((_, i) => PALETTE[i % PALETTE.length]), borderColor: "#161d2c" }],
      },
      options: baseOptions({ cutout: "62%", plugins: { legend: { position: "right", labels: { color: "#c7d0e0", boxWidth: 12 } } } }),
    });
    fillTable("models-table", mix, (m) => {
      const tr = document.createElement("tr");
      tr.append(cell(m.model), cell(count(m.calls), "num"), cell(count(m.input_tokens) + " / " + count(m.output_tokens), "num"), cell(money(m.cost_usd), "num"));
      return tr;
    });
  }

  function renderLatency(latency) {
    const keys = ["p50", "p90", "p95", "p99"];
    chart("chart-latency", {
      type: "bar",
      data: { labels: keys, datasets: [{ label: "latency (ms)", data: keys.map((k) => latency[k + "_ms"] || 0), backgroundColor: ["#34d399", "#60a5fa", "#fbbf24", "#f87171"], borderRadius: 6 }] },
      options: baseOptions({
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => ms(ctx.parsed.y) } } },
        scales: { x: axis(false), y: Object.assign(axis(false), { beginAtZero: true, ticks: { color: "#8b97b0", callback: (v) => ms(v) } }) },
      }),
    });
  }

  function renderTables(data) {
    fillTable("keys-table", data.top_keys, (k) => {
      const tr = document.createElement("tr");
      tr.append(cell(k.tenant_id), cell(k.key_id), cell(count(k.requests), "num"), cell(money(k.actual_usd), "num"), cell(money(k.baseline_usd), "num"));
      return tr;
    });
    fillTable("routes-table", data.routes, (g) => {
      const tr = document.createElement("tr");
      tr.append(cell(g.group), cell(count(g.requests), "num"), cell(money(g.net_saved_usd), "num"), cell(money(g.actual_usd), "num"));
      return tr;
    });
    fillTable("errors-table", data.recent_errors, (e) => {
      const tr = document.createElement("tr");
      tr.append(cell(new Date(e.ts * 1000).toISOString().replace("T", " ").slice(0, 19)), cell(e.request_id), cell(e.deployment || "–"), cell(String(e.http_status || "–")), cell(e.error || ""));
      return tr;
    }, "no errors in this range");
  }

  function render(data) {
    state.data = data;
    renderKpis(data.report);
    renderWaterfall(data.report);
    renderSeries(data);
    renderLevers(data.report);
    renderModels(data.report);
    renderLatency(data.latency);
    renderTables(data);
  }

  async function load() {
    const status = $("status");
    const params = new URLSearchParams(window.location.search);
    params.delete("key");
    params.set("since", $("range").value);
    try {
      const resp = await fetch("/dashboard/api/summary?" + params.toString(), { credentials: "same-origin" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      render(await resp.json());
      status.className = "status";
      status.textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.ready = "1";
    } catch (err) {
      status.className = "status error";
      status.textContent = "could not load: " + err.message;
    }
  }

  function schedule() {
    clearInterval(state.timer);
    if ($("auto").checked) state.timer = setInterval(load, 15000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const initial = new URLSearchParams(window.location.search).get("since");
    if (initial && [...$("range").options].some((o) => o.value === initial)) $("range").value = initial;
    Chart.defaults.color = "#c7d0e0";
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    $("range").addEventListener("change", load);
    $("refresh").addEventListener("click", load);
    $("auto").addEventListener("change", schedule);
    load();
    schedule();
  });
})();
