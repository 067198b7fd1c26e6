// Video calls in headless Chromium, against a real server: three heads in a full mesh with
// (fake) camera and microphone, a call surviving a dropped websocket, a browser and the
// `triad-call` agent (webrtc-rs, a data channel and no media) in one call, and a screenshot.
//
// Every wait is for a condition in the page or the agent's output, with a timeout.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';

import { CALL_BIN, NAMES, Server, launchBrowser, openAs, screenshotDir } from './harness.js';

/** @typedef {Awaited<ReturnType<typeof openAs>>} Person */
/**
 * @typedef {{person: string, session: string, offerer: boolean, connectionState: string,
 *   channel: string | null, framesDecoded: number}} PeerStats
 */

/** @type {Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Person[]} */
const opened = [];

/**
 * @param {string} person
 * @param {{width: number, height: number}} [viewport]
 */
async function open(person, viewport) {
  const who = await openAs(browser, server, person, viewport);
  opened.push(who);
  return who;
}

/**
 * The page's peers, from the test hook.
 * @param {Person} who
 * @returns {Promise<PeerStats[]>}
 */
function stats(who) {
  return who.page.evaluate(() => /** @type {any} */ (window).triad.call.stats());
}

/**
 * Waits until `check` holds for the page's peers; fails with the last stats seen.
 * @param {Person} who
 * @param {(peers: PeerStats[]) => boolean} check
 * @param {string} what
 * @param {number} [timeout]
 */
async function waitForPeers(who, check, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  /** @type {PeerStats[]} */
  let last = [];
  while (Date.now() < deadline) {
    last = await stats(who);
    if (check(last)) return last;
    await who.page.waitForTimeout(100);
  }
  assert.fail(`${who.person}: ${what} within ${timeout} ms; peers: ${JSON.stringify(last)}`);
}

/**
 * Clicks the room's call button (Start call or Join call (n)) and waits for the panel.
 * @param {Person} who
 */
async function joinCall(who) {
  await who.page.locator('#call-button:not([hidden])').click();
  await who.page.locator('#call .call-leave:not([hidden])').waitFor();
}

describe('video calls', { timeout: 90_000 }, () => {
  before(async () => {
    server = await Server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    for (const { person, errors } of opened) {
      assert.deepEqual(errors, [], `${person}'s page had no errors`);
    }
  });

  test('three heads connect in a full mesh and decode each other\'s video', async () => {
    const started = Date.now();
    const [anna, marco, rhian] = await Promise.all(
      ['anna.jensen', 'marco.rossi', 'rhian.evans'].map((p) => open(p)),
    );
    const people = [anna, marco, rhian];
    for (const who of people) {
      await who.page.locator('#room-title', { hasText: 'Trio 1' }).waitFor();
    }

    await anna.page.locator('#call-button', { hasText: 'Start call' }).waitFor();
    await joinCall(anna);
    // The others see the call in progress, with how many are in it.
    await marco.page.locator('#call-button', { hasText: 'Join call (1)' }).waitFor();
    await joinCall(marco);
    await rhian.page.locator('#call-button', { hasText: 'Join call (2)' }).waitFor();
    await joinCall(rhian);

    for (const who of people) {
      await waitForPeers(
        who,
        (peers) =>
          peers.length === 2 &&
          peers.every((p) => p.connectionState === 'connected' && p.framesDecoded > 0),
        'two connected peers decoding video',
      );
      await who.page.locator('#call .call-tile').nth(2).waitFor();
      assert.equal(await who.page.locator('#call .call-tile').count(), 3);
    }
    // The offerer rule: the later joiner offers.
    const annaPeers = await stats(anna);
    assert.ok(annaPeers.every((p) => !p.offerer), 'anna, the first, offers to no one');
    const rhianPeers = await stats(rhian);
    assert.ok(rhianPeers.every((p) => p.offerer), 'rhian, the last, offers to both');
    console.log(`# mesh of three connected with video in ${Date.now() - started} ms`);

    // The microphone toggle: pressed state, and the others see "muted".
    const mic = marco.page.locator('#call .call-mic');
    assert.equal(await mic.getAttribute('aria-pressed'), 'true');
    await mic.click();
    assert.equal(await mic.getAttribute('aria-pressed'), 'false');
    await anna.page
      .locator('#call .call-tile', { hasText: NAMES['marco.rossi'] })
      .locator('.call-state', { hasText: 'muted' })
      .waitFor();

    // A short network drop: the page rejoins with resume, and the mesh goes on.
    const dropped = Date.now();
    const before = await stats(marco);
    await marco.page.evaluate(() => /** @type {any} */ (window).triad.dropConnection());
    await marco.page.waitForFunction(() => /** @type {any} */ (window).triad.status === 'live');
    await anna.page.waitForFunction(
      () =>
        !document.querySelector('#call .call-tile .call-state')?.textContent?.includes('Reconnecting'),
    );
    for (const who of people) {
      await waitForPeers(
        who,
        (peers) => peers.length === 2 && peers.every((p) => p.connectionState === 'connected'),
        'two connected peers after the drop',
      );
    }
    const afterDrop = await stats(marco);
    assert.deepEqual(
      afterDrop.map((p) => p.person).sort(),
      before.map((p) => p.person).sort(),
      'the same peers',
    );
    // Still decoding: more frames than before the drop.
    await waitForPeers(
      marco,
      (peers) =>
        peers.every(
          (p) => p.framesDecoded > (before.find((b) => b.person === p.person)?.framesDecoded ?? 0),
        ),
      'new frames after the drop',
    );
    console.log(`# call resumed after a dropped websocket in ${Date.now() - dropped} ms`);

    // The screenshot at a laptop size, everyone in, one muted.
    const dir = await screenshotDir();
    await rhian.page.screenshot({ path: join(dir, 'call-laptop.png') });

    // Leaving: the others' tiles go; the last one out ends the call.
    for (const who of [rhian, marco, anna]) {
      await who.page.locator('#call .call-leave').click();
    }
    await anna.page.locator('#call-button', { hasText: 'Start call' }).waitFor();
  });

  test('a browser and the call agent connect in one call', async () => {
    assert.ok(
      existsSync(CALL_BIN),
      `no call agent at ${CALL_BIN}: build it (cargo build -p triad-call) or set TRIAD_CALL_BIN`,
    );
    const started = Date.now();
    const lars = await open('lars.nielsen');
    await lars.page.locator('#room-title', { hasText: 'Trio 2' }).waitFor();
    await joinCall(lars);

    const token = await server.token('giulia.bianchi');
    const ws = server.url.replace(/^http/, 'ws') + '/ws';
    const agent = spawn(
      CALL_BIN,
      ['--server', ws, '--token', token, '--room', 'trio-2', '--loopback', '--duration', '30s'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    /** @type {string[]} */
    const output = [];
    const lines = createInterface({ input: /** @type {import('node:stream').Readable} */ (agent.stdout) });
    /** @type {Promise<void>} */
    const agentConnected = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the agent did not report a connection:\n${output.join('\n')}`)),
        20_000,
      );
      lines.on('line', (line) => {
        output.push(line);
        if (/^lars\.nielsen: connected/.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      });
      agent.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the agent exited (${code}):\n${output.join('\n')}`));
      });
    });
    agentConnected.catch(() => {});
    try {
      // The agent joined second, so it offered: a data channel, no media.
      const peers = await waitForPeers(
        lars,
        (peers) =>
          peers.length === 1 &&
          peers[0].connectionState === 'connected' &&
          peers[0].channel === 'open',
        'the agent connected with an open data channel',
        20_000,
      );
      assert.equal(peers[0].person, 'giulia.bianchi');
      assert.equal(peers[0].framesDecoded, 0, 'the agent sends no video');
      await agentConnected;
      // Its tile: a name and no picture.
      await lars.page
        .locator('#call .call-tile.no-picture', { hasText: NAMES['giulia.bianchi'] })
        .waitFor();
      console.log(`# browser and call agent connected in ${Date.now() - started} ms`);
    } finally {
      if (agent.exitCode === null) {
        const exited = new Promise((done) => agent.once('exit', done));
        agent.kill('SIGINT');
        await exited;
      }
    }
  });
});
