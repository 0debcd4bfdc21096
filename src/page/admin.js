// The operator console: the list of events; one event's figures, live charts (drawn here as
// SVG: no CDN), every valve (the API validates, errors are shown by field), the inventory and
// the audit trail, all through the admin API. The admin token stays in sessionStorage, so it is
// gone when the tab closes.
'use strict';

(function () {
  var REFRESH_MS = 2000;
  // Five minutes of samples, one per refresh.
  var KEEP = 150;
  var SVG = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };
  var timer = null;
  var watching = null;
  var samples = [];
  var shownValves = null;

  function api(method, path, body) {
    var token = sessionStorage.getItem('vestibule.admin');
    var init = {
      method: method,
      cache: 'no-store',
      headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' }
    };
    if (body) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch('/admin/v1/events' + path, init).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        if (!res.ok) {
          var err = new Error(json && json.error ? json.error.message : 'HTTP ' + res.status);
          err.field = json && json.error ? json.error.field : null;
          throw err;
        }
        return json;
      });
    });
  }

  function eventPath(suffix) {
    return '/' + encodeURIComponent(watching) + (suffix || '');
  }

  function showError(err) {
    $('error').textContent = err ? String(err.message || err) : '';
    $('error').hidden = !err;
  }

  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function round(n) {
    return typeof n === 'number' ? String(Math.round(n * 100) / 100) : String(n);
  }

  // === the list of events ===

  function renderList(events) {
    $('list').hidden = false;
    var body = $('events');
    body.textContent = '';
    events.forEach(function (e) {
      var row = el('tr');
      var cell = el('td');
      var button = el('button', e.event_id);
      button.type = 'button';
      button.addEventListener('click', function () { watch(e.event_id); });
      cell.appendChild(button);
      row.appendChild(cell);
      [e.state_now, e.figures.waiting, e.figures.active, e.door_rate_now].forEach(function (v) {
        row.appendChild(el('td', round(v)));
      });
      row.dataset.event = e.event_id;
      body.appendChild(row);
    });
  }

  // === one event: figures and the main controls ===

  function renderFigures(body) {
    $('panel').hidden = false;
    $('panel-title').textContent = body.event_id + ': ' + body.config.state;
    document.body.dataset.state = body.config.state;
    var list = $('figures');
    var rows = [['door rate', body.config.admission_rate], ['max active', body.config.max_active]];
    Object.keys(body.figures || {}).forEach(function (k) { rows.push([k.replace(/_/g, ' '), body.figures[k]]); });
    list.textContent = '';
    rows.forEach(function (row) {
      var div = el('div');
      var dd = el('dd', round(row[1]));
      dd.dataset.figure = row[0];
      div.appendChild(el('dt', row[0]));
      div.appendChild(dd);
      list.appendChild(div);
    });
    // Do not overwrite what the operator is typing.
    if (document.activeElement !== $('rate')) $('rate').value = body.config.admission_rate;
    if (document.activeElement !== $('max-active')) $('max-active').value = body.config.max_active;
    $('updated').textContent = 'Last update ' + new Date().toLocaleTimeString() + '.';
  }

  // === charts ===

  // Rates come from the difference of two totals over the time between the two samples.
  function addSample(body) {
    var now = Date.now();
    var f = body.figures;
    var last = samples[samples.length - 1];
    var dt = last ? (now - last.at) / 1000 : 0;
    var perSec = function (key) { return last && dt > 0 ? Math.max(0, f[key] - last.totals[key]) / dt : 0; };
    var outflow = body.outflow_per_second_last_minute;
    var drain = outflow > 0 ? outflow : body.door_rate_now;
    samples.push({
      at: now,
      totals: { admitted_total: f.admitted_total, evicted_total: f.evicted_total },
      waiting: f.waiting,
      admitted: perSec('admitted_total'),
      door: body.door_rate_now,
      outflow: outflow,
      // How long the last person in line would wait at this pace; unknown with a shut door.
      eta: drain > 0 ? f.waiting / drain : null,
      evicted: perSec('evicted_total')
    });
    if (samples.length > KEEP) samples.shift();
  }

  var CHARTS = [
    { id: 'waiting', title: 'Waiting', lines: ['waiting'] },
    { id: 'admitted', title: 'Admitted per second (dashed: door rate)', lines: ['admitted', 'door'] },
    { id: 'outflow', title: 'Outflow per second, last minute', lines: ['outflow'] },
    { id: 'eta', title: 'Wait at the back of the queue (s)', lines: ['eta'] },
    { id: 'evicted', title: 'Evicted per second', lines: ['evicted'] }
  ];

  function drawCharts() {
    var box = $('charts');
    $('charts-card').hidden = false;
    if (!box.childElementCount) {
      CHARTS.forEach(function (c) {
        var figure = el('figure');
        figure.className = 'chart';
        figure.id = 'chart-' + c.id;
        var caption = el('figcaption', c.title + ': ');
        var now = el('span');
        now.className = 'now';
        caption.appendChild(now);
        var svg = document.createElementNS(SVG, 'svg');
        svg.setAttribute('viewBox', '0 0 300 100');
        svg.setAttribute('preserveAspectRatio', 'none');
        svg.setAttribute('role', 'img');
        svg.setAttribute('aria-label', c.title);
        c.lines.forEach(function (name, i) {
          var line = document.createElementNS(SVG, 'polyline');
          line.setAttribute('class', i ? 'line target' : 'line');
          line.dataset.series = name;
          svg.appendChild(line);
        });
        figure.appendChild(caption);
        figure.appendChild(svg);
        box.appendChild(figure);
      });
    }
    CHARTS.forEach(function (c) {
      var figure = $('chart-' + c.id);
      var max = 0;
      samples.forEach(function (s) { c.lines.forEach(function (n) { max = Math.max(max, s[n] || 0); }); });
      max = max || 1;
      c.lines.forEach(function (name) {
        var points = samples.map(function (s, i) {
          // The newest sample at the right edge; five minutes span the width.
          var x = 300 - ((samples.length - 1 - i) / (KEEP - 1)) * 300;
          var y = 98 - ((s[name] || 0) / max) * 96;
          return x.toFixed(1) + ',' + y.toFixed(1);
        });
        figure.querySelector('[data-series="' + name + '"]').setAttribute('points', points.join(' '));
      });
      var latest = samples[samples.length - 1][c.lines[0]];
      figure.querySelector('.now').textContent = latest === null ? 'unknown' : round(latest);
    });
  }

  // === valves: every field of the event, the API's errors by field ===

  function renderValves(config) {
    $('valves-card').hidden = false;
    var form = $('valves');
    var same = shownValves && JSON.stringify(shownValves) === JSON.stringify(config);
    if (same || form.contains(document.activeElement)) return;
    shownValves = config;
    form.textContent = '';
    Object.keys(config).filter(function (k) { return k !== 'version'; }).forEach(function (key) {
      var p = el('p');
      var label = el('label', key);
      var input = el('input');
      input.id = 'valve-' + key;
      input.name = key;
      label.htmlFor = input.id;
      var value = config[key];
      input.type = typeof value === 'number' ? 'number' : 'text';
      if (input.type === 'number') input.step = 'any';
      input.value = value === null || value === undefined ? '' : value;
      input.dataset.kind = typeof value;
      input.dataset.shown = input.value;
      var error = el('span');
      error.className = 'field-error';
      error.id = 'error-' + key;
      error.dataset.errorFor = key;
      input.setAttribute('aria-describedby', error.id);
      p.appendChild(label);
      p.appendChild(input);
      p.appendChild(error);
      form.appendChild(p);
    });
    var submit = el('button', 'Apply changes');
    submit.type = 'submit';
    submit.className = 'primary';
    form.appendChild(submit);
  }

  function submitValves(e) {
    e.preventDefault();
    var changes = {};
    Array.prototype.forEach.call($('valves').querySelectorAll('input'), function (input) {
      if (input.value === input.dataset.shown) return;
      // Numbers go as numbers, so the API judges the value, not its type.
      changes[input.name] = input.dataset.kind === 'number' && input.value !== '' && !isNaN(Number(input.value))
        ? Number(input.value) : input.value;
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-error-for]'), function (n) { n.textContent = ''; });
    if (!Object.keys(changes).length) return;
    api('PUT', eventPath(), changes).then(function () {
      showError(null);
      shownValves = null;
      $('done').textContent = 'Valves changed: ' + Object.keys(changes).join(', ') + '.';
      if (document.activeElement) document.activeElement.blur();
      refresh();
    }, function (err) {
      var slot = err.field && document.querySelector('[data-error-for="' + err.field + '"]');
      if (slot) {
        // The field is named by where the message stands.
        var prefix = err.field + ': ';
        slot.textContent = err.message.indexOf(prefix) === 0 ? err.message.slice(prefix.length) : err.message;
        $('valve-' + err.field).focus();
      } else {
        showError(err);
      }
    });
  }

  // === inventory and audit ===

  function renderInventory(body) {
    $('inventory-card').hidden = false;
    var rows = $('inventory');
    rows.textContent = '';
    body.items.forEach(function (item) {
      var row = el('tr');
      row.appendChild(el('td', item.sku));
      row.appendChild(el('td', round(item.remaining)));
      row.dataset.sku = item.sku;
      rows.appendChild(row);
    });
  }

  function renderAudit(body) {
    $('audit-card').hidden = false;
    var rows = $('audit');
    rows.textContent = '';
    body.entries.forEach(function (entry) {
      var row = el('tr');
      row.appendChild(el('td', new Date(entry.at_ms).toLocaleString()));
      row.appendChild(el('td', entry.by));
      var changes = Object.keys(entry.changes || {}).map(function (k) {
        var c = entry.changes[k];
        var shown = function (v) { return v === null || v === '' ? '(unset)' : String(v); };
        return c && typeof c === 'object' && 'old' in c ? k + ': ' + shown(c.old) + ' → ' + shown(c.new) : k + ': ' + JSON.stringify(c);
      });
      row.appendChild(el('td', changes.join('; ')));
      rows.appendChild(row);
    });
  }

  // === refresh loop ===

  function refresh() {
    clearTimeout(timer);
    var list = api('GET', '').then(function (body) { renderList(body.events); });
    var one = !watching ? Promise.resolve() : api('GET', eventPath()).then(function (body) {
      // The token works: an old error goes as the figures come.
      showError(null);
      renderFigures(body);
      addSample(body);
      drawCharts();
      renderValves(body.config);
      return Promise.all([
        api('GET', eventPath('/inventory')).then(renderInventory),
        api('GET', eventPath('/audit?limit=20')).then(renderAudit)
      ]);
    });
    Promise.all([list, one]).then(function () { showError(null); }, showError).then(function () {
      timer = setTimeout(refresh, REFRESH_MS);
    });
  }

  function watch(event) {
    if (event !== watching) {
      samples = [];
      shownValves = null;
      $('charts').textContent = '';
    }
    watching = event;
    $('event').value = event;
    refresh();
  }

  function change(valves, said) {
    api('PUT', eventPath(), valves).then(function () {
      showError(null);
      $('done').textContent = said;
      refresh();
    }, showError);
  }

  $('watch').addEventListener('submit', function (e) {
    e.preventDefault();
    sessionStorage.setItem('vestibule.admin', $('token').value);
    watch($('event').value);
  });
  $('pause').addEventListener('click', function () { change({ state: 'paused' }, 'Paused.'); });
  $('resume').addEventListener('click', function () { change({ state: 'open' }, 'Open.'); });
  $('rate-form').addEventListener('submit', function (e) {
    e.preventDefault();
    change({ admission_rate: Number($('rate').value) }, 'Door rate set.');
  });
  $('active-form').addEventListener('submit', function (e) {
    e.preventDefault();
    change({ max_active: Number($('max-active').value) }, 'Max active set.');
  });
  $('valves').addEventListener('submit', submitValves);
  $('stock').addEventListener('submit', function (e) {
    e.preventDefault();
    $('stock-error').hidden = true;
    var item = { sku: $('sku').value, quantity: Number($('quantity').value) };
    api('PUT', eventPath('/inventory'), { items: [item] }).then(function (body) {
      renderInventory(body);
      $('done').textContent = 'Stock set.';
    }, function (err) {
      $('stock-error').textContent = err.message;
      $('stock-error').hidden = false;
    });
  });
  if (sessionStorage.getItem('vestibule.admin')) $('token').value = sessionStorage.getItem('vestibule.admin');
})();
