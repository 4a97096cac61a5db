// envoi admin page, second half: bullmq's jobs in every state, search, queue controls (pause, resume,
// clean), the workers, the messages not sent and the throughput chart. Uses admin.js's helpers (window.envoiAdmin); every value
// from the API goes in through textContent.
"use strict";

(() => {
  const { el, svg, api, toast, confirmDialog, when, refreshQueues } = window.envoiAdmin;
  const $ = (selector) => document.querySelector(selector);
  const WORKERS_REFRESH_MS = 5000;
  const THROUGHPUT_REFRESH_MS = 30000;
  const THROUGHPUT_MINUTES = 180;
  let state = "waiting";
  let cursor = null;
  let searching = false;

  const queue = () => $("#jobs-queue").value;
  const jobPath = (q, id) => `/v1/admin/queues/${encodeURIComponent(q)}/jobs/${encodeURIComponent(id)}`;
  const stamp = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  // What the "when" column shows for a state: run-at for delayed jobs, the finish for finished ones.
  function moment(item) {
    if (item.state === "delayed") return { label: "Run at", value: item.runAt };
    if (item.state === "completed" || item.state === "failed") return { label: "Finished", value: item.finishedAt };
    return { label: "Created", value: item.createdAt };
  }

  // --- queue cards: pause, resume, clean ------------------------------------------------------------

  document.addEventListener("envoi:queues", (event) => {
    for (const q of event.detail.queues) {
      const card = document.querySelector(`.queue[data-queue="${CSS.escape(q.name)}"]`);
      if (!card) continue;
      card.querySelector(".paused-badge").hidden = q.paused !== true;
      card.querySelector(".pause").hidden = q.paused === true;
      card.querySelector(".resume").hidden = q.paused !== true;
      card.classList.toggle("is-paused", q.paused === true);
      if (q.name === queue()) {
        for (const tab of document.querySelectorAll(".tab")) {
          const count = q.counts ? q.counts[tab.dataset.state] || 0 : "?";
          tab.querySelector(".tab-count").textContent = String(count);
        }
      }
    }
  });

  async function setPaused(name, paused) {
    const verb = paused ? "pause" : "resume";
    if (paused && !(await confirmDialog(`Pause ${name}?`,
      "Workers finish the jobs they run and take no new one; jobs are still accepted and wait."))) return;
    try {
      await api(`/v1/admin/queues/${encodeURIComponent(name)}/${verb}`, { method: "POST" });
      toast(`${name} ${paused ? "paused" : "resumed"}`);
      await refreshQueues();
    } catch (error) { toast(error.message, true); }
  }

  function cleanDialog(name) {
    const dialog = $("#clean-dialog");
    $("#clean-queue").textContent = name;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        if (dialog.returnValue !== "ok") return resolve(null);
        const form = new FormData(dialog.querySelector("form"));
        resolve({ state: String(form.get("state")), olderThan: String(form.get("olderThan")) });
      }, { once: true });
      dialog.showModal();
    });
  }

  async function clean(name) {
    const choice = await cleanDialog(name);
    if (!choice) return;
    try {
      const params = new URLSearchParams(choice);
      const answer = await api(`/v1/admin/queues/${encodeURIComponent(name)}/clean?${params}`, { method: "POST" });
      const kept = answer.kept ? `; ${answer.kept} kept (no dead letter recorded yet)` : "";
      toast(`${answer.removed} ${choice.state} job(s) removed${kept}`);
      await Promise.all([refreshQueues(), loadJobs()]);
    } catch (error) { toast(error.message, true); }
  }

  for (const button of document.querySelectorAll(".queue .pause")) button.addEventListener("click", () => setPaused(button.dataset.queue, true));
  for (const button of document.querySelectorAll(".queue .resume")) button.addEventListener("click", () => setPaused(button.dataset.queue, false));
  for (const button of document.querySelectorAll(".queue .clean")) button.addEventListener("click", () => clean(button.dataset.queue));

  // --- jobs -----------------------------------------------------------------------------------------

  function detailRow(item, detail) {
    const section = (title, text, wide = false) => el("div", { class: wide ? "wide" : "" },
      el("h4", { text: title }), el("pre", { text }));
    const letters = (detail.deadLetters || []).map((d) => `${d.id}  ${d.status}  ${stamp(d.createdAt)}`).join("\n");
    const grid = el("div", { class: "detail-grid" },
      section("Data (recipients masked)", JSON.stringify(detail.data, null, 2)),
      section("Job", JSON.stringify({ id: detail.id, queue: detail.queue, state: detail.state,
        attempts: `${detail.attemptsMade} of ${detail.maxAttempts}`, created: stamp(detail.createdAt),
        runAt: detail.runAt ? stamp(detail.runAt) : undefined, processed: detail.processedAt ? stamp(detail.processedAt) : undefined,
        finished: detail.finishedAt ? stamp(detail.finishedAt) : undefined, options: detail.options }, null, 2)));
    if (detail.failedReason) grid.append(section("Last error", detail.failedReason, true));
    if ((detail.stacktrace || []).length) grid.append(section("Stack traces", detail.stacktrace.join("\n\n"), true));
    if (letters) grid.append(section("Dead letters of this job", letters, true));
    if (detail.returnValue !== null && detail.returnValue !== undefined) grid.append(section("Returned", JSON.stringify(detail.returnValue, null, 2), true));
    return el("tr", { class: "detail" }, el("td", { colspan: "6" }, grid));
  }

  async function toggleDetail(tr, item) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("detail")) { next.remove(); tr.classList.remove("open"); return; }
    try {
      const detail = await api(jobPath(item.queue, item.id));
      tr.after(detailRow(item, detail));
      tr.classList.add("open");
    } catch (error) { toast(error.message, true); }
  }

  function jobRow(item) {
    const tr = el("tr", { class: "row", "data-id": item.id, "data-state": item.state, tabindex: "0" });
    const actions = el("td", { class: "actions" });
    if (item.state === "delayed") {
      actions.append(el("button", { type: "button", class: "small secondary", text: "Promote",
        title: "Run it now", onclick: (event) => { event.stopPropagation(); promote(item); } }));
    }
    if (["waiting", "delayed", "prioritized"].includes(item.state)) {
      actions.append(el("button", { type: "button", class: "small danger", text: "Cancel",
        onclick: (event) => { event.stopPropagation(); cancel(item); } }));
    }
    const at = moment(item);
    // A completed job that sent nothing (its channel off, its schedule cancelled) says so beside its state.
    const error = item.failedReason ? item.failedReason.split("\n")[0] : (item.notSent ? `not sent: ${item.notSent}` : "");
    tr.append(
      el("td", { class: "job", text: item.id }),
      el("td", { class: "job", text: item.name }),
      el("td", { class: "when", title: at.label, "data-label": at.label, text: stamp(at.value) }),
      el("td", { class: "num", text: `${item.attemptsMade}/${item.maxAttempts}` }),
      el("td", { class: "error-cell", title: error },
        el("span", { class: `badge state-${item.state}${item.notSent ? " not-sent" : ""}`, text: item.state }),
        error ? ` ${error}` : ""),
      actions);
    tr.addEventListener("click", () => toggleDetail(tr, item));
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") toggleDetail(tr, item); });
    return tr;
  }

  function showRows(items, { append = false } = {}) {
    const body = $("#job-list tbody");
    if (!append) body.replaceChildren();
    for (const item of items) body.append(jobRow(item));
    $("#jobs-empty").hidden = body.children.length > 0;
    $("#job-list").dataset.loaded = "true";
  }

  async function loadJobs({ append = false } = {}) {
    if (searching) return;
    const params = new URLSearchParams({ state, limit: "50" });
    if (append && cursor) params.set("cursor", cursor);
    $("#job-when").textContent = state === "delayed" ? "Run at" : (state === "completed" || state === "failed" ? "Finished" : "Created");
    let page;
    try { page = await api(`/v1/admin/queues/${encodeURIComponent(queue())}/jobs?${params}`); }
    catch (error) { $("#jobs-empty").hidden = false; $("#jobs-empty").textContent = error.message; return; }
    $("#jobs-empty").textContent = `No ${state} job in ${queue()}.`;
    showRows(page.items, { append });
    cursor = page.nextCursor;
    $("#jobs-more").hidden = !cursor;
  }

  async function afterJobChange(message) {
    toast(message);
    await Promise.all([searching ? runSearch() : loadJobs(), refreshQueues()]);
  }

  async function promote(item) {
    if (!(await confirmDialog("Run this job now?", `${item.name} ${item.id} was due ${stamp(item.runAt)}; a worker takes it at once.`))) return;
    try {
      await api(`${jobPath(item.queue, item.id)}/promote`, { method: "POST" });
      await afterJobChange(`Promoted ${item.id}`);
    } catch (error) { toast(error.message, true); }
  }

  async function cancel(item) {
    if (!(await confirmDialog("Cancel this job?", `${item.name} ${item.id} is removed and will not run.`))) return;
    try {
      await api(jobPath(item.queue, item.id), { method: "DELETE" });
      await afterJobChange(`Cancelled ${item.id}`);
    } catch (error) { toast(error.message, true); }
  }

  function selectTab(next) {
    state = next;
    for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.state === next));
    clearSearch();
    loadJobs();
  }

  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.state));
  $("#jobs-queue").addEventListener("change", () => { clearSearch(); loadJobs(); refreshQueues(); });
  $("#jobs-more").addEventListener("click", () => loadJobs({ append: true }));

  // --- search ---------------------------------------------------------------------------------------

  async function runSearch() {
    const q = String(new FormData($("#search")).get("q") || "").trim();
    if (!q) return clearSearch();
    let result;
    try { result = await api(`/v1/admin/search?${new URLSearchParams({ q })}`); } catch (error) { toast(error.message, true); return; }
    searching = true;
    $("#search-clear").hidden = false;
    $("#jobs-more").hidden = true;
    const gone = result.items.filter((hit) => !hit.job).length;
    $("#search-summary").hidden = false;
    $("#search-summary").textContent = `${result.items.length} match(es) for this search` +
      (gone ? `; ${gone} no longer in bullmq (completed jobs are removed): see their dead letters, if any` : "");
    const rows = result.items.map((hit) => hit.job || { id: hit.jobId, queue: hit.queue, name: "(gone)", state: hit.state,
      attemptsMade: 0, maxAttempts: 0, createdAt: hit.indexedAt, failedReason: hit.deadLetters.length ? `dead letter ${hit.deadLetters[0].id} (${hit.deadLetters[0].status})` : "" });
    showRows(rows);
    $("#jobs-empty").textContent = "Nothing matches (jobs are found by id, or by a recipient envoi enqueued them for).";
  }

  function clearSearch() {
    searching = false;
    $("#search").reset();
    $("#search-clear").hidden = true;
    $("#search-summary").hidden = true;
  }

  $("#search").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  $("#search-clear").addEventListener("click", () => { clearSearch(); loadJobs(); });

  // --- workers --------------------------------------------------------------------------------------

  async function refreshWorkers() {
    let data;
    try { data = await api("/v1/admin/workers"); } catch (_) { return; }
    const body = $("#workers tbody");
    body.replaceChildren();
    for (const w of data.workers) {
      body.append(el("tr", {},
        el("td", { text: w.queue }),
        el("td", { class: "job", title: w.name, text: w.host || w.address || w.name }),
        el("td", { class: "num", text: w.pid === null ? "—" : String(w.pid) }),
        el("td", { class: "num", text: w.concurrency === null ? "—" : String(w.concurrency) }),
        el("td", { class: "when", title: stamp(w.startedAt), text: when(w.startedAt) }),
        el("td", { class: "when", title: stamp(w.lastSeenAt), text: when(w.lastSeenAt) })));
    }
    $("#workers-empty").hidden = data.workers.length > 0;
    $("#workers-total").textContent = `${data.workers.length} connected`;
  }

  // --- not sent (the ledger's CANCELLED rows) --------------------------------------------------------

  async function refreshNotSent() {
    let data;
    try { data = await api("/v1/admin/deliveries?limit=20"); } catch (_) { return; }
    const body = $("#not-sent tbody");
    body.replaceChildren();
    for (const d of data.items) {
      body.append(el("tr", { "data-id": d.id },
        el("td", { class: "when", title: stamp(d.updatedAt), text: when(d.updatedAt) }),
        el("td", { text: d.channel }),
        el("td", { class: "job", text: d.recipient }),
        el("td", { text: d.templateKey || "—" }),
        el("td", { class: "error-cell" }, el("span", { class: "badge warn", text: d.errorCode || d.status }),
          d.errorMessage ? ` ${d.errorMessage}` : "")));
    }
    $("#not-sent-empty").hidden = data.items.length > 0;
  }

  // --- throughput -----------------------------------------------------------------------------------

  async function refreshThroughput() {
    let data;
    try { data = await api(`/v1/admin/throughput?minutes=${THROUGHPUT_MINUTES}`); } catch (_) { return; }
    const minutes = data.minutes;
    const max = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
    const width = 720, height = 140, bottom = 18;
    const step = width / minutes.length;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
    const scale = (n) => ((height - bottom - 6) * n) / max;
    minutes.forEach((m, i) => {
      const x = i * step;
      const done = scale(m.completed), failed = scale(m.failed);
      const title = `${new Date(m.start).toLocaleTimeString()}: ${m.completed} completed, ${m.failed} failed`;
      for (const [h, y, cls] of [[done, height - bottom - done, "bar done"], [failed, height - bottom - done - failed, "bar fail"]]) {
        if (!h) continue;
        const bar = svg("rect", { x, y, width: Math.max(1, step - 0.5), height: Math.max(1.5, h), class: cls });
        const t = svg("title"); t.textContent = title; bar.append(t);
        chart.append(bar);
      }
      if (i % 30 === 0) {
        const label = svg("text", { x: x + step / 2, y: height - 4, "text-anchor": "start" });
        const start = new Date(m.start);
        label.textContent = `${String(start.getHours()).padStart(2, "0")}:${String(start.getMinutes()).padStart(2, "0")}`;
        chart.append(label);
      }
    });
    chart.append(svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom, class: "axis" }));
    $("#throughput").replaceChildren(chart);
    const done = minutes.reduce((s, m) => s + m.completed, 0), failed = minutes.reduce((s, m) => s + m.failed, 0);
    $("#throughput-total").textContent = data.countingMinutes
      ? `${done} completed, ${failed} failed in 3 h` : "counting is off (WORKER_THROUGHPUT_MINUTES=0)";
  }

  loadJobs();
  refreshWorkers();
  refreshNotSent();
  refreshThroughput();
  setInterval(refreshWorkers, WORKERS_REFRESH_MS);
  setInterval(refreshNotSent, WORKERS_REFRESH_MS);
  setInterval(refreshThroughput, THROUGHPUT_REFRESH_MS);
})();
