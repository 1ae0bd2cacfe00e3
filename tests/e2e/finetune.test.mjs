// The official OpenAI client (npm `openai`) driving charlm-server's fine-tuning: files
// uploaded and refused, a job created, its events listed (and auto-paginated), waited on
// until it succeeds, its model generating; a second job cancelled with its trainer gone;
// the key required. Run through tests/e2e/run.sh, which provides CHARLM_SERVER and
// E2E_MODEL_DIR (the server's own model, served beside the jobs' ones).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { File as NodeFile } from 'node:buffer';
import OpenAI, { toFile } from 'openai';
import { requireEnv, spawnServer, stopChild } from './server.mjs';

requireEnv('finetune.test.mjs');

// Node 18 (Debian bookworm's) has File only in node:buffer; the SDK's uploads need it global.
globalThis.File ??= NodeFile;

const KEY = 'tune-e2e-key';
const MAX_UPLOAD = 100000;

function client(base, apiKey = KEY) {
  return new OpenAI({ baseURL: base + '/v1', apiKey, maxRetries: 0, timeout: 60000 });
}

// The text the jobs learn: a few lines, repeated.
const TEXT = Array(60)
  .fill('the cat sat on the mat and the dog sat on the log.\nthe fox ran home before the rain.\n')
  .join('');

// The server's children still in the process table, and how many of them are zombies.
function children(pid) {
  let n = 0;
  let zombies = 0;
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const list = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    for (const c of list ? list.split(/\s+/) : []) {
      n++;
      try {
        const stat = fs.readFileSync(`/proc/${c}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') zombies++;
      } catch {
        // gone between the two reads
      }
    }
  }
  return { n, zombies };
}

async function waitFor(what, fn, ms = 120000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('OpenAI client fine-tuning on charlm-server', { timeout: 240000 }, () => {
  let server = null;
  let base = '';
  let ai = null;
  let dir = '';

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'charlm-tune-'));
    ({ child: server, base } = await spawnServer([
      '--training-dir', dir, '--api-key', KEY, '--max-upload', String(MAX_UPLOAD), '--model-id', 'base',
    ]));
    ai = client(base);
  });
  after(async () => {
    await stopChild(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uploads a text, trains it, lists the events, and generates with the fine-tuned model', async () => {
    const file = await ai.files.create({ file: await toFile(Buffer.from(TEXT), 'cats.txt'), purpose: 'fine-tune' });
    assert.match(file.id, /^file-[0-9a-f]{24}$/);
    assert.equal(file.bytes, Buffer.byteLength(TEXT));
    assert.equal(file.filename, 'cats.txt');
    assert.equal((await ai.files.retrieve(file.id)).id, file.id);

    const created = await ai.fineTuning.jobs.create({
      training_file: file.id,
      model: 'lstm',
      hyperparameters: { n_epochs: 2, batch_size: 4 },
      suffix: 'e2e',
      seed: 11,
    });
    assert.match(created.id, /^ftjob-[0-9a-f]{24}$/);
    assert.equal(created.status, 'validating_files');
    assert.equal(created.training_file, file.id);
    assert.equal(created.fine_tuned_model, null);

    const job = await waitFor('the job to succeed', async () => {
      const j = await ai.fineTuning.jobs.retrieve(created.id);
      assert.ok(!['failed', 'cancelled'].includes(j.status), JSON.stringify(j));
      return j.status === 'succeeded' ? j : null;
    });
    assert.match(job.fine_tuned_model, /^ft:lstm:charlm:e2e:[0-9a-f]{8}$/);
    // 2 epochs of the 90% of the text held for training, in windows of 4 x 128 chars.
    const steps = Math.ceil((2 * TEXT.length * 0.9) / (4 * 128));
    assert.equal(job.hyperparameters.steps, steps);
    assert.equal(job.trained_tokens, steps * 4 * 128);
    assert.ok(job.finished_at >= job.created_at);

    // The events, newest first, a page at a time; the SDK's auto-pagination reads them all.
    const page = await ai.fineTuning.jobs.listEvents(created.id, { limit: 3 });
    assert.equal(page.data.length, 3);
    assert.equal(page.data[0].data.status, 'succeeded');
    const all = [];
    for await (const e of ai.fineTuning.jobs.listEvents(created.id, { limit: 5 })) all.push(e);
    assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'no event twice');
    const metrics = all.filter((e) => e.type === 'metrics').reverse();
    assert.equal(metrics.length, steps, 'one evaluation a step for a run this short');
    assert.equal(metrics.at(-1).data.step, steps);
    for (const m of metrics) {
      assert.ok(m.data.train_loss > 0 && m.data.valid_loss > 0, JSON.stringify(m));
      assert.equal([...m.data.sample].length, 160);
    }
    assert.ok(metrics.at(-1).data.valid_loss < metrics[0].data.valid_loss, 'it learned');
    const states = all.filter((e) => e.data.status).map((e) => e.data.status).reverse();
    assert.deepEqual(states, ['validating_files', 'queued', 'running', 'succeeded']);

    const ckpts = await ai.fineTuning.jobs.checkpoints.list(created.id);
    assert.equal(ckpts.data.length, 1);
    assert.equal(ckpts.data[0].fine_tuned_model_checkpoint, job.fine_tuned_model);

    const models = [];
    for await (const m of ai.models.list()) models.push(m.id);
    assert.ok(models.includes(job.fine_tuned_model), models.join(', '));
    const out = await ai.completions.create({ model: job.fine_tuned_model, prompt: 'the cat', max_tokens: 20, seed: 5 });
    assert.equal(out.model, job.fine_tuned_model);
    assert.equal([...out.choices[0].text].length, 20);

    const jobs = await ai.fineTuning.jobs.list({ limit: 10 });
    assert.equal(jobs.data[0].id, created.id);
  });

  it('cancels a running job: status cancelled, its trainer gone, no zombie', async () => {
    const file = await ai.files.create({ file: await toFile(Buffer.from(TEXT), 'cats.txt'), purpose: 'fine-tune' });
    const created = await ai.fineTuning.jobs.create({
      training_file: file.id,
      model: 'gpt',
      hyperparameters: { steps: 1000000, batch_size: 2 },
    });
    await waitFor('the job to run', async () => (await ai.fineTuning.jobs.retrieve(created.id)).status === 'running');
    assert.equal(children(server.pid).n, 1, 'one trainer');
    const cancelled = await ai.fineTuning.jobs.cancel(created.id);
    assert.equal(cancelled.status, 'cancelled');
    await waitFor('the trainer to be reaped', () => children(server.pid).n === 0, 20000);
    assert.equal(children(server.pid).zombies, 0);
    assert.equal((await ai.fineTuning.jobs.retrieve(created.id)).status, 'cancelled');
    await assert.rejects(ai.fineTuning.jobs.cancel(created.id), (e) => e instanceof OpenAI.BadRequestError);
  });

  it('refuses bad uploads with 400 and the reason, storing nothing', async () => {
    const before = (await ai.files.list()).data.length;
    const cases = [
      ['binary', Buffer.from([0x68, 0x69, 0x00, 0x01, 0x02]), /NUL byte/],
      ['empty', Buffer.alloc(0), /empty/],
      ['invalid UTF-8', Buffer.from([0x61, 0x62, 0xc3, 0x28, 0x0a]), /not UTF-8/],
      ['over --max-upload', Buffer.alloc(MAX_UPLOAD + 1, 0x61), /--max-upload/],
    ];
    for (const [what, bytes, reason] of cases) {
      await assert.rejects(
        ai.files.create({ file: await toFile(bytes, 'bad.txt'), purpose: 'fine-tune' }),
        (e) => {
          assert.ok(e instanceof OpenAI.BadRequestError, `${what}: ${e?.constructor?.name} ${e?.status} ${e?.message}`);
          assert.match(e.message, reason, what);
          return true;
        },
        what,
      );
    }
    assert.equal((await ai.files.list()).data.length, before);
  });

  it('needs the key: without it every training route is the SDK\'s AuthenticationError', async () => {
    const wrong = client(base, 'not-the-key');
    const calls = [
      () => wrong.files.create({ file: new File([TEXT], 'a.txt'), purpose: 'fine-tune' }),
      () => wrong.fineTuning.jobs.list(),
      () => wrong.fineTuning.jobs.create({ training_file: 'file-0123456789abcdef01234567', model: 'lstm' }),
    ];
    for (const call of calls) await assert.rejects(call(), (e) => e instanceof OpenAI.AuthenticationError);
  });
});
