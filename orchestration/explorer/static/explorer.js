// fedtss explorer: follow the chain without a reload. Polls /api/head; on a new block (or when
// the node comes back) it fetches this page again with X-Fedtss-Partial and swaps <main>.
(function () {
  "use strict";
  const pollMs = Math.max(500, 1000 * Number(document.body.dataset.pollSeconds || 2));
  const main = document.getElementById("content");
  const banner = document.getElementById("node-error");
  const status = document.getElementById("live-status");
  let lastHead = null;
  let offline = false;
  let chainOffset = 0; // chain time minus this browser's clock, in seconds

  function say(text) { if (status && status.textContent !== text) status.textContent = text; }

  async function refresh() {
    const response = await fetch(location.href, { headers: { "X-Fedtss-Partial": "1" }, cache: "no-store" });
    if (response.ok || response.status === 503 || response.status === 404) {
      main.innerHTML = await response.text();
      tickCountdowns();
    }
  }

  async function poll() {
    try {
      const response = await fetch("/api/head", { cache: "no-store" });
      const answer = await response.json();
      if (!answer.ok) throw new Error(answer.error);
      chainOffset = answer.chain_time - Date.now() / 1000;
      const changed = lastHead !== null && answer.head !== lastHead;
      const pageShowsError = main.querySelector("[data-node-error]") !== null;
      if (offline || changed || pageShowsError) await refresh();
      if (offline) { banner.hidden = true; banner.textContent = ""; }
      offline = false;
      lastHead = answer.head;
      say("Live: block #" + answer.head + ", updated " + new Date().toLocaleTimeString() + ".");
    } catch (error) {
      offline = true;
      banner.hidden = false;
      banner.textContent = "The node does not answer: " + (error && error.message ? error.message : error) +
        ". Retrying every " + pollMs / 1000 + " s; the page updates itself when it is back.";
      say("Node unavailable; retrying.");
    }
    setTimeout(poll, pollMs);
  }

  function tickCountdowns() {
    const now = Date.now() / 1000 + chainOffset;
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const left = Math.round(Number(el.dataset.deadline) - now);
      if (!el.dataset.absolute) el.dataset.absolute = el.textContent;
      if (left >= 0) {
        const m = Math.floor(left / 60), s = left % 60;
        el.textContent = el.dataset.absolute + " (" + (m ? m + " min " : "") + s + " s left)";
        el.classList.remove("passed");
      } else {
        el.textContent = el.dataset.absolute + " (passed)";
        el.classList.add("passed");
      }
    }
  }

  setInterval(tickCountdowns, 1000);
  tickCountdowns();
  poll();
})();
