// echarging console: keeps server-rendered pages live from the Server-Sent Events stream the
// page names in <body data-stream>, and refetches server-drawn fragments. Fleet rows ([data-charger]) take `chargers` and `counts`
// events; bookings ([data-reservation]) take `reservation` events. No framework, no build step.
(function () {
  'use strict';
  // Fragments ([data-refresh="URL"]) the server redraws, e.g. a running charge's energy chart:
  // refetched every few seconds; a failed fetch (signed out, server away) keeps the last one.
  Array.prototype.forEach.call(document.querySelectorAll('[data-refresh]'), function (el) {
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(el.getAttribute('data-refresh'), { credentials: 'same-origin', redirect: 'error' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null && el.innerHTML !== html) { el.innerHTML = html; } })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 2000);
  });
  var url = document.body && document.body.getAttribute('data-stream');
  if (!url || !window.EventSource) { return; }

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }
  function attr(name, value) {
    return '[' + name + '="' + String(value).replace(/["\\]/g, '\\$&') + '"]';
  }
  function field(root, name, text) {
    Array.prototype.forEach.call(root.querySelectorAll(attr('data-field', name)), function (el) {
      if (el.textContent !== text) { el.textContent = text; }
    });
  }
  function kwh(wh) { return (wh / 1000).toFixed(3) + ' kWh'; }

  function charger(c) {
    each(attr('data-charger', c.id), function (el) {
      el.setAttribute('data-online', c.online ? 'true' : 'false');
      el.setAttribute('data-faulted', c.faulted ? 'true' : 'false');
      field(el, 'online', c.online ? 'online' : 'offline');
      field(el, 'status', c.status);
      field(el, 'seen', c.seen);
      field(el, 'firmware', c.firmware);
      field(el, 'breaker', c.breaker);
    });
  }

  function reservation(r) {
    var found = false;
    var energy = r.charging && r.charging.energyWh != null ? kwh(r.charging.energyWh) : '\u2014';
    each(attr('data-reservation', r.id), function (el) {
      found = true;
      el.setAttribute('data-status', r.status);
      el.setAttribute('data-ack', r.chargerAck);
      field(el, 'status', r.status);
      field(el, 'ack', r.chargerAck);
      field(el, 'energy', energy);
      if (r.status !== 'BOOKED') {
        Array.prototype.forEach.call(el.querySelectorAll('form'), function (f) { f.remove(); });
      }
    });
    each(attr('data-energy-of', r.id), function (el) { el.textContent = energy; });
    // A booking made elsewhere (another tab, the API), or a charge that just began: the
    // server draws the new parts.
    var started = r.status === 'CHARGING_STARTED' &&
      document.querySelector(attr('data-energy-of', r.id)) === null;
    if (!found || started) { window.location.reload(); }
  }

  var source = new EventSource(url);
  source.addEventListener('chargers', function (e) { JSON.parse(e.data).forEach(charger); });
  source.addEventListener('counts', function (e) {
    var counts = JSON.parse(e.data);
    Object.keys(counts).forEach(function (k) {
      each(attr('data-count', k), function (el) { el.textContent = String(counts[k]); });
    });
  });
  source.addEventListener('reservation', function (e) { reservation(JSON.parse(e.data)); });
  source.addEventListener('resync', function () { window.location.reload(); });
  // A page left open in the back/forward cache would keep its stream, and a browser holds
  // only a few connections per server: close it on leaving, and start afresh on return.
  window.addEventListener('pagehide', function () { source.close(); });
  window.addEventListener('pageshow', function (e) { if (e.persisted) { window.location.reload(); } });
}());
