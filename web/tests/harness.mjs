// What every browser test needs: the built onemap, Debian's Chromium, a
// temporary database, dispatcher and planner tokens made as an operator makes them,
// and servers that are started on an ephemeral port and never outlive the
// tests. (Not a test file itself: node --test picks `*.test.mjs`.)
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const webDir = resolve(import.meta.dirname, '..');
export const bin = process.env.ONEMAP_BIN ?? resolve(webDir, '../target/debug/onemap');
export const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A fresh GeoPackage URL in a temporary folder; fails loudly when the
 * binary or the browser is missing. */
export function tempDatabase(name) {
  assert.ok(existsSync(bin), `the onemap binary is built at ${bin}`);
  assert.ok(existsSync(browserPath), `Chromium is installed at ${browserPath}`);
  const dir = mkdtempSync(join(tmpdir(), `onemap-${name}-`));
  return `sqlite://${join(dir, `${name}.gpkg`)}`;
}

/** A token of `role`, created with the CLI before the server starts. */
function roleToken(database, role, name) {
  return execFileSync(bin, ['--database', database, '--log', 'error', 'token', 'create', '--role', role, '--name', name])
    .toString().trim().split('\n').pop();
}

/** A dispatcher token, created with the CLI before the server starts. */
export const dispatcherToken = (database, name) => roleToken(database, 'dispatcher', name);

/** A planner token (shelters, risk zones, planning scenarios), the same way. */
export const plannerToken = (database, name) => roleToken(database, 'planner', name);

const children = new Set();

/** Start `onemap serve --demo` on `database`; resolves to
 * `{ child, exited, base, port }` once it listens. */
export function startServer(database, { bind = '127.0.0.1:0', args = [] } = {}) {
  const child = spawn(bin, ['--database', database, 'serve', '--demo', '--bind', bind, '--web-dir', webDir, ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  const exited = new Promise((ok) => child.on('exit', ok));
  const listening = new Promise((ok, fail) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`the server did not start:\n${log}`)), 60_000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:(\d+))/);
      if (m) { clearTimeout(timer); ok({ base: m[1], port: Number(m[2]) }); }
    });
    exited.then((code) => fail(new Error(`the server exited (${code}):\n${log}`)));
  });
  return listening.then((at) => ({ child, exited, ...at }));
}

export async function stopServer(s, signal = 'SIGTERM') {
  s.child.kill(signal);
  await s.exited;
}

/** Every server still running is stopped (call from `after`). */
export function stopAll() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

/** Chromium headless, offline, WebGL in software. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: browserPath,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--ignore-gpu-blocklist'],
  });
}
