// envoi admin page: plain DOM and fetch, no dependencies. Every value from the API goes in through
// textContent (never innerHTML), so a job's data cannot inject markup.
"use strict";

(() => {
  const QUEUE_REFRESH_MS = 3000;
  const CHART_REFRESH_MS = 30000;
  const STATES = ["waiting", "active", "delayed", "failed", "completed", "prioritized", "paused", "waiting-children"];
  const $ = (selector) => document.querySelector(selector);
  let cursor = null;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  // Cookie-authenticated writes carry X-Envoi-CSRF: a header no cross-site form can add.
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (options.method && options.method !== "GET") headers["X-Envoi-CSRF"] = "1";
    const response = await fetch(path, { credentials: "same-origin", ...options, headers });
    if (response.status === 401 || response.status === 403) {
      window.location.reload(); // the session ended: back to the sign-in form
      throw new Error("signed out");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = body.detail || detail;
        // A 422 names each bad field: say which.
        if (Array.isArray(body.errors)) detail += `: ${body.errors.map((e) => `${e.path} ${e.reason}`).join("; ")}`;
      } catch (_) { /* not JSON */ }
      throw new Error(`${response.status}: ${detail}`);
    }
    return response.status === 204 ? null : response.json();
  }

  function toast(message, bad = false) {
    const node = $("#toast");
    node.textContent = message;
    node.classList.toggle("bad", bad);
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { node.hidden = true; }, 3500);
  }

  function confirmDialog(title, text) {
    const dialog = $("#confirm");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
  }

  function when(iso) {
    const date = new Date(iso);
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return date.toLocaleString();
  }

  // --- queues -------------------------------------------------------------------------------------

  async function refreshQueues() {
    let overview;
    try { overview = await api("/v1/admin/queues"); } catch (_) { return; }
    const mode = $("#mode");
    if (!overview.queueEnabled) { mode.textContent = "Queue disabled: jobs run inline"; mode.className = "badge warn"; }
    else if (overview.fallbackActive) { mode.textContent = "Redis down: fallback mode"; mode.className = "badge warn"; }
    else { mode.textContent = "Redis connected"; mode.className = "badge ok"; }
    for (const queue of overview.queues) {
      const list = document.querySelector(`.queue[data-queue="${CSS.escape(queue.name)}"] .counts`);
      if (!list) continue;
      list.replaceChildren();
      if (queue.counts === null) {
        list.append(el("div", { class: "unavailable", text: "Counts unavailable (no Redis)" }));
        continue;
      }
      for (const state of STATES) {
        const count = queue.counts[state] || 0;
        const hot = state === "failed" && count > 0;
        list.append(el("div", { class: hot ? "hot" : "", "data-state": state },
          el("dt", { text: state.replace("-", " ") }), el("dd", { text: String(count) })));
      }
    }
    $("#updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.dispatchEvent(new CustomEvent("envoi:queues", { detail: overview }));
  }

  // --- chart --------------------------------------------------------------------------------------

  async function refreshChart() {
    let data;
    try { data = await api("/v1/admin/failure-histogram"); } catch (_) { return; }
    const hours = data.hours;
    const max = Math.max(1, ...hours.map((h) => h.count));
    const width = 720, height = 140, bottom = 18, gap = 4;
    const barWidth = width / hours.length - gap;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
    hours.forEach((hour, i) => {
      const x = i * (barWidth + gap) + gap / 2;
      const h = hour.count ? Math.max(3, ((height - bottom - 6) * hour.count) / max) : 2;
      const bar = svg("rect", { x, y: height - bottom - h, width: barWidth, height: h, rx: 2,
        class: hour.count ? "bar" : "bar zero" });
      const start = new Date(hour.start);
      const title = svg("title");
      title.textContent = `${start.toLocaleString()}: ${hour.count} dead letter(s)`;
      bar.append(title);
      chart.append(bar);
      if (i % 4 === 0 || i === hours.length - 1) {
        const label = svg("text", { x: x + barWidth / 2, y: height - 4, "text-anchor": "middle" });
        label.textContent = `${String(start.getHours()).padStart(2, "0")}h`;
        chart.append(label);
      }
    });
    $("#chart").replaceChildren(chart);
    const total = hours.reduce((sum, h) => sum + h.count, 0);
    $("#chart-total").textContent = `${total} in 24 h`;
  }

  // --- dead letters -------------------------------------------------------------------------------

  function filterParams() {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData($("#filters"))) if (value) params.set(key, String(value));
    return params;
  }

  function describeFilters() {
    const form = new FormData($("#filters"));
    const parts = [];
    if (form.get("status")) parts.push(`status ${form.get("status")}`);
    if (form.get("queueName")) parts.push(`queue ${form.get("queueName")}`);
    if (form.get("jobName")) parts.push(`job ${form.get("jobName")}`);
    return parts.length ? parts.join(", ") : "every dead letter";
  }

  function detailRow(item) {
    const section = (title, text, wide = false) => el("div", { class: wide ? "wide" : "" },
      el("h4", { text: title }), el("pre", { text }));
    const grid = el("div", { class: "detail-grid" },
      section("Error", item.errorMessage || "(no message)", true),
      section("Stack trace", (item.stacktrace || []).join("\n\n") || "(none)", true),
      section("Payload (recipients masked)", JSON.stringify(item.jobData, null, 2)),
      section("Job", JSON.stringify({ id: item.id, jobId: item.jobId, queue: item.queueName,
        attempts: item.attemptsMade, retriedJobId: item.retriedJobId, options: item.jobOptions,
        createdAt: item.createdAt }, null, 2)));
    return el("tr", { class: "detail" }, el("td", { colspan: "7" }, grid));
  }

  function row(item) {
    const status = String(item.status).toLowerCase();
    const tr = el("tr", { class: "row", "data-id": item.id, tabindex: "0" });
    const actions = el("td", { class: "actions" });
    if (item.status === "FAILED") {
      actions.append(el("button", { type: "button", class: "small secondary", text: "Retry",
        onclick: (event) => { event.stopPropagation(); retryOne(item); } }));
      actions.append(el("button", { type: "button", class: "small ghost", text: "Resolve",
        title: "Handled by hand: mark it resolved (it can no longer be retried)",
        onclick: (event) => { event.stopPropagation(); resolveOne(item); } }));
    }
    actions.append(el("button", { type: "button", class: "small danger", text: "Delete",
      onclick: (event) => { event.stopPropagation(); deleteOne(item); } }));
    tr.append(
      el("td", { class: "when", title: new Date(item.createdAt).toLocaleString(), text: when(item.createdAt) }),
      el("td", { class: "job", text: item.jobName }),
      el("td", { text: item.queueName }),
      el("td", { class: "error-cell", title: item.errorMessage, text: item.errorMessage }),
      el("td", { class: "num", text: String(item.attemptsMade) }),
      el("td", {}, el("span", { class: `badge ${status}`, text: item.status })),
      actions);
    const toggle = () => {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("detail")) { next.remove(); tr.classList.remove("open"); return; }
      tr.after(detailRow(item));
      tr.classList.add("open");
    };
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") toggle(); });
    return tr;
  }

  async function loadDeadLetters({ append = false } = {}) {
    const params = filterParams();
    params.set("limit", "50");
    if (append && cursor) params.set("cursor", cursor);
    let page;
    try { page = await api(`/v1/admin/failed-jobs?${params}`); } catch (error) { toast(error.message, true); return; }
    const body = $("#dead-letters tbody");
    if (!append) body.replaceChildren();
    for (const item of page.items) body.append(row(item));
    cursor = page.nextCursor;
    $("#load-more").hidden = !cursor;
    $("#empty").hidden = body.children.length > 0;
    $("#dead-letters").dataset.loaded = "true";
  }

  async function afterChange(message) {
    toast(message);
    await Promise.all([loadDeadLetters(), refreshQueues(), refreshChart()]);
  }

  // A job that failed on its data fails again when retried with the same data: say so first.
  function retryWarning(item) {
    const problems = item.dataProblems ? Object.entries(item.dataProblems).map(([k, v]) => `${k}: ${v}`).join("; ") : "";
    if (problems) return `Its data is refused today (${problems}): the retry will be refused. Fix the producer, then resolve this one.`;
    if (item.failedOnInvalidData) return "It failed because its data was invalid; a retry sends the same data, so it fails again unless the code has changed since.";
    return "";
  }

  async function retryOne(item) {
    const warning = retryWarning(item);
    const text = `${item.jobName} will be enqueued again with fresh attempts.${warning ? ` Warning: ${warning}` : ""}`;
    if (!(await confirmDialog(warning ? "Retry a job whose data was invalid?" : "Retry this job?", text))) return;
    try {
      const answer = await api(`/v1/admin/failed-jobs/${encodeURIComponent(item.id)}/retry`, { method: "POST" });
      // No queue: it ran now (200 "sync"); had it failed again, the 502's detail is the toast below.
      await afterChange(answer.mode === "sync" ? "Ran inline: delivered" : `Retried as job ${answer.jobId}`);
    } catch (error) {
      toast(error.message, true);
      await loadDeadLetters(); // a 502 (failed again) still changed the list: the row is RETRIED, a new one FAILED
    }
  }

  async function resolveOne(item) {
    if (!(await confirmDialog("Mark this dead letter resolved?", `${item.jobName}: handled by hand; it will not be retried.`))) return;
    try {
      await api(`/v1/admin/failed-jobs/${encodeURIComponent(item.id)}/resolve`, { method: "POST" });
      await afterChange("Dead letter resolved");
    } catch (error) { toast(error.message, true); }
  }

  async function deleteOne(item) {
    if (!(await confirmDialog("Delete this dead letter?", `${item.jobName}: the record is removed for good.`))) return;
    try {
      await api(`/v1/admin/failed-jobs/${encodeURIComponent(item.id)}`, { method: "DELETE" });
      await afterChange("Dead letter deleted");
    } catch (error) { toast(error.message, true); }
  }

  async function bulk(action) {
    const scope = describeFilters();
    const title = action === "retry" ? "Retry every matching job?" : "Delete every matching dead letter?";
    const text = action === "retry"
      ? `Every FAILED dead letter matching ${scope} is enqueued again.`
      : `Every dead letter matching ${scope} is removed for good.`;
    if (!(await confirmDialog(title, text))) return;
    try {
      const answer = await api(`/v1/admin/failed-jobs/${action}?${filterParams()}`, { method: "POST" });
      await afterChange(`${answer.count} ${action === "retry" ? "retried" : "deleted"}`);
    } catch (error) { toast(error.message, true); }
  }

  // Shared with webhooks.js (loaded after this file), so that both speak to the API the same way.
  window.envoiAdmin = Object.freeze({ api, el, toast, confirmDialog, when });

  $("#filters").addEventListener("change", () => loadDeadLetters());
  $("#load-more").addEventListener("click", () => loadDeadLetters({ append: true }));
  $("#retry-all").addEventListener("click", () => bulk("retry"));
  $("#delete-all").addEventListener("click", () => bulk("delete"));

  // jobs.js (the jobs, workers and throughput) uses the same helpers.
  window.envoiAdmin = { el, svg, api, toast, confirmDialog, when, refreshQueues };

  refreshQueues();
  refreshChart();
  loadDeadLetters();
  setInterval(refreshQueues, QUEUE_REFRESH_MS);
  setInterval(refreshChart, CHART_REFRESH_MS);
})();
