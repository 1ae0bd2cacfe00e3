// The official OpenAI client (npm `openai`) against a real charlm-server: completions
// (n, logprobs, echo, several prompts, streaming), chat (plain and streamed, with
// logprobs), the models routes, refused parameters and API keys, all through the SDK's
// own request building, SSE parsing and error classes. Run through tests/e2e/run.sh,
// which provides:
//   CHARLM_SERVER   path to the charlm-server binary
//   E2E_MODEL_DIR   artefacts folder (model.safetensors, vocab.json)
// Every server started here is stopped in every case (after hooks, exit handler).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { MODEL_DIR, requireEnv, spawnServer as spawnAny, stopChild } from './server.mjs';

requireEnv('openai.test.mjs');

const MODEL_ID = 'e2e-tiny'; // given with --model-id, so the id does not depend on the folder

// Every server here answers to MODEL_ID.
const spawnServer = (flags) => spawnAny(['--model-id', MODEL_ID, ...flags]);

// No retries: a failure must show as the server's answer, not as a third attempt's.
function client(base, apiKey = 'any-key') {
  return new OpenAI({ baseURL: base + '/v1', apiKey, maxRetries: 0, timeout: 30000 });
}

const messages = [
  { role: 'system', content: 'a story.' },
  { role: 'user', content: 'the cat' },
];

const codePoints = (s) => [...s].length;
const vocab = () => new Set(JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'vocab.json'), 'utf8')).chars);

// Checks one completions choice's logprobs object: tokens are the text's vocabulary chars
// (all of them unless `skipped` lists chars that are not tokens), offsets are code-point
// offsets of each token into the text, and each top_logprobs dict holds at most k + 1
// entries including the chosen char. Scored tokens carry logprobs ≤ 0 whose
// probabilities sum to at most 1. Returns the logprobs object.
function checkCompletionLogprobs(choice, k, { skipped = '' } = {}) {
  const lp = choice.logprobs;
  assert.ok(lp && typeof lp === 'object', `choice ${choice.index} has logprobs: ${JSON.stringify(lp)}`);
  const { tokens, token_logprobs: tlp, top_logprobs: top, text_offset: off } = lp;
  for (const a of [tokens, tlp, top, off]) assert.ok(Array.isArray(a), JSON.stringify(lp));
  assert.equal(tlp.length, tokens.length);
  assert.equal(top.length, tokens.length);
  assert.equal(off.length, tokens.length);
  const text = [...choice.text];
  assert.equal(tokens.join(''), text.filter((c) => !skipped.includes(c)).join(''), 'tokens cover the text');
  for (let i = 0; i < tokens.length; i++) {
    assert.equal(codePoints(tokens[i]), 1, `a token is one char: ${JSON.stringify(tokens[i])}`);
    assert.equal(text[off[i]], tokens[i], `text_offset[${i}] = ${off[i]} points at the token`);
    if (i > 0) assert.ok(off[i] > off[i - 1], `text_offset increases: ${off}`);
    if (tlp[i] === null) {
      assert.equal(top[i], null, `an unscored token (${i}) has no alternatives`);
      continue;
    }
    assert.equal(typeof tlp[i], 'number');
    assert.ok(Number.isFinite(tlp[i]) && tlp[i] <= 0, `token_logprobs[${i}] = ${tlp[i]} is a log-probability`);
    const alts = Object.entries(top[i]);
    assert.ok(alts.length >= 1 && alts.length <= k + 1, `top_logprobs[${i}] has 1..${k + 1} entries: ${JSON.stringify(top[i])}`);
    if (k >= 1) assert.ok(alts.length >= k, `top_logprobs[${i}] has at least the ${k} most likely: ${JSON.stringify(top[i])}`);
    assert.equal(top[i][tokens[i]], tlp[i], `top_logprobs[${i}] holds the chosen char with its logprob`);
    let mass = 0;
    for (const [c, v] of alts) {
      assert.equal(codePoints(c), 1);
      assert.ok(Number.isFinite(v) && v <= 0, `alternative ${JSON.stringify(c)}: ${v}`);
      mass += Math.exp(v);
    }
    assert.ok(mass <= 1 + 1e-4, `top_logprobs[${i}] probabilities sum to ${mass} > 1`);
  }
  return lp;
}

// Checks chat logprobs.content against the content: one entry per char, bytes its UTF-8,
// exactly k alternatives, most likely first.
function checkChatLogprobs(content, logprobs, k) {
  assert.ok(logprobs && Array.isArray(logprobs.content), `logprobs: ${JSON.stringify(logprobs)}`);
  const entries = logprobs.content;
  assert.equal(entries.map((e) => e.token).join(''), content, 'logprobs tokens join to the content');
  for (const e of entries) {
    assert.equal(codePoints(e.token), 1);
    assert.ok(Number.isFinite(e.logprob) && e.logprob <= 0, `logprob ${e.logprob}`);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    assert.equal(e.top_logprobs.length, k, `${k} alternatives: ${JSON.stringify(e.top_logprobs)}`);
    for (let i = 0; i < e.top_logprobs.length; i++) {
      const t = e.top_logprobs[i];
      assert.equal(codePoints(t.token), 1);
      assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0);
      assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
      if (i > 0) assert.ok(t.logprob <= e.top_logprobs[i - 1].logprob, 'most likely first');
      if (t.token === e.token) assert.equal(t.logprob, e.logprob, 'the chosen char has one logprob');
    }
    if (k > 0) assert.ok(e.logprob <= e.top_logprobs[0].logprob, 'nothing is more likely than the first alternative');
  }
}

async function rejects(promise, Class, status, param) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof Class, `expected ${Class.name}, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, status);
    if (param !== undefined) assert.equal(e.param, param, `error.param: ${e.message}`);
    return true;
  });
}

describe('OpenAI client against charlm-server', { timeout: 180000 }, () => {
  let server = null;
  let base = '';
  let ai = null;

  before(async () => {
    ({ child: server, base } = await spawnServer([]));
    ai = client(base);
  });
  after(() => stopChild(server));

  it('lists the served model and retrieves it by id', async () => {
    const ids = [];
    for await (const m of ai.models.list()) ids.push(m.id);
    assert.deepEqual(ids, [MODEL_ID]);
    const m = await ai.models.retrieve(MODEL_ID);
    assert.equal(m.id, MODEL_ID);
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    await rejects(ai.models.retrieve('gpt-4'), OpenAI.NotFoundError, 404);
  });

  it('completions: n 3 with a seed gives 3 choices, each its own, the same again', async () => {
    const req = { model: 'whatever', prompt: 'the cat ', max_tokens: 40, temperature: 1, n: 3, seed: 41 };
    const a = await ai.completions.create(req);
    assert.equal(a.object, 'text_completion');
    assert.equal(a.model, MODEL_ID);
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of a.choices) {
      assert.equal(typeof c.text, 'string');
      assert.equal(c.finish_reason, 'length');
      assert.equal(codePoints(c.text), 40);
      assert.equal(c.logprobs, null, 'no logprobs unless asked');
    }
    assert.equal(new Set(a.choices.map((c) => c.text)).size, 3, `choices draw with their own seeds: ${JSON.stringify(a.choices.map((c) => c.text))}`);
    assert.deepEqual(a.usage, { prompt_tokens: 8, completion_tokens: 120, total_tokens: 128 });
    const b = await ai.completions.create(req);
    assert.deepEqual(b.choices.map((c) => c.text), a.choices.map((c) => c.text), 'same request, same choices');
    // Choice 0 draws with the request's seed: it is the n = 1 text.
    const one = await ai.completions.create({ ...req, n: 1 });
    assert.equal(one.choices[0].text, a.choices[0].text);
  });

  it('completions: logprobs 2 scores every generated char without changing the text', async () => {
    const req = { model: MODEL_ID, prompt: 'the dog ', max_tokens: 30, seed: 5 };
    const r = await ai.completions.create({ ...req, logprobs: 2 });
    const c = r.choices[0];
    const lp = checkCompletionLogprobs(c, 2);
    assert.equal(lp.tokens.length, 30);
    assert.deepEqual(lp.text_offset, [...Array(30).keys()], 'offsets count code points from the text start');
    assert.ok(lp.token_logprobs.every((v) => v !== null), 'every generated char is scored');
    const plain = await ai.completions.create(req);
    assert.equal(plain.choices[0].text, c.text, 'asking for logprobs does not change the draw');
    // Logprobs are the model's, not the sampler's: at temperature 0 the first char drawn
    // is another draw, but the first position's scores are the same, and the char drawn
    // is the most likely one.
    const cold = (await ai.completions.create({ ...req, logprobs: 2, temperature: 0 })).choices[0].logprobs;
    const hot = lp.top_logprobs[0];
    const shared = Object.keys(cold.top_logprobs[0]).filter((ch) => ch in hot);
    assert.ok(shared.length >= 2, `both list the 2 most likely first chars: ${JSON.stringify([hot, cold.top_logprobs[0]])}`);
    for (const ch of shared) assert.equal(cold.top_logprobs[0][ch], hot[ch], `${JSON.stringify(ch)} scores the same at any temperature`);
    assert.equal(cold.token_logprobs[0], Math.max(...Object.values(cold.top_logprobs[0])), 'greedy draws the most likely char');
  });

  it('completions: echo with max_tokens 0 scores the prompt', async () => {
    const prompt = 'the cat sat on the mat';
    const r = await ai.completions.create({ model: MODEL_ID, prompt, max_tokens: 0, echo: true, logprobs: 0 });
    const c = r.choices[0];
    assert.equal(c.text, prompt);
    assert.equal(c.finish_reason, 'length');
    const lp = checkCompletionLogprobs(c, 0);
    assert.deepEqual(lp.tokens, [...prompt]);
    assert.equal(lp.token_logprobs[0], null, 'nothing scores the first char');
    assert.equal(lp.top_logprobs[0], null);
    for (let i = 1; i < lp.tokens.length; i++) {
      assert.deepEqual(Object.keys(lp.top_logprobs[i]), [lp.tokens[i]], 'logprobs 0: only the chosen char');
    }
    assert.deepEqual(r.usage, { prompt_tokens: codePoints(prompt), completion_tokens: 0, total_tokens: codePoints(prompt) });

    // A char the model does not know is in the text but is no token.
    const known = vocab();
    const odd = ['Q', 'Z', '€', 'ж'].find((ch) => !known.has(ch));
    assert.ok(odd, 'the test model lacks one of Q, Z, €, ж');
    const withOdd = `the ${odd}cat`;
    const u = await ai.completions.create({ model: MODEL_ID, prompt: withOdd, max_tokens: 0, echo: true, logprobs: 1 });
    assert.equal(u.choices[0].text, withOdd);
    const ulp = checkCompletionLogprobs(u.choices[0], 1, { skipped: odd });
    assert.deepEqual(ulp.text_offset, [0, 1, 2, 3, 5, 6, 7]);

    // echo with generation: the text starts with the prompt, the first generated char is scored.
    const g = await ai.completions.create({ model: MODEL_ID, prompt: 'the ', max_tokens: 10, echo: true, logprobs: 1, seed: 3 });
    const plain = await ai.completions.create({ model: MODEL_ID, prompt: 'the ', max_tokens: 10, seed: 3 });
    assert.equal(g.choices[0].text, 'the ' + plain.choices[0].text);
    const glp = checkCompletionLogprobs(g.choices[0], 1);
    assert.equal(glp.tokens.length, 14);
    assert.deepEqual(glp.token_logprobs.map((v) => v === null), [true, ...Array(13).fill(false)]);
  });

  it('completions: a stream concatenates to the non-streamed text, with logprobs', async () => {
    // Long enough that the text usually comes in more than one chunk.
    const req = { model: MODEL_ID, prompt: 'she counted ', max_tokens: 2000, seed: 77, logprobs: 1 };
    const whole = await ai.completions.create(req);
    checkCompletionLogprobs(whole.choices[0], 1);
    const stream = await ai.completions.create({ ...req, stream: true });
    let text = '';
    const tokens = [];
    const tlp = [];
    const offsets = [];
    const finals = [];
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      assert.equal(chunk.model, MODEL_ID);
      assert.equal(chunk.choices.length, 1);
      const c = chunk.choices[0];
      assert.equal(c.index, 0);
      if (c.finish_reason) {
        assert.equal(c.text, '', 'the final chunk carries no text');
        finals.push(c.finish_reason);
        continue;
      }
      text += c.text;
      assert.ok(c.logprobs, 'each text chunk has its chars\' logprobs');
      assert.equal(c.logprobs.tokens.join(''), c.text);
      tokens.push(...c.logprobs.tokens);
      tlp.push(...c.logprobs.token_logprobs);
      offsets.push(...c.logprobs.text_offset);
    }
    // Where the text is cut depends on timing; only the concatenation is fixed.
    assert.equal(text, whole.choices[0].text, 'stream = non-stream for the same seed');
    assert.deepEqual(finals, [whole.choices[0].finish_reason]);
    assert.deepEqual(tokens, whole.choices[0].logprobs.tokens);
    assert.deepEqual(tlp, whole.choices[0].logprobs.token_logprobs);
    assert.deepEqual(offsets, whole.choices[0].logprobs.text_offset, 'a chunk\'s offsets count from the start of the choice\'s text');
  });

  it('completions: a stream with n 2 keeps the choices apart and ends each, then usage', async () => {
    const req = { model: MODEL_ID, prompt: 'a small ', max_tokens: 25, seed: 9, n: 2 };
    const whole = await ai.completions.create(req);
    const stream = await ai.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    const texts = ['', ''];
    const finals = [[], []];
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) {
        assert.deepEqual(chunk.choices, [], 'the usage chunk has no choices');
        assert.equal(usage, null, 'one usage chunk');
        usage = chunk.usage;
        continue;
      }
      assert.equal(usage, null, 'usage comes last');
      for (const c of chunk.choices) {
        assert.ok(c.index === 0 || c.index === 1, `index ${c.index}`);
        texts[c.index] += c.text;
        if (c.finish_reason) finals[c.index].push(c.finish_reason);
      }
    }
    assert.deepEqual(texts, whole.choices.map((c) => c.text));
    assert.deepEqual(finals, [['length'], ['length']]);
    assert.deepEqual(usage, whole.usage);
    assert.deepEqual(usage, { prompt_tokens: 8, completion_tokens: 50, total_tokens: 58 });
  });

  it('completions: two prompts with n 2 give 4 choices, index = prompt * 2 + j', async () => {
    const prompts = ['the cat ', 'where are '];
    const r = await ai.completions.create({ model: MODEL_ID, prompt: prompts, n: 2, max_tokens: 20, seed: 13 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
    for (let i = 0; i < prompts.length; i++) {
      const single = await ai.completions.create({ model: MODEL_ID, prompt: prompts[i], n: 2, max_tokens: 20, seed: 13 });
      for (let j = 0; j < 2; j++) {
        assert.equal(r.choices[i * 2 + j].text, single.choices[j].text, `choice ${i * 2 + j} is prompt ${i}'s choice ${j}`);
      }
    }
    assert.deepEqual(r.usage, { prompt_tokens: 18, completion_tokens: 80, total_tokens: 98 });
  });

  it('completions: a prompt of token ids is the same prompt as its text', async () => {
    const res = await fetch(base + '/tokenize', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: 'the log' }),
    });
    const { tokens } = await res.json();
    const req = { model: MODEL_ID, max_tokens: 20, seed: 8 };
    const byIds = await ai.completions.create({ ...req, prompt: tokens });
    const byText = await ai.completions.create({ ...req, prompt: 'the log' });
    assert.equal(byIds.choices[0].text, byText.choices[0].text);
    const two = await ai.completions.create({ ...req, prompt: [tokens, tokens] });
    assert.deepEqual(two.choices.map((c) => c.text), [byText.choices[0].text, byText.choices[0].text]);
  });

  it('completions: parameters it cannot honour are the SDK\'s BadRequestError naming them', async () => {
    const base = { model: MODEL_ID, prompt: 'x', max_tokens: 4 };
    await rejects(ai.completions.create({ ...base, suffix: 'end' }), OpenAI.BadRequestError, 400, 'suffix');
    await rejects(ai.completions.create({ ...base, n: 2, best_of: 3 }), OpenAI.BadRequestError, 400, 'best_of');
    await rejects(ai.completions.create({ ...base, n: 17 }), OpenAI.BadRequestError, 400, 'n');
    await rejects(ai.completions.create({ ...base, logprobs: 6 }), OpenAI.BadRequestError, 400, 'logprobs');
    await rejects(ai.completions.create({ ...base, max_tokens: 0 }), OpenAI.BadRequestError, 400, 'max_tokens');
    const ok = await ai.completions.create({ ...base, n: 2, best_of: 2, seed: 1 });
    assert.equal(ok.choices.length, 2, 'best_of equal to n is accepted');
  });

  it('chat: a reply from the assistant with usage, and logprobs with 3 alternatives', async () => {
    const req = { model: MODEL_ID, messages, max_tokens: 30, seed: 21 };
    const r = await ai.chat.completions.create(req);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, MODEL_ID);
    assert.equal(r.choices.length, 1);
    const c = r.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.message.role, 'assistant');
    assert.equal(typeof c.message.content, 'string');
    assert.ok(['length', 'stop'].includes(c.finish_reason), c.finish_reason);
    if (c.finish_reason === 'length') assert.equal(codePoints(c.message.content), 30);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(typeof r.usage[k], 'number', k);
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

    const l = await ai.chat.completions.create({ ...req, logprobs: true, top_logprobs: 3 });
    assert.equal(l.choices[0].message.content, c.message.content, 'logprobs do not change the draw');
    checkChatLogprobs(l.choices[0].message.content, l.choices[0].logprobs, 3);
    assert.ok(l.choices[0].logprobs.content.length > 0);
  });

  it('chat: a stream starts with the role and concatenates to the reply, then usage', async () => {
    const req = { model: MODEL_ID, messages, max_tokens: 200, seed: 34, logprobs: true, top_logprobs: 2 };
    const whole = await ai.chat.completions.create(req);
    checkChatLogprobs(whole.choices[0].message.content, whole.choices[0].logprobs, 2);
    const stream = await ai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let first = true;
    let content = '';
    const lp = [];
    const finals = [];
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) {
        assert.deepEqual(chunk.choices, []);
        usage = chunk.usage;
        continue;
      }
      assert.equal(usage, null, 'usage comes last');
      const c = chunk.choices[0];
      assert.equal(c.index, 0);
      if (first) {
        assert.equal(c.delta.role, 'assistant', `first delta: ${JSON.stringify(c.delta)}`);
        first = false;
      }
      if (c.delta.content) content += c.delta.content;
      if (c.logprobs?.content) lp.push(...c.logprobs.content);
      if (c.finish_reason) finals.push(c.finish_reason);
    }
    assert.equal(content, whole.choices[0].message.content, 'stream = non-stream for the same seed');
    assert.deepEqual(finals, [whole.choices[0].finish_reason]);
    assert.deepEqual(lp, whole.choices[0].logprobs.content);
    assert.deepEqual(usage, whole.usage);
  });

  it('chat: the SDK\'s stream helper assembles n 2 streamed choices into the plain reply', async () => {
    const req = { model: MODEL_ID, messages, max_tokens: 25, seed: 55, n: 2, logprobs: true, top_logprobs: 1 };
    const whole = await ai.chat.completions.create(req);
    assert.deepEqual(whole.choices.map((c) => c.index), [0, 1]);
    for (const c of whole.choices) checkChatLogprobs(c.message.content, c.logprobs, 1);
    // stream() checks each choice got a role and a finish_reason, or throws.
    const final = await ai.chat.completions.stream(req).finalChatCompletion();
    assert.deepEqual(final.choices.map((c) => [c.index, c.message.role, c.message.content, c.finish_reason]),
      whole.choices.map((c) => [c.index, c.message.role, c.message.content, c.finish_reason]));
    assert.deepEqual(final.choices.map((c) => c.logprobs.content), whole.choices.map((c) => c.logprobs.content));
  });

  it('chat: parameters it cannot honour are the SDK\'s BadRequestError naming them', async () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    await rejects(ai.chat.completions.create({ model: MODEL_ID, messages, tools }), OpenAI.BadRequestError, 400, 'tools');
    await rejects(ai.chat.completions.create({ model: MODEL_ID, messages, response_format: { type: 'json_object' } }),
      OpenAI.BadRequestError, 400, 'response_format');
    await rejects(ai.chat.completions.create({ model: MODEL_ID, messages, top_logprobs: 21, logprobs: true }),
      OpenAI.BadRequestError, 400, 'top_logprobs');
    await rejects(ai.chat.completions.create({ model: MODEL_ID, messages, stream: true, tools }), OpenAI.BadRequestError, 400, 'tools');
  });
});

describe('OpenAI client against charlm-server with --api-key', { timeout: 60000 }, () => {
  const KEY = 'e2e-sdk-Key_0123456789';
  let server = null;
  let base = '';

  before(async () => {
    ({ child: server, base } = await spawnServer(['--api-key', KEY]));
  });
  after(() => stopChild(server));

  it('sends the client\'s key; a wrong one is the SDK\'s AuthenticationError', async () => {
    const good = client(base, KEY);
    const m = await good.models.retrieve(MODEL_ID);
    assert.equal(m.id, MODEL_ID);
    const r = await good.completions.create({ model: MODEL_ID, prompt: 'the ', max_tokens: 5, seed: 1 });
    assert.equal(codePoints(r.choices[0].text), 5);
    const c = await good.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    assert.equal(c.choices[0].message.role, 'assistant');

    const bad = client(base, 'not-the-key');
    await rejects(bad.models.list(), OpenAI.AuthenticationError, 401);
    await rejects(bad.completions.create({ model: MODEL_ID, prompt: 'the ', max_tokens: 5 }), OpenAI.AuthenticationError, 401);
    await rejects(bad.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 5, stream: true }),
      OpenAI.AuthenticationError, 401);
  });
});
