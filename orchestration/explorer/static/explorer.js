// fedtss explorer: follow the chain without a reload. Polls /api/head; on a new head (a new block,
// or another block at the same height after a reorganization: the hash tells) or when the node
// comes back, it fetches this page again with X-Fedtss-Partial and swaps <main>.
// For screen readers: the live region speaks only when the node goes away or comes back (the
// block number is shown beside it, outside the region), and a swap keeps keyboard focus on
// the same control inside <main>.
(function () {
  "use strict";
  const pollMs = Math.max(500, 1000 * Number(document.body.dataset.pollSeconds || 2));
  const main = document.getElementById("content");
  const banner = document.getElementById("node-error");
  const status = document.getElementById("live-status");
  const headLabel = document.getElementById("live-head");
  const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  let lastHead = null;
  let offline = false;
  let chainOffset = 0; // chain time minus this browser's clock, in seconds

  function say(text) { if (status && status.textContent !== text) status.textContent = text; }

  let shownHtml = null;

  // Where keyboard focus is inside <main>: the control's link target (links come and go as
  // rounds appear, so an index alone would land on another one) and its position.
  function focusedControl() {
    const active = document.activeElement;
    if (!active || active === main || !main.contains(active)) return null;
    return { href: active.getAttribute("href"), index: Array.prototype.indexOf.call(main.querySelectorAll(FOCUSABLE), active) };
  }

  function restoreFocus(control) {
    const controls = Array.prototype.slice.call(main.querySelectorAll(FOCUSABLE));
    let again = controls[control.index];
    if (control.href !== null) { // the same link target, nearest to where it was (links repeat)
      let best = Infinity;
      controls.forEach(function (el, i) {
        if (el.getAttribute("href") === control.href && Math.abs(i - control.index) < best) {
          best = Math.abs(i - control.index);
          again = el;
        }
      });
    }
    if (again) again.focus({ preventScroll: true });
  }

  // A swap must not close what the reader opened (the charts' numbers are in a <details>).
  function openDetails() {
    return Array.prototype.map.call(main.querySelectorAll("details"), function (d) { return d.open; });
  }

  function reopenDetails(wasOpen) {
    main.querySelectorAll("details").forEach(function (d, i) { if (wasOpen[i]) d.open = true; });
  }

  async function refresh() {
    const response = await fetch(location.href, { headers: { "X-Fedtss-Partial": "1" }, cache: "no-store" });
    if (!(response.ok || response.status === 503 || response.status === 404)) return;
    const html = await response.text();
    if (html === shownHtml) return;
    const focused = focusedControl();
    const wasOpen = openDetails();
    main.innerHTML = html;
    shownHtml = html;
    reopenDetails(wasOpen);
    if (focused) restoreFocus(focused);
    tickCountdowns();
  }

  async function poll() {
    try {
      const response = await fetch("/api/head", { cache: "no-store" });
      const answer = await response.json();
      if (!answer.ok) throw new Error(answer.error);
      chainOffset = answer.chain_time - Date.now() / 1000;
      const changed = lastHead !== null && answer.head_hash !== lastHead;
      const pageShowsError = main.querySelector("[data-node-error]") !== null;
      if (offline || changed || pageShowsError) await refresh();
      if (offline) {
        banner.hidden = true;
        banner.textContent = "";
        say("The node is back; following the chain again.");
      }
      offline = false;
      lastHead = answer.head_hash;
      if (headLabel) headLabel.textContent = "Block #" + answer.head + ", checked " + new Date().toLocaleTimeString() + ".";
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
