// envoi admin page, "Webhooks": endpoints and their last attempts; add, test, replay, enable or
// disable, rotate the secret, delete. Speaks to /v1/admin/webhook-endpoints through admin.js's helpers
// (cookie + X-Envoi-CSRF); every value goes in through textContent.
"use strict";

(() => {
  const { api, el, toast, confirmDialog, when } = window.envoiAdmin;
  const BASE = "/v1/admin/webhook-endpoints";
  const REFRESH_MS = 10000;
  const ATTEMPTS_SHOWN = 5;
  const $ = (selector) => document.querySelector(selector);

  function showSecret(answer) {
    const box = $("#webhook-secret");
    box.querySelector(".endpoint-id").textContent = answer.id;
    box.querySelector(".value").textContent = answer.secret;
    box.hidden = false;
  }

  function stateBadge(endpoint) {
    if (!endpoint.enabled) return el("span", { class: "badge failed", text: "disabled", title: endpoint.disabledReason || "" });
    if (endpoint.failingSince) {
      return el("span", { class: "badge warn", text: `failing since ${when(endpoint.failingSince)}` });
    }
    return el("span", { class: "badge ok", text: "enabled" });
  }

  async function act(promise, message) {
    try {
      const answer = await promise;
      toast(message(answer));
      await loadEndpoints();
      return answer;
    } catch (error) { toast(error.message, true); return null; }
  }

  function attemptsTable(endpoint, attempts) {
    if (!attempts.length) return el("p", { class: "muted small", text: "No attempts yet." });
    const body = el("tbody");
    for (const attempt of attempts) {
      const ok = attempt.statusCode !== null && attempt.statusCode >= 200 && attempt.statusCode < 300;
      const status = attempt.statusCode === null ? "no answer" : String(attempt.statusCode);
      const replay = el("button", { type: "button", class: "small secondary", text: "Replay",
        onclick: () => act(api(`${BASE}/${encodeURIComponent(endpoint.id)}/replay/${encodeURIComponent(attempt.eventId)}`,
          { method: "POST" }), () => `Event ${attempt.eventId} queued again`) });
      if (!endpoint.enabled) replay.disabled = true;
      body.append(el("tr", { class: "attempt", "data-event": attempt.eventId },
        el("td", { class: "when", title: new Date(attempt.createdAt).toLocaleString(), text: when(attempt.createdAt) }),
        el("td", { class: "job", text: attempt.eventType, title: attempt.eventId }),
        el("td", {}, el("span", { class: `badge ${ok ? "ok" : "failed"}`, text: status })),
        el("td", { class: "num", text: `${attempt.durationMs} ms` }),
        el("td", { class: "error-cell", title: attempt.error || "", text: attempt.error || "" }),
        el("td", { class: "actions" }, replay)));
    }
    const head = el("tr", {}, ...["When", "Event", "Status", "Duration", "Error", ""].map(
      (name) => el("th", { scope: "col", text: name, class: name === "Duration" ? "num" : "" })));
    return el("div", { class: "table-wrap" }, el("table", { class: "attempts" }, el("thead", {}, head), body));
  }

  function endpointCard(endpoint, attempts) {
    const path = `${BASE}/${encodeURIComponent(endpoint.id)}`;
    const test = el("button", { type: "button", class: "small secondary", text: "Send test event",
      onclick: () => act(api(`${path}/test`, { method: "POST" }), (a) => `Test event ${a.eventId} queued`) });
    test.disabled = !endpoint.enabled;
    const toggle = el("button", { type: "button", class: "small", text: endpoint.enabled ? "Disable" : "Enable",
      onclick: () => act(api(path, { method: "PATCH", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ enabled: !endpoint.enabled }) }), (a) => (a.enabled ? "Endpoint enabled" : "Endpoint disabled")) });
    const rotate = el("button", { type: "button", class: "small", text: "Rotate secret", onclick: async () => {
      if (!(await confirmDialog("Rotate the signing secret?", "A new secret is shown once; the old one keeps signing for 24 hours."))) return;
      const answer = await act(api(`${path}/rotate-secret`, { method: "POST" }), () => "Secret rotated");
      if (answer) showSecret(answer);
    } });
    const remove = el("button", { type: "button", class: "small danger", text: "Delete", onclick: async () => {
      if (!(await confirmDialog("Delete this endpoint?", `${endpoint.url} stops receiving events; its attempts are deleted.`))) return;
      await act(api(path, { method: "DELETE" }), () => "Endpoint deleted");
    } });
    return el("article", { class: "endpoint", "data-id": endpoint.id },
      el("div", { class: "endpoint-head" },
        el("div", {}, el("span", { class: "endpoint-url", text: endpoint.url }), " ", stateBadge(endpoint)),
        el("div", { class: "endpoint-actions" }, test, toggle, rotate, remove)),
      el("div", { class: "endpoint-meta muted small",
        text: [endpoint.description, endpoint.events.join(", "), endpoint.enabled ? "" : endpoint.disabledReason]
          .filter(Boolean).join(" · ") }),
      attemptsTable(endpoint, attempts));
  }

  async function loadEndpoints() {
    let page;
    try { page = await api(BASE); } catch (error) { toast(error.message, true); return; }
    const cards = await Promise.all(page.items.map(async (endpoint) => {
      let attempts = [];
      try { attempts = (await api(`${BASE}/${encodeURIComponent(endpoint.id)}/attempts?limit=${ATTEMPTS_SHOWN}`)).items; }
      catch (_) { /* deleted meanwhile: shown without attempts until the next refresh */ }
      return endpointCard(endpoint, attempts);
    }));
    $("#webhooks").replaceChildren(...cards);
    $("#webhooks-empty").hidden = cards.length > 0;
    $("#webhooks").dataset.loaded = "true";
  }

  $("#webhook-create").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = { url: form.get("url"), events: form.getAll("events"), description: form.get("description") || null };
    const answer = await act(api(BASE, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) }), () => "Endpoint added");
    if (answer) { showSecret(answer); event.target.reset(); }
  });

  loadEndpoints();
  setInterval(loadEndpoints, REFRESH_MS);
})();
