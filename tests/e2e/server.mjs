// Starting and stopping charlm-server for the end-to-end tests (page.test.mjs,
// openai.test.mjs). tests/e2e/run.sh provides CHARLM_SERVER (the binary), E2E_MODEL_DIR
// (the model folder) and CHARLM_TRAIN (charlm-train, for tests that make more models). Every server started here is killed when the test
// process exits, however it exits.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const SERVER = process.env.CHARLM_SERVER;
export const MODEL_DIR = process.env.E2E_MODEL_DIR;
export const TRAIN = process.env.CHARLM_TRAIN || (SERVER ? path.join(path.dirname(SERVER), 'charlm-train') : '');

// Exits with 2 unless run.sh set the environment; test names the calling file.
export function requireEnv(test) {
  for (const [name, v] of [['CHARLM_SERVER', SERVER], ['E2E_MODEL_DIR', MODEL_DIR]]) {
    if (!v) {
      console.error(`${test}: ${name} is not set; run tests/e2e/run.sh`);
      process.exit(2);
    }
  }
}

const children = []; // every server started

export function kill(child, signal) {
  if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
}
process.on('exit', () => children.forEach((c) => kill(c, 'SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    children.forEach((c) => kill(c, 'SIGKILL'));
    process.exit(130);
  });
}

// Starts charlm-server with these flags on a free port; resolves to {child, base} once it
// says where it listens. `models` are the flags naming the models: by default the one
// model of E2E_MODEL_DIR.
export function spawnServer(flags, models = ['--model', MODEL_DIR]) {
  const args = [...models, '--host', '127.0.0.1', '--port', '0', '--threads', '1', ...flags];
  const child = spawn(SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  children.push(child);
  let log = '';
  let url = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`charlm-server did not say where it listens within 15 s:\n${log}`)), 15000);
    const onData = (d) => {
      log += d;
      if (log.length > 200000) log = log.slice(-100000);
      const m = /listening on (http:\/\/[0-9.]+:\d+)/.exec(log);
      if (m && !url) {
        url = m[1];
        clearTimeout(timer);
        resolve({ child, base: url });
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (!url) reject(new Error(`charlm-server exited (${code ?? sig}) before listening:\n${log}`));
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${SERVER}: ${e.message}`));
    });
  });
}

// SIGTERM, then SIGKILL after 5 s; resolves once the child has exited.
export async function stopChild(child) {
  kill(child, 'SIGTERM');
  if (child && child.exitCode === null && child.signalCode === null) {
    await new Promise((res) => {
      const t = setTimeout(() => {
        kill(child, 'SIGKILL');
        res();
      }, 5000);
      child.once('exit', () => {
        clearTimeout(t);
        res();
      });
    });
  }
}
