// wagate dashboard: the few live parts of otherwise server-rendered pages.
// Events arrive over the realtime WebSocket (/ui/events, authenticated by
// the session cookie); on each one the page fetches the affected fragment
// from the server, so all markup is rendered in one place. No polling.
(() => {
  'use strict';

  // Destructive forms ask first.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    const question = form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // One click, one request: some actions take a moment.
    for (const button of form.querySelectorAll('button[type=submit]')) {
      setTimeout(() => { button.disabled = true; }, 0);
    }
  });
  // Coming back through history must not leave buttons disabled.
  window.addEventListener('pageshow', () => {
    for (const button of document.querySelectorAll('button[disabled]')) button.disabled = false;
  });
  document.addEventListener('change', (event) => {
    if (event.target.matches('[data-autosubmit]')) event.target.form.submit();
  });

  function localize(root) {
    for (const node of root.querySelectorAll('time[data-local]')) {
      const at = new Date(node.dateTime);
      if (Number.isNaN(at.getTime())) continue;
      node.textContent = at.toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' });
      node.title = node.dateTime;
    }
  }

  // Countdowns to a QR code's or pairing code's expiry.
  function tick() {
    for (const node of document.querySelectorAll('[data-countdown]')) {
      let expires = node.getAttribute('data-expires-at');
      const isQr = !expires;
      if (isQr) {
        const image = node.closest('.card')?.querySelector('[data-qr-image][data-expires-at]');
        expires = image?.getAttribute('data-expires-at');
      }
      if (!expires) { node.textContent = ''; continue; }
      const left = Math.round((Date.parse(expires) - Date.now()) / 1000);
      if (isQr) {
        node.textContent = left > 0 ? `New code in ${left} s` : 'Getting a new code…';
      } else if (left > 0) {
        const minutes = Math.floor(left / 60);
        const seconds = String(left % 60).padStart(2, '0');
        node.textContent = `Expires in ${minutes}:${seconds}`;
      } else {
        node.textContent = 'This code expired. Request a new one.';
      }
    }
  }

  localize(document);
  tick();
  setInterval(tick, 1000);

  const first = document.querySelector('[data-live]');
  if (!first) return;
  const sessionId = first.getAttribute('data-session-id');
  const isList = first.hasAttribute('data-list');
  const indicator = document.querySelector('[data-live-indicator]');

  function setLive(online) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.textContent = online ? 'Live' : 'Reconnecting…';
    indicator.classList.toggle('offline', !online);
  }

  async function fetchHtml(url) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
    // Signed out meanwhile: the server redirected to the sign-in page.
    if (response.redirected && new URL(response.url).pathname === '/login') {
      window.location.assign('/login');
      return null;
    }
    if (response.status === 404) return { missing: true };
    if (!response.ok) return null;
    return { html: await response.text() };
  }

  function fromHtml(html) {
    const template = document.createElement('template');
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  // Only the newest refresh may write, whatever order responses come in.
  let generation = 0;
  async function refreshLive() {
    const mine = ++generation;
    const result = await fetchHtml(`/sessions/${sessionId}/live`);
    if (mine !== generation || !result) return;
    if (result.missing) { window.location.assign('/sessions'); return; }
    const next = fromHtml(result.html);
    const current = document.querySelector('[data-live]');
    if (!next || !current) return;
    current.replaceWith(next);
    localize(next);
    tick();
  }

  // The session's messages: refetched whole (50 rows) when one arrives
  // or changes status; again only the newest refresh may write.
  let messagesGeneration = 0;
  async function refreshMessages() {
    const mine = ++messagesGeneration;
    const result = await fetchHtml(`/sessions/${sessionId}/messages`);
    if (mine !== messagesGeneration || !result || result.missing) return;
    const next = fromHtml(result.html);
    const current = document.querySelector('[data-messages]');
    if (!next || !current) return;
    current.replaceWith(next);
    localize(next);
  }

  function showQr(expiresAt) {
    const frame = document.querySelector('[data-qr]');
    if (!frame) { refreshLive(); return; }
    const image = new Image();
    image.className = 'qr-image';
    image.alt = 'QR code to scan with WhatsApp';
    image.setAttribute('data-qr-image', '');
    image.setAttribute('data-expires-at', expiresAt);
    // Swapped once loaded, so the old code stays until the new one can show.
    image.onload = () => {
      frame.replaceChildren(image);
      tick();
    };
    image.src = `/sessions/${sessionId}/qr.svg?v=${Date.parse(expiresAt)}`;
  }

  async function refreshRow(id) {
    const result = await fetchHtml(`/sessions/${id}/row`);
    if (!result) return;
    const existing = document.querySelector(`tr[data-session-id="${CSS.escape(id)}"]`);
    if (result.missing) { existing?.remove(); return; }
    const row = fromHtml(`<table><tbody>${result.html}</tbody></table>`)?.querySelector('tr');
    if (!row) return;
    localize(row);
    if (existing) {
      existing.replaceWith(row);
    } else {
      document.querySelector('[data-rows]')?.append(row);
      document.querySelector('[data-empty]')?.remove();
    }
  }

  function handle(event) {
    if (isList) {
      if (event.event === 'session.status') refreshRow(event.session_id);
      return;
    }
    if (event.session_id !== sessionId) return;
    switch (event.event) {
      case 'session.status': refreshLive(); break;
      case 'session.qr': showQr(event.data.expires_at); break;
      case 'message.received':
      case 'message.status':
      case 'message.reaction':
      case 'message.poll_vote':
      case 'message.edited':
      case 'message.revoked':
        refreshMessages();
        break;
      case 'session.pairing_code': {
        const code = document.querySelector('[data-pairing-code]');
        if (code) code.textContent = event.data.code;
        break;
      }
      default: break;
    }
  }

  let attempts = 0;
  function connect() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = sessionId ? `?session_id=${encodeURIComponent(sessionId)}` : '';
    const socket = new WebSocket(`${scheme}//${window.location.host}/ui/events${query}`);
    socket.onopen = () => {
      attempts = 0;
      setLive(true);
      // Catch up on whatever changed before the socket was open, unless the
      // page holds a pairing code the user is typing.
      const current = document.querySelector('[data-live]');
      if (sessionId && current && !current.hasAttribute('data-keep')) refreshLive();
      if (sessionId) refreshMessages();
    };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      handle(event);
    };
    socket.onclose = () => {
      setLive(false);
      const delay = Math.min(30000, 1000 * 2 ** attempts);
      attempts += 1;
      setTimeout(connect, delay);
    };
  }
  connect();
})();
