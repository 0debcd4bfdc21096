// The operator page: watches one event's figures and turns its main valves (pause, open, door
// rate, max active) through the admin API. The admin token stays in sessionStorage, so it is
// gone when the tab closes.
'use strict';

(function () {
  var REFRESH_MS = 2000;
  var $ = function (id) { return document.getElementById(id); };
  var timer = null;
  var watching = null;

  function call(method, body) {
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
    return fetch('/admin/v1/events/' + encodeURIComponent(watching), init).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (json) {
        if (!res.ok) throw new Error(json && json.error ? json.error.message : 'HTTP ' + res.status);
        return json;
      });
    });
  }

  function showError(err) {
    $('error').textContent = err ? String(err.message || err) : '';
    $('error').hidden = !err;
  }

  function render(body) {
    $('panel').hidden = false;
    $('panel-title').textContent = body.event_id + ': ' + body.config.state;
    document.body.dataset.state = body.config.state;
    var list = $('figures');
    var rows = [['door rate', body.config.admission_rate], ['max active', body.config.max_active]];
    Object.keys(body.figures || {}).forEach(function (k) { rows.push([k.replace(/_/g, ' '), body.figures[k]]); });
    list.textContent = '';
    rows.forEach(function (row) {
      var div = document.createElement('div');
      var dt = document.createElement('dt');
      var dd = document.createElement('dd');
      dt.textContent = row[0];
      dd.textContent = typeof row[1] === 'number' ? String(Math.round(row[1] * 100) / 100) : String(row[1]);
      dd.dataset.figure = row[0];
      div.appendChild(dt);
      div.appendChild(dd);
      list.appendChild(div);
    });
    // Do not overwrite what the operator is typing.
    if (document.activeElement !== $('rate')) $('rate').value = body.config.admission_rate;
    if (document.activeElement !== $('max-active')) $('max-active').value = body.config.max_active;
    $('updated').textContent = 'Last update ' + new Date().toLocaleTimeString() + '.';
  }

  function refresh() {
    clearTimeout(timer);
    call('GET').then(function (body) {
      showError(null);
      render(body);
    }, showError).then(function () {
      timer = setTimeout(refresh, REFRESH_MS);
    });
  }

  function change(valves, said) {
    call('PUT', valves).then(function () {
      showError(null);
      $('done').textContent = said;
      refresh();
    }, showError);
  }

  $('watch').addEventListener('submit', function (e) {
    e.preventDefault();
    sessionStorage.setItem('vestibule.admin', $('token').value);
    watching = $('event').value;
    refresh();
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
  if (sessionStorage.getItem('vestibule.admin')) $('token').value = sessionStorage.getItem('vestibule.admin');
})();
