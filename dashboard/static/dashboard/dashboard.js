/* The live dashboard: rows pushed by the server, the conversation panel, hang-up. */
(function () {
  "use strict";

  const live = window.VoiceLive;
  const activeBody = document.getElementById("active-calls");
  const recentBody = document.getElementById("recent-calls");
  const panel = document.getElementById("call-panel");
  const callUrl = (pk) => `/dashboard/calls/${pk}/`;
  const MAX_RECENT = 30;
  let openCall = null;
  // Lines of live calls seen since the page loaded, so a panel opened mid-call misses none.
  const liveLines = new Map();
  const hangupWatch = new Map();

  function rows(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function refreshCounts() {
    const active = activeBody.querySelectorAll("tr").length;
    document.getElementById("active-count").textContent = String(active);
    document.getElementById("active-empty").hidden = active > 0;
    document.getElementById("recent-empty").hidden = recentBody.querySelectorAll("tr").length > 0;
    document.querySelectorAll("tr.call-row").forEach((tr) => {
      tr.classList.toggle("selected", Number(tr.dataset.call) === openCall);
    });
    live.tickTimers();
  }

  function onSnapshot(message) {
    if (message.refresh && document.querySelector(".hangup.armed, .hangup:disabled")) return; // not mid-click
    activeBody.replaceChildren(rows(message.active));
    recentBody.replaceChildren(rows(message.recent));
    refreshCounts();
    if (openCall !== null && !message.refresh) loadCall(openCall);
  }

  function onCall(message) {
    document.querySelectorAll(`tr.call-row[data-call="${message.call}"]`).forEach((tr) => tr.remove());
    const body = message.active ? activeBody : recentBody;
    body.prepend(rows(message.html));
    while (recentBody.children.length > MAX_RECENT) recentBody.lastElementChild.remove();
    if (!message.active) {
      liveLines.delete(message.call);
      const watch = hangupWatch.get(message.call);
      if (watch) {
        clearTimeout(watch);
        hangupWatch.delete(message.call);
        live.toast("The call has ended.", "ok");
      }
    }
    refreshCounts();
    if (openCall === message.call) loadCall(message.call);
  }

  function onLine(line) {
    if (!liveLines.has(line.call)) liveLines.set(line.call, new Map());
    liveLines.get(line.call).set(line.position, line);
    const list = panel.querySelector(`ol.transcript[data-call="${line.call}"]`);
    if (list) {
      live.upsertLine(list, line);
      panel.classList.add("has-lines");
    }
  }

  async function loadCall(pk) {
    openCall = pk;
    refreshCounts();
    let response;
    try {
      response = await fetch(callUrl(pk), { headers: { "X-Requested-With": "fetch" } });
    } catch (err) {
      live.toast("Could not load the call: the server did not answer.", "bad");
      return;
    }
    if (openCall !== pk) return;
    if (!response.ok) {
      live.toast(response.status === 404 ? "That call no longer exists." : "Could not load the call.", "bad");
      return;
    }
    panel.innerHTML = await response.text();
    const list = panel.querySelector("ol.transcript");
    (liveLines.get(pk) || new Map()).forEach((line) => live.upsertLine(list, line));
    panel.classList.toggle("has-lines", list.children.length > 0);
    list.scrollIntoView({ block: "nearest" });
    live.tickTimers();
  }

  function askHangUp(button) {
    const pk = Number(button.dataset.call);
    if (!button.classList.contains("armed")) {
      // Two clicks, so a call is never ended by a slip of the mouse.
      button.classList.add("armed");
      button.textContent = "Confirm";
      setTimeout(() => {
        if (button.isConnected && !button.disabled) {
          button.classList.remove("armed");
          button.textContent = button.dataset.label || "Hang up";
        }
      }, 4000);
      return;
    }
    const now = button.dataset.now === "1";
    if (!socket.send({ action: "hangup", call: pk, now })) {
      live.toast("Not connected to the server; try again in a moment.", "bad");
      return;
    }
    // After a polite hang-up, "Hang up now" stays available in case the goodbye takes too long.
    const which = now ? `.hangup[data-call="${pk}"]` : `.hangup:not(.hangup-now)[data-call="${pk}"]`;
    document.querySelectorAll(which).forEach((b) => {
      b.disabled = true;
      b.textContent = "Hanging up…";
    });
    document.querySelectorAll(`.hangup-now[data-call="${pk}"]`).forEach((b) => {
      if (!now) b.classList.remove("armed");
    });
  }

  function onHangupAnswer(message) {
    if (!message.ok) {
      live.toast(message.message, "bad");
      document.querySelectorAll(`.hangup[data-call="${message.call}"]`).forEach((b) => {
        b.disabled = false;
        b.classList.remove("armed");
        b.textContent = b.dataset.label || "Hang up";
      });
      return;
    }
    live.toast(message.message, "ok");
    hangupWatch.set(
      message.call,
      setTimeout(() => {
        hangupWatch.delete(message.call);
        live.toast(
          "No server has ended this call yet. If it stays here, the server handling it has probably " +
            "stopped; it will be closed automatically.",
          "bad",
        );
      }, 20000),
    );
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.hangup");
    if (button) {
      event.stopPropagation();
      askHangUp(button);
      return;
    }
    const row = event.target.closest("tr.call-row");
    if (row) loadCall(Number(row.dataset.call));
  });
  document.addEventListener("keydown", (event) => {
    const row = event.target.closest && event.target.closest("tr.call-row");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      loadCall(Number(row.dataset.call));
    }
  });

  const socket = live.connect("/ws/dashboard/", (message) => {
    if (message.type === "snapshot") onSnapshot(message);
    else if (message.type === "call") onCall(message);
    else if (message.type === "line") onLine(message);
    else if (message.type === "hangup") onHangupAnswer(message);
    else if (message.type === "error") live.toast(message.message, "bad");
  });
  refreshCounts();
  // Refused calls are not announced as they happen (no assistant, no observer), and costs may be
  // written after a call's end: a fresh list once a minute catches both.
  setInterval(() => {
    if (document.visibilityState === "visible") socket.send({ action: "refresh" });
  }, 60000);
  // For tests and the curious: what this page has seen.
  window.voiceDashboard = { liveLines, get openCall() { return openCall; } };
})();
