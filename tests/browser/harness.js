// Starts the real server and a real headless Chromium for the web client's tests.
//
// The server binary comes from TRIAD_SERVER_BIN (`cargo xtask test` builds it and sets it),
// by default target/debug/triad-server. Each server gets a fresh data folder with the demo
// roster imported (and, if asked, invitations made with its `invite` command while no server
// holds the store), listens on a free port, and is killed when the tests end.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const workspace = resolve(here, '../..');
export const screenshots = join(workspace, 'target/screenshots');

const SERVER_BIN = resolve(
  process.env.TRIAD_SERVER_BIN ?? join(workspace, 'target/debug/triad-server'),
);
/** The call agent (`triad-call`), for calls between a browser and webrtc-rs. */
export const CALL_BIN = resolve(
  process.env.TRIAD_CALL_BIN ?? join(workspace, 'target/debug/triad-call'),
);
const CHROMIUM = process.env.TRIAD_CHROMIUM ?? '/usr/bin/chromium';
const SECRET = 'browser-tests-secret-0123456789abcdef';

/** The demo programme's people, by id. */
export const NAMES = {
  'anna.jensen': 'Anna Jensen',
  'marco.rossi': 'Marco Rossi',
  'rhian.evans': 'Rhian Evans',
  'lars.nielsen': 'Lars Nielsen',
  'giulia.bianchi': 'Giulia Bianchi',
  'owen.price': 'Owen Price',
  'sara.moderator': 'Sara Lind',
};

/** A server process on a fresh copy of the demo programme. */
export class Server {
  /**
   * @param {{child: import('node:child_process').ChildProcess, url: string, data: string,
   *   invitations: Record<string, string>}} parts
   */
  constructor({ child, url, data, invitations }) {
    this.child = child;
    this.url = url;
    this.data = data;
    /** An invitation code per person asked for at start. */
    this.invitations = invitations;
  }

  /**
   * Starts a server.
   * @param {{invitations?: string[], args?: string[]}} [options] people to make a
   *   single-use invitation for; more `serve` flags
   */
  static async start({ invitations = [], args = [] } = {}) {
    if (!existsSync(SERVER_BIN)) {
      throw new Error(
        `server binary not found at ${SERVER_BIN}: build it (cargo build -p triad-server) or set TRIAD_SERVER_BIN`,
      );
    }
    const data = await mkdtemp(join(tmpdir(), 'triad-browser-'));
    const common = ['--data-dir', data, '--jwt-secret', SECRET];
    await run(SERVER_BIN, ['import', join(workspace, 'server/demo-roster.toml'), ...common]);
    /** @type {Record<string, string>} */
    const codes = {};
    for (const person of invitations) {
      const { stdout } = await run(SERVER_BIN, ['invite', '--person', person, ...common]);
      const match = /#invite=(\S+)/.exec(stdout);
      if (!match) throw new Error(`no invitation link in ${JSON.stringify(stdout)}`);
      codes[person] = match[1];
    }
    const child = spawn(
      SERVER_BIN,
      [
        'serve',
        '--listen',
        '127.0.0.1:0',
        ...common,
        // The tests seed history quickly; the client's own retries are exercised elsewhere.
        '--send-rate-per-second',
        '1000',
        '--send-burst',
        '1000',
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, RUST_LOG: process.env.TRIAD_TEST_LOG ?? 'warn' },
      },
    );
    const lines = createInterface({
      input: /** @type {import('node:stream').Readable} */ (child.stdout),
    });
    const addr = await new Promise((resolveAddr, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the server did not start within 30 s')),
        30_000,
      );
      child.once('exit', (code) =>
        reject(new Error(`the server exited (${code}) before listening`)),
      );
      lines.on('line', (line) => {
        const match = /^triad-server listening on (\S+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolveAddr(match[1]);
        }
      });
    });
    return new Server({ child, url: `http://${addr}`, data, invitations: codes });
  }

  /**
   * A token for a person, minted by the server's own command.
   * @param {string} person
   */
  async token(person) {
    const { stdout } = await run(SERVER_BIN, [
      'token',
      '--person',
      person,
      '--jwt-secret',
      SECRET,
      '--data-dir',
      this.data,
    ]);
    return stdout.trim();
  }

  /**
   * Calls the REST API as a person (with a token minted for them).
   * @param {string} method
   * @param {string} path e.g. `/api/coachings`
   * @param {{person?: string, body?: unknown}} [options]
   * @returns {Promise<{status: number, body: any}>}
   */
  async api(method, path, { person, body } = {}) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (person) headers.Authorization = `Bearer ${await this.token(person)}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  /**
   * The sign-in link for a person.
   * @param {string} person
   */
  async signInLink(person) {
    return `${this.url}/#token=${await this.token(person)}`;
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((done) => this.child.once('exit', done));
      this.child.kill('SIGKILL');
      await exited;
    }
    await rm(this.data, { recursive: true, force: true });
  }
}

/** The flags calls need. */
const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

/** Headless Chromium, with the flags calls will need. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error('chromium not found: install it (Debian: apt-get install chromium)');
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  // Every context (and `browser.newPage()`, which makes one) gets the test hooks.
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    await context.addInitScript(TEST_FLAG);
    return context;
  };
  return browser;
}

/** Asks the page for its test hooks that hold secrets (`window.triad.accessToken`). */
const TEST_FLAG = 'window.__TRIAD_TEST__ = true;';

/**
 * A person's own browser that keeps its profile (cookies, storage) in `userDataDir`, as a
 * browser on their laptop does between restarts: close it and launch it again on the same
 * folder.
 * @param {string} userDataDir
 * @param {{timezoneId?: string}} [options]
 */
export async function launchPersistent(userDataDir, { timezoneId } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error('chromium not found: install it (Debian: apt-get install chromium)');
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1366, height: 768 },
    timezoneId,
  });
  await context.addInitScript(TEST_FLAG);
  return context;
}

/**
 * Stores messages in a room through a raw websocket from a page on the server's origin, as
 * any client would.
 * @param {import('playwright-core').Browser} browser
 * @param {Server} server
 * @param {string} person
 * @param {string} room
 * @param {string[]} bodies
 */
export async function seedMessages(browser, server, person, room, bodies) {
  const token = await server.token(person);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${server.url}/healthz`);
    await page.evaluate(
      async ({ token, room, bodies }) => {
        const ws = new WebSocket(`ws://${location.host}/ws`, 'triad.v1');
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        });
        /** @type {Map<number, (frame: any) => void>} */
        const waiting = new Map();
        ws.onmessage = (message) => {
          const frame = JSON.parse(message.data);
          waiting.get(frame.re)?.(frame);
          waiting.delete(frame.re);
        };
        /** @type {(id: number, request: object) => Promise<any>} */
        const request = (id, body) =>
          new Promise((resolve) => {
            waiting.set(id, resolve);
            ws.send(JSON.stringify({ id, ...body }));
          });
        const welcome = await request(0, { type: 'hello', token });
        if (welcome.type !== 'welcome') throw new Error(JSON.stringify(welcome));
        for (const [i, body] of bodies.entries()) {
          const ack = await request(i + 1, {
            type: 'send',
            room,
            client_msg_id: crypto.randomUUID(),
            body,
          });
          if (ack.type !== 'ack') throw new Error(JSON.stringify(ack));
        }
        ws.close();
      },
      { token, room, bodies },
    );
  } finally {
    await context.close();
  }
}

/**
 * A person's own browser (a new context: its own storage) with the app open and signed in.
 * Page errors are collected in `errors`.
 * @param {import('playwright-core').Browser} browser
 * @param {Server} server
 * @param {string} person
 * @param {{width: number, height: number}} [viewport]
 * @param {{link?: string, timezoneId?: string, locale?: string}} [options] the link to sign
 *   in with (a token link by default), and the browser's time zone and language
 */
export async function openAs(
  browser,
  server,
  person,
  viewport = { width: 1366, height: 768 },
  { link, timezoneId, locale } = {},
) {
  const context = await browser.newContext({ viewport, timezoneId, locale });
  const page = await context.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.goto(link ?? (await server.signInLink(person)));
  await page
    .locator('#signed-in-as')
    .filter({ hasText: NAMES[person] })
    .waitFor({ state: 'attached' });
  return { context, page, errors, person };
}

export async function screenshotDir() {
  await mkdir(screenshots, { recursive: true });
  return screenshots;
}
