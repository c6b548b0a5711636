/* Shared by the dashboard pages: the live socket, transcript lines, timers, toasts. No build step. */
(function () {
  "use strict";

  const ROLE_NAMES = { caller: "Caller", assistant: "Assistant", tool: "Tool" };
  let clockSkewMs = 0; // server time minus this browser's time

  function socketUrl(path) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${path}`;
  }

  function setConnection(state, text) {
    const el = document.getElementById("conn");
    if (!el) return;
    el.dataset.state = state;
    el.querySelector("span").textContent = text;
  }

  /* A socket that reconnects by itself; `onMessage` gets each JSON message. */
  function connect(path, onMessage) {
    let ws = null;
    let delay = 1000;
    let closedByUs = false;
    let opened = false;
    function open() {
      ws = new WebSocket(socketUrl(path));
      ws.onopen = () => {
        opened = true;
        delay = 1000;
        setConnection("live", "Live");
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        if (message.type === "snapshot" && message.now) {
          clockSkewMs = Date.parse(message.now) - Date.now();
        }
        onMessage(message);
      };
      ws.onclose = () => {
        if (closedByUs) return;
        // Refused before it ever opened: usually a session that expired.
        setConnection("down", opened ? "Reconnecting…" : "Not connected: are you still logged in?");
        opened = false;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    open();
    return {
      send(obj) {
        if (ws && ws.readyState === WebSocket.OPEN) {
          ws.send(JSON.stringify(obj));
          return true;
        }
        return false;
      },
      close() {
        closedByUs = true;
        if (ws) ws.close();
      },
    };
  }

  function clock(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  /* The same markup as templates/dashboard/_line.html, built safely from data. */
  function lineElement(line) {
    const li = document.createElement("li");
    li.className = `line role-${line.role}${line.interrupted ? " cut" : ""}`;
    li.dataset.pos = String(line.position);
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = ROLE_NAMES[line.role] || line.role;
    meta.append(who);
    if (line.offset_ms !== null && line.offset_ms !== undefined) {
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = clock(line.offset_ms);
      meta.append(at);
    }
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = line.text || "…";
    li.append(meta, text);
    if (line.interrupted) {
      const note = document.createElement("div");
      note.className = "cut-note";
      note.textContent = "cut off by the caller";
      li.append(note);
    }
    return li;
  }

  /* Insert or replace a line by its position, keeping the conversation in order. */
  function upsertLine(list, line) {
    const el = lineElement(line);
    const existing = list.querySelector(`li[data-pos="${line.position}"]`);
    if (existing) {
      existing.replaceWith(el);
    } else {
      const after = Array.from(list.children).find((li) => Number(li.dataset.pos) > line.position);
      list.insertBefore(el, after || null);
    }
    const scroller = list.closest(".scroll") || list.parentElement;
    if (scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 160) {
      scroller.scrollTop = scroller.scrollHeight;
    }
    return el;
  }

  function tickTimers() {
    const now = Date.now() + clockSkewMs;
    document.querySelectorAll(".timer[data-started]").forEach((el) => {
      el.textContent = clock(now - Date.parse(el.dataset.started));
    });
  }
  setInterval(tickTimers, 1000);
  document.addEventListener("DOMContentLoaded", tickTimers);

  function toast(text, kind) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = `toast ${kind || ""}`;
    el.textContent = text;
    box.append(el);
    setTimeout(() => el.classList.add("gone"), 6000);
    setTimeout(() => el.remove(), 6600);
  }

  /* Copy buttons: <button data-copy="#selector">. */
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    const text = source ? source.textContent.trim() : "";
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });

  window.VoiceLive = { connect, upsertLine, lineElement, clock, toast, tickTimers, setConnection };
})();
