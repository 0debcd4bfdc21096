// Drives Chromium through the waiting-room page, one scenario per run:
//   node run.mjs <scenario>
// Started by tests/browser.rs, which owns the gateways. Protocol: this script writes
// `@@ {"step": ...}` lines on stdout when it needs the harness to act (open the door, cut the
// network, read figures) and reads one JSON reply line per step on stdin; it ends with an
// `@@ {"result": ...}` line. Logs go to stderr. Any failed check throws: exit code 1.
//
// Environment: VESTIBULE_URL (the gateway), SHOP_URL (the redirect target), CHROMIUM (the
// browser binary), SCREENSHOTS (optional: a directory for the README's screenshots).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

import vm from 'node:vm';

import axe from 'axe-core';
import { chromium } from 'playwright-core';

const BASE = process.env.VESTIBULE_URL;
const SHOP = process.env.SHOP_URL;
const SHOTS = process.env.SCREENSHOTS;
const WAIT_MS = 30000;

// A hung browser must not hang `cargo test`.
setTimeout(() => {
  console.error('scenario timed out after 150 s');
  process.exit(3);
}, 150000).unref();

const replies = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function emit(message) {
  process.stdout.write('@@ ' + JSON.stringify(message) + '\n');
}

/** Asks the harness to act, and waits for it to be done. */
async function step(name, args = {}) {
  console.error(`step: ${name}`);
  emit({ step: name, ...args });
  const { value, done } = await replies.next();
  if (done) throw new Error(`harness gone during step ${name}`);
  const reply = JSON.parse(value);
  if (!reply.ok) throw new Error(`step ${name} failed: ${reply.error}`);
  return reply;
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Without the background-networking flags Chromium's own connections get refused in
    // bursts on a machine without internet, and it slows down.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A person: their own browser context (own localStorage), one tab on the event's page. */
async function person(browser, event, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    locale: options.locale || 'en-GB',
    reducedMotion: options.reducedMotion || 'no-preference',
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.error(`[console] ${msg.text()}`);
  });
  await page.goto(`${BASE}/wait/${event}`);
  return { context, page };
}

async function waitState(page, state, timeout = WAIT_MS) {
  await page.waitForSelector(`body[data-state="${state}"]`, { state: 'attached', timeout });
}

async function waitText(page, selector, text, timeout = WAIT_MS) {
  await page.waitForSelector(`${selector}:text-is("${text}")`, { timeout });
}

async function text(page, selector) {
  return (await page.textContent(selector)).trim();
}

/** Presses Tab until the element with `id` has the focus: proves it is reachable by keyboard. */
async function tabTo(page, id) {
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    if ((await page.evaluate(() => document.activeElement && document.activeElement.id)) === id) return;
  }
  throw new Error(`#${id} cannot be reached with the Tab key`);
}

/** Records every position the page shows, from now on. */
async function recordPositions(page) {
  const seen = [];
  await page.exposeFunction('vestibuleSeen', (p) => seen.push(p));
  await page.evaluate(() => {
    const el = document.getElementById('position');
    const report = () => window.vestibuleSeen(el.textContent);
    report();
    new MutationObserver(report).observe(el, { childList: true, characterData: true, subtree: true });
  });
  return seen;
}

/** The ticket the page keeps; it must never be shown. */
async function assertTicketHidden(page, event) {
  const ticket = await page.evaluate((e) => JSON.parse(localStorage.getItem(`vestibule.place.${e}`)).ticket, event);
  assert.match(ticket, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the page keeps its ticket in localStorage');
  const shown = await page.evaluate(() => document.body.innerText + [...document.querySelectorAll('input')].map((i) => i.value).join(' '));
  assert.ok(!shown.includes(ticket), 'the raw ticket is never shown');
}

/** Verifies an admission token as a sale backend would: EdDSA signature by `kid` from JWKS. */
async function verifyAdmission(token, event) {
  const jwks = await (await fetch(`${BASE}/.well-known/jwks.json`)).json();
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  assert.equal(header.alg, 'EdDSA');
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is in the JWKS`);
  const key = crypto.createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
  assert.ok(crypto.verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), 'signature verifies');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  assert.equal(claims.ev, event, 'the token names the event');
  assert.ok(claims.exp > Date.now() / 1000, 'the token has not expired');
  return claims;
}

async function assertAccessible(page) {
  await page.evaluate(axe.source);
  const results = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'] } }),
  );
  const found = results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(', ')})`);
  assert.deepEqual(found, [], 'axe finds no accessibility violations');
}

async function screenshot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
  console.error(`screenshot: ${name}`);
}

// === scenarios ===

/** The page's text tables, read from their files as the browser reads them. */
function textTables() {
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '../../src/page/lang');
  const context = { window: {} };
  for (const file of fs.readdirSync(dir).sort()) {
    vm.runInNewContext(fs.readFileSync(path.join(dir, file), 'utf8'), context, { filename: file });
  }
  return context.window.VestibuleTexts;
}

const scenarios = {
  /**
   * Every language: its table has every key of English, with the same kinds (text or
   * function); the page for an event in that language speaks it, with nothing missing
   * ("undefined", an unfilled "{…}"), nothing left in English, numbers by Intl; axe passes.
   * Without an event language, the browser's language is taken (Accept-Language).
   */
  async languages(browser) {
    const tables = textTables();
    const languages = process.env.LANGUAGES.split(',');
    assert.deepEqual(Object.keys(tables).sort(), [...languages].sort(), 'one table per language');
    const en = tables.en;
    const checked = [];
    for (const lang of languages) {
      const table = tables[lang];
      for (const [key, value] of Object.entries(en)) {
        assert.equal(typeof table[key], typeof value, `${lang}.${key}`);
        if (typeof value === 'string') assert.ok(table[key].length > 0, `${lang}.${key} is empty`);
      }
      assert.deepEqual(Object.keys(table).sort(), Object.keys(en).sort(), `${lang}: the keys of en`);

      const { context, page } = await person(browser, `lang-${lang}`, { locale: 'en-GB' });
      await waitState(page, 'waiting');
      // The estimate is known (a slow door), so its words are on the page too.
      await page.waitForFunction(() => !['', '–'].includes(document.getElementById('eta').textContent.trim()));
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal(await text(page, '#title'), table.title, `${lang}: title`);
      assert.equal(await text(page, '#state'), table.waiting, `${lang}: state`);
      assert.equal(await text(page, '#position-label'), table.position, `${lang}: position label`);
      assert.equal(await text(page, '#leave'), table.leave, `${lang}: leave`);
      const shown = await page.evaluate(() => document.body.innerText);
      for (const broken of ['undefined', 'NaN', '{time}', '[object']) {
        assert.ok(!shown.includes(broken), `${lang}: "${broken}" on the page: ${shown}`);
      }
      if (lang !== 'en') {
        for (const key of ['waiting', 'position', 'ahead', 'eta', 'leave']) {
          assert.ok(!shown.includes(en[key]), `${lang}: English "${en[key]}" left on the page`);
        }
      }
      // Numbers as the language writes them.
      const position = await text(page, '#position');
      assert.equal(position, new Intl.NumberFormat(lang).format(3), `${lang}: position`);
      await assertAccessible(page);
      await context.close();
      checked.push(lang);
    }

    // No event language: the browser's, for each of them.
    for (const [locale, lang] of [['ko-KR', 'ko'], ['ja-JP', 'ja'], ['zh-CN', 'zh'], ['pt-BR', 'pt'], ['pl-PL', 'pl']]) {
      const { context, page } = await person(browser, 'lang-browser', { locale });
      await waitState(page, 'waiting');
      assert.equal(await page.getAttribute('html', 'lang'), lang, locale);
      assert.equal(await text(page, '#state'), tables[lang].waiting, locale);
      await context.close();
    }
    emit({ result: { checked } });
  },

  /**
   * The sale's frontend on its own origin calls the API from the browser: allowed for the
   * listed origin (http://127.0.0.1:<shop port>), refused by the browser for the same site
   * reached as http://localhost:<shop port>, an origin not listed.
   */
  async cross_origin(browser) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const frontend = `${new URL(SHOP).origin}/frontend?gateway=${encodeURIComponent(BASE)}`;
    await page.goto(frontend);
    await page.waitForFunction(() => document.getElementById('out').textContent !== 'starting');
    const listed = await text(page, '#out');
    const other = frontend.replace('//127.0.0.1:', '//localhost:');
    assert.notEqual(other, frontend);
    await page.goto(other);
    await page.waitForFunction(() => document.getElementById('out').textContent !== 'starting');
    const unlisted = await text(page, '#out');
    await context.close();
    emit({ result: { listed, unlisted } });
  },
  /**
   * Two people are ahead and the door is shut. The page joins at position 3; the door lets one
   * in (position 2), then opens: the other one ahead enters through the API, the position falls
   * again, and the page enters by itself and lands on the sale with an admission token in the
   * fragment.
   */
  /**
   * The start of a sale: in the pre-queue the page counts down to the opening and says that
   * everyone gets a random place (no position shown); after the opening it shows the place the
   * draw gave; then the door opens and it lands on the sale.
   */
  async pre_queue(browser) {
    const { page } = await person(browser, 'prequeue');
    await waitState(page, 'pre_queue');
    const explain = await text(page, '#explain');
    assert.match(explain, /\d+:\d\d:\d\d/, `a countdown: ${explain}`);
    assert.ok(explain.includes('random place'), explain);
    assert.ok(!explain.includes('{'), `no unfilled text: ${explain}`);
    assert.equal(await page.isVisible('#figures'), false, 'no position before the draw');
    await assertAccessible(page);
    await step('open');
    await waitState(page, 'waiting');
    const position = Number(await text(page, '#position'));
    assert.ok(position >= 1 && position <= 3, `a place among the three drawn: ${position}`);
    const landed = page.waitForURL((url) => url.href.startsWith(SHOP), { timeout: WAIT_MS });
    await step('open_door');
    await landed;
    emit({ result: { position } });
  },

  async door(browser) {
    const { page } = await person(browser, 'door');
    await waitState(page, 'waiting');
    await waitText(page, '#position', '3');
    assert.equal(await text(page, '#ahead'), '2');
    assert.equal(await text(page, '#eta'), 'Not known yet', 'a shut door has no ETA');
    assert.equal(await page.getAttribute('#progress', 'aria-valuenow'), '0');
    assert.equal(await text(page, '#title'), 'Spring sale');
    assert.equal(await text(page, '#message'), 'Tickets go on sale at noon.');
    await assertTicketHidden(page, 'door');
    await assertAccessible(page);

    // Reduced motion: the progress bar jumps instead of sliding.
    await page.emulateMedia({ reducedMotion: 'reduce' });
    const transition = await page.evaluate(() => getComputedStyle(document.getElementById('bar')).transitionDuration);
    assert.equal(transition, '0s', 'prefers-reduced-motion turns the animation off');
    await page.emulateMedia({ reducedMotion: 'no-preference' });

    const seen = await recordPositions(page);
    await step('let_one_in');
    await waitText(page, '#position', '2');
    assert.equal(await text(page, '#ahead'), '1');
    assert.equal(await page.getAttribute('#progress', 'aria-valuenow'), '33', 'one of three places done');
    // The door is shut again: nobody outside the window gets in, so no honest ETA exists.
    assert.equal(await text(page, '#eta'), 'Not known yet', 'a shut door gives no ETA');

    // Screenshots without motion: no progress bar caught halfway through its slide.
    await page.emulateMedia({ reducedMotion: 'reduce' });
    await screenshot(page, 'waiting-room-1280.png');
    await page.setViewportSize({ width: 360, height: 740 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 360, `no sideways scrolling at 360 px (content is ${overflow} px wide)`);
    await assertAccessible(page);
    await screenshot(page, 'waiting-room-360.png');

    const landed = page.waitForURL((url) => url.href.startsWith(SHOP), { timeout: WAIT_MS });
    await step('open_door');
    await landed;
    const fragment = new URL(page.url()).hash;
    assert.match(fragment, /^#admission_token=/, 'the token travels in the fragment');
    const token = decodeURIComponent(fragment.slice('#admission_token='.length));
    await verifyAdmission(token, 'door');
    assert.equal(await text(page, 'h1'), 'Welcome to the sale');
    emit({ result: { token, positions: seen } });
  },

  /**
   * Two people in two browsers: the second shows position 2, then 1 once the first has gone in
   * (by keyboard, with the button shown when no redirect is configured). On the way, a third
   * leaves through the link and a fourth closes the tab, which does not leave.
   */
  async two_people(browser) {
    const first = await person(browser, 'pair');
    await waitText(first.page, '#position', '1');
    const second = await person(browser, 'pair');
    await waitText(second.page, '#position', '2');
    await assertTicketHidden(second.page, 'pair');

    const third = await person(browser, 'pair');
    await waitText(third.page, '#position', '3');
    await tabTo(third.page, 'leave');
    await third.page.keyboard.press('Enter');
    await third.page.waitForSelector('#confirm:visible');
    assert.equal(await third.page.evaluate(() => document.activeElement.id), 'leave-no', 'the safe choice has the focus');
    await third.page.keyboard.press('Shift+Tab');
    await third.page.keyboard.press('Enter');
    await waitState(third.page, 'left');
    assert.equal(await third.page.evaluate(() => localStorage.length), 0, 'leaving forgets the ticket');
    let figures = (await step('figures', { event: 'pair' })).figures;
    assert.equal(figures.waiting, 2, 'the leave link took the third person out');

    const fourth = await person(browser, 'pair');
    await waitText(fourth.page, '#position', '3');
    await fourth.context.close();
    figures = (await step('figures', { event: 'pair' })).figures;
    assert.equal(figures.waiting, 3, 'closing the tab does not leave the queue');

    await step('open_door', { event: 'pair' });
    await waitState(first.page, 'ready');
    await first.page.waitForSelector('#enter:visible');
    await tabTo(first.page, 'enter');
    await first.page.keyboard.press('Enter');
    await waitState(first.page, 'admitted');
    const code = await first.page.inputValue('#code');
    await verifyAdmission(code, 'pair');
    await waitText(second.page, '#position', '1');
    assert.equal(await text(second.page, '#ahead'), '0');
    emit({ result: {} });
  },

  /**
   * The gateway dies and comes back on the same port: the page says the connection is lost,
   * then that it is back, shows the position again and follows it live.
   */
  async network_cut(browser) {
    const { page } = await person(browser, 'cut');
    await waitState(page, 'waiting');
    await waitText(page, '#position', '2');
    await step('cut');
    await page.waitForSelector('#connection[data-kind="lost"]:visible', { timeout: WAIT_MS });
    assert.equal(await text(page, '#connection'), 'Connection lost. Trying again…');
    assert.ok(await page.$eval('#figures', (el) => el.classList.contains('stale')), 'old figures are shown as stale');
    assert.equal(await text(page, '#announce'), 'Connection lost. Trying again…', 'screen readers are told');
    await step('restore');
    await page.waitForSelector('#connection[data-kind="back"]:visible', { timeout: WAIT_MS });
    await waitText(page, '#position', '2');
    assert.ok(!(await page.$eval('#figures', (el) => el.classList.contains('stale'))), 'figures are live again');
    // Live again: the one ahead goes in, the page follows.
    await step('advance');
    await waitText(page, '#position', '1');
    emit({ result: {} });
  },

  /** Words: the event's language, else the browser's; the states in plain words. */
  async words(browser) {
    const fr = await person(browser, 'fr-event', { locale: 'en-GB' });
    await waitState(fr.page, 'waiting');
    assert.equal(await fr.page.getAttribute('html', 'lang'), 'fr', "the event's language wins");
    assert.equal(await text(fr.page, '#state'), 'Vous êtes dans la file');
    assert.equal(await text(fr.page, '#position-label'), 'Votre position');
    assert.equal(await text(fr.page, '#leave'), 'Quitter la file');
    // Leaving from elsewhere (another device holding the ticket): the stream's final `error`
    // event tells this page, which says so and forgets the ticket.
    const ticket = await fr.page.evaluate(() => JSON.parse(localStorage.getItem('vestibule.place.fr-event')).ticket);
    const left = await fetch(`${BASE}/v1/queue/leave`, { method: 'POST', headers: { Authorization: `Bearer ${ticket}` } });
    assert.equal(left.status, 204);
    await waitState(fr.page, 'left');
    assert.equal(await text(fr.page, '#state'), 'Vous avez quitté la file');
    assert.ok(await fr.page.isVisible('#rejoin'), 'a way back in');

    const de = await person(browser, 'plain', { locale: 'de-DE' });
    await waitState(de.page, 'waiting');
    assert.equal(await de.page.getAttribute('html', 'lang'), 'de', "else the browser's Accept-Language");
    assert.equal(await text(de.page, '#title'), 'Warteraum', 'a default title in that language');
    assert.equal(await text(de.page, '#state'), 'Sie sind in der Warteschlange');

    const missing = await person(browser, 'no-such-event');
    await waitState(missing.page, 'not_found');
    assert.equal(await text(missing.page, '#state'), 'Event not found');

    const paused = await person(browser, 'paused');
    await waitState(paused.page, 'paused-join');
    assert.equal(await text(paused.page, '#state'), 'The queue is paused');

    const closed = await person(browser, 'closed');
    await waitState(closed.page, 'closed');
    assert.equal(await text(closed.page, '#state'), 'This event is closed');

    // A person already waiting when the event pauses keeps their place and is told so.
    await step('pause', { event: 'plain' });
    await waitState(de.page, 'paused', 45000);
    assert.equal(await text(de.page, '#state'), 'Die Warteschlange ist pausiert');
    assert.equal(await text(de.page, '#position'), '2');
    emit({ result: {} });
  },

  /** The operator page: live figures, pause, open and the door rate, with the admin token. */
  async operator(browser) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    await page.goto(`${BASE}/admin/ui`);
    await page.fill('#token', 'wrong');
    await page.fill('#event', 'ops');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#error:visible');
    assert.equal(await text(page, '#error'), 'missing or wrong admin token');

    await page.fill('#token', process.env.ADMIN_TOKEN);
    await page.keyboard.press('Enter');
    await waitText(page, 'dd[data-figure="waiting"]', '2');
    assert.ok(await page.isHidden('#error'));
    await assertAccessible(page);

    await page.click('#pause');
    await waitState(page, 'paused');
    await page.fill('#rate', '3');
    await page.click('#rate-form button');
    await waitText(page, 'dd[data-figure="door rate"]', '3');
    await page.click('#resume');
    await waitState(page, 'open');
    const config = await (await fetch(`${BASE}/admin/v1/events/ops`, { headers: { Authorization: `Bearer ${process.env.ADMIN_TOKEN}` } })).json();
    assert.equal(config.config.admission_rate, 3, 'the rate reached the event');
    assert.equal(config.config.state, 'open');

    // Figures are live: somebody joins, the page shows it without a reload.
    await step('join', { event: 'ops' });
    await waitText(page, 'dd[data-figure="joined total"]', '3');

    // The console: every event listed; live charts; every valve with the API's errors by
    // field; inventory; the audit trail.
    await page.waitForSelector('#events tr[data-event="ops"]');
    await page.waitForSelector('#events tr[data-event="other"]');
    await waitText(page, '#chart-waiting .now', '3');
    await page.waitForFunction(() => document.querySelector('#chart-waiting polyline').getAttribute('points').split(' ').length >= 2);
    for (const chart of ['admitted', 'outflow', 'eta', 'evicted']) {
      assert.ok(await page.isVisible(`#chart-${chart} svg`), `chart ${chart}`);
    }
    assert.equal(await page.locator('#chart-admitted polyline').count(), 2, 'admitted against the door rate');

    await page.fill('#valve-heartbeat_ttl_secs', '0');
    await page.click('#valves button[type="submit"]');
    await waitText(page, '#error-heartbeat_ttl_secs', 'must be between 1 and 86400');
    const refused = await (await fetch(`${BASE}/admin/v1/events/ops`, { headers: { Authorization: `Bearer ${process.env.ADMIN_TOKEN}` } })).json();
    assert.equal(refused.config.heartbeat_ttl_secs, 120, 'a refused valve changes nothing');
    await page.fill('#valve-heartbeat_ttl_secs', '90');
    await page.fill('#valve-title', 'Spring sale');
    await page.click('#valves button[type="submit"]');
    await page.waitForSelector('#audit td:has-text("heartbeat_ttl_secs: 120 → 90")');
    await page.waitForSelector('#audit td:has-text("title: (unset) → Spring sale")');
    assert.equal(await page.inputValue('#valve-heartbeat_ttl_secs'), '90');

    await page.fill('#sku', 'ticket');
    await page.fill('#quantity', '7');
    await page.click('#stock button[type="submit"]');
    await waitText(page, '#inventory tr[data-sku="ticket"] td:nth-child(2)', '7');
    await page.fill('#sku', 'bad sku!');
    await page.click('#stock button[type="submit"]');
    await page.waitForSelector('#stock-error:visible');
    await assertAccessible(page);
    await screenshot(page, 'console.png');
    emit({ result: {} });
  },

  /**
   * Through nginx in front of two gateways (tests/deploy/nginx.rs runs the stack): the page
   * waits behind a shut door on the status stream, whose events arrive while the connection
   * is open (nginx does not hold them back), enters when the door opens and lands on the sale.
   */
  async nginx(browser) {
    const { page } = await person(browser, 'sale');
    await waitState(page, 'waiting');
    await waitText(page, '#position', '1');
    // Back on the page (its place kept), it follows the place on the stream.
    const streams = page.waitForRequest((r) => r.url().includes('/v1/queue/stream'), { timeout: WAIT_MS });
    await page.reload();
    await streams;
    await waitText(page, '#position', '1');
    // A stream beside the page's, with its ticket: the first status event comes while open.
    const first = await page.evaluate((event) => new Promise((resolve, reject) => {
      const ticket = JSON.parse(localStorage.getItem(`vestibule.place.${event}`)).ticket;
      const source = new EventSource('/v1/queue/stream?ticket=' + encodeURIComponent(ticket));
      setTimeout(() => { source.close(); reject(new Error('no status event within 20 s')); }, 20000);
      source.addEventListener('status', (m) => {
        const open = source.readyState === EventSource.OPEN;
        source.close();
        resolve({ open, status: JSON.parse(m.data) });
      });
    }), 'sale');
    assert.ok(first.open, 'the event arrived on an open stream');
    assert.equal(first.status.state, 'waiting');

    const landed = page.waitForURL((url) => url.href.startsWith(SHOP), { timeout: WAIT_MS });
    await step('open_door');
    await landed;
    const fragment = new URL(page.url()).hash;
    assert.match(fragment, /^#admission_token=/, 'the token travels in the fragment');
    const token = decodeURIComponent(fragment.slice('#admission_token='.length));
    await verifyAdmission(token, 'sale');
    emit({ result: { token } });
  },
};

const name = process.argv[2];
const scenario = scenarios[name];
if (!scenario) {
  console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const browser = await launch();
try {
  await scenario(browser);
} finally {
  await browser.close();
}
process.exit(0);
