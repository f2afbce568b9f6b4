// The Weir console: one page, no build step. It signs in with a bearer token kept in this
// tab's sessionStorage (never in a URL), polls the overview once a second, and on a
// pipeline's page reads its server-sent events (at most one a second) to draw the charts
// with uPlot. Every number shown comes from the host; the page only arranges it.
"use strict";

(() => {
  const TOKEN_KEY = "weir.token";
  const KEPT_SAMPLES = 300;
  const KEPT_ROWS = 2000;
  const SHOWN_ROWS = 20;
  const SHOWN_ERRORS = 20;
  const MAX_KEYS = 10;
  const COLORS = ["#2457c5", "#d92d20", "#079455", "#dc6803", "#7a5af8", "#0e9384",
    "#c11574", "#475467", "#1570ef", "#b54708"];

  const $ = (id) => document.getElementById(id);

  // Everything the page holds; exposed for the browser tests and for debugging.
  const state = {
    who: null,
    view: null,
    page: null,
    samples: [],
    rows: [],
    errors: [],
    last: { sample: 0, row: 0, error: 0 },
    charts: {},
    resultKeys: "",
    overviewTimer: null,
    stream: null,
    streamEvents: 0,
  };
  window.weirConsole = state;

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // --- talking to the host -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${token()}` }, options.headers || {});
    const res = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = text;
    }
    if (res.status === 401) {
      signOut("The host refused this token. Sign in again.");
    }
    if (!res.ok) {
      const reason = body && body.reason ? body.reason : `${res.status} ${res.statusText}`;
      throw new ApiError(res.status, reason);
    }
    return body;
  }

  const pipelinePath = (t, p) =>
    `/v1/tenants/${encodeURIComponent(t)}/pipelines/${encodeURIComponent(p)}`;

  // --- formatting ----------------------------------------------------------------------

  const fmtNum = (v, digits = 1) => {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
    if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
    return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  };
  const fmtTime = (ms) => (ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace(".000Z", "Z"));
  const fmtLag = (s) => {
    if (s === null || s === undefined) return "–";
    const a = Math.abs(s);
    if (a < 120) return `${s.toFixed(1)} s`;
    if (a < 7200) return `${(s / 60).toFixed(1)} min`;
    if (a < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  };
  const fmtBytes = (b) => {
    if (b === null || b === undefined) return "–";
    if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
    if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(0)} KiB`;
    return `${b} B`;
  };
  // CPU seconds in plugin calls since the start, and the share of a core in the last second.
  const fmtCpu = (s) => {
    const t = s.cpu_seconds;
    const total = t < 1 ? `${(t * 1000).toFixed(0)} ms` : t < 100 ? `${t.toFixed(1)} s` : `${t.toFixed(0)} s`;
    return `${total} · ${(s.cpu_cores * 100).toFixed(1)} %`;
  };
  const liveVersion = (view) => {
    const v = view.versions.find((x) => x.live) || view.versions[view.versions.length - 1];
    return v ? v.id : "–";
  };

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // --- pages ---------------------------------------------------------------------------

  function show(section) {
    for (const id of ["login", "overview", "pipeline"]) $(id).hidden = id !== section;
    state.page = section;
  }

  function stopLive() {
    if (state.overviewTimer) clearTimeout(state.overviewTimer);
    state.overviewTimer = null;
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.who = null;
    stopLive();
    $("who").textContent = "";
    $("sign-out").hidden = true;
    $("crumbs").textContent = "";
    $("login-error").textContent = message || "";
    show("login");
  }

  async function route() {
    stopLive();
    if (!token()) {
      signOut("");
      return;
    }
    if (!state.who) {
      try {
        state.who = await api("/v1/whoami");
      } catch (e) {
        if (e.status !== 401) signOut(`Could not reach the host: ${e.message}`);
        return;
      }
    }
    const p = state.who.principal;
    $("who").textContent = p.kind === "operator" ? "operator" : `tenant ${p.tenant}`;
    $("sign-out").hidden = false;
    const m = location.hash.match(/^#\/p\/([^/]+)\/([^/]+)$/);
    if (m) {
      openPipeline(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    } else {
      openOverview();
    }
  }

  // --- overview ------------------------------------------------------------------------

  function openOverview() {
    show("overview");
    $("crumbs").textContent = "";
    const tick = async () => {
      try {
        renderOverview(await api("/v1/overview"));
      } catch (_) {
        // Shown again at the next tick; a refused token signs out in api().
      }
      if (state.page === "overview" && token()) state.overviewTimer = setTimeout(tick, 1000);
    };
    tick();
  }

  function renderOverview(items) {
    const tbody = $("overview-table").querySelector("tbody");
    tbody.textContent = "";
    $("overview-empty").hidden = items.length > 0;
    let tenant = null;
    for (const { pipeline: v, sample: s } of items) {
      const tr = document.createElement("tr");
      tr.dataset.tenant = v.tenant;
      tr.dataset.pipeline = v.name;
      if (v.tenant !== tenant) tr.className = "tenant-first";
      cell(tr, v.tenant !== tenant ? v.tenant : "");
      tenant = v.tenant;
      const a = document.createElement("a");
      a.href = `#/p/${encodeURIComponent(v.tenant)}/${encodeURIComponent(v.name)}`;
      a.textContent = v.name;
      cell(tr, "").appendChild(a);
      cell(tr, v.state, `state-cell ${v.state}`);
      cell(tr, liveVersion(v));
      cell(tr, s ? fmtNum(s.events_per_s) : "–", "num");
      cell(tr, s ? fmtTime(s.watermark_ms) : "–");
      cell(tr, s ? fmtLag(s.lag_seconds) : "–", "num");
      cell(tr, s ? fmtNum(s.open_windows) : "–", "num");
      cell(tr, s ? fmtNum(s.errors_last_minute) : "–", "num");
      cell(tr, s ? fmtBytes(s.memory_bytes) : "–", "num");
      cell(tr, s ? fmtCpu(s) : "–", "num");
      tbody.appendChild(tr);
    }
  }

  // --- pipeline page -------------------------------------------------------------------

  function openPipeline(tenant, name) {
    show("pipeline");
    state.view = null;
    state.samples = [];
    state.rows = [];
    state.errors = [];
    state.last = { sample: 0, row: 0, error: 0 };
    state.resultKeys = "";
    for (const c of Object.values(state.charts)) c.destroy();
    state.charts = {};
    state.tenant = tenant;
    state.name = name;
    $("p-title").textContent = `${tenant} / ${name}`;
    $("p-message").textContent = "";
    $("crumbs").textContent = "";
    const back = document.createElement("a");
    back.href = "#/";
    back.textContent = "All pipelines";
    $("crumbs").appendChild(back);
    $("p-actions").hidden = !state.who.controls;
    $("s-actions").hidden = !state.who.controls;
    $("shadow").hidden = true;
    makeCharts();
    follow(tenant, name);
    if (state.who.controls) followShadow(state.stream);
    loadSchema();
  }

  // --- what a plugin must match ----------------------------------------------------------

  async function loadSchema() {
    $("schema").hidden = true;
    try {
      const s = await api(`${pipelinePath(state.tenant, state.name)}/schema`);
      $("sc-summary").textContent =
        `Key ${s.key.join(", ") || "(none)"}; event time ${s.timestamp}; window ${s.window}, ` +
        `allowed lateness ${s.allowed_lateness}; watermark ${s.watermark_delay} behind. ` +
        `Rows: ${s.output_columns.join(", ")}.`;
      const body = $("sc-fields").querySelector("tbody");
      body.textContent = "";
      for (const f of s.fields) {
        const tr = document.createElement("tr");
        cell(tr, f.name);
        cell(tr, f.type);
        cell(tr, f.key ? "key" : "");
        cell(tr, f.required ? "required" : "");
        body.appendChild(tr);
      }
      const params = Object.entries(s.params).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
      $("sc-params").textContent = `Params given to configure: ${params.join(", ") || "none"}.`;
      $("schema").hidden = false;
    } catch (_) {
      // weir run's console shows no schema.
    }
  }

  // --- the shadow panel ----------------------------------------------------------------

  // Reads the pipeline's last shadow run every 2 s while its page is open (a pipeline
  // without one answers 404: the panel stays hidden).
  async function followShadow(ctl) {
    while (state.stream === ctl) {
      await refreshShadow();
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  async function refreshShadow() {
    try {
      renderShadow(await api(`${pipelinePath(state.tenant, state.name)}/shadow`));
    } catch (e) {
      if (e.status === 404) $("shadow").hidden = true;
    }
  }

  function renderShadow(s) {
    $("shadow").hidden = false;
    $("s-version").textContent = s.version;
    const st = $("s-state");
    st.textContent = s.state;
    st.className = `state ${s.state}`;
    const extra = [];
    if (s.columns_added.length) extra.push(`Columns added: ${s.columns_added.join(", ")}`);
    if (s.columns_removed.length) extra.push(`Columns removed: ${s.columns_removed.join(", ")}`);
    if (s.promote_after) {
      extra.push(`Promotes by itself after ${s.promote_after.windows} windows with at most ${s.promote_after.differing} differing`);
    }
    $("s-summary").textContent =
      `Since ${s.since}, beside live ${s.live_version}: ${s.windows_compared} windows compared, ` +
      `${s.windows_equal} equal, ${s.windows_differing} differing, ${s.candidate_errors} candidate errors.` +
      (extra.length ? ` ${extra.join("; ")}.` : "");
    $("s-stopped").textContent = s.stopped ? `Stopped: ${s.stopped}` : "";
    $("s-stopped").hidden = !s.stopped;
    const running = s.state === "running";
    $("promote").disabled = !running;
    $("discard").disabled = !running;
    const cost = $("s-cost").querySelector("tbody");
    cost.textContent = "";
    for (const [who, c] of [["live", s.live_cost], ["candidate", s.candidate_cost]]) {
      const tr = document.createElement("tr");
      cell(tr, who);
      cell(tr, String(c.calls), "num");
      cell(tr, (c.p50_seconds * 1e3).toFixed(3), "num");
      cell(tr, (c.p99_seconds * 1e3).toFixed(3), "num");
      cell(tr, c.cpu_seconds.toFixed(3), "num");
      cell(tr, fmtBytes(c.memory_bytes), "num");
      cost.appendChild(tr);
    }
    const body = $("s-diffs").querySelector("tbody");
    body.textContent = "";
    for (const w of s.differing) {
      const key = Object.values(w.key).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(", ");
      const row = (r, column, live, candidate) => {
        const tr = document.createElement("tr");
        tr.dataset.result = w.result;
        cell(tr, key);
        cell(tr, `${w.window_start} – ${w.window_end}`);
        cell(tr, w.result);
        cell(tr, r, "num");
        cell(tr, column);
        cell(tr, live, "num");
        cell(tr, candidate, "num");
        body.appendChild(tr);
      };
      if (w.error) row("–", "–", "–", w.error);
      else if (!w.cells.length) row("–", "(rows)", String(w.live_rows), String(w.candidate_rows));
      for (const c of w.cells) {
        row(String(c.row), c.column, JSON.stringify(c.live), JSON.stringify(c.candidate));
      }
    }
  }

  // Reads the pipeline's server-sent events with fetch (EventSource cannot send a bearer
  // token), and reconnects after a pause if the stream ends while the page is open.
  async function follow(tenant, name) {
    const ctl = new AbortController();
    state.stream = ctl;
    while (state.stream === ctl) {
      try {
        const res = await fetch(`${pipelinePath(tenant, name)}/live`, {
          headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
          signal: ctl.signal,
          cache: "no-store",
        });
        if (res.status === 401) {
          signOut("The host refused this token. Sign in again.");
          return;
        }
        if (!res.ok) {
          const body = await res.json().catch(() => null);
          $("p-message").textContent = body && body.reason ? body.reason : `${res.status} ${res.statusText}`;
        } else {
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let end;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const chunk = buf.slice(0, end);
              buf = buf.slice(end + 2);
              const data = chunk
                .split("\n")
                .filter((l) => l.startsWith("data:"))
                .map((l) => l.slice(5).trimStart())
                .join("\n");
              if (data) apply(JSON.parse(data));
            }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  const after = (list, last) => list.filter((x) => x.seq > last);

  function apply(a) {
    state.streamEvents += 1;
    state.view = a.pipeline;
    state.key = a.key;
    state.columns = a.columns;
    const samples = after(a.samples, state.last.sample);
    const rows = after(a.rows, state.last.row);
    const errors = after(a.errors, state.last.error);
    state.samples = state.samples.concat(samples).slice(-KEPT_SAMPLES);
    state.rows = state.rows.concat(rows).slice(-KEPT_ROWS);
    state.errors = state.errors.concat(errors).slice(-SHOWN_ERRORS);
    if (state.samples.length) state.last.sample = state.samples[state.samples.length - 1].seq;
    if (state.rows.length) state.last.row = state.rows[state.rows.length - 1].seq;
    if (state.errors.length) state.last.error = state.errors[state.errors.length - 1].seq;
    renderHeader(a.pipeline);
    renderTiles();
    updateCharts();
    renderFields();
    updateResults();
    renderRows();
    renderErrors();
    renderVersions(a.pipeline);
  }

  function lastError(e) {
    const text = `last plugin error of ${e.version} (${e.at}): ${e.message}`;
    return e.resolved ? `Resolved — ${e.version} is no longer live. Its ${text}` : text;
  }

  function renderHeader(v) {
    const st = $("p-state");
    st.textContent = v.state;
    st.className = `state ${v.state}`;
    $("p-version").textContent = liveVersion(v);
    const retry = v.sink_retrying;
    const reason = v.reason
      || (retry ? `${retry.sink}: retrying a commit since ${retry.since} (${retry.attempts} attempts; the rows wait, nothing is lost): ${retry.error}` : "")
      || (v.last_plugin_error ? lastError(v.last_plugin_error) : "");
    $("p-reason").textContent = reason;
    $("p-reason").hidden = !reason;
    $("pause").disabled = v.state !== "running";
    $("resume").disabled = v.state !== "paused";
    $("rollback").disabled = !v.versions.some((x) => x.status === "previous");
  }

  function renderTiles() {
    const s = state.samples[state.samples.length - 1];
    $("t-rate").textContent = s ? fmtNum(s.events_per_s) : "–";
    $("t-watermark").textContent = s ? fmtTime(s.watermark_ms) : "–";
    $("t-lag").textContent = s ? fmtLag(s.lag_seconds) : "–";
    $("t-open").textContent = s ? fmtNum(s.open_windows) : "–";
    $("t-errors").textContent = s ? fmtNum(s.errors_last_minute) : "–";
    $("t-memory").textContent = s ? fmtBytes(s.memory_bytes) : "–";
    $("t-cpu").textContent = s ? fmtCpu(s) : "–";
  }

  // --- charts --------------------------------------------------------------------------

  function chart(id, series, height = 180) {
    const fig = $(id);
    const width = Math.max(300, fig.clientWidth - 16);
    const opts = {
      width,
      height,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [{}].concat(series.map((s, i) => ({
        label: s,
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: true,
        points: { show: false },
      }))),
      axes: [{}, { size: 60 }],
    };
    const data = [[]].concat(series.map(() => []));
    return new uPlot(opts, data, fig);
  }

  function makeCharts() {
    state.charts.events = chart("c-events", ["events/s"]);
    state.charts.bad = chart("c-bad", ["late/s", "malformed/s"]);
    state.charts.fired = chart("c-fired", ["firings/s"]);
    state.charts.latency = chart("c-latency", ["p50", "p99"]);
  }

  function updateCharts() {
    const s = state.samples;
    const x = s.map((p) => p.at_ms / 1000);
    state.charts.events.setData([x, s.map((p) => p.events_per_s)]);
    state.charts.bad.setData([x, s.map((p) => p.late_per_s), s.map((p) => p.malformed_per_s)]);
    state.charts.fired.setData([x, s.map((p) => p.fired_per_s)]);
    state.charts.latency.setData([x, s.map((p) => p.call_p50_ms), s.map((p) => p.call_p99_ms)]);
  }

  // --- results -------------------------------------------------------------------------

  const SKIP = new Set(["window_start", "window_end", "revision"]);

  function numericFields() {
    const r = state.rows[state.rows.length - 1];
    if (!r) return [];
    const names = state.columns && state.columns.length ? state.columns : Object.keys(r.fields);
    return names.filter(
      (k) => !SKIP.has(k) && !(state.key || []).includes(k) && typeof r.fields[k] === "number",
    );
  }

  function renderFields() {
    const sel = $("r-field");
    const fields = numericFields();
    const have = Array.from(sel.options).map((o) => o.value);
    if (have.join() === fields.join()) return;
    const chosen = sel.value;
    sel.textContent = "";
    for (const f of fields) {
      const o = document.createElement("option");
      o.value = f;
      o.textContent = f;
      sel.appendChild(o);
    }
    const preferred = ["avg", "mean", "average", "moving_avg"].find((f) => fields.includes(f));
    sel.value = fields.includes(chosen) ? chosen : preferred || fields[0] || "";
    state.resultKeys = "";
  }

  const keyOf = (r) => (state.key || []).map((k) => String(r.fields[k])).join("/") || "(all)";

  function updateResults() {
    const field = $("r-field").value;
    const n = Number($("r-windows").value);
    const filter = $("r-filter").value.trim().toLowerCase();
    const rows = state.rows.filter((r) => r.kind === "results" && typeof r.fields[field] === "number");
    const ends = Array.from(new Set(rows.map((r) => Date.parse(r.fields.window_end)))).sort((a, b) => a - b).slice(-n);
    const first = ends[0];
    const byKey = new Map();
    for (const r of rows) {
      const end = Date.parse(r.fields.window_end);
      if (end < first) continue;
      const k = keyOf(r);
      if (filter && !k.toLowerCase().includes(filter)) continue;
      if (!byKey.has(k)) byKey.set(k, new Map());
      // A later revision of a window replaces the earlier one.
      byKey.get(k).set(end, r.fields[field]);
    }
    const allKeys = Array.from(byKey.keys()).sort();
    const keys = allKeys.slice(0, MAX_KEYS);
    $("r-note").textContent = allKeys.length > keys.length
      ? `showing ${keys.length} of ${allKeys.length} keys; filter to see others`
      : "";
    $("r-caption").textContent = field ? `${field} per window end, one line per key` : "Result rows (none with a numeric field yet)";
    const sig = `${field}|${keys.join(",")}`;
    if (sig !== state.resultKeys || !state.charts.results) {
      if (state.charts.results) state.charts.results.destroy();
      state.charts.results = chart("c-results", keys.length ? keys : ["(no rows)"], 260);
      state.resultKeys = sig;
    }
    const data = [ends.map((e) => e / 1000)];
    if (keys.length) {
      for (const k of keys) data.push(ends.map((e) => (byKey.get(k).has(e) ? byKey.get(k).get(e) : null)));
    } else {
      data.push(ends.map(() => null));
    }
    state.charts.results.setData(data);
  }

  function renderRows() {
    const latest = state.rows.filter((r) => r.kind === "results").slice(-SHOWN_ROWS).reverse();
    const table = $("rows");
    // The sink's column order; columns the rows shown do not have are left out.
    const cols = (state.columns || []).filter((c) => latest.some((r) => c in r.fields));
    const head = table.querySelector("thead");
    head.textContent = "";
    const htr = document.createElement("tr");
    for (const c of cols) {
      const th = document.createElement("th");
      th.textContent = c;
      htr.appendChild(th);
    }
    head.appendChild(htr);
    const body = table.querySelector("tbody");
    body.textContent = "";
    for (const r of latest) {
      const tr = document.createElement("tr");
      for (const c of cols) {
        const v = r.fields[c];
        cell(tr, v === undefined || v === null ? "" : typeof v === "number" ? fmtNum(v, 4) : String(v),
          typeof v === "number" ? "num" : "");
      }
      body.appendChild(tr);
    }
  }

  function renderErrors() {
    const body = $("errors").querySelector("tbody");
    body.textContent = "";
    for (const e of state.errors.slice().reverse()) {
      const tr = document.createElement("tr");
      cell(tr, fmtTime(e.at_ms));
      cell(tr, e.kind);
      const f = e.fields;
      const what = f.error || f.reason || "";
      let where = f.offset !== undefined ? ` (at ${f.origin || ""}:${f.offset})` : "";
      // A failed plugin call names its key, window and plugin version.
      if (f.window_start !== undefined) {
        const ctx = [`key ${f.key}`, `window ${f.window_start} – ${f.window_end}`];
        if (f.plugin) ctx.push(f.plugin);
        where = ` (${ctx.join(", ")})`;
      }
      cell(tr, `${what}${where}`);
      body.appendChild(tr);
    }
  }

  function renderVersions(v) {
    const body = $("versions").querySelector("tbody");
    body.textContent = "";
    for (const x of v.versions.slice().reverse()) {
      const tr = document.createElement("tr");
      tr.dataset.status = x.status;
      cell(tr, x.id);
      cell(tr, x.status);
      cell(tr, x.origin);
      cell(tr, x.deployed_at);
      cell(tr, x.status_reason || "");
      body.appendChild(tr);
    }
  }

  // --- actions -------------------------------------------------------------------------

  async function act(action, request) {
    const msg = $("p-message");
    msg.className = "";
    msg.textContent = `${action}…`;
    try {
      const out = await request();
      msg.textContent = out;
    } catch (e) {
      msg.className = "error";
      msg.textContent = `${action} refused: ${e.message}`;
    }
  }

  function post(what) {
    return api(`${pipelinePath(state.tenant, state.name)}/${what}`, { method: "POST" });
  }

  function wireActions() {
    $("pause").addEventListener("click", () => act("Pause", async () => {
      const v = await post("pause");
      renderHeader(v);
      return "Paused: no input is read; windows and state are kept.";
    }));
    $("resume").addEventListener("click", () => act("Resume", async () => {
      const v = await post("resume");
      renderHeader(v);
      return "Resumed.";
    }));
    $("rollback").addEventListener("click", () => act("Roll back", async () => {
      const v = await post("rollback");
      return `Rolled back to ${v.id}.`;
    }));
    $("promote").addEventListener("click", () => act("Promote", async () => {
      const v = await post("shadow/promote");
      await refreshShadow();
      return `Promoted ${v.id}: it is live.`;
    }));
    $("discard").addEventListener("click", () => act("Discard", async () => {
      const s = await post("shadow/discard");
      renderShadow(s);
      return `Discarded the shadow ${s.version}.`;
    }));
    $("deploy-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const file = $("deploy-file").files[0];
      if (!file) {
        $("p-message").textContent = "Choose a .wasm component first.";
        return;
      }
      const shadow = $("deploy-shadow").checked;
      act("Deploy", async () => {
        const body = await file.arrayBuffer();
        if (shadow) {
          const s = await api(`${pipelinePath(state.tenant, state.name)}/shadow`, {
            method: "POST",
            headers: { "Content-Type": "application/wasm" },
            body,
          });
          $("deploy-file").value = "";
          renderShadow(s);
          return `${s.version} runs as the shadow of ${s.live_version}: its windows are compared below, nothing it makes is written.`;
        }
        const v = await api(`${pipelinePath(state.tenant, state.name)}/deploy`, {
          method: "POST",
          headers: { "Content-Type": "application/wasm" },
          body,
        });
        $("deploy-file").value = "";
        return v.live ? `Deployed ${v.id}: it is live.` : `Deployed ${v.id}: it goes live after the batch in hand.`;
      });
    });
    for (const id of ["r-field", "r-windows"]) {
      $(id).addEventListener("change", () => {
        state.resultKeys = "";
        updateResults();
      });
    }
    $("r-filter").addEventListener("input", () => updateResults());
  }

  // --- start ---------------------------------------------------------------------------

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    state.who = null;
    $("login-error").textContent = "";
    await route();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", route);
  wireActions();
  route();
})();
