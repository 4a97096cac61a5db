// envoi admin page, "Withheld messages": the latest ledger rows CANCELLED (channel off, schedule
// cancelled) or SUPPRESSED (the recipient opted out), with their reason. Read-only; recipients come
// masked from /v1/admin/withheld; every value goes in through textContent.
"use strict";

(() => {
  const { api, el, toast, when } = window.envoiAdmin;
  const REFRESH_MS = 10000;

  async function load() {
    let rows;
    try { rows = await api("/v1/admin/withheld?limit=20"); } catch (error) { toast(error.message, true); return; }
    const body = document.querySelector("#withheld tbody");
    body.replaceChildren(...rows.map((row) => el("tr", { "data-id": row.id },
      el("td", { class: "when", title: new Date(row.updatedAt).toLocaleString(), text: when(row.updatedAt) }),
      el("td", { text: row.channel }),
      el("td", { text: row.recipient }),
      el("td", { class: "job", text: row.templateKey || "" }),
      el("td", {}, el("span", { class: `badge ${row.status === "SUPPRESSED" ? "warn" : "neutral"}`, text: row.status, title: row.code || "" })),
      el("td", { class: "error-cell", title: row.reason || "", text: row.reason || "" }))));
    document.querySelector("#withheld-empty").hidden = rows.length > 0;
  }

  load();
  setInterval(load, REFRESH_MS);
})();
