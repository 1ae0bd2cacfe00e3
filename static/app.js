// charlm web page: streams /generate over SSE and draws the model card from /model; offers
// a choice when /v1/models lists several models; asks for an API key when the server wants
// one; on a server that trains (--training-dir), a Train panel runs and follows a
// fine-tuning job and puts its model in the picker.
// Plain script, no framework; the page's CSP allows only 'self', so nothing here
// writes style attributes or HTML strings — every piece of text goes in as textContent,
// and the one position set from script (the probability tip's) goes through the CSSOM,
// which the CSP does not restrict.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // The sampling controls. Control id = JSON field name, so an error's "param" finds its
  // control directly; their defaults and ranges come from /model (applyParams).
  const FIELDS = [...document.querySelectorAll('.controls input[name]')].map((input) => input.name);
  let defaults = {}; // /model's "defaults": what /generate uses for a field left out

  const el = {
    form: $('gen-form'),
    prompt: $('prompt'),
    promptCount: $('prompt-count'),
    generate: $('generate'),
    stop: $('stop'),
    cont: $('continue'),
    copy: $('copy'),
    reset: $('reset'),
    general: $('err-general'),
    output: $('output'),
    outPrompt: $('out-prompt'),
    outCont: $('out-cont'),
    outEmpty: $('out-empty'),
    caret: $('caret'),
    stFinish: $('st-finish'),
    stChars: $('st-chars'),
    stRate: $('st-rate'),
    stSeed: $('st-seed'),
    reuseSeed: $('reuse-seed'),
    stUnknown: $('st-unknown'),
    stProbs: $('st-probs'),
    probs: $('probs'),
    probLegend: $('prob-legend'),
    tip: $('prob-tip'),
    summary: $('model-summary'),
    model: $('model'),
    modelPick: $('model-pick'),
    stModel: $('st-model'),
    stModelRow: $('st-model-row'),
  };

  // The models /v1/models lists, default first, and the one chosen. With one model (or a
  // server without /v1/models) there is nothing to choose: requests name no model and the
  // server's default answers, so a server older than the `model` field of /generate and
  // the `model` query of /model works as before.
  let models = [];
  let modelId = '';
  const several = () => models.length > 1;

  // One generation at a time; `run` holds its live state.
  let run = null;
  let last = null; // {prompt, text, seed} of the last finished generation

  // ---- errors ---------------------------------------------------------------

  // The generation form's errors; the Train panel keeps its own (clearTrainErrors).
  function clearErrors() {
    for (const node of el.form.querySelectorAll('.field-error')) {
      node.textContent = '';
      node.hidden = true;
    }
    for (const node of el.form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
    showGeneral('');
  }

  function showGeneral(msg) {
    el.general.textContent = msg;
    el.general.hidden = !msg;
  }

  // Puts the message under the control named by `param`; falls back to the general
  // slot under the buttons when no control matches (malformed JSON, 503, ...).
  function showError(param, msg) {
    const slot = param ? $('err-' + param) : null;
    const control = param ? $(param) : null;
    if (!slot || !control) {
      showGeneral(param ? `${param}: ${msg}` : msg);
      return;
    }
    slot.textContent = msg;
    slot.hidden = false;
    control.setAttribute('aria-invalid', 'true');
  }

  // ---- API key --------------------------------------------------------------

  // A server started with API keys answers 401 to /generate and /model without
  // "Authorization: Bearer <key>". The page then asks for the key and keeps it in this
  // tab's sessionStorage only — not localStorage, not a cookie, not the URL — so it is
  // gone with the tab and never sent anywhere but these requests' header.
  const KEY_ITEM = 'charlm-api-key';
  const keyDialog = $('key-dialog');
  const keyInput = $('api-key');
  const keyError = $('key-error');
  let cardWanted = false; // /model got a 401: load the card once a key works

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_ITEM) || '';
    } catch (_) {
      return ''; // storage disabled: the key lives as long as the dialog's answer
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_ITEM, key);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch (_) {
      // nothing to do: the next request asks again
    }
  }

  // Resolves to the key entered, or '' when the dialog is cancelled (button or Esc).
  function askKey(message) {
    return new Promise((resolve) => {
      $('key-msg').textContent = message;
      keyInput.value = '';
      keyError.hidden = true;
      keyInput.removeAttribute('aria-invalid');
      keyDialog.returnValue = '';
      keyDialog.addEventListener('close', function done() {
        keyDialog.removeEventListener('close', done);
        const key = keyDialog.returnValue === 'ok' ? keyInput.value.trim() : '';
        keyInput.value = '';
        resolve(key);
      });
      keyDialog.showModal();
      keyInput.focus();
    });
  }

  // A key goes in an HTTP header: printable ASCII without spaces, as the server accepts.
  $('key-form').addEventListener('submit', (ev) => {
    if (ev.submitter && ev.submitter.value !== 'ok') return;
    const key = keyInput.value.trim();
    const bad = !key ? 'Enter the key.' : /^[\x21-\x7e]+$/.test(key) ? '' : 'A key is printable ASCII without spaces.';
    if (!bad) return;
    ev.preventDefault();
    keyError.textContent = bad;
    keyError.hidden = false;
    keyInput.setAttribute('aria-invalid', 'true');
    keyInput.focus();
  });

  // fetch with the stored key. On a 401 the key sent (if any) is forgotten and, when
  // `ask`, the user is asked for one (`ask` may be the dialog's message) and the request
  // sent again, until a key works or the dialog is cancelled, which returns the 401.
  // A key that works loads what an earlier 401 held back (the card, the Train panel).
  async function fetchKeyed(url, opts, ask) {
    for (;;) {
      const key = storedKey();
      const headers = { ...(opts.headers || {}) };
      if (key) headers.Authorization = `Bearer ${key}`;
      const res = await fetch(url, { ...opts, headers });
      if (res.status !== 401) {
        if (key && cardWanted && !isCardUrl(url)) loadModels();
        if (key && trainWanted && url !== JOBS_PROBE) probeTraining();
        return res;
      }
      if (key) storeKey('');
      if (!ask) return res;
      const entered = await askKey(key
        ? 'That key was not accepted. Enter a valid API key.'
        : typeof ask === 'string' ? ask : 'This server needs an API key to generate text and show the model card.');
      if (!entered) return res;
      storeKey(entered);
    }
  }

  // ---- request --------------------------------------------------------------

  // Reads the controls into a request body. Empty numeric fields are left out so the
  // server's default applies; out-of-range values are sent as typed so that the
  // server, the single authority on limits, answers with its own message.
  function buildRequest() {
    const body = { prompt: el.prompt.value, stream: true };
    if (several()) body.model = modelId;
    if (probsOn()) body.logprobs = ALTERNATIVES;
    const local = [];
    for (const name of FIELDS) {
      const input = $(name);
      if (input.validity && input.validity.badInput) {
        local.push([name, 'not a number']);
        continue;
      }
      const raw = input.value.trim();
      if (raw === '') continue;
      const n = Number(raw);
      if (!Number.isFinite(n)) {
        local.push([name, input.inputMode === 'numeric' ? 'must be a whole number' : 'must be a number']);
        continue;
      }
      body[name] = n;
    }
    return { body, local };
  }

  // ---- output ---------------------------------------------------------------

  // The continuation on screen: the events' texts with their logprobs (null when the
  // event had none), kept so the probabilities view can be switched on and off after
  // the fact. `node` is the text node plain text is appended to.
  const out = { parts: [], node: null, asked: false };

  // Streamed text is buffered and flushed once per frame: a fast model can send far
  // more events per second than the screen can show.
  function appendText(text, logprobs) {
    const part = { text, lp: coversText(logprobs, text) ? logprobs : null };
    out.parts.push(part);
    run.pending.push(part);
    run.text += text;
    if (!run.frame) run.frame = requestAnimationFrame(flush);
  }

  // An event's logprobs are usable when there is one entry per char of its text.
  function coversText(lp, text) {
    return Array.isArray(lp) && lp.length === countChars(text);
  }

  function flush() {
    if (!run) return;
    run.frame = 0;
    if (!run.pending.length) return;
    const box = el.output;
    const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    const text = run.pending.map((p) => p.text).join('');
    if (probsOn()) el.outCont.appendChild(probNodes(run.pending));
    else out.node.appendData(text);
    run.chars += countChars(text);
    run.pending = [];
    el.stChars.textContent = fmtInt(run.chars);
    if (pinned) box.scrollTop = box.scrollHeight;
  }

  // Draws the whole continuation again in the current view (the switch was flipped).
  function redraw() {
    if (run) flush(); // counts what is pending; drawn again below anyway
    hideTip();
    el.outCont.textContent = '';
    out.node = document.createTextNode('');
    el.outCont.appendChild(out.node);
    if (probsOn()) el.outCont.appendChild(probNodes(out.parts));
    else out.node.data = out.parts.map((p) => p.text).join('');
  }

  function countChars(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0xdc00 || c > 0xdfff) n++; // count code points, not UTF-16 units
    }
    return n;
  }

  function setBusy(busy) {
    el.generate.disabled = busy;
    el.model.disabled = busy; // the text on screen comes from one model
    el.stop.disabled = !busy;
    el.cont.disabled = busy || !last || !last.text;
    el.copy.disabled = busy || !last;
    el.caret.hidden = !busy;
    el.output.setAttribute('aria-busy', busy ? 'true' : 'false');
    document.body.classList.toggle('busy', busy);
  }

  function resetStatus() {
    el.stFinish.textContent = 'streaming…';
    el.stFinish.className = '';
    el.stChars.textContent = '0';
    el.stRate.textContent = '—';
    el.stSeed.textContent = '—';
    el.reuseSeed.hidden = true;
    el.stUnknown.hidden = true;
    el.stUnknown.textContent = '';
    el.stProbs.hidden = true;
  }

  // ---- probabilities view ---------------------------------------------------

  // With the switch on, each generated char is a span tinted by the probability the
  // model gave it (its own distribution, before temperature and the other samplers), and
  // hovering or focusing one lists the most likely chars at that position. The tint is
  // one of seven classes rather than a computed colour so that the legend and the text
  // agree exactly and the colours stay in the style sheet.
  const ALTERNATIVES = 5; // "logprobs" asked of /generate: alternatives per char
  const PROBS_ITEM = 'charlm-probabilities'; // localStorage: the switch's last state
  // Lower bounds of bands 0..5 (band 6 is below), as the legend in index.html lists them.
  const BANDS = [0.9, 0.7, 0.5, 0.3, 0.15, 0.05];
  const tokInfo = new WeakMap(); // span -> its logprobs entry

  function probsOn() {
    return el.probs.checked;
  }

  function band(p) {
    const i = BANDS.findIndex((lo) => p >= lo);
    return i < 0 ? BANDS.length : i;
  }

  // Spans for parts that carry logprobs, plain text for parts that do not.
  function probNodes(parts) {
    const frag = document.createDocumentFragment();
    let first = !el.outCont.querySelector('.tok');
    for (const part of parts) {
      if (!part.lp) {
        frag.appendChild(document.createTextNode(part.text));
        continue;
      }
      let i = 0;
      for (const ch of part.text) {
        const entry = part.lp[i++];
        const span = document.createElement('span');
        const lp = entry && typeof entry.logprob === 'number' ? entry.logprob : null;
        span.className = lp === null ? 'tok' : `tok pb${band(Math.exp(lp))}`;
        if (ch === '\n') span.classList.add('nl');
        span.textContent = ch;
        // One tab stop for the whole text; the arrow keys move between chars.
        span.tabIndex = first ? 0 : -1;
        first = false;
        tokInfo.set(span, entry);
        frag.appendChild(span);
      }
    }
    return frag;
  }

  function fmtPct(p) {
    const pct = p * 100;
    if (pct >= 1) return pct.toFixed(1) + '%';
    return pct >= 0.01 ? pct.toFixed(2) + '%' : '<0.01%';
  }

  // Whitespace and control chars drawn visibly (controls by their code point, as few
  // fonts have the control pictures), flagged so the style sheet can mute them.
  function charCell(ch) {
    const c = document.createElement('span');
    c.className = 'tip-char';
    const shown = show(ch);
    const code = ch.codePointAt(0);
    const control = code < 0x20 || (code >= 0x7f && code < 0xa0);
    const hex = code.toString(16).toUpperCase().padStart(4, '0');
    const visible = shown !== ch ? shown : control ? `U+${hex}` : ch;
    if (visible !== ch) c.classList.add('ws');
    c.textContent = visible;
    return c;
  }

  function tipRow(list, ch, logprob, chosen) {
    const li = document.createElement('li');
    const p = Math.exp(logprob);
    const meter = document.createElement('meter');
    meter.min = 0;
    meter.max = 1;
    meter.value = p;
    meter.setAttribute('aria-hidden', 'true');
    const pct = document.createElement('span');
    pct.className = 'tip-pct';
    pct.textContent = fmtPct(p);
    li.append(charCell(ch), meter, pct);
    if (chosen) {
      li.className = 'chosen';
      const mark = document.createElement('span');
      mark.className = 'tip-mark';
      mark.textContent = '◀ chosen';
      li.appendChild(mark);
    }
    list.appendChild(li);
  }

  function fillTip(span) {
    const entry = tokInfo.get(span);
    const ch = span.textContent;
    const tip = el.tip;
    tip.textContent = '';
    const head = document.createElement('p');
    head.className = 'tip-head';
    const lp = entry && typeof entry.logprob === 'number' ? entry.logprob : null;
    head.append(charCell(ch), document.createTextNode(lp === null ? ' no probability' : ` ${fmtPct(Math.exp(lp))} likely`));
    tip.appendChild(head);
    const top = entry && Array.isArray(entry.top) ? entry.top : [];
    if (!top.length) return;
    const list = document.createElement('ol');
    list.className = 'tip-list';
    list.setAttribute('aria-label', `the ${top.length} most likely chars`);
    for (const alt of top) tipRow(list, alt.char, alt.logprob, alt.char === ch);
    tip.appendChild(list);
    if (lp !== null && !top.some((alt) => alt.char === ch)) {
      // The sampler drew a char outside the top alternatives.
      const rest = document.createElement('ol');
      rest.className = 'tip-list tip-rest';
      tipRow(rest, ch, lp, true);
      tip.appendChild(rest);
    }
  }

  // The tip lives at the end of <body>, not in the output box, so the box's scrolling
  // cannot clip it; it is placed below the char, or above when there is no room.
  // Placing it sets left/top through the CSSOM, which the page's CSP allows.
  let tipFor = null; // the span whose tip is shown
  let hoverTok = null;
  let hideTimer = 0;

  function showTip(span) {
    clearTimeout(hideTimer);
    if (tipFor && tipFor !== span) tipFor.removeAttribute('aria-describedby');
    tipFor = span;
    fillTip(span);
    span.setAttribute('aria-describedby', 'prob-tip');
    el.tip.hidden = false;
    placeTip();
  }

  function placeTip() {
    if (!tipFor) return;
    const r = tipFor.getBoundingClientRect();
    const box = el.output.getBoundingClientRect();
    if (r.bottom < box.top || r.top > box.bottom) {
      hideTip(); // scrolled out of the box
      return;
    }
    el.tip.style.left = '0px'; // measured at its natural width, not squeezed by the edge
    const tw = el.tip.offsetWidth;
    const th = el.tip.offsetHeight;
    const gap = 6;
    const left = Math.max(8, Math.min(r.left, window.innerWidth - tw - 8));
    let top = r.bottom + gap;
    if (top + th > window.innerHeight - 8 && r.top - gap - th >= 8) top = r.top - gap - th;
    el.tip.style.left = `${Math.round(left)}px`;
    el.tip.style.top = `${Math.round(top)}px`;
  }

  function hideTip() {
    clearTimeout(hideTimer);
    if (tipFor) tipFor.removeAttribute('aria-describedby');
    tipFor = null;
    hoverTok = null;
    el.tip.hidden = true;
  }

  // Leaving a char hides its tip after a moment, so the pointer can reach the tip itself;
  // a focused char's tip comes back when the pointer leaves another.
  function leaveTok() {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => {
      hoverTok = null;
      const focused = document.activeElement;
      if (focused && focused.classList.contains('tok') && el.outCont.contains(focused)) showTip(focused);
      else hideTip();
    }, 150);
  }

  function moveFocus(from, to) {
    if (!to) return;
    from.tabIndex = -1;
    to.tabIndex = 0;
    to.focus();
  }

  function tokAt(target) {
    const t = target instanceof Element ? target.closest('.tok') : null;
    return t && el.outCont.contains(t) ? t : null;
  }

  el.outCont.addEventListener('mouseover', (e) => {
    const t = tokAt(e.target);
    if (!t || t === hoverTok) return;
    hoverTok = t;
    showTip(t);
  });
  el.outCont.addEventListener('mouseout', (e) => {
    if (tokAt(e.target) && !tokAt(e.relatedTarget) && !el.tip.contains(e.relatedTarget)) leaveTok();
  });
  el.tip.addEventListener('mouseenter', () => clearTimeout(hideTimer));
  el.tip.addEventListener('mouseleave', leaveTok);
  el.outCont.addEventListener('focusin', (e) => {
    const t = tokAt(e.target);
    if (!t) return;
    // The char last visited keeps the tab stop.
    for (const other of el.outCont.querySelectorAll('.tok[tabindex="0"]')) if (other !== t) other.tabIndex = -1;
    t.tabIndex = 0;
    showTip(t);
  });
  el.outCont.addEventListener('focusout', (e) => {
    if (!tokAt(e.relatedTarget) && tokAt(e.target) === tipFor && !hoverTok) hideTip();
  });
  el.outCont.addEventListener('keydown', (e) => {
    const t = tokAt(e.target);
    if (!t) return;
    const toks = () => el.outCont.querySelectorAll('.tok');
    let to = null;
    if (e.key === 'ArrowRight') to = t.nextElementSibling;
    else if (e.key === 'ArrowLeft') to = t.previousElementSibling;
    else if (e.key === 'Home') to = toks()[0];
    else if (e.key === 'End') to = toks()[toks().length - 1];
    else return;
    e.preventDefault();
    moveFocus(t, tokAt(to));
  });
  el.output.addEventListener('scroll', placeTip, { passive: true });
  window.addEventListener('scroll', placeTip, { passive: true });
  window.addEventListener('resize', placeTip);

  // What the note under the output says: why the view shows no colours.
  function probNote() {
    const none = probsOn() && !run && out.parts.length > 0 && !out.parts.some((p) => p.lp);
    el.stProbs.textContent = !none ? ''
      : out.asked ? 'This server does not report probabilities, so the text stays plain.'
        : 'This text was generated with the probabilities view off: generate again to colour it.';
    el.stProbs.hidden = !none;
  }

  function setProbs(on) {
    el.probs.checked = on;
    el.output.classList.toggle('probs', on);
    el.probLegend.hidden = !on;
    redraw();
    probNote();
  }

  el.probs.addEventListener('change', () => {
    try {
      localStorage.setItem(PROBS_ITEM, probsOn() ? '1' : '0');
    } catch (_) {
      // storage disabled: the switch is not remembered
    }
    setProbs(probsOn());
  });

  function storedProbs() {
    try {
      return localStorage.getItem(PROBS_ITEM) === '1';
    } catch (_) {
      return false;
    }
  }

  // ---- generation -----------------------------------------------------------

  async function generate() {
    if (run) return;
    clearErrors();
    const { body, local } = buildRequest();
    if (local.length) {
      for (const [p, m] of local) showError(p, m);
      $(local[0][0]).focus();
      return;
    }

    const prev = last;
    run = {
      ctrl: new AbortController(),
      text: '',
      pending: [],
      chars: 0,
      frame: 0,
      t0: performance.now(),
      summary: null,
      stopped: false,
      started: false,
      asked: body.logprobs !== undefined, // kept: a retry without them drops the field
    };
    setBusy(true);

    let outcome;
    try {
      outcome = await stream(body, run);
      if (refusesLogprobs(outcome, body)) {
        // A server older than the probabilities view: the text without them.
        delete body.logprobs;
        outcome = await stream(body, run);
      }
    } catch (err) {
      outcome = { kind: run.stopped ? 'stopped' : 'lost', err };
    }
    finish(outcome, body, prev);
  }

  function refusesLogprobs(outcome, body) {
    const e = outcome.kind === 'http' && outcome.status === 400 && outcome.payload && outcome.payload.error;
    return Boolean(e) && e.param === 'logprobs' && body.logprobs !== undefined;
  }

  // The previous result stays on screen until the server has accepted the request,
  // so a rejected request (400, 503) does not wipe it.
  function startOutput(body, r) {
    last = null;
    el.outPrompt.textContent = body.prompt;
    out.parts = [];
    out.asked = r.asked;
    redraw();
    el.outEmpty.hidden = true;
    r.started = true;
    resetStatus();
    el.stModel.textContent = body.model || '—';
    el.stModelRow.hidden = !body.model;
  }

  // Returns {kind: 'done'|'lost'|'http'} — never throws for a server answer.
  async function stream(body, r) {
    const res = await fetchKeyed('/generate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal: r.ctrl.signal,
      cache: 'no-store',
    }, true);
    if (res.ok) startOutput(body, r);
    if (!res.ok) {
      let payload = null;
      try {
        payload = await res.json();
      } catch (_) {
        // not JSON: report the status alone
      }
      return { kind: 'http', status: res.status, payload, retryAfter: res.headers.get('Retry-After') };
    }
    for await (const data of sseData(res)) {
      const ev = parseEvent(data);
      if (ev.error) return { kind: 'http', status: 200, payload: ev };
      if (typeof ev.text === 'string' && ev.text) appendText(ev.text, ev.logprobs);
      if (ev.done) {
        r.summary = ev;
        return { kind: 'done' };
      }
    }
    return { kind: 'lost' }; // the stream ended without its final event
  }

  // The data of each Server-Sent Event of a response as it arrives; comments and
  // keep-alives are skipped. Leaving the loop early cancels the response.
  async function* sseData(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        // SSE events end with a blank line; accept CRLF as well as LF.
        let cut;
        while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
          const raw = buf.slice(0, cut);
          buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
          const data = [];
          for (const line of raw.split(/\r?\n/)) {
            if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length) yield data.join('\n');
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function parseEvent(s) {
    try {
      const ev = JSON.parse(s);
      if (ev && typeof ev === 'object') return ev;
    } catch (_) {
      // reported below
    }
    return { error: { message: `malformed event from the server: ${s.slice(0, 80)}` } };
  }

  function finish(outcome, body, prev) {
    const r = run;
    if (r.frame) cancelAnimationFrame(r.frame);
    flush();
    run = null;
    const seconds = (performance.now() - r.t0) / 1000;
    const s = r.summary;

    if (outcome.kind === 'http') {
      const p = outcome.payload && outcome.payload.error;
      const msg = p && p.message ? p.message : `request failed (HTTP ${outcome.status})`;
      if (outcome.status === 401) {
        showError(null, 'This server needs an API key (401). Generate again to enter one.');
      } else if (outcome.status === 404 && p && p.code === 'model_not_found') {
        modelGone(body.model, msg);
      } else if (outcome.status === 503) {
        const wait = outcome.retryAfter ? ` — retry in ${outcome.retryAfter} s` : '';
        showError(null, `Server busy (503): ${msg}${wait}`);
      } else if (outcome.status === 413) {
        showError(p && p.param ? p.param : 'prompt', `Too large (413): ${msg}`);
      } else {
        showError(p ? p.param : null, msg);
      }
      const target = p && p.param && p.param !== 'model' ? $(p.param) : null;
      if (target) target.focus();
      if (r.started) {
        // An error event in the middle of a stream.
        el.stFinish.textContent = 'error';
        el.stFinish.className = 'bad';
        el.stChars.textContent = fmtInt(r.chars);
        last = { prompt: body.prompt, text: r.text, seed: undefined };
      } else {
        last = prev;
      }
      setBusy(false);
      return;
    }

    if (!r.started) {
      // Nothing came back: no connection at all, or stopped before the answer.
      last = prev;
      if (outcome.kind !== 'stopped') {
        const why = outcome.err && outcome.err.message ? ` (${outcome.err.message})` : '';
        showError(null, `Could not reach the server${why}. Is charlm-server still running?`);
        el.stFinish.textContent = 'no connection';
        el.stFinish.className = 'bad';
      }
      setBusy(false);
      return;
    }

    if (outcome.kind === 'lost') {
      const why = outcome.err && outcome.err.message ? ` (${outcome.err.message})` : '';
      showError(null, `Connection lost after ${fmtInt(r.chars)} chars${why}. The text so far is kept.`);
      el.stFinish.textContent = 'connection lost';
      el.stFinish.className = 'bad';
    } else if (outcome.kind === 'stopped') {
      el.stFinish.textContent = 'cancelled';
      el.stFinish.className = 'warn';
    } else {
      el.stFinish.textContent = s.finish_reason || 'done';
      el.stFinish.className = 'ok';
    }

    const chars = s && Number.isFinite(s.tokens) ? s.tokens : r.chars;
    const secs = s && Number.isFinite(s.elapsed_ms) && s.elapsed_ms > 0 ? s.elapsed_ms / 1000 : seconds;
    el.stChars.textContent = fmtInt(r.chars);
    el.stChars.title = s && s.tokens !== r.chars ? `${fmtInt(chars)} generated, stop sequence included` : '';
    el.stRate.textContent = secs > 0 && chars > 0 ? fmtInt(Math.round(chars / secs)) : '—';
    if (s && s.seed !== undefined) {
      el.stSeed.textContent = String(s.seed);
      el.reuseSeed.hidden = String(s.seed) === $('seed').value.trim();
    }
    if (s && typeof s.model === 'string' && body.model) {
      el.stModel.textContent = s.model;
      // With one model left the server answers any id with it: the one asked for is gone.
      if (s.model !== body.model) modelGone(body.model, `'${s.model}' answered instead`);
    }
    if (s && s.unknown_chars) {
      el.stUnknown.textContent = `Skipped prompt characters not in the vocabulary: ${[...s.unknown_chars].map(show).join(' ')}`;
      el.stUnknown.hidden = false;
    }
    probNote();
    last = { prompt: body.prompt, text: r.text, seed: s ? s.seed : undefined };
    setBusy(false);
  }

  function show(ch) {
    if (ch === '\n') return '↵';
    if (ch === ' ') return '␣'; // U+2423: in far more fonts than U+2420 ␠
    if (ch === '\t') return '⇥';
    return ch;
  }

  function stop() {
    if (!run) return;
    run.stopped = true;
    run.ctrl.abort(); // closing the connection is what tells the server to stop
  }

  // ---- buttons --------------------------------------------------------------

  function continueText() {
    if (!last || !last.text) return;
    const p = el.prompt;
    // The prompt may have been edited since; append to what is there now.
    p.value = p.value + last.text;
    updateCount();
    el.outPrompt.textContent = p.value;
    out.parts = [];
    redraw();
    el.cont.disabled = true;
    last.text = '';
    p.focus();
    p.setSelectionRange(p.value.length, p.value.length);
    p.scrollTop = p.scrollHeight;
  }

  async function copyText() {
    const text = el.outPrompt.textContent + el.outCont.textContent;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) {
      ok = false;
    }
    if (!ok) ok = copyFallback(text);
    flashButton(el.copy, ok ? 'Copied' : 'Copy failed');
  }

  // Plain-http pages on another host have no Clipboard API.
  function copyFallback(text) {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'offscreen';
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch (_) {
      ok = false;
    }
    ta.remove();
    return ok;
  }

  function flashButton(btn, label) {
    const orig = btn.dataset.label || btn.textContent;
    btn.dataset.label = orig;
    btn.textContent = label;
    clearTimeout(btn._t);
    btn._t = setTimeout(() => {
      btn.textContent = orig;
    }, 1400);
  }

  function resetControls() {
    for (const name of FIELDS) $(name).value = fmtDefault(defaults[name]);
    clearErrors();
  }

  function updateCount() {
    el.promptCount.textContent = fmtInt(countChars(el.prompt.value));
  }

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    generate();
  });
  el.stop.addEventListener('click', stop);
  el.cont.addEventListener('click', continueText);
  el.copy.addEventListener('click', copyText);
  el.reset.addEventListener('click', resetControls);
  el.reuseSeed.addEventListener('click', () => {
    $('seed').value = el.stSeed.textContent;
    el.reuseSeed.hidden = true;
    $('seed').focus();
  });
  el.prompt.addEventListener('input', updateCount);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    } else if (e.key === 'Escape' && !el.tip.hidden) {
      hideTip(); // a tip is dismissed before Esc stops anything
    } else if (e.key === 'Escape' && run) {
      stop();
    }
  });
  // Editing a field clears its stale error.
  for (const name of ['prompt', ...FIELDS]) {
    $(name).addEventListener('input', () => {
      const slot = $('err-' + name);
      slot.hidden = true;
      slot.textContent = '';
      $(name).removeAttribute('aria-invalid');
    });
  }

  // ---- model card -------------------------------------------------------------

  function fmtInt(n) {
    return Number(n).toLocaleString('en-US');
  }

  function fmtLoss(x) {
    return Number.isFinite(x) ? x.toFixed(4) : '—';
  }

  function fmtDefault(v) {
    return v === null || v === undefined ? '' : String(v);
  }

  // Bounds at the edge of the integer types read better as powers of two (2⁵³, 2³¹ − 1).
  function fmtBound(n) {
    if (n >= 2 ** 30) {
      const k = Math.round(Math.log2(n));
      const pow = '2' + [...String(k)].map((d) => '⁰¹²³⁴⁵⁶⁷⁸⁹'[d]).join('');
      if (n === 2 ** k) return pow;
      if (n === 2 ** k - 1) return pow + ' − 1';
    }
    return Number.isInteger(n) ? fmtInt(n) : String(n);
  }

  // limits.<field>: {min, min_exclusive, max}, each key present only when it applies.
  function rangeText(lim) {
    const lo = lim.min === undefined ? '' : fmtBound(lim.min);
    const hi = lim.max === undefined ? '' : fmtBound(lim.max);
    if (lo && hi) return lim.min_exclusive ? `> ${lo}, ≤ ${hi}` : `${lo} – ${hi}`;
    if (lo) return `${lim.min_exclusive ? '>' : '≥'} ${lo}`;
    return hi ? `≤ ${hi}` : '';
  }

  // Each control's default, bounds and hint from /model, the server's own table. A value
  // typed before the card arrived is kept.
  function applyParams(card) {
    defaults = card.defaults;
    for (const name of FIELDS) {
      const input = $(name);
      const lim = card.limits[name];
      if (input.type === 'number') {
        input.min = String(lim.min);
        if (lim.max === undefined) input.removeAttribute('max');
        else input.max = String(lim.max);
      }
      $('range-' + name).textContent = rangeText(lim);
      const def = fmtDefault(defaults[name]);
      if (def) input.placeholder = def;
      if (input.value === '') input.value = def;
    }
  }

  function fact(dl, term, value, note) {
    const div = document.createElement('div');
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = term;
    dd.textContent = String(value);
    if (note) {
      const small = document.createElement('span');
      small.className = 'fact-note';
      small.textContent = note;
      dd.appendChild(small);
    }
    div.append(dt, dd);
    dl.appendChild(div);
  }

  // ---- models -----------------------------------------------------------------

  // The choice lives in the URL (?model=ID), so a reload or a shared link shows the same
  // model, and sessionStorage keeps holding the API key alone.
  function urlModel() {
    return new URLSearchParams(location.search).get('model') || '';
  }

  function setUrlModel(id) {
    const url = new URL(location.href);
    if (id) url.searchParams.set('model', id);
    else url.searchParams.delete('model');
    if (url.href !== location.href) history.replaceState(null, '', url.href);
  }

  function isCardUrl(url) {
    return url === '/v1/models' || url === '/model' || url.startsWith('/model?');
  }

  // Reads /v1/models, keeps the choice when the id is still listed (else the default,
  // the first), draws the picker and loads the chosen model's card. Resolves to the id
  // asked for that is not served any more ('' when none was lost).
  async function loadModels() {
    let ids = [];
    try {
      // Not asking here: the page opens no dialog before the user does anything;
      // Generate asks, and the list and card load once a key works.
      const res = await fetchKeyed('/v1/models', { cache: 'no-store' }, false);
      if (res.status === 401) {
        needKey();
        return '';
      }
      // A server without /v1/models has one model: leave the list empty.
      if (res.ok) {
        const list = await res.json();
        ids = (Array.isArray(list.data) ? list.data : []).map((m) => m && m.id).filter((id) => typeof id === 'string');
      }
    } catch (_) {
      // No list: the card below says whether the server answers at all.
    }
    const wanted = modelId || urlModel();
    models = ids;
    modelId = ids.includes(wanted) ? wanted : ids[0] || '';
    const lost = wanted && several() && wanted !== modelId ? wanted : '';
    if (lost || !several()) setUrlModel('');
    drawPicker();
    await loadCard();
    return lost;
  }

  function drawPicker() {
    el.model.textContent = '';
    for (const id of models) {
      const o = document.createElement('option');
      o.value = id;
      o.textContent = id;
      el.model.appendChild(o);
    }
    el.model.value = modelId;
    el.modelPick.hidden = !several();
  }

  el.model.addEventListener('change', () => {
    modelId = el.model.value;
    setUrlModel(modelId === models[0] ? '' : modelId);
    loadCard();
  });

  // /generate said the model asked for is not there (removed since the list was read):
  // say so, read the list again and show what is served now.
  async function modelGone(id, msg) {
    const what = id ? `The model '${id}' is not served any more` : 'That model is not served';
    showError(null, `${what} (${msg}). Reading the list of models again…`);
    await loadModels();
    if (run) return; // the next generation shows its own errors
    const now = several() ? `pick one of the ${models.length} models listed and generate again` : 'generate again';
    showError(null, `${what} (${msg}). The page now shows ${modelId ? `'${modelId}'` : 'the server\u2019s model'}: ${now}.`);
  }

  function needKey() {
    cardWanted = true;
    el.summary.textContent = 'API key needed';
    const e = $('card-error');
    e.textContent = 'The model card needs an API key: Generate asks for one, and the card loads once it is accepted.';
    e.hidden = false;
  }

  // Answers can come back out of order when the choice changes quickly: only the card
  // of the latest request is drawn.
  let cardSeq = 0;

  async function loadCard() {
    const seq = ++cardSeq;
    const id = modelId;
    let card;
    const e = $('card-error');
    try {
      // With one model the plain /model: a server older than the query has the same card.
      const url = several() ? `/model?model=${encodeURIComponent(id)}` : '/model';
      const res = await fetchKeyed(url, { cache: 'no-store' }, false);
      if (seq !== cardSeq) return;
      cardWanted = res.status === 401;
      if (cardWanted) {
        needKey();
        return;
      }
      if (!res.ok) {
        let why = `HTTP ${res.status}`;
        try {
          const p = (await res.json()).error;
          if (p && p.message) why = `${why}: ${p.message}`;
        } catch (_) {
          // not JSON: the status alone
        }
        throw new Error(why);
      }
      card = await res.json();
    } catch (err) {
      if (seq !== cardSeq) return;
      el.summary.textContent = 'model card unavailable';
      e.textContent = `Could not load the model card${several() ? ` of '${id}'` : ''} from /model: ${err.message}`;
      e.hidden = false;
      return;
    }
    if (seq !== cardSeq) return;
    e.hidden = true;
    renderCard(card);
  }

  // The card is server/card.c's: the model's architecture and sizes, its training, the
  // generation defaults and limits, and the training curve. best_val_loss and best_val_bpc
  // are null when the model was saved without a validation loss. A card without arch
  // (a server older than the GPT) is an LSTM's.
  function renderCard(card) {
    const { embed, hidden, layers, parameters, steps } = card;
    const gpt = card.arch === 'gpt';
    const vocab = card.vocab_size;
    const val = card.best_val_loss;
    const log = extractLog(card);
    applyParams(card);

    const dl = $('card-facts');
    dl.textContent = '';
    if (typeof card.id === 'string') fact(dl, 'Model id', card.id);
    const nLayers = `${layers} layer${layers === 1 ? '' : 's'}`;
    if (gpt) {
      fact(dl, 'Architecture', `GPT, ${nLayers} × ${card.heads} heads`);
      fact(dl, 'Embedding', fmtInt(embed));
      fact(dl, 'Context', `${fmtInt(card.block)} chars`);
      fact(dl, 'Norm', `${card.norm === 'rmsnorm' ? 'RMSNorm' : 'LayerNorm'}${card.bias ? ', with biases' : ', no biases'}`);
    } else {
      fact(dl, 'Architecture', `LSTM, ${nLayers} × ${fmtInt(hidden)}`);
      fact(dl, 'Embedding', fmtInt(embed));
      fact(dl, 'Hidden', fmtInt(hidden));
    }
    fact(dl, 'Vocabulary', `${fmtInt(vocab)} chars`);
    fact(dl, 'Parameters', fmtInt(parameters), ` ≈ ${compact(parameters)}`);
    if (typeof card.memory_per_stream === 'number') fact(dl, 'Memory per stream', fmtBytes(card.memory_per_stream));
    fact(dl, 'Training steps', fmtInt(steps));
    if (val !== null) fact(dl, 'Validation loss', `${fmtLoss(val)} nats/char`, ` = ${card.best_val_bpc.toFixed(3)} bits/char`);

    const net = gpt ? `${layers}×GPT-${embed}` : `${layers > 1 ? layers + '×' : ''}LSTM-${hidden}`;
    const bits = [net, `${compact(parameters)} params`, `${vocab} chars`];
    if (val !== null) bits.push(`val ${val.toFixed(3)} nats/char`);
    el.summary.textContent = bits.join(' · ');

    showChart($('chart'), log, 'no training log');
    $('chart-caption').textContent = log.length
      ? `Cross-entropy (nats/char) at each of the ${fmtInt(log.length)} evaluations in train_log.jsonl.`
      : 'No training log shipped with this model.';
  }

  // Bytes in binary units: 6144 -> "6 KiB", 1048576 -> "1 MiB".
  function fmtBytes(n) {
    const units = ['bytes', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) n /= 1024, i++;
    return `${i ? (Number.isInteger(n) ? n : n.toFixed(1)) : n} ${units[i]}`;
  }

  function compact(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 1 : 2) + ' M';
    if (n >= 1e3) return (n / 1e3).toFixed(n >= 1e4 ? 0 : 1) + ' k';
    return String(n);
  }

  // training_curve: rows of train_log.jsonl, a loss null where the row has none.
  function extractLog(card) {
    const num = (v) => (v === null ? NaN : v);
    return card.training_curve.map((r) => ({ step: r.step, train_loss: num(r.train_loss), val_loss: num(r.val_loss) }));
  }

  // ---- chart ------------------------------------------------------------------

  // Each chart box (the model card's, the Train panel's) keeps its rows here and one
  // observer for the page's life, which redraws the rows shown last at the new width.
  const charts = new Map(); // host -> {rows, empty}

  function showChart(host, rows, empty) {
    const known = charts.has(host);
    charts.set(host, { rows, empty });
    drawChart(host, rows, empty);
    if (known || !window.ResizeObserver) return;
    let width = host.clientWidth;
    let timer = 0;
    new ResizeObserver(() => {
      if (Math.abs(host.clientWidth - width) < 8) return;
      width = host.clientWidth;
      clearTimeout(timer);
      timer = setTimeout(() => drawChart(host, charts.get(host).rows, charts.get(host).empty), 120);
    }).observe(host);
  }

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // "Nice" tick values (1, 2, 5 × 10^k) covering [lo, hi].
  function ticks(lo, hi, want) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / want;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    // The candidate whose tick count comes closest to `want`.
    const count = (s) => Math.floor(hi / s) - Math.ceil(lo / s) + 1;
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag)
      .reduce((best, s) => (Math.abs(count(s) - want) < Math.abs(count(best) - want) ? s : best));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmtTick(v) {
    if (Math.abs(v) >= 1e4) return compact(v).replace(' ', '');
    return String(+v.toPrecision(6));
  }

  // One <circle> per log row per series, so the chart can be checked against
  // train_log.jsonl row for row. `empty` is what an empty chart says.
  function drawChart(host, rows, empty) {
    host.textContent = '';
    // Draw at the box's own size so text stays legible on a phone instead of
    // shrinking with a fixed viewBox.
    const W = Math.round(Math.min(900, Math.max(300, host.clientWidth || 640)));
    const H = W < 480 ? Math.round(W * 0.72) : Math.round(Math.min(340, W * 0.5));
    const m = { l: 56, r: 14, t: 14, b: 46 };
    const root = svg('svg', {
      viewBox: `0 0 ${W} ${H}`,
      class: 'chart-svg',
      role: 'img',
      'aria-labelledby': `${host.id}-title ${host.id}-desc`,
      'data-rows': rows.length,
    }, host);
    const title = svg('title', { id: `${host.id}-title` }, root);
    title.textContent = 'Training and validation loss by step';
    const desc = svg('desc', { id: `${host.id}-desc` }, root);

    const series = [
      { key: 'train_loss', name: 'train', label: 'training loss' },
      { key: 'val_loss', name: 'val', label: 'validation loss' },
    ];
    const ys = [];
    for (const r of rows) for (const s of series) if (Number.isFinite(r[s.key])) ys.push(r[s.key]);
    if (!rows.length || !ys.length) {
      const t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis-label' }, root);
      t.textContent = empty;
      desc.textContent = `No evaluations: ${empty}.`;
      return;
    }

    let x0 = Math.min(...rows.map((r) => r.step));
    let x1 = Math.max(...rows.map((r) => r.step));
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    x0 = Math.min(0, x0);
    let y0 = Math.min(...ys);
    let y1 = Math.max(...ys);
    const pad = (y1 - y0) * 0.08 || 0.5;
    y0 = Math.max(0, y0 - pad);
    y1 += pad;
    const yt = ticks(y0, y1, 5);
    // Room for the longest tick label (about 7 px a digit) beside the axis title.
    m.l = Math.max(m.l, 30 + 7 * Math.max(...yt.map((v) => fmtTick(v).length)));
    const xt = ticks(x0, x1, W < 480 ? 4 : 6);
    y0 = Math.min(y0, yt[0]);
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const sx = (v) => m.l + ((v - x0) / (x1 - x0)) * pw;
    const sy = (v) => m.t + (1 - (v - y0) / (y1 - y0)) * ph;

    const grid = svg('g', { class: 'grid' }, root);
    const axes = svg('g', { class: 'axes' }, root);
    for (const v of yt) {
      if (v < y0 || v > y1) continue;
      svg('line', { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }, grid);
      const t = svg('text', { x: m.l - 8, y: sy(v), 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'tick' }, axes);
      t.textContent = fmtTick(v);
    }
    for (const v of xt) {
      if (v < x0 || v > x1) continue;
      svg('line', { x1: sx(v), x2: sx(v), y1: m.t, y2: H - m.b, class: 'vgrid' }, grid);
      const t = svg('text', { x: sx(v), y: H - m.b + 18, 'text-anchor': 'middle', class: 'tick' }, axes);
      t.textContent = fmtTick(v);
    }
    svg('line', { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: 'axis' }, axes);
    svg('line', { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: 'axis' }, axes);
    const xl = svg('text', { x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, axes);
    xl.textContent = 'training step';
    const yl = svg('text', { x: 0, y: 0, 'text-anchor': 'middle', class: 'axis-label',
      transform: `translate(14 ${m.t + ph / 2}) rotate(-90)` }, axes);
    yl.textContent = 'loss (nats/char)';

    const r = rows.length > 150 ? 1.6 : rows.length > 60 ? 2.2 : 3.2;
    for (const s of series) {
      const g = svg('g', { class: `series series-${s.name}`, 'data-series': s.name }, root);
      const pts = rows.filter((row) => Number.isFinite(row[s.key]));
      svg('polyline', {
        points: pts.map((row) => `${sx(row.step).toFixed(1)},${sy(row[s.key]).toFixed(1)}`).join(' '),
        class: 'line',
        'data-points': pts.length,
      }, g);
      for (const row of pts) {
        const c = svg('circle', {
          cx: sx(row.step).toFixed(1), cy: sy(row[s.key]).toFixed(1), r,
          class: 'point', 'data-series': s.name, 'data-step': row.step,
        }, g);
        const tip = svg('title', {}, c);
        tip.textContent = `step ${fmtInt(row.step)}: ${s.label} ${fmtLoss(row[s.key])}`;
      }
    }

    // Legend inside the plot: top right, where falling curves leave room, unless points
    // lie there (a curve still short, at the right of its axis); then the corner with fewest.
    const lw = 146;
    const lh = 46;
    const corners = [[W - m.r - lw - 4, m.t + 6], [W - m.r - lw - 4, H - m.b - lh - 6], [m.l + 6, H - m.b - lh - 6], [m.l + 6, m.t + 6]];
    const pts = [];
    for (const row of rows) for (const s of series) if (Number.isFinite(row[s.key])) pts.push([sx(row.step), sy(row[s.key])]);
    const covered = ([x, y]) => pts.filter(([px, py]) => px > x - 6 && px < x + lw + 6 && py > y - 6 && py < y + lh + 6).length;
    const [lx, ly] = corners.reduce((best, c) => (covered(c) < covered(best) ? c : best));
    const lg = svg('g', { class: 'legend', transform: `translate(${lx} ${ly})` }, root);
    svg('rect', { x: 0, y: 0, width: lw, height: lh, rx: 6, class: 'legend-bg' }, lg);
    series.forEach((s, i) => {
      const y = 15 + i * 18;
      svg('line', { x1: 10, x2: 32, y1: y, y2: y, class: `legend-line series-${s.name}` }, lg);
      svg('circle', { cx: 21, cy: y, r: 3.2, class: `legend-dot series-${s.name}` }, lg);
      const t = svg('text', { x: 40, y, 'dominant-baseline': 'middle', class: 'legend-text' }, lg);
      t.textContent = s.label;
    });

    const lastRow = rows[rows.length - 1];
    desc.textContent = `${rows.length} evaluations from step ${fmtInt(rows[0].step)} to ${fmtInt(lastRow.step)}; ` +
      `final training loss ${fmtLoss(lastRow.train_loss)}, validation loss ${fmtLoss(lastRow.val_loss)}.`;
  }

  // ---- Train panel ------------------------------------------------------------

  // The panel drives the fine-tuning jobs API (docs/API.md): a text is uploaded with
  // POST /v1/files, a job is started with POST /v1/fine_tuning/jobs and followed over its
  // event stream, and the model it publishes goes in the picker. It exists only on a
  // server started with --training-dir: without it the routes, the probe's among them,
  // are 404.
  const JOBS_PROBE = '/v1/fine_tuning/jobs?limit=1';
  const KEY_ASK = 'This server needs an API key to train a model.';
  const LIVE = new Set(['validating_files', 'queued', 'running']);
  // The job fields a 400's "param" can name, and the control each belongs to.
  const TRAIN_PARAMS = {
    training_file: 'train-pick',
    model: 'train-arch',
    hyperparameters: 'train-budget',
    'hyperparameters.max_time': 'train-budget',
    max_time: 'train-budget',
    suffix: 'train-suffix',
  };
  let trainWanted = false; // the probe got a 401: probe again once a key works

  const tr = {
    panel: $('train'),
    form: $('train-form'),
    keyNote: $('train-key'),
    drop: $('train-drop'),
    file: $('train-file'),
    upload: $('train-upload'),
    pick: $('train-pick'),
    budget: $('train-budget'),
    unit: $('train-unit'),
    suffix: $('train-suffix'),
    start: $('train-start'),
    cancel: $('train-cancel'),
    error: $('train-error'),
    live: $('train-live'),
    job: $('tr-job'),
    status: $('tr-status'),
    step: $('tr-step'),
    rate: $('tr-rate'),
    left: $('tr-left'),
    modelRow: $('tr-model-row'),
    model: $('tr-model'),
    use: $('tr-use'),
    message: $('tr-message'),
    chart: $('train-chart'),
    caption: $('train-chart-caption'),
    sampleTitle: $('tr-sample-title'),
    sample: $('tr-sample'),
  };

  // The job shown: its latest object, from the server or brought up to date by its events.
  let job = null;
  // Following it while it runs: {id, ctrl (aborts every request), rows (the loss curve),
  // sample {text, step}, budgetEnd (performance.now() when max_time runs out, 0 unknown),
  // frame, tick, refreshing, again, listed (the published model the picker holds)}.
  let following = null;

  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

  function clearTrainErrors() {
    for (const node of tr.panel.querySelectorAll('.field-error')) {
      node.textContent = '';
      node.hidden = true;
    }
    for (const node of tr.panel.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
    tr.error.textContent = '';
    tr.error.hidden = true;
  }

  // Under the control `slot` names (a TRAIN_PARAMS value), else in the panel's general slot.
  function showTrainError(slot, msg) {
    const node = slot ? $('err-' + slot) : tr.error;
    node.textContent = msg;
    node.hidden = false;
    if (!slot) return;
    const controls = slot === 'train-arch' ? tr.form.querySelectorAll('input[name="train-arch"]') : [$(slot)];
    for (const c of controls) c.setAttribute('aria-invalid', 'true');
  }

  async function errorOf(res) {
    try {
      const p = (await res.json()).error;
      if (p && p.message) return p;
    } catch (_) {
      // not JSON: the status alone
    }
    return { message: `HTTP ${res.status}`, param: null };
  }

  // GET /v1/fine_tuning/jobs?limit=1 says whether the server trains (404: no panel) and
  // which job is the newest: one still running is followed again, so a reload shows it.
  async function probeTraining() {
    trainWanted = false;
    let res;
    try {
      res = await fetchKeyed(JOBS_PROBE, { cache: 'no-store' }, false);
    } catch (_) {
      return; // no server: the model card says so
    }
    tr.panel.dataset.probe = String(res.status); // what the server said, for whoever inspects the page
    if (res.status === 404) {
      tr.panel.hidden = true;
      return;
    }
    tr.panel.hidden = false;
    if (res.status === 401) {
      // As the card: no dialog on load; dropping a file or Start asks for the key.
      trainWanted = true;
      tr.keyNote.textContent = 'Training needs an API key: dropping a file or Start asks for one, and the panel loads once it is accepted.';
      tr.keyNote.hidden = false;
      return;
    }
    tr.keyNote.hidden = true;
    if (!res.ok) {
      showTrainError(null, `Could not read the training jobs: ${(await errorOf(res)).message}`);
      return;
    }
    let list = null;
    try {
      list = await res.json();
    } catch (_) {
      // no list: nothing to follow
    }
    loadFiles();
    const latest = list && Array.isArray(list.data) ? list.data[0] : null;
    if (latest && LIVE.has(latest.status) && !following) followJob(latest);
  }

  // The uploaded files, newest first, in the picker; `select` is chosen once listed,
  // else the choice made is kept. Answers can come back out of order: the latest wins.
  let filesSeq = 0;
  let fileWanted = ''; // uploaded: to be chosen by whichever list comes back

  async function loadFiles(select) {
    const seq = ++filesSeq;
    if (select) fileWanted = select;
    let files = [];
    try {
      const res = await fetchKeyed('/v1/files', { cache: 'no-store' }, false);
      if (!res.ok) return;
      const list = await res.json();
      files = (Array.isArray(list.data) ? list.data : []).filter((f) => f && typeof f.id === 'string');
    } catch (_) {
      return;
    }
    if (seq !== filesSeq) return;
    const keep = fileWanted || tr.pick.value;
    fileWanted = '';
    const first = tr.pick.options[0];
    tr.pick.textContent = '';
    tr.pick.appendChild(first);
    for (const f of files) {
      const o = document.createElement('option');
      o.value = f.id;
      const when = Number.isFinite(f.created_at)
        ? new Date(f.created_at * 1000).toLocaleString('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })
        : '';
      o.textContent = [f.filename || f.id, Number.isFinite(f.bytes) ? fmtBytes(f.bytes) : '', when].filter(Boolean).join(' · ');
      tr.pick.appendChild(o);
    }
    tr.pick.value = files.some((f) => f.id === keep) ? keep : '';
  }

  // POST /v1/files as multipart/form-data; the server checks the text and says why it
  // refuses one (400: empty, binary, not UTF-8; 413: over --max-upload).
  async function uploadFile(file) {
    clearTrainErrors();
    if (!file) return;
    tr.upload.textContent = `Uploading ${file.name} (${fmtBytes(file.size)})…`;
    tr.drop.classList.add('busy');
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', file, file.name);
    let res;
    try {
      res = await fetchKeyed('/v1/files', { method: 'POST', body: form, cache: 'no-store' }, KEY_ASK);
    } catch (err) {
      tr.upload.textContent = '';
      showTrainError('train-file', `Could not upload ${file.name}: ${err.message}`);
      return;
    } finally {
      tr.drop.classList.remove('busy');
      tr.file.value = ''; // the same file can be chosen again
    }
    if (!res.ok) {
      tr.upload.textContent = '';
      const p = await errorOf(res);
      const msg = res.status === 401 ? 'Uploading needs an API key (401). Drop the file again to enter one.'
        : res.status === 413 ? `Too large (413): ${p.message}` : p.message;
      showTrainError('train-file', `${file.name}: ${msg}`);
      return;
    }
    const obj = await res.json();
    tr.upload.textContent = `Uploaded ${obj.filename || file.name} (${fmtBytes(obj.bytes)}) as ${obj.id}.`;
    await loadFiles(obj.id);
  }

  function trainArch() {
    const on = tr.form.querySelector('input[name="train-arch"]:checked');
    return on ? on.value : 'lstm';
  }

  async function startJob() {
    if (following) return;
    clearTrainErrors();
    const local = [];
    if (!tr.pick.value) local.push(['train-pick', 'Drop a text file above, or choose an uploaded one.']);
    const raw = tr.budget.value.trim();
    const secs = Math.round(Number(raw) * Number(tr.unit.value));
    if (tr.budget.validity.badInput || raw === '' || !Number.isFinite(secs) || secs < 1) {
      local.push(['train-budget', 'A time budget of at least 1 second.']);
    }
    if (local.length) {
      for (const [slot, msg] of local) showTrainError(slot, msg);
      $(local[0][0]).focus();
      return;
    }
    const body = { training_file: tr.pick.value, model: trainArch(), hyperparameters: { max_time: secs } };
    const suffix = tr.suffix.value.trim();
    if (suffix) body.suffix = suffix;
    tr.start.disabled = true;
    let res;
    try {
      res = await fetchKeyed('/v1/fine_tuning/jobs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
      }, KEY_ASK);
    } catch (err) {
      tr.start.disabled = false;
      showTrainError(null, `Could not reach the server (${err.message}).`);
      return;
    }
    if (!res.ok) {
      tr.start.disabled = false;
      if (res.status === 401) {
        showTrainError(null, 'Training needs an API key (401). Start again to enter one.');
        return;
      }
      const p = await errorOf(res);
      const slot = p.param ? TRAIN_PARAMS[p.param] : null;
      showTrainError(slot || null, !slot && p.param ? `${p.param}: ${p.message}` : p.message);
      if (slot) (slot === 'train-arch' ? tr.form.querySelector('input[name="train-arch"]:checked') : $(slot)).focus();
      return;
    }
    followJob(await res.json());
  }

  function setTrainBusy(busy) {
    tr.start.disabled = busy;
    tr.cancel.disabled = !busy;
    tr.live.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function followJob(j) {
    if (following) {
      following.ctrl.abort();
      clearInterval(following.tick);
    }
    job = j;
    const f = {
      id: j.id, ctrl: new AbortController(), rows: [], sample: null, budgetEnd: 0,
      frame: 0, tick: 0, refreshing: null, again: false, listed: '',
    };
    following = f;
    tr.live.hidden = false;
    tr.message.textContent = '';
    f.tick = setInterval(drawLeft, 1000);
    setTrainBusy(true);
    drawRun(f);
    streamJob(f);
    refreshJob(f);
  }

  // GET …/events?stream=true: every event so far, oldest first, then each as it happens,
  // then [DONE] once the job has finished. fetch rather than EventSource, which cannot
  // send the Authorization header. A stream that breaks while the job goes on (a server
  // restart: the job resumes) is followed again, from the first event.
  async function streamJob(f) {
    const url = `/v1/fine_tuning/jobs/${encodeURIComponent(f.id)}/events?stream=true`;
    for (let attempt = 0; ; attempt++) {
      let why = '';
      try {
        const res = await fetchKeyed(url, {
          headers: { Accept: 'text/event-stream' }, signal: f.ctrl.signal, cache: 'no-store',
        }, KEY_ASK);
        if (res.ok) {
          f.rows = [];
          f.sample = null;
          for await (const data of sseData(res)) {
            if (data === '[DONE]') break;
            const ev = parseEvent(data);
            if (!ev.error) jobEvent(f, ev);
            attempt = 0;
          }
        } else if (res.status === 401 || res.status === 404) {
          if (f !== following) return;
          showTrainError(null, res.status === 401 ? 'Following the job needs an API key (401). Reload the page to enter one.'
            : `The job ${f.id} is gone: ${(await errorOf(res)).message}`);
          stopFollowing(f);
          return;
        } else {
          why = (await errorOf(res)).message;
        }
      } catch (err) {
        why = err.message;
      }
      if (f !== following) return;
      await refreshJob(f);
      if (f !== following) return;
      // [DONE] also ends every stream when the server stops: only the job's status says it is over.
      if (!LIVE.has(job.status)) {
        jobDone(f);
        return;
      }
      tr.message.textContent = `Lost the job's event stream${why ? ` (${why})` : ''}; following it again…`;
      await sleep(Math.min(8000, 500 * 2 ** Math.min(attempt, 4)));
      if (f !== following) return;
    }
  }

  function lossOf(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : NaN;
  }

  // A metrics event adds a point to the curve (data.step, data.train_loss, data.valid_loss)
  // and may carry a sample; a message event may carry the new status.
  function jobEvent(f, ev) {
    const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
    if (ev.type === 'metrics') {
      if (Number.isFinite(d.step)) {
        f.rows.push({ step: d.step, train_loss: lossOf(d.train_loss), val_loss: lossOf(d.valid_loss) });
        job.step = d.step;
      }
      if (typeof d.sample === 'string') f.sample = { text: d.sample, step: d.step };
      if (Number.isFinite(d.total_steps)) job.total_steps = d.total_steps;
      if (Number.isFinite(d.tokens_per_s)) job.tokens_per_s = d.tokens_per_s;
      const budget = job.hyperparameters && job.hyperparameters.max_time;
      if (Number.isFinite(budget) && Number.isFinite(d.elapsed_s)) f.budgetEnd = performance.now() + (budget - d.elapsed_s) * 1000;
    } else if (typeof d.status === 'string') {
      job.status = d.status;
    }
    if (typeof ev.message === 'string') {
      tr.message.textContent = ev.message;
      tr.message.classList.toggle('bad', ev.level === 'error');
    }
    if (!f.frame) f.frame = requestAnimationFrame(() => drawRun(f));
    refreshJob(f);
  }

  // GET …/jobs/{id} after each event, for what events do not carry (estimated_finish,
  // fine_tuned_model, error); one request at a time, and one more if events came meanwhile.
  function refreshJob(f) {
    if (f.refreshing) {
      f.again = true;
      return f.refreshing;
    }
    f.refreshing = (async () => {
      do {
        f.again = false;
        try {
          const res = await fetchKeyed(`/v1/fine_tuning/jobs/${encodeURIComponent(f.id)}`,
            { cache: 'no-store', signal: f.ctrl.signal }, false);
          if (res.ok) {
            const fresh = await res.json();
            if (f === following && fresh && fresh.id === f.id) job = fresh;
          }
        } catch (_) {
          // the stream's loop notices a server gone
        }
      } while (f.again && f === following);
      f.refreshing = null;
      if (f !== following) return;
      drawJob();
      const id = job.fine_tuned_model;
      if (id && f.listed !== id) {
        // Served from the first evaluation on: listed in the picker while it trains.
        f.listed = id;
        loadModels().then(drawJob);
      }
    })();
    return f.refreshing;
  }

  function stopFollowing(f) {
    f.ctrl.abort();
    clearInterval(f.tick);
    if (f.frame) cancelAnimationFrame(f.frame);
    if (following === f) following = null;
    setTrainBusy(false);
  }

  async function jobDone(f) {
    stopFollowing(f);
    drawRun(f);
    const id = job.fine_tuned_model;
    if (job.status === 'succeeded' && id) {
      if (await selectModel(id)) tr.message.textContent = `Done: '${id}' is selected in the model picker; Generate writes with it.`;
      return;
    }
    if (job.status === 'failed') {
      showTrainError(null, `The job failed: ${job.error && job.error.message ? job.error.message : 'no reason given'}`);
    } else if (job.status === 'cancelled') {
      tr.message.textContent = id ? `Cancelled. The best model so far is served as '${id}'.` : 'Cancelled before the first evaluation.';
    }
    if (id) loadModels().then(drawJob);
  }

  // Puts the model in the picker and chooses it, once /v1/models lists it (a model is
  // listed as soon as the job publishes it; a few tries cover a reload in progress).
  async function selectModel(id) {
    for (let i = 0; i < 10; i++) {
      let ids = [];
      try {
        const res = await fetchKeyed('/v1/models', { cache: 'no-store' }, false);
        if (res.ok) ids = ((await res.json()).data || []).map((m) => m && m.id);
      } catch (_) {
        // tried again below
      }
      if (ids.includes(id)) {
        modelId = id;
        await loadModels();
        if (modelId !== id) break;
        setUrlModel(modelId === models[0] ? '' : modelId);
        drawJob();
        return true;
      }
      await sleep(500);
    }
    showTrainError(null, `The new model '${id}' is not listed by /v1/models.`);
    return false;
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (h) return `${h} h ${String(m).padStart(2, '0')} min`;
    if (m) return `${m} min ${String(sec).padStart(2, '0')} s`;
    return `${sec} s`;
  }

  // The server's estimated_finish when it has one (against this machine's clock), else
  // what is left of max_time after the last evaluation's elapsed_s.
  function drawLeft() {
    let left = null;
    if (job && LIVE.has(job.status)) {
      if (Number.isFinite(job.estimated_finish)) left = job.estimated_finish - Date.now() / 1000;
      else if (following && following.budgetEnd) left = (following.budgetEnd - performance.now()) / 1000;
    }
    tr.left.textContent = left === null ? '—' : left > 0 ? fmtDuration(left) : 'finishing…';
  }

  function drawJob() {
    if (!job) return;
    const st = typeof job.status === 'string' ? job.status : '—';
    tr.job.textContent = [job.id, job.arch || job.model].filter(Boolean).join(' · ');
    const shown = st.replace(/_/g, ' ');
    if (tr.status.textContent !== shown) tr.status.textContent = shown; // a live region: changes only
    tr.status.className = st === 'succeeded' ? 'ok' : st === 'failed' ? 'bad' : st === 'cancelled' ? 'warn' : '';
    // total_steps is 0 for a run that only its time budget ends.
    tr.step.textContent = Number.isFinite(job.step)
      ? `${fmtInt(job.step)}${job.total_steps > 0 ? ` / ${fmtInt(job.total_steps)}` : ''}` : '—';
    tr.rate.textContent = Number.isFinite(job.tokens_per_s) ? fmtInt(Math.round(job.tokens_per_s)) : '—';
    drawLeft();
    const id = job.fine_tuned_model;
    tr.modelRow.hidden = !id;
    tr.model.textContent = id || '—';
    tr.use.hidden = !id || !models.includes(id) || modelId === id;
  }

  function drawRun(f) {
    f.frame = 0;
    drawJob();
    showChart(tr.chart, f.rows, 'waiting for the first evaluation');
    tr.caption.textContent = f.rows.length
      ? `Cross-entropy (nats/char) at each of the ${fmtInt(f.rows.length)} evaluations of this job so far.`
      : 'Cross-entropy (nats/char) at each evaluation of this job.';
    if (f.sample) {
      tr.sampleTitle.textContent = `Sample at step ${fmtInt(f.sample.step)}`;
      tr.sample.textContent = f.sample.text;
    } else {
      tr.sampleTitle.textContent = 'Sample';
      tr.sample.textContent = '';
      const empty = document.createElement('span');
      empty.className = 'out-empty';
      empty.textContent = 'What the model writes appears here at each evaluation.';
      tr.sample.appendChild(empty);
    }
  }

  async function cancelJob() {
    const f = following;
    if (!f) return;
    tr.cancel.disabled = true;
    try {
      const res = await fetchKeyed(`/v1/fine_tuning/jobs/${encodeURIComponent(f.id)}/cancel`,
        { method: 'POST', cache: 'no-store' }, KEY_ASK);
      if (res.ok) {
        // The stream ends once the child has stopped.
        tr.message.textContent = 'Cancelling…';
        refreshJob(f);
        return;
      }
      showTrainError(null, `Cancel refused: ${(await errorOf(res)).message}`);
    } catch (err) {
      showTrainError(null, `Could not reach the server (${err.message}).`);
    }
    if (following === f) tr.cancel.disabled = false;
  }

  tr.form.addEventListener('submit', (e) => {
    e.preventDefault();
    startJob();
  });
  tr.cancel.addEventListener('click', cancelJob);
  tr.use.addEventListener('click', () => {
    if (job && job.fine_tuned_model) selectModel(job.fine_tuned_model);
  });
  tr.file.addEventListener('change', () => uploadFile(tr.file.files[0]));
  const hasFiles = (e) => Boolean(e.dataTransfer) && [...e.dataTransfer.types].includes('Files');
  for (const type of ['dragenter', 'dragover']) {
    tr.drop.addEventListener(type, (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      tr.drop.classList.add('over');
    });
  }
  tr.drop.addEventListener('dragleave', (e) => {
    if (!tr.drop.contains(e.relatedTarget)) tr.drop.classList.remove('over');
  });
  tr.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    tr.drop.classList.remove('over');
    if (e.dataTransfer.files.length) uploadFile(e.dataTransfer.files[0]);
  });
  // A file dropped beside the zone would make the browser leave the page to show it.
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (e) => {
      if (tr.panel.hidden || !hasFiles(e) || tr.drop.contains(e.target)) return;
      e.preventDefault();
      if (type === 'dragover') e.dataTransfer.dropEffect = 'none';
    });
  }
  // Editing a field clears its stale error.
  for (const [control, slot] of [[tr.pick, 'train-pick'], [tr.budget, 'train-budget'], [tr.unit, 'train-budget'],
    [tr.suffix, 'train-suffix'], [$('train-arch'), 'train-arch']]) {
    control.addEventListener(control.tagName === 'SELECT' || control.tagName === 'FIELDSET' ? 'change' : 'input', () => {
      const node = $('err-' + slot);
      node.hidden = true;
      node.textContent = '';
      for (const c of slot === 'train-arch' ? tr.form.querySelectorAll('input[name="train-arch"]') : [$(slot)]) {
        c.removeAttribute('aria-invalid');
      }
    });
  }

  setProbs(storedProbs());
  updateCount();
  loadModels().then((lost) => {
    if (lost) showError(null, `No model '${lost}' on this server; showing '${modelId}'.`);
  });
  probeTraining();
})();
