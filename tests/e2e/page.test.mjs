// End-to-end test of the web page: a real charlm-server, Debian's chromium driven by
// playwright-core. Run through tests/e2e/run.sh, which provides:
//   CHARLM_SERVER   path to the charlm-server binary
//   E2E_MODEL_DIR   artefacts folder (model.safetensors, vocab.json, train_log.jsonl)
//   CHARLM_TRAIN    charlm-train, which makes the second model of the picker test
//   E2E_OUT_DIR     where the screenshots go (build/)
//   CHARLM_STATIC_DIR  the page folder the server serves
// The server is started here and stopped in every case (after hook, exit handler).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { MODEL_DIR, TRAIN, kill, requireEnv, spawnServer, stopChild } from './server.mjs';

requireEnv('page.test.mjs');

const OUT_DIR = process.env.E2E_OUT_DIR || 'build';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LONG = 1000000; // max_tokens for the generation that Stop must cut short

let server = null; // child process
let base = ''; // http://127.0.0.1:PORT
let userDir = '';
let context = null;
let page = null;
const requests = []; // every URL the browser asked for
const consoleErrors = []; // [text, url]
// Console errors a step expects (the browser logs 4xx/5xx fetches). The Train panel's
// probe is a 404 on every load of a server without --training-dir.
const PROBE_404 = /status of 404\b.*\/v1\/fine_tuning\/jobs\?limit=1$/;
let allowed = [PROBE_404];

function killServer(signal = 'SIGTERM') {
  kill(server, signal);
}

async function startServer() {
  ({ child: server, base } = await spawnServer(['--max-tokens', String(LONG), '--max-concurrent', '1']));
}

const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function postGenerate(body) {
  const res = await fetch(base + '/generate', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

// The server frees a generation's slot when it notices the client went away; with
// --max-concurrent 1 the next step must wait for that.
async function waitIdle() {
  for (let i = 0; i < 100; i++) {
    const r = await postGenerate({ prompt: 'a', max_tokens: 1 });
    if (r.status === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('server still busy 10 s after the last generation was stopped');
}

function readLogRows() {
  const file = path.join(MODEL_DIR, 'train_log.jsonl');
  // One row per evaluation: the objects that carry a step (as the server reads them).
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
    .filter((r) => typeof r.step === 'number');
}

async function setControls(values) {
  for (const [id, v] of Object.entries(values)) await page.fill('#' + id, String(v));
}

async function finishText() {
  return (await page.textContent('#st-finish')).trim();
}

// Waits until the status shows a finished generation (not streaming/waiting).
async function waitFinished(timeout = 30000) {
  await page.waitForFunction(() => {
    const f = document.getElementById('st-finish').textContent;
    return document.getElementById('generate').disabled === false && !/streaming|waiting/.test(f) && f !== '—';
  }, null, { timeout });
  return finishText();
}

async function generateAndWait() {
  await page.click('#generate');
  const f = await waitFinished();
  return { finish: f, text: await page.textContent('#out-cont') };
}

function expectConsole(pattern, fn) {
  return async () => {
    allowed.push(pattern);
    try {
      await fn();
    } finally {
      allowed = allowed.filter((p) => p !== pattern);
    }
  };
}

describe('charlm web page', { timeout: 240000 }, () => {
  before(async () => {
    fs.mkdirSync(OUT_DIR, { recursive: true });
    await startServer();
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'charlm-e2e-profile-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: BROWSER_ARGS,
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    context.on('request', (r) => requests.push(r.url()));
    page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      const url = (m.location() && m.location().url) || '';
      if (allowed.some((p) => p.test(text + ' ' + url))) return;
      consoleErrors.push(`${text} (${url})`);
    });
    page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
  });

  after(async () => {
    try {
      if (context) await context.close();
    } finally {
      await stopChild(server);
      if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it('serves the page with a same-origin Content-Security-Policy', async () => {
    const res = await page.goto(base + '/');
    assert.equal(res.status(), 200);
    const csp = res.headers()['content-security-policy'] || '';
    assert.match(csp, /'self'/, `GET / must carry a CSP allowing only 'self', got "${csp}"`);
    assert.doesNotMatch(csp, /unsafe-inline|\*/, `CSP too permissive: ${csp}`);
    await page.waitForSelector('#card-facts div');
  });

  it('has no Train panel without --training-dir: its probe is a 404', async () => {
    const probe = page.waitForResponse((r) => r.url() === base + '/v1/fine_tuning/jobs?limit=1');
    await page.goto(base + '/');
    assert.equal((await probe).status(), 404);
    await page.waitForFunction(() => document.getElementById('train').dataset.probe === '404', null, { timeout: 5000 });
    assert.equal(await page.isHidden('#train'), true);
    await page.waitForSelector('#card-facts div');
    assert.equal(await page.isHidden('#train'), true, 'still hidden once the card is drawn');
  });

  it('takes each control\'s default, bounds and hint from /model', async () => {
    const card = await (await fetch(base + '/model')).json();
    assert.equal(card.limits.max_tokens.max, LONG, '--max-tokens is the limit /model serves');
    for (const [id, def] of Object.entries(card.defaults)) {
      if (!(await page.$('input#' + id))) continue; // no control for it (repetition_window, stop)
      assert.equal(await page.inputValue('#' + id), def === null ? '' : String(def), `${id} starts at its default`);
    }
    assert.equal(await page.inputValue('#max_tokens'), '200');
    assert.equal(await page.inputValue('#temperature'), '0.8');
    assert.equal(await page.getAttribute('#max_tokens', 'max'), String(LONG));
    assert.equal(await page.getAttribute('#max_tokens', 'min'), '1');
    assert.equal(await page.getAttribute('#top_p', 'max'), '1');
    assert.equal(await page.getAttribute('#temperature', 'max'), null, 'temperature has no upper bound');
    assert.equal((await page.textContent('#range-max_tokens')).trim(), '1 – 1,000,000');
    assert.equal((await page.textContent('#range-top_p')).trim(), '> 0, ≤ 1');
    assert.equal((await page.textContent('#range-temperature')).trim(), '≥ 0');
    assert.equal((await page.textContent('#range-seed')).trim(), '0 – 2⁵³');
    // Reset goes back to the same defaults.
    await setControls({ max_tokens: 7, temperature: 0.1, seed: 3 });
    await page.click('#reset');
    assert.equal(await page.inputValue('#max_tokens'), '200');
    assert.equal(await page.inputValue('#temperature'), '0.8');
    assert.equal(await page.inputValue('#seed'), '');
  });

  it('streams a continuation for a typed prompt and shows the finish reason', async () => {
    await page.fill('#prompt', 'the cat ');
    await setControls({ max_tokens: 80, seed: 7 });
    const sse = page.waitForResponse((r) => r.url() === base + '/generate');
    await page.click('#generate');
    const res = await sse;
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'] || '', /^text\/event-stream/);
    const finish = await waitFinished();
    assert.equal(finish, 'length');
    const text = await page.textContent('#out-cont');
    assert.equal([...text].length, 80, 'continuation has max_tokens chars');
    assert.equal((await page.textContent('#out-prompt')), 'the cat ', 'prompt shown apart from the continuation');
    assert.equal((await page.textContent('#st-chars')).trim(), '80');
    assert.match((await page.textContent('#st-rate')).trim(), /^[\d,]+$/, 'chars/s shown');
    assert.equal((await page.textContent('#st-seed')).trim(), '7');
    // The page shows exactly what the server generates for these parameters.
    const direct = await postGenerate({ prompt: 'the cat ', max_tokens: 80, seed: 7 });
    assert.equal(direct.status, 200);
    assert.equal(text, direct.json.text, 'streamed text equals the non-streamed /generate text');
    // Prompt and continuation are styled apart.
    const colors = await page.evaluate(() => [
      getComputedStyle(document.getElementById('out-prompt')).color + getComputedStyle(document.getElementById('out-prompt')).backgroundColor,
      getComputedStyle(document.getElementById('out-cont')).color + getComputedStyle(document.getElementById('out-cont')).backgroundColor,
    ]);
    assert.notEqual(colors[0], colors[1], 'continuation must look different from the prompt');
    await page.screenshot({ path: path.join(OUT_DIR, 'screenshot-desktop.png'), fullPage: true });
  });

  it('gives the same text for the same seed (button and Ctrl+Enter), and shows a random seed for reuse', async () => {
    await page.fill('#prompt', 'and so ');
    await setControls({ max_tokens: 120, seed: 1234, temperature: 1 });
    const a = await generateAndWait();
    await page.focus('#prompt');
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction(() => document.getElementById('generate').disabled === false &&
      document.getElementById('st-finish').textContent === 'length', null, { timeout: 30000 });
    const b = await page.textContent('#out-cont');
    assert.equal(a.finish, 'length');
    assert.equal([...a.text].length, 120);
    assert.equal(b, a.text, 'same seed, same text');

    // Empty seed: the server picks one, the page shows it, and reusing it reproduces.
    await page.fill('#seed', '');
    const c = await generateAndWait();
    const shown = (await page.textContent('#st-seed')).trim();
    assert.match(shown, /^\d+$/, 'the seed used is shown');
    await page.click('#reuse-seed');
    assert.equal(await page.inputValue('#seed'), shown);
    const d = await generateAndWait();
    assert.equal(d.text, c.text, 'reusing the shown seed reproduces the text');
  });

  it('Continue appends the result to the prompt; Copy copies prompt and continuation', async () => {
    await page.fill('#prompt', 'once ');
    await setControls({ max_tokens: 30, seed: 99 });
    const r = await generateAndWait();
    await page.click('#copy');
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(clip, 'once ' + r.text);
    await page.click('#continue');
    assert.equal(await page.inputValue('#prompt'), 'once ' + r.text);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'prompt');
  });

  it('colours each generated char by its probability, with the top alternatives on hover and focus', async () => {
    const prompt = 'the cat ';
    const params = { max_tokens: 120, seed: 42, temperature: 1 };
    await page.fill('#prompt', prompt);
    await setControls(params);
    await page.check('#probs');
    assert.equal(await page.isVisible('#prob-legend'), true, 'the legend shows with the view');
    const sent = page.waitForRequest((r) => r.url() === base + '/generate');
    const r = await generateAndWait();
    assert.equal(JSON.parse((await sent).postData()).logprobs, 5, 'the view asks for 5 alternatives');
    assert.equal(r.finish, 'length');
    const chars = [...r.text];
    assert.equal(chars.length, 120);

    // The server's own numbers for the same request, to check the page against.
    const direct = await postGenerate({ prompt, ...params, logprobs: 5 });
    assert.equal(direct.status, 200);
    assert.equal(direct.json.text, r.text, 'the coloured text is the text the server generates');
    const lps = direct.json.logprobs;
    assert.equal(lps.length, chars.length);

    const toks = await page.$$eval('#out-cont .tok', (spans) => spans.map((s) => ({
      text: s.textContent, bg: getComputedStyle(s).backgroundColor, band: (/\bpb(\d)\b/.exec(s.className) || [])[1],
      tab: s.tabIndex,
    })));
    assert.equal(toks.length, chars.length, 'one coloured span per generated char');
    assert.equal(toks.map((t) => t.text).join(''), r.text, 'the spans hold the text, in order');
    assert.equal(await page.textContent('#out-cont'), r.text, 'and nothing else (Copy takes the text)');
    assert.ok(toks.every((t, i) => t.text === chars[i] && t.band !== undefined), 'each span is one char with a band');
    // A likelier char never sits in a more "unsure" band than a less likely one, and
    // different bands look different.
    const p = lps.map((e) => Math.exp(e.logprob));
    for (let i = 0; i < p.length; i++) {
      for (let j = 0; j < p.length; j++) {
        if (p[i] > p[j]) assert.ok(Number(toks[i].band) <= Number(toks[j].band), `char ${i} (p ${p[i]}) vs ${j} (p ${p[j]})`);
      }
    }
    const bgByBand = new Map();
    for (const t of toks) {
      if (bgByBand.has(t.band)) assert.equal(t.bg, bgByBand.get(t.band), `band ${t.band} has one colour`);
      bgByBand.set(t.band, t.bg);
    }
    const bgs = new Set(bgByBand.values());
    assert.ok(bgs.size >= 2, `at least two distinct backgrounds, got ${[...bgs]}`);
    assert.equal(bgs.size, bgByBand.size, 'each band its own background');
    assert.equal(toks.filter((t) => t.tab === 0).length, 1, 'one tab stop for the whole text');
    // Newlines still break lines.
    if (chars.includes('\n')) {
      const lines = await page.$eval('#output', (o) => o.innerText.split('\n').length);
      assert.ok(lines > 1, 'a generated newline breaks the line');
    }

    // The tip a char shows: its top 5, likeliest first, in percent, the chosen one marked.
    const shown = (c) => (c === ' ' ? '␣' : c === '\n' ? '↵' : c);
    async function checkTip(i) {
      await page.waitForSelector('#prob-tip:not([hidden])', { timeout: 5000 });
      assert.equal(await page.getAttribute('#prob-tip', 'role'), 'tooltip');
      const describedBy = await page.$$eval('#out-cont .tok', (spans) => spans
        .map((s, k) => (s.getAttribute('aria-describedby') === 'prob-tip' ? k : -1)).filter((k) => k >= 0));
      assert.deepEqual(describedBy, [i], 'the char with the tip is described by it');
      const rows = await page.$$eval('#prob-tip .tip-list:not(.tip-rest) li', (lis) => lis.map((li) => ({
        char: li.querySelector('.tip-char').textContent,
        pct: li.querySelector('.tip-pct').textContent,
        chosen: li.classList.contains('chosen'),
      })));
      assert.equal(rows.length, 5, `5 alternatives for char ${i}`);
      const top = lps[i].top;
      rows.forEach((row, k) => {
        assert.equal(row.char, shown(top[k].char), `alternative ${k} of char ${i}`);
        assert.match(row.pct, /^<?\d+(\.\d+)?%$/);
        const v = Number(row.pct.replace(/[<%]/g, ''));
        assert.ok(v >= 0 && v <= 100, `percentage ${row.pct}`);
        assert.ok(Math.abs(v - 100 * Math.exp(top[k].logprob)) <= 0.06, `${row.pct} is exp(${top[k].logprob})`);
        if (k) assert.ok(v <= Number(rows[k - 1].pct.replace(/[<%]/g, '')), 'likeliest first');
      });
      const chosen = await page.$$eval('#prob-tip li.chosen .tip-char', (c) => c.map((x) => x.textContent));
      assert.deepEqual(chosen, [shown(chars[i])], 'the chosen char is marked, once');
      assert.equal(rows.some((row) => row.chosen), top.some((a) => a.char === chars[i]),
        'marked among the 5 when it is one of them, after them otherwise');
    }

    // Hover: the least likely char, where the model was least sure.
    const least = p.indexOf(Math.min(...p));
    await page.locator('#out-cont .tok').nth(least).scrollIntoViewIfNeeded();
    await page.hover(`#out-cont .tok >> nth=${least}`);
    await checkTip(least);
    await page.screenshot({ path: path.join(OUT_DIR, 'screenshot-probabilities.png') });
    await page.mouse.move(2, 2);
    await page.waitForSelector('#prob-tip', { state: 'hidden', timeout: 5000 });

    // Keyboard: Tab reaches the first char, the arrows move, Esc dismisses.
    await page.focus('#output');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement === document.querySelector('#out-cont .tok')), true);
    await checkTip(0);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    await checkTip(2);
    await page.keyboard.press('Escape');
    await page.waitForSelector('#prob-tip', { state: 'hidden', timeout: 5000 });

    // Off: plain text again, one text node; on: the colours come back without a request.
    await page.uncheck('#probs');
    assert.equal(await page.locator('#out-cont .tok').count(), 0);
    assert.equal(await page.textContent('#out-cont'), r.text);
    assert.ok(await page.$eval('#out-cont', (o) => [...o.childNodes].every((n) => n.nodeType === Node.TEXT_NODE)));
    assert.equal(await page.isVisible('#prob-legend'), false);
    await page.check('#probs');
    assert.equal(await page.locator('#out-cont .tok').count(), chars.length);
    // The switch is remembered across a reload.
    await page.reload();
    await page.waitForSelector('#card-facts div');
    assert.equal(await page.isChecked('#probs'), true);
    await page.uncheck('#probs');
    assert.equal(await page.evaluate(() => localStorage.getItem('charlm-probabilities')), '0');
  });

  it('shows plain text when the server refuses logprobs (an older server)', expectConsole(/status of 400/, async () => {
    // Answer the first /generate as a server without the field does; let the retry through.
    let refused = 0;
    await page.route(base + '/generate', async (route) => {
      if (refused++ === 0 && 'logprobs' in JSON.parse(route.request().postData())) {
        await route.fulfill({ status: 400, contentType: 'application/json',
          body: JSON.stringify({ error: { message: "unknown field 'logprobs'", type: 'invalid_request_error', param: 'logprobs' } }) });
      } else {
        await route.continue();
      }
    });
    try {
      await page.check('#probs');
      await page.fill('#prompt', 'the ');
      await setControls({ max_tokens: 30, seed: 8 });
      const r = await generateAndWait();
      assert.equal(r.finish, 'length');
      assert.equal([...r.text].length, 30);
      assert.equal(refused, 2, 'asked once with logprobs, once without');
      assert.equal(await page.locator('#out-cont .tok').count(), 0);
      assert.equal(await page.isHidden('#err-general'), true);
      assert.match(await page.textContent('#st-probs'), /does not report probabilities/);
    } finally {
      await page.unroute(base + '/generate');
      await page.uncheck('#probs');
    }
  }));

  it('lists prompt characters the model does not know', async () => {
    const vocab = new Set(JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'vocab.json'), 'utf8')).chars);
    const unknown = [...'QZ€ж'].filter((c) => !vocab.has(c));
    assert.ok(unknown.length > 0, 'the test model should lack some of Q, Z, €, ж');
    await page.fill('#prompt', 'QZ€ж the ');
    await setControls({ max_tokens: 10, seed: 1 });
    const r = await generateAndWait();
    assert.equal(r.finish, 'length');
    const note = await page.textContent('#st-unknown');
    assert.equal(await page.isVisible('#st-unknown'), true);
    for (const c of unknown) assert.ok(note.includes(c), `${c} listed in "${note}"`);
  });

  it('Stop ends a long generation early', async () => {
    await page.fill('#prompt', 'long ');
    await setControls({ max_tokens: LONG, seed: 5, temperature: 1 });
    // Count how often the continuation grows: streaming means many small updates.
    await page.evaluate(() => {
      window.__updates = 0;
      new MutationObserver(() => window.__updates++).observe(document.getElementById('out-cont'),
        { characterData: true, childList: true, subtree: true });
    });
    await page.click('#generate');
    await page.waitForFunction(() => document.getElementById('out-cont').textContent.length >= 200 && window.__updates >= 3,
      null, { timeout: 30000 });
    assert.equal(await finishText(), 'streaming…', 'still streaming while text arrives');
    await page.click('#stop');
    const finish = await waitFinished(10000);
    assert.equal(finish, 'cancelled');
    const chars = Number((await page.textContent('#st-chars')).replace(/,/g, ''));
    assert.ok(chars >= 200 && chars < LONG, `stopped early: ${chars} of ${LONG} chars`);
    assert.equal(await page.isDisabled('#stop'), true);
    // The server must notice the closed connection and free the slot (--max-concurrent 1).
    await waitIdle();
  });

  it('shows the server\'s error inline next to the control that caused it', expectConsole(/status of 400/, async () => {
    await page.fill('#prompt', 'x');
    await setControls({ max_tokens: 20, seed: '', top_p: 5 });
    await page.click('#generate');
    await page.waitForSelector('#err-top_p:not([hidden])', { timeout: 10000 });
    const direct = await postGenerate({ prompt: 'x', max_tokens: 20, top_p: 5 });
    assert.equal(direct.status, 400);
    assert.equal(direct.json.error.param, 'top_p');
    assert.equal((await page.textContent('#err-top_p')).trim(), direct.json.error.message);
    const sameField = await page.evaluate(() =>
      document.getElementById('err-top_p').closest('.field') === document.getElementById('top_p').closest('.field'));
    assert.ok(sameField, 'error sits in the top_p field');
    assert.equal(await page.getAttribute('#top_p', 'aria-invalid'), 'true');
    assert.equal(await page.isHidden('#err-general'), true, 'a field error is not shown as a general error');

    // Fixing the value clears the message; a good request goes through.
    await setControls({ top_p: 0.9 });
    assert.equal(await page.isHidden('#err-top_p'), true);
    const r = await generateAndWait();
    assert.equal(r.finish, 'length');
  }));

  it('reports a 503 when the server is busy', expectConsole(/status of 503/, async () => {
    // Hold the only generation slot with a long request of our own.
    const ctrl = new AbortController();
    const res = await fetch(base + '/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'busy', max_tokens: LONG, stream: true }),
      signal: ctrl.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    await reader.read();
    try {
      await setControls({ max_tokens: 20, top_p: 1 });
      await page.click('#generate');
      await page.waitForSelector('#err-general:not([hidden])', { timeout: 10000 });
      assert.match(await page.textContent('#err-general'), /503/);
    } finally {
      ctrl.abort();
      await reader.cancel().catch(() => {});
    }
    await waitIdle();
  }));

  it('draws the model card with one chart point per train_log.jsonl row per series', async () => {
    const rows = readLogRows();
    assert.ok(rows.length >= 2, `train_log.jsonl should have rows, has ${rows.length}`);
    const card = await (await fetch(base + '/model')).json();
    const facts = await page.textContent('#card-facts');
    for (const label of ['Parameters', 'Vocabulary', 'Hidden', 'Validation loss']) {
      assert.ok(facts.includes(label), `model card shows ${label}: ${facts}`);
    }
    const vocab = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'vocab.json'), 'utf8')).chars.length;
    assert.ok(facts.includes(`${vocab} chars`), `vocab size ${vocab} shown: ${facts}`);
    for (const series of ['train', 'val']) {
      const n = await page.locator(`#chart svg circle.point[data-series="${series}"]`).count();
      assert.equal(n, rows.length, `${series} series: ${n} points for ${rows.length} log rows`);
      const dp = await page.getAttribute(`#chart svg g[data-series="${series}"] polyline`, 'data-points');
      assert.equal(Number(dp), rows.length);
    }
    const labels = await page.locator('#chart svg text.axis-label').allTextContents();
    assert.ok(labels.some((t) => /step/.test(t)) && labels.some((t) => /loss/.test(t)), `axis labels: ${labels}`);
    assert.ok(JSON.stringify(card).length > 2);
  });

  it('with one model offers no picker and names no model, also without /v1/models', expectConsole(/status of 404/, async () => {
    const ids = (await (await fetch(base + '/v1/models')).json()).data.map((m) => m.id);
    assert.equal(ids.length, 1);
    assert.equal(await page.isHidden('#model-pick'), true, 'one model: nothing to pick');
    // A server older than /v1/models: the card comes from plain /model as before.
    await page.route(base + '/v1/models', (route) => route.fulfill({ status: 404, contentType: 'application/json',
      body: JSON.stringify({ error: { message: 'no such route', type: 'not_found_error' } }) }));
    try {
      const card = page.waitForRequest((r) => r.url().startsWith(base + '/model'));
      await page.reload();
      assert.equal((await card).url(), base + '/model');
      await page.waitForSelector('#card-facts div');
      assert.equal(await page.isHidden('#model-pick'), true);
      assert.equal(await page.isHidden('#card-error'), true);
      await page.fill('#prompt', 'the ');
      await setControls({ max_tokens: 20, seed: 4 });
      const sent = page.waitForRequest((r) => r.url() === base + '/generate');
      const r = await generateAndWait();
      assert.equal(r.finish, 'length');
      assert.equal('model' in JSON.parse((await sent).postData()), false, 'no model named');
      assert.equal(await page.isHidden('#st-model-row'), true);
    } finally {
      await page.unroute(base + '/v1/models');
    }
  }));

  it('looks right on a phone-sized screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.waitForSelector('#card-facts div');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
    await page.fill('#prompt', 'the ');
    await setControls({ max_tokens: 160, seed: 3 });
    const r = await generateAndWait();
    assert.equal(r.finish, 'length');
    await page.screenshot({ path: path.join(OUT_DIR, 'screenshot-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  // Chromium logs the broken response body (net::ERR_...) itself; that one is expected.
  it('reports a lost connection instead of swallowing it', expectConsole(/net::ERR_/, async () => {
    await page.fill('#prompt', 'lost ');
    await setControls({ max_tokens: LONG, seed: 11 });
    await page.click('#generate');
    // The status, not the output box: until the server answers, the box still holds the
    // previous text.
    await page.waitForFunction(() => document.getElementById('st-finish').textContent === 'streaming…' &&
      Number(document.getElementById('st-chars').textContent.replace(/,/g, '')) >= 50, null, { timeout: 30000 });
    killServer('SIGKILL'); // a crash, not a graceful shutdown
    const finish = await waitFinished(15000);
    assert.equal(finish, 'connection lost');
    assert.match(await page.textContent('#err-general'), /Connection lost/);
    const chars = Number((await page.textContent('#st-chars')).replace(/,/g, ''));
    assert.ok(chars >= 50, 'the text received before the loss is kept');
  }));

  it('made no request to another origin and logged no console errors', () => {
    const origin = new URL(base).origin;
    const foreign = requests.filter((u) => {
      try {
        return new URL(u).origin !== origin;
      } catch (_) {
        return true;
      }
    });
    assert.deepEqual(foreign, [], 'requests to other origins');
    assert.ok(requests.some((u) => u.endsWith('/static/app.js')), 'the page loaded its script');
    assert.deepEqual(consoleErrors, [], 'console errors');
  });
});

// A second server with a small --max-tokens: the page must show that limit, not its own.
describe('charlm web page with --max-tokens 50', { timeout: 60000 }, () => {
  let child = null;
  let url = '';
  let browser = null;
  let p = null;

  before(async () => {
    ({ child, base: url } = await spawnServer(['--max-tokens', '50']));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    p = await browser.newPage();
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopChild(child);
    }
  });

  it('shows 50 as the max_tokens limit and default', async () => {
    await p.goto(url + '/');
    await p.waitForSelector('#card-facts div');
    assert.equal((await p.textContent('#range-max_tokens')).trim(), '1 – 50');
    assert.match(await p.textContent('#hint-max_tokens'), /^1 – 50.*chars/);
    assert.equal(await p.getAttribute('#max_tokens', 'max'), '50');
    assert.equal(await p.inputValue('#max_tokens'), '50', 'the default 200 is lowered to the limit');
    // Over the limit: the server refuses, and the page says so next to the control.
    await p.fill('#prompt', 'the ');
    await p.fill('#max_tokens', '51');
    await p.click('#generate');
    await p.waitForSelector('#err-max_tokens:not([hidden])', { timeout: 10000 });
    assert.match(await p.textContent('#err-max_tokens'), /50/);
  });
});

// A server with an API key: the page asks for it on a 401, keeps it in sessionStorage only
// and sends it on /generate and /model.
describe('charlm web page with --api-key', { timeout: 90000 }, () => {
  const KEY = 'e2e-Key_0123456789abcdef';
  let child = null;
  let url = '';
  let browser = null;
  let p = null;
  const pageErrors = [];

  before(async () => {
    ({ child, base: url } = await spawnServer(['--api-key', KEY]));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    p = await browser.newPage();
    p.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopChild(child);
    }
  });

  async function submitKey(key) {
    await p.getByLabel('API key', { exact: true }).fill(key);
    await p.click('#key-form button[value="ok"]');
  }

  it('asks for the key on Generate, retries with it, and keeps it in sessionStorage only', async () => {
    await p.goto(url + '/');
    // Loading the page opens no dialog; the card says it waits for a key.
    await p.waitForSelector('#card-error:not([hidden])');
    assert.match(await p.textContent('#card-error'), /API key/);
    assert.equal(await p.isVisible('#key-dialog'), false);

    await p.fill('#prompt', 'the cat ');
    await p.fill('#max_tokens', '40');
    await p.fill('#seed', '21');
    await p.click('#generate');
    await p.waitForSelector('#key-dialog[open]');
    const input = p.getByLabel('API key', { exact: true });
    assert.equal(await input.getAttribute('type'), 'password');
    assert.match(await p.textContent('#key-msg'), /needs an API key/);
    assert.equal(await p.evaluate(() => document.activeElement.id), 'api-key', 'the key field has focus');

    // A wrong key: asked again, with a message, and not kept.
    await submitKey('not-the-key');
    await p.waitForFunction(() => /not accepted/.test(document.getElementById('key-msg').textContent) &&
      document.getElementById('key-dialog').open, null, { timeout: 10000 });
    assert.equal(await p.evaluate(() => sessionStorage.length), 0, 'a wrong key is forgotten');

    // The right key: the same request goes through, with the header.
    const sent = p.waitForRequest((r) => r.url() === url + '/generate' &&
      r.headers().authorization === `Bearer ${KEY}`);
    await submitKey(KEY);
    await sent;
    const finish = await p.waitForFunction(() => {
      const f = document.getElementById('st-finish').textContent;
      return !document.getElementById('generate').disabled && f !== '—' && !/streaming|waiting/.test(f) && f;
    }, null, { timeout: 30000 });
    assert.equal(await finish.jsonValue(), 'length');
    assert.equal(await p.isVisible('#key-dialog'), false);
    const direct = await fetch(url + '/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: 'the cat ', max_tokens: 40, seed: 21 }),
    });
    assert.equal(direct.status, 200);
    assert.equal(await p.textContent('#out-cont'), (await direct.json()).text);

    // Kept in sessionStorage, and nowhere else the page could keep it.
    const stores = await p.evaluate(() => ({
      session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
      local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
      cookie: document.cookie,
      href: location.href,
    }));
    assert.deepEqual(stores.session, [KEY]);
    assert.deepEqual(stores.local, []);
    assert.equal(stores.cookie, '');
    assert.ok(!stores.href.includes(KEY), 'not in the URL');
    assert.deepEqual(await p.context().cookies(), []);

    // With a key that works the model card loads too.
    await p.waitForSelector('#card-facts div', { timeout: 10000 });
    assert.equal(await p.isHidden('#card-error'), true);
    assert.deepEqual(pageErrors, []);
  });

  it('a new tab asks again; cancelling says a key is needed', async () => {
    const q = await browser.newPage();
    try {
      await q.goto(url + '/');
      await q.fill('#prompt', 'a');
      await q.click('#generate');
      await q.waitForSelector('#key-dialog[open]');
      await q.keyboard.press('Escape');
      await q.waitForSelector('#err-general:not([hidden])', { timeout: 10000 });
      assert.match(await q.textContent('#err-general'), /API key \(401\)/);
      assert.equal(await q.isDisabled('#generate'), false);
      assert.equal(await q.evaluate(() => sessionStorage.length), 0);
    } finally {
      await q.close();
    }
  });
});

// A server with two models (--models over a folder of two): the first is the suite's
// model (an LSTM), the second a small GPT trained here on another text, so their cards
// and texts differ. The page offers both, its card follows the choice, and /generate names it.
describe('charlm web page with two models', { timeout: 120000 }, () => {
  // Capitals, digits and brackets the first model's corpus lacks, so the vocabularies differ.
  const TEXT = 'LOG 01: [OK] Pump 3 at 75% -- valve B2 open.\n' +
    'LOG 02: [WARN] Tank 7 at 12%; refill before 18:40.\n' +
    'Quiet night. Zero faults; 9 checks passed, 0 failed.\n';
  let tmp = '';
  let dir = ''; // the --models folder
  let child = null;
  let url = '';
  let browser = null;
  let p = null;
  const pageErrors = [];
  const cards = {}; // id -> its /model card, read directly
  let ids = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'charlm-e2e-models-'));
    dir = path.join(tmp, 'models');
    fs.mkdirSync(path.join(dir, 'first'), { recursive: true });
    for (const f of ['model.safetensors', 'vocab.json', 'train_log.jsonl']) {
      fs.copyFileSync(path.join(MODEL_DIR, f), path.join(dir, 'first', f));
    }
    const corpus = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(corpus, TEXT.repeat(30));
    const t = spawnSync(TRAIN, ['train', '--corpus', corpus, '--out', path.join(dir, 'second'), '--arch', 'gpt',
      '--layers', '2', '--heads', '2', '--embed', '16', '--block', '32', '--norm', 'rmsnorm', '--steps', '30',
      '--eval-every', '10', '--batch', '8', '--threads', '1', '--seed', '3'], { encoding: 'utf8' });
    assert.equal(t.status, 0, `${TRAIN} failed:\n${t.stderr}${t.error ? t.error.message : ''}`);
    ({ child, base: url } = await spawnServer([], ['--models', dir]));
    ids = (await (await fetch(url + '/v1/models')).json()).data.map((m) => m.id);
    for (const id of ids) cards[id] = await (await fetch(`${url}/model?model=${id}`)).json();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    p = await browser.newPage();
    p.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopChild(child);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  async function direct(body) {
    const res = await fetch(url + '/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, `POST /generate ${JSON.stringify(body)}`);
    return (await res.json()).text;
  }

  // The card's facts as {term: value}.
  async function facts() {
    return Object.fromEntries(await p.$$eval('#card-facts > div', (divs) => divs.map((d) =>
      [d.querySelector('dt').textContent, d.querySelector('dd').firstChild.textContent])));
  }

  async function cardShows(id) {
    await p.waitForFunction((want) => [...document.querySelectorAll('#card-facts dd')]
      .some((dd) => dd.previousElementSibling.textContent === 'Model id' && dd.textContent === want), id,
    { timeout: 10000 });
    const f = await facts();
    const card = cards[id];
    const layers = `${card.layers} layer${card.layers === 1 ? '' : 's'}`;
    assert.equal(f['Training steps'], card.steps.toLocaleString('en-US'), `${id}: steps`);
    if (card.arch === 'gpt') {
      assert.equal(f.Architecture, `GPT, ${layers} × ${card.heads} heads`, `${id}: architecture`);
      assert.equal(f.Embedding, card.embed.toLocaleString('en-US'), `${id}: embedding`);
      assert.equal(f.Context, `${card.block} chars`, `${id}: context`);
      assert.equal(card.norm, 'rmsnorm', `${id}: trained with --norm rmsnorm`);
      assert.equal(f.Norm, 'RMSNorm, no biases', `${id}: norm`);
      assert.equal(f.Hidden, undefined, `${id}: a GPT has no hidden size`);
      assert.match(await p.textContent('#model-summary'), new RegExp(`^${card.layers}×GPT-${card.embed} · `));
    } else {
      assert.equal(f.Architecture, `LSTM, ${layers} × ${card.hidden.toLocaleString('en-US')}`, `${id}: architecture`);
      assert.equal(f.Hidden, card.hidden.toLocaleString('en-US'), `${id}: hidden`);
      assert.equal(f.Context, undefined, `${id}: an LSTM has no context`);
      assert.match(await p.textContent('#model-summary'), new RegExp(`^(${card.layers}×)?LSTM-${card.hidden} · `));
    }
    // The state of one stream: the LSTM's h and c, the GPT's KV cache, 4-byte floats.
    const floats = card.arch === 'gpt' ? 2 * card.layers * card.block * card.embed : 2 * card.layers * card.hidden;
    assert.equal(card.memory_per_stream, 4 * floats, `${id}: memory_per_stream`);
    const bytes = 4 * floats; // whole KiB, or under one, for these small models
    assert.equal(f['Memory per stream'], bytes < 1024 ? `${bytes} bytes` : `${bytes / 1024} KiB`, `${id}: memory shown`);
    assert.equal(f.Parameters, card.parameters.toLocaleString('en-US'), `${id}: parameters`);
    assert.equal(f.Vocabulary, `${card.vocab_size} chars`, `${id}: vocabulary`);
    const rows = card.training_curve.length;
    assert.equal(await p.locator('#chart svg circle.point[data-series="train"]').count(), rows, `${id}: one chart point per log row`);
  }

  async function generate(prompt, seed) {
    await p.fill('#prompt', prompt);
    await p.fill('#max_tokens', '60');
    await p.fill('#temperature', '1');
    await p.fill('#seed', String(seed));
    const sent = p.waitForRequest((r) => r.url() === url + '/generate');
    await p.click('#generate');
    const body = JSON.parse((await sent).postData());
    // Done: a finish reason, or an error before any text (the status is then left as it was).
    await p.waitForFunction(() => !document.getElementById('generate').disabled &&
      (!document.getElementById('err-general').hidden ||
        !/streaming|waiting|—/.test(document.getElementById('st-finish').textContent)), null, { timeout: 30000 });
    return { body, finish: await p.textContent('#st-finish'), text: await p.textContent('#out-cont') };
  }

  it('lists both models in a labelled picker, the default first and chosen', async () => {
    assert.deepEqual(ids, ['first', 'second'], '--models loads the subfolders sorted by name');
    assert.notEqual(cards.first.steps, cards.second.steps, 'the two test models differ in steps');
    assert.deepEqual([cards.first.arch, cards.second.arch], ['lstm', 'gpt'], 'and in architecture');
    await p.goto(url + '/');
    const picker = p.getByRole('combobox', { name: 'Model' });
    await picker.waitFor({ state: 'visible' });
    assert.deepEqual(await picker.locator('option').allTextContents(), ids);
    assert.equal(await picker.inputValue(), 'first');
    await cardShows('first');
    assert.equal(new URL(p.url()).search, '', 'the default needs nothing in the URL');
    await p.setViewportSize({ width: 390, height: 844 });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone with the picker (overflow ${overflow}px)`);
    await p.setViewportSize({ width: 1280, height: 900 });
  });

  it('choosing the second model redraws its card and generates with it; choosing back the first too', async () => {
    const cardAsked = p.waitForRequest((r) => r.url() === url + '/model?model=second');
    await p.selectOption('#model', 'second');
    await cardAsked;
    await cardShows('second');
    assert.equal(new URL(p.url()).searchParams.get('model'), 'second', 'the choice is in the URL');

    const a = await generate('the ', 5);
    assert.equal(a.body.model, 'second', '/generate names the model chosen');
    assert.equal(a.finish, 'length');
    const second = await direct({ model: 'second', prompt: 'the ', max_tokens: 60, temperature: 1, seed: 5 });
    const first = await direct({ model: 'first', prompt: 'the ', max_tokens: 60, temperature: 1, seed: 5 });
    assert.notEqual(first, second, 'the two models write different texts for one seed');
    assert.equal(a.text, second, 'the page shows the second model\'s text');
    assert.equal((await p.textContent('#st-model')).trim(), 'second');
    assert.equal(await p.isVisible('#st-model'), true);
    await p.screenshot({ path: path.join(OUT_DIR, 'screenshot-models.png'), fullPage: true });

    await p.selectOption('#model', 'first');
    await cardShows('first');
    const b = await generate('the ', 5);
    assert.equal(b.body.model, 'first');
    assert.equal(b.text, first, 'back on the first model, its text');
    assert.equal(new URL(p.url()).search, '');
  });

  it('is reached with Tab and changed with the arrow keys', async () => {
    await p.goto(url + '/');
    await cardShows('first');
    for (let i = 0; i < 6 && (await p.evaluate(() => document.activeElement.id)) !== 'model'; i++) {
      await p.keyboard.press('Tab');
    }
    assert.equal(await p.evaluate(() => document.activeElement.id), 'model', 'Tab reaches the picker');
    await p.keyboard.press('ArrowDown');
    await cardShows('second');
    assert.equal(await p.inputValue('#model'), 'second');
    await p.keyboard.press('ArrowUp');
    await cardShows('first');
    assert.equal(await p.inputValue('#model'), 'first');
  });

  it('keeps the choice over a reload, and says so when the URL names no model served', async () => {
    await p.selectOption('#model', 'second');
    await cardShows('second');
    await p.reload();
    await cardShows('second');
    assert.equal(await p.inputValue('#model'), 'second');

    await p.goto(url + '/?model=nope');
    await cardShows('first');
    assert.equal(await p.inputValue('#model'), 'first');
    await p.waitForSelector('#err-general:not([hidden])');
    assert.match(await p.textContent('#err-general'), /No model 'nope'.*'first'/);
    assert.equal(new URL(p.url()).search, '', 'the stale choice leaves the URL');
  });

  it('a chosen model that is removed: the error says so and the list is read again', async () => {
    // A third model joins on reload, so that two are left once the second goes (with one
    // left the server answers any id with it).
    fs.cpSync(path.join(dir, 'first'), path.join(dir, 'third'), { recursive: true });
    const reload = async () => {
      const res = await fetch(url + '/admin/reload', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 200, 'POST /admin/reload');
      return (await (await fetch(url + '/v1/models')).json()).data.map((m) => m.id);
    };
    assert.deepEqual(await reload(), ['first', 'second', 'third']);
    cards.third = await (await fetch(url + '/model?model=third')).json();
    await p.goto(url + '/?model=second');
    await cardShows('second');
    assert.deepEqual(await p.locator('#model option').allTextContents(), ['first', 'second', 'third']);

    fs.renameSync(path.join(dir, 'second'), path.join(tmp, 'second-removed'));
    assert.deepEqual(await reload(), ['first', 'third']);
    const a = await generate('the ', 5);
    assert.equal(a.body.model, 'second', 'the page still had the second chosen');
    await p.waitForFunction(() => /not served any more.*now shows 'first'/s.test(document.getElementById('err-general').textContent),
      null, { timeout: 10000 });
    assert.match(await p.textContent('#err-general'), /'second'/);
    await cardShows('first');
    assert.deepEqual(await p.locator('#model option').allTextContents(), ['first', 'third'], 'the list read again');
    assert.equal(await p.inputValue('#model'), 'first');
    assert.equal(new URL(p.url()).search, '', 'the lost choice leaves the URL');

    const b = await generate('the ', 5);
    assert.equal(b.body.model, 'first');
    assert.equal(b.text, await direct({ model: 'first', prompt: 'the ', max_tokens: 60, temperature: 1, seed: 5 }));
    assert.equal(await p.isHidden('#err-general'), true);

    // With one model left the server answers any id with it, naming itself: the page
    // notices that the model it asked for is gone.
    await p.selectOption('#model', 'third');
    await cardShows('third');
    fs.rmSync(path.join(dir, 'third'), { recursive: true });
    assert.deepEqual(await reload(), ['first']);
    const c = await generate('the ', 5);
    assert.equal(c.body.model, 'third');
    await p.waitForFunction(() => /'third' is not served any more.*'first' answered.*now shows 'first'/s
      .test(document.getElementById('err-general').textContent), null, { timeout: 10000 });
    assert.equal((await p.textContent('#st-model')).trim(), 'first', 'the status names the model that answered');
    await cardShows('first');
    assert.equal(await p.isHidden('#model-pick'), true, 'one model: nothing to pick');
    const d = await generate('the ', 5);
    assert.equal('model' in d.body, false, 'one model: the request names none');
    assert.equal(d.text, await direct({ prompt: 'the ', max_tokens: 60, temperature: 1, seed: 5 }));
    assert.deepEqual(pageErrors, []);
  });
});

// A server with --training-dir: the Train panel from a dropped text to the new model
// generating in the picker; a reload while a job runs shows it again; Cancel stops it.
describe('charlm web page: the Train panel', { timeout: 120000 }, () => {
  const TEXT = ('the cat sat on the mat and the dog sat on the log.\n' +
    'a small boat drifts past the old mill while the river runs slow and brown.\n').repeat(40);
  const BUDGET = 6; // seconds: the first job's max_time, a few evaluations (one every 10 steps)
  let tmp = '';
  let child = null;
  let url = '';
  let browser = null;
  let p = null;
  const pageErrors = [];
  let fileId = '';

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'charlm-e2e-train-'));
    ({ child, base: url } = await spawnServer(['--training-dir', path.join(tmp, 'training')]));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    p.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopChild(child);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  async function api(route, opts) {
    const res = await fetch(url + route, opts);
    return { status: res.status, json: await res.json() };
  }

  const jobCreated = () => p.waitForResponse((r) => r.url() === url + '/v1/fine_tuning/jobs' && r.request().method() === 'POST');
  const statusIs = (want, timeout) => p.waitForFunction((w) => document.getElementById('tr-status').textContent === w,
    want, { timeout });

  it('trains an LSTM on a dropped text with a live curve and sample, then generates with the new model', async () => {
    await p.goto(url + '/');
    await p.waitForSelector('#train:not([hidden])', { timeout: 10000 });
    assert.equal(await p.getAttribute('#train', 'data-probe'), '200');

    // A drop: a DataTransfer holding a File, as a file dragged from the desktop brings.
    const uploaded = p.waitForResponse((r) => r.url() === url + '/v1/files' && r.request().method() === 'POST');
    const dt = await p.evaluateHandle((text) => {
      const d = new DataTransfer();
      d.items.add(new File([text], 'tiny.txt', { type: 'text/plain' }));
      return d;
    }, TEXT);
    await p.dispatchEvent('#train-drop', 'dragenter', { dataTransfer: dt });
    assert.match(await p.getAttribute('#train-drop', 'class'), /\bover\b/, 'the zone shows it takes the file');
    await p.dispatchEvent('#train-drop', 'drop', { dataTransfer: dt });
    const up = await uploaded;
    assert.equal(up.status(), 200);
    assert.match(up.request().headers()['content-type'], /^multipart\/form-data; boundary=/);
    const file = await up.json();
    fileId = file.id;
    assert.deepEqual([file.filename, file.bytes, file.purpose], ['tiny.txt', Buffer.byteLength(TEXT), 'fine-tune']);
    await p.waitForFunction((id) => document.getElementById('train-pick').value === id, file.id, { timeout: 5000 });
    assert.match(await p.textContent('#train-upload'), new RegExp(`as ${file.id}`));
    const files = (await api('/v1/files')).json.data.map((f) => f.id);
    assert.deepEqual(await p.$$eval('#train-pick option', (os) => os.map((o) => o.value).filter(Boolean)), files,
      'the picker lists the uploaded files');

    await p.check('input[name="train-arch"][value="lstm"]');
    await p.fill('#train-budget', String(BUDGET));
    await p.selectOption('#train-unit', { label: 'seconds' });
    const created = jobCreated();
    await p.click('#train-start');
    const cres = await created;
    assert.equal(cres.status(), 200);
    assert.deepEqual(JSON.parse(cres.request().postData()),
      { training_file: file.id, model: 'lstm', hyperparameters: { max_time: BUDGET } });
    const job = await cres.json();
    assert.match(job.id, /^ftjob-[0-9a-f]{24}$/);
    await p.waitForFunction((id) => document.getElementById('tr-job').textContent.startsWith(id), job.id, { timeout: 5000 });
    assert.equal(await p.isDisabled('#train-start'), true, 'one job followed at a time');

    // Live: a loss point and a sample, from the event stream.
    await p.waitForSelector('#train-chart circle.point[data-series="train"]', { timeout: 30000 });
    await p.waitForFunction(() => /^Sample at step \d/.test(document.getElementById('tr-sample-title').textContent) &&
      !document.querySelector('#tr-sample .out-empty'), null, { timeout: 30000 });
    assert.match(await p.textContent('#tr-rate'), /^[\d,]+$/, 'tokens/s shown');
    // A run ended by its time budget alone has no total (total_steps 0).
    assert.match(await p.textContent('#tr-step'), /^[1-9][\d,]*$/, 'the step');

    await statusIs('succeeded', 60000);
    const done = (await api(`/v1/fine_tuning/jobs/${job.id}`)).json;
    assert.equal(done.status, 'succeeded');
    const ft = done.fine_tuned_model;
    assert.match(ft, /^ft:lstm:charlm:/);
    // The curve and the sample are the job's: one point per metrics event, the last sample.
    const events = (await api(`/v1/fine_tuning/jobs/${job.id}/events?limit=100`)).json;
    assert.equal(events.has_more, false, 'every event in one page');
    events.data.reverse(); // oldest first, as the stream sends them
    const metrics = events.data.filter((e) => e.type === 'metrics');
    assert.ok(metrics.length >= 1, 'the job logged an evaluation');
    for (const [series, key] of [['train', 'train_loss'], ['val', 'valid_loss']]) {
      const steps = await p.$$eval(`#train-chart circle.point[data-series="${series}"]`, (cs) => cs.map((c) => Number(c.dataset.step)));
      assert.deepEqual(steps, metrics.filter((e) => Number.isFinite(e.data[key])).map((e) => e.data.step), `${series} points`);
    }
    const sampled = metrics.filter((e) => typeof e.data.sample === 'string');
    const lastSample = sampled[sampled.length - 1];
    assert.equal(await p.textContent('#tr-sample'), lastSample.data.sample, 'the latest sample is shown');
    assert.equal(await p.textContent('#tr-sample-title'), `Sample at step ${lastSample.data.step.toLocaleString('en-US')}`);

    // The new model is in the picker, chosen, its card drawn.
    await p.waitForFunction((id) => document.getElementById('model').value === id, ft, { timeout: 15000 });
    assert.deepEqual(await p.locator('#model option').allTextContents(), (await api('/v1/models')).json.data.map((m) => m.id));
    assert.equal(await p.isVisible('#model-pick'), true);
    assert.equal(new URL(p.url()).searchParams.get('model'), ft, 'the choice is in the URL');
    await p.waitForFunction((id) => [...document.querySelectorAll('#card-facts dd')].some((dd) => dd.textContent === id), ft,
      { timeout: 10000 });
    assert.equal(await p.isDisabled('#train-start'), false);
    assert.equal(await p.isDisabled('#train-cancel'), true);
    await p.screenshot({ path: path.join(OUT_DIR, 'screenshot-train.png'), fullPage: true });
    await p.setViewportSize({ width: 390, height: 844 });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone with the Train panel (overflow ${overflow}px)`);
    await p.setViewportSize({ width: 1280, height: 900 });

    // Generate writes with it.
    await p.fill('#prompt', 'the ');
    for (const [id, v] of [['max_tokens', 40], ['temperature', 1], ['seed', 3]]) await p.fill('#' + id, String(v));
    const sent = p.waitForRequest((r) => r.url() === url + '/generate');
    await p.click('#generate');
    assert.equal(JSON.parse((await sent).postData()).model, ft, '/generate names the new model');
    await p.waitForFunction(() => !document.getElementById('generate').disabled &&
      document.getElementById('st-finish').textContent === 'length', null, { timeout: 30000 });
    const text = await p.textContent('#out-cont');
    assert.equal([...text].length, 40);
    const direct = await api('/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: ft, prompt: 'the ', max_tokens: 40, temperature: 1, seed: 3 }),
    });
    assert.equal(direct.status, 200);
    assert.equal(text, direct.json.text, 'the text is the new model\'s');
    assert.equal((await p.textContent('#st-model')).trim(), ft);
  });

  it('shows a running job again after a reload, with the time left, and Cancel stops it', async () => {
    await p.selectOption('#train-pick', fileId);
    await p.fill('#train-budget', '2');
    await p.selectOption('#train-unit', { label: 'minutes' });
    const created = jobCreated();
    await p.click('#train-start');
    const cres = await created;
    assert.equal(JSON.parse(cres.request().postData()).hyperparameters.max_time, 120, 'minutes are sent as seconds');
    const job = await cres.json();
    await p.waitForFunction((id) => document.getElementById('tr-job').textContent.startsWith(id), job.id, { timeout: 5000 });
    await p.waitForSelector('#train-chart circle.point', { timeout: 30000 });

    await p.reload();
    await p.waitForFunction((id) => document.getElementById('tr-job').textContent.startsWith(id), job.id, { timeout: 10000 });
    assert.match(await p.textContent('#tr-status'), /^(running|queued)$/);
    assert.equal(await p.isEnabled('#train-cancel'), true);
    await p.waitForSelector('#train-chart circle.point', { timeout: 30000 });
    assert.match(await p.textContent('#tr-left'), /^(\d+ min )?\d+ s$/, 'the time left');

    const cancelled = p.waitForResponse((r) => r.url() === `${url}/v1/fine_tuning/jobs/${job.id}/cancel`);
    await p.click('#train-cancel');
    assert.equal((await cancelled).status(), 200);
    await statusIs('cancelled', 20000);
    // Followed until the stream ends, once the trainer has stopped: then Start is back.
    await p.waitForSelector('#train-start:not([disabled])', { timeout: 20000 });
    assert.equal((await api(`/v1/fine_tuning/jobs/${job.id}`)).json.status, 'cancelled');
    assert.equal(await p.isDisabled('#train-cancel'), true);
    assert.equal(await p.textContent('#tr-left'), '—');
  });

  it('shows why the server refuses an upload, and asks for a file before Start', async () => {
    const refused = p.waitForResponse((r) => r.url() === url + '/v1/files' && r.request().method() === 'POST');
    await p.setInputFiles('#train-file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: Buffer.from([0x74, 0x68, 0, 0x65]) });
    const res = await refused;
    assert.equal(res.status(), 400);
    const { error } = await res.json();
    await p.waitForSelector('#err-train-file:not([hidden])', { timeout: 5000 });
    assert.equal(await p.textContent('#err-train-file'), `blob.bin: ${error.message}`);
    assert.equal(await p.getAttribute('#train-file', 'aria-invalid'), 'true');

    let posted = 0;
    p.on('request', (r) => {
      if (r.url() === url + '/v1/fine_tuning/jobs' && r.method() === 'POST') posted++;
    });
    await p.selectOption('#train-pick', '');
    await p.click('#train-start');
    await p.waitForSelector('#err-train-pick:not([hidden])', { timeout: 5000 });
    assert.match(await p.textContent('#err-train-pick'), /Drop a text file/);
    assert.equal(await p.evaluate(() => document.activeElement.id), 'train-pick');
    assert.equal(posted, 0, 'nothing sent without a file');
    assert.deepEqual(pageErrors, []);
  });
});

// Training with an API key: the panel is there, asks for the key as the page does (on a
// user's action, not on load), and sends it.
describe('charlm web page: the Train panel with --api-key', { timeout: 60000 }, () => {
  const KEY = 'e2e-train-Key_0123456789';
  let tmp = '';
  let child = null;
  let url = '';
  let browser = null;
  let p = null;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'charlm-e2e-trainkey-'));
    ({ child, base: url } = await spawnServer(['--training-dir', path.join(tmp, 'training'), '--api-key', KEY]));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
    p = await browser.newPage();
  });

  after(async () => {
    try {
      if (browser) await browser.close();
    } finally {
      await stopChild(child);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('shows the panel on a 401, asks for the key on upload and sends it', async () => {
    await p.goto(url + '/');
    await p.waitForSelector('#train:not([hidden])', { timeout: 10000 });
    assert.equal(await p.getAttribute('#train', 'data-probe'), '401');
    assert.match(await p.textContent('#train-key'), /API key/);
    assert.equal(await p.isVisible('#key-dialog'), false, 'no dialog on load');

    await p.setInputFiles('#train-file', { name: 'k.txt', mimeType: 'text/plain', buffer: Buffer.from('the cat sat.\n'.repeat(20)) });
    await p.waitForSelector('#key-dialog[open]');
    assert.match(await p.textContent('#key-msg'), /train/);
    const sent = p.waitForResponse((r) => r.url() === url + '/v1/files' && r.request().method() === 'POST' &&
      r.request().headers().authorization === `Bearer ${KEY}`);
    await p.getByLabel('API key', { exact: true }).fill(KEY);
    await p.click('#key-form button[value="ok"]');
    const res = await sent;
    assert.equal(res.status(), 200);
    const file = await res.json();
    await p.waitForFunction((id) => document.getElementById('train-pick').value === id, file.id, { timeout: 5000 });
    // The key that worked loads the rest: the note goes, the card comes.
    await p.waitForSelector('#train-key', { state: 'hidden', timeout: 5000 });
    await p.waitForSelector('#card-facts div', { timeout: 10000 });
  });
});
