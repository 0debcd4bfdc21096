// The waiting room: joins (or resumes with the ticket kept in localStorage), follows the status
// stream (polling when the stream is not available), enters when the door opens and goes on to
// the sale. Plain JavaScript with no dependencies, served as a file so the page's CSP can forbid
// inline script.
'use strict';

(function () {
  // One table per language, each in its own file (src/page/lang/), served ahead of this script.
  var TEXTS = window.VestibuleTexts;

  // Backoff after failures: doubling from 1 s up to 30 s, each wait drawn from its upper half
  // so that a crowd cut off at once does not come back at once.
  var BACKOFF_BASE_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  // A screen reader hears the position at most this often; state changes are said at once.
  var ANNOUNCE_EVERY_MS = 30000;
  // How often a waiting page rereads the event (paused, closed, texts); the answer is cacheable.
  var INFO_EVERY_MS = 30000;
  // After this many streams that broke before their first message, the page only polls.
  var MAX_STREAM_FAILURES = 3;
  var BACK_SHOWN_MS = 6000;

  var $ = function (id) { return document.getElementById(id); };
  // The event is the last segment of /wait/{event_id}, wherever a proxy mounts the page.
  var segments = location.pathname.split('/').filter(Boolean);
  var eventId = decodeURIComponent(segments[segments.length - 1] || '');
  var eventPath = '/v1/events/' + encodeURIComponent(eventId);
  var storageKey = 'vestibule.place.' + eventId;

  var t = TEXTS.en;
  var lang = 'en';
  var info = null;
  var place = loadPlace();
  var stream = null;
  var streamFailures = 0;
  var timer = null;
  var infoTimer = null;
  var enterTimer = null;
  var countdown = null;
  var failures = 0;
  var refusals = 0;
  var lost = false;
  var backTimer = null;
  var status = null;
  var entering = false;
  var enterNotBefore = 0;
  var finished = false;
  var announced = { at: 0, position: null, pending: null };

  // === storage: the ticket never appears on the page, only here ===

  function loadPlace() {
    try {
      var p = JSON.parse(localStorage.getItem(storageKey));
      return p && typeof p.ticket === 'string' ? p : null;
    } catch (e) {
      return null;
    }
  }

  function savePlace() {
    try { localStorage.setItem(storageKey, JSON.stringify(place)); } catch (e) { /* private mode */ }
  }

  function forgetPlace() {
    place = null;
    try { localStorage.removeItem(storageKey); } catch (e) { /* private mode */ }
  }

  // === network ===

  function call(method, path, ticket) {
    var headers = { Accept: 'application/json' };
    if (ticket) headers.Authorization = 'Bearer ' + ticket;
    return fetch(path, { method: method, headers: headers, cache: 'no-store', credentials: 'omit' })
      .then(function (res) {
        var retry = (Number(res.headers.get('Retry-After')) || 0) * 1000;
        var read = res.status === 204 ? Promise.resolve(null) : res.json().catch(function () { return null; });
        return read.then(function (body) {
          return {
            status: res.status,
            ok: res.ok,
            body: body,
            code: body && body.error ? body.error.code : null,
            retryMs: retry
          };
        });
      }, function () {
        return { status: 0, ok: false, body: null, code: 'network', retryMs: 0 };
      });
  }

  // True when the answer says "we could not reach the queue", as opposed to a verdict on us.
  function unreachable(r) {
    return r.status === 0 || (r.status >= 500 && r.code !== 'queue_full') || r.status === 429;
  }

  function jittered(exp, floorMs) {
    return Math.max(floorMs || 0, exp / 2 + Math.random() * exp / 2);
  }

  function backoff(floorMs) {
    failures += 1;
    return jittered(Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, failures - 1)), floorMs);
  }

  function schedule(fn, ms) {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  }

  // === language ===

  function chooseLanguage(preferred) {
    var wanted = preferred ? [preferred] : (navigator.languages || [navigator.language || 'en']);
    for (var i = 0; i < wanted.length; i++) {
      var primary = String(wanted[i]).toLowerCase().split('-')[0];
      if (TEXTS[primary]) return primary;
    }
    return 'en';
  }

  function setLanguage(code) {
    lang = code;
    t = TEXTS[code];
    document.documentElement.lang = code;
    $('position-label').textContent = t.position;
    $('ahead-label').textContent = t.ahead;
    $('eta-label').textContent = t.eta;
    $('progress-label').textContent = t.progress;
    $('enter').textContent = t.enter;
    $('rejoin').textContent = t.rejoin;
    $('leave').textContent = t.leave;
    $('confirm-text').textContent = t.confirm;
    $('leave-yes').textContent = t.leaveYes;
    $('leave-no').textContent = t.leaveNo;
    $('code-label').textContent = t.codeLabel;
    $('copy').textContent = t.copy;
  }

  function applyInfo(next) {
    info = next;
    setLanguage(chooseLanguage(info.language));
    $('title').textContent = info.title || t.title;
    $('message').textContent = info.message || '';
    $('message').hidden = !info.message;
    updateTitle();
  }

  function number(n) {
    return new Intl.NumberFormat(lang).format(n);
  }

  function etaText(s) {
    if (s.eta_seconds === null || s.eta_seconds === undefined) return t.etaUnknown;
    if (s.eta_seconds <= 5) return t.etaNow;
    if (s.eta_seconds < 60) return t.etaUnderMinute;
    var minutes = Math.round(s.eta_seconds / 60);
    if (minutes < 60) return t.etaMinutes(minutes);
    return t.etaHours(Math.floor(minutes / 60), minutes % 60);
  }

  // === what the person sees ===

  // Changes only what differs, so that re-rendering the same status every poll neither
  // disturbs a screen reader nor takes the keyboard focus off a button.
  function setText(id, text) {
    if ($(id).textContent !== text) $(id).textContent = text;
  }

  function setHidden(id, hidden) {
    if ($(id).hidden !== hidden) $(id).hidden = hidden;
  }

  function show(state, heading, help, withEnterButton) {
    document.body.dataset.state = state;
    setText('state', heading);
    setText('explain', help || '');
    var waiting = state === 'waiting' || state === 'paused' || state === 'ready';
    // Positions are not shown in the pre-queue, nor in random order.
    var positioned = waiting && status && status.position !== null && status.position !== undefined;
    setHidden('figures', !positioned);
    setHidden('progress', !positioned && state !== 'admitted');
    if (!waiting && state !== 'pre_queue') setHidden('confirm', true);
    setHidden('leave', !(waiting || state === 'pre_queue') || !$('confirm').hidden);
    if (state !== 'pre_queue') clearInterval(countdown);
    setHidden('enter', !withEnterButton);
    setHidden('rejoin', !(state === 'evicted' || state === 'left' || state === 'expired'));
    if (state !== 'admitted') setHidden('admission', true);
    updateTitle();
  }

  function updateTitle() {
    var base = (info && info.title) || t.title;
    var waiting = status && (status.state === 'waiting' || status.state === 'ready') && !finished;
    var shown = waiting && status.position !== null && status.position !== undefined;
    document.title = shown ? '(' + number(status.position) + ') ' + base : base;
  }

  function render(s) {
    // The door shutting or opening (a pause, a resume) shows as the ETA becoming unknown or
    // known: reread the event at once rather than at the next periodic look.
    var etaKnown = function (x) { return x && x.eta_seconds !== null && x.eta_seconds !== undefined; };
    if (status && etaKnown(status) !== etaKnown(s)) refreshInfo(0);
    status = s;
    if (s.state === 'pre_queue') {
      showPreQueue(s.opens_at);
      return;
    }
    if (s.state === 'admitted') {
      show('admitted', t.admitted, '');
      setProgress(100);
      return;
    }
    if (s.ready_for_entry) {
      var auto = Boolean(info && info.redirect_url);
      show('ready', t.ready, auto ? t.readyAuto : t.readyButton, !auto);
    } else if (info && info.state === 'closed') {
      // Nobody waiting in a closed event gets in any more.
      return finish('closed', t.closed, t.closedHelp);
    } else if (info && info.state === 'paused') {
      show('paused', t.paused, t.pausedHelp);
    } else if (s.position === null || s.position === undefined) {
      // Random order: no position to show, only that the turn comes by lot.
      show('waiting', t.waiting, t.randomHelp);
    } else {
      show('waiting', t.waiting, t.waitingHelp);
    }
    if (s.position === null || s.position === undefined) return;
    if (!place.first || s.position > place.first) {
      place.first = s.position;
      savePlace();
    }
    setText('position', number(s.position));
    setText('ahead', number(s.ahead));
    setText('eta', s.ready_for_entry ? t.etaNow : etaText(s));
    setProgress(s.ready_for_entry ? 100 : ((place.first - s.position) / place.first) * 100);
    announcePosition(s);
  }

  // The pre-queue: a countdown to the opening, when everyone in it gets a random place.
  function showPreQueue(opensAt) {
    var tick = function () {
      var left = Math.max(0, opensAt * 1000 - Date.now());
      var secs = Math.floor(left / 1000);
      var clock = Math.floor(secs / 3600) + ':' + ('0' + Math.floor(secs / 60) % 60).slice(-2) +
        ':' + ('0' + secs % 60).slice(-2);
      var at = new Date(opensAt * 1000).toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
      show('pre_queue', t.preQueue, t.preQueueHelp.replace('{countdown}', clock).replace('{time}', at));
    };
    clearInterval(countdown);
    tick();
    countdown = setInterval(tick, 1000);
  }

  function setProgress(percent) {
    var p = Math.max(0, Math.min(100, Math.round(percent)));
    $('bar').style.width = p + '%';
    $('progress').setAttribute('aria-valuenow', String(p));
  }

  // Says something through the polite live region; position changes at most every 30 s.
  function announce(text) {
    announced.at = Date.now();
    $('announce').textContent = text;
  }

  function announcePosition(s) {
    if (s.ready_for_entry) {
      if (announced.position !== 'ready') {
        announced.position = 'ready';
        announce(t.ready);
      }
      return;
    }
    if (announced.position === s.position) return;
    var wait = announced.at + ANNOUNCE_EVERY_MS - Date.now();
    if (wait <= 0) {
      announced.position = s.position;
      announce(t.announcePosition(number(s.position)));
      return;
    }
    if (!announced.pending) {
      announced.pending = setTimeout(function () {
        announced.pending = null;
        if (status && !finished && status.state === 'waiting') announcePosition(status);
      }, wait);
    }
  }

  function connectionLost() {
    $('figures').classList.add('stale');
    if (lost) return;
    lost = true;
    clearTimeout(backTimer);
    banner('lost', t.lost);
    announce(t.lost);
  }

  function connectionOk() {
    failures = 0;
    $('figures').classList.remove('stale');
    if (!lost) return;
    lost = false;
    banner('back', t.back);
    announce(t.back);
    backTimer = setTimeout(function () { $('connection').hidden = true; }, BACK_SHOWN_MS);
  }

  function banner(kind, text) {
    var el = $('connection');
    el.dataset.kind = kind;
    el.textContent = text;
    el.hidden = false;
  }

  // === the flow ===

  function start() {
    call('GET', eventPath + '/page').then(function (r) {
      if (r.status === 404) {
        setLanguage(chooseLanguage(null));
        return finish('not_found', t.notFound, t.notFoundHelp);
      }
      if (!r.ok) {
        if (!info) setLanguage(chooseLanguage(null));
        connectionLost();
        return schedule(start, backoff(r.retryMs));
      }
      applyInfo(r.body);
      connectionOk();
      join();
    });
  }

  function refreshInfo(delay) {
    clearTimeout(infoTimer);
    infoTimer = setTimeout(function () {
      call('GET', eventPath + '/page').then(function (r) {
        if (finished) return;
        if (r.ok) {
          applyInfo(r.body);
          if (status) render(status);
        }
        refreshInfo(INFO_EVERY_MS);
      });
    }, delay);
  }

  function join() {
    if (!status) show('loading', t.joining, '');
    call('POST', eventPath + '/join', place && place.ticket).then(function (r) {
      if (r.ok) {
        connectionOk();
        refusals = 0;
        if (!place || place.ticket !== r.body.ticket) place = { ticket: r.body.ticket, first: r.body.position };
        savePlace();
        render(r.body);
        refreshInfo(INFO_EVERY_MS);
        follow();
        return;
      }
      if (r.status === 401 && place) {
        // The kept ticket no longer holds a place (expired, or replaced): start afresh.
        forgetPlace();
        return schedule(join, jittered(BACKOFF_BASE_MS));
      }
      if (unreachable(r)) {
        if (r.status !== 429) connectionLost();
        return schedule(join, backoff(r.retryMs));
      }
      connectionOk();
      switch (r.code) {
        case 'event_not_found':
          return finish('not_found', t.notFound, t.notFoundHelp);
        case 'event_closed':
          return finish('closed', t.closed, t.closedHelp);
        case 'event_not_open':
          return refused(r, info && info.state === 'paused' ? 'paused' : 'scheduled');
        case 'queue_full':
          return refused(r, 'full');
        default:
          return refused(r, 'problem');
      }
    });
  }

  // Not let in for now: say why, reread the event, and try again later (gently).
  function refused(r, why) {
    var words = {
      paused: ['paused-join', t.pausedJoin, t.pausedJoinHelp],
      scheduled: ['not-open', t.notOpen, t.notOpenHelp],
      full: ['full', t.full, t.fullHelp],
      problem: ['problem', t.problem, t.problemHelp]
    }[why];
    show(words[0], words[1], words[2]);
    refusals += 1;
    var delay = jittered(Math.min(BACKOFF_MAX_MS, 2000 * Math.pow(2, refusals - 1)), r.retryMs);
    schedule(function () {
      call('GET', eventPath + '/page').then(function (p) {
        if (p.ok) applyInfo(p.body);
        join();
      });
    }, delay);
  }

  function finish(state, heading, help) {
    finished = true;
    closeStream();
    clearTimeout(timer);
    clearTimeout(infoTimer);
    clearTimeout(enterTimer);
    show(state, heading, help);
    announce(heading);
  }

  // Follows the place: the status stream when the browser has one and it works, else polling.
  function follow() {
    clearTimeout(timer);
    if (finished) return;
    if (window.EventSource && streamFailures < MAX_STREAM_FAILURES) openStream();
    else schedule(poll, status ? status.poll_after_ms : 0);
  }

  function openStream() {
    closeStream();
    var source = new EventSource('/v1/queue/stream?ticket=' + encodeURIComponent(place.ticket));
    var heard = false;
    stream = source;
    source.addEventListener('status', function (e) {
      if (stream !== source) return;
      heard = true;
      streamFailures = 0;
      connectionOk();
      handleStatus(JSON.parse(e.data));
    });
    source.addEventListener('error', function (e) {
      if (stream !== source) return;
      if (e.data) {
        // The server's own `error` event: the place is gone, or the store is unreachable
        // for now (the stream goes on by itself then).
        var code = JSON.parse(e.data).error.code;
        if (code === 'unavailable') return connectionLost();
        closeStream();
        return gone(code);
      }
      // The connection broke: poll now, which tells whether the gateway is reachable, and
      // backs off while it is not. EventSource's own reconnects would not back off.
      closeStream();
      if (!heard) streamFailures += 1;
      schedule(poll, 0);
    });
  }

  function closeStream() {
    if (stream) stream.close();
    stream = null;
  }

  function poll() {
    if (finished || !place) return;
    call('GET', '/v1/queue/status', place.ticket).then(function (r) {
      if (finished) return;
      if (unreachable(r)) {
        connectionLost();
        return schedule(poll, backoff(r.retryMs));
      }
      if (!r.ok) return gone(r.code);
      connectionOk();
      handleStatus(r.body);
      if (finished || entering) return;
      if (window.EventSource && streamFailures < MAX_STREAM_FAILURES) openStream();
      else schedule(poll, r.body.poll_after_ms);
    });
  }

  function handleStatus(s) {
    render(s);
    // With a redirect the page goes on by itself; without one the person chooses when (their
    // admission's clock starts then), unless they were let in already.
    if (s.ready_for_entry && ((info && info.redirect_url) || s.state === 'admitted')) enter();
  }

  function gone(code) {
    switch (code) {
      case 'evicted':
        forgetPlace();
        return finish('evicted', t.evicted, t.evictedHelp);
      case 'left':
        forgetPlace();
        return finish('left', t.left, t.leftHelp);
      case 'admission_expired':
        forgetPlace();
        return finish('expired', t.expired, t.expiredHelp);
      case 'invalid_ticket':
        // Another tab may hold a newer ticket for this event; else join afresh.
        closeStream();
        var kept = loadPlace();
        if (!kept || (place && kept.ticket === place.ticket)) forgetPlace();
        else place = kept;
        return schedule(join, jittered(BACKOFF_BASE_MS));
      default:
        show('problem', t.problem, t.problemHelp);
        return schedule(poll, backoff(0));
    }
  }

  function enter() {
    if (entering || finished || Date.now() < enterNotBefore) return;
    entering = true;
    call('POST', '/v1/queue/enter', place.ticket).then(function (r) {
      entering = false;
      if (r.ok) return admitted(r.body);
      if (r.code === 'not_ready' || unreachable(r)) {
        if (r.status === 0 || r.status >= 500) connectionLost();
        // Try again later: the stream only speaks when the status changes, so it may not ask.
        var delay = r.code === 'not_ready' ? Math.max(r.retryMs, 500) : backoff(r.retryMs);
        enterNotBefore = Date.now() + delay;
        clearTimeout(enterTimer);
        enterTimer = setTimeout(enter, delay);
        if (!stream) schedule(poll, delay);
        return;
      }
      closeStream();
      gone(r.code);
    });
  }

  function admitted(body) {
    finished = true;
    closeStream();
    clearTimeout(timer);
    clearTimeout(infoTimer);
    clearTimeout(enterTimer);
    if (info && info.redirect_url) {
      // The token goes in the fragment: browsers never send fragments to servers, so it stays
      // out of access logs and proxies, and out of the Referer header.
      var target = info.redirect_url.split('#')[0] + '#admission_token=' + encodeURIComponent(body.admission_token);
      show('redirecting', t.ready, t.readyAuto);
      location.replace(target);
      return;
    }
    show('admitted', t.admitted, t.admittedUntil.replace('{time}',
      new Date(body.expires_at * 1000).toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' })));
    setProgress(100);
    $('code').value = body.admission_token;
    $('admission').hidden = false;
    announce(t.admitted);
  }

  // === buttons ===

  function wire() {
    $('enter').addEventListener('click', function () {
      enterNotBefore = 0;
      enter();
    });
    $('rejoin').addEventListener('click', function () {
      finished = false;
      status = null;
      announced.position = null;
      $('rejoin').hidden = true;
      join();
    });
    $('leave').addEventListener('click', function () {
      $('leave').hidden = true;
      $('confirm').hidden = false;
      $('leave-no').focus();
    });
    $('leave-no').addEventListener('click', function () {
      $('confirm').hidden = true;
      $('leave').hidden = false;
      $('leave').focus();
    });
    $('leave-yes').addEventListener('click', function () {
      if (!place) return;
      // Leaving is a deliberate act: only this button calls it, never closing the tab.
      call('POST', '/v1/queue/leave', place.ticket).then(function (r) {
        if (r.ok || r.code === 'left' || r.code === 'evicted' || r.code === 'invalid_ticket') {
          forgetPlace();
          finish('left', t.left, t.leftHelp);
          $('rejoin').focus();
        } else {
          connectionLost();
        }
      });
    });
    $('copy').addEventListener('click', function () {
      var done = function () { $('copy').textContent = t.copied; };
      if (navigator.clipboard) {
        navigator.clipboard.writeText($('code').value).then(done, function () { $('code').select(); });
      } else {
        $('code').select();
      }
    });
  }

  wire();
  start();
})();
