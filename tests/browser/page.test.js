// The page as people read it, in headless Chromium against a real server: the newest message
// stays in view when a call or a reminder opens above the chat or the window narrows; no
// one shows as online and no call can start while the page is disconnected; refusals are
// sentences, never the server's internals or UTC; "Join the session call" is not offered to
// someone in it; right-to-left overrides in names and messages stay inside them.
//
// Every wait is for a condition in the page, with a timeout.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { NAMES, Server, launchBrowser, openAs, screenshotDir, seedMessages } from './harness.js';

/** @typedef {Awaited<ReturnType<typeof openAs>>} Person */

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
  const who = await openAs(browser, server, person, viewport, {
    timezoneId: 'Europe/Copenhagen',
    locale: 'en-GB',
  });
  opened.push(who);
  await who.page.waitForFunction(() => /** @type {any} */ (window).triad?.status === 'live');
  return who;
}

/**
 * Whether the list is scrolled to its end and the last message's bottom edge is inside the
 * visible part of the list (the list may be shorter than a message in a small window).
 * @param {Person} who
 */
function lastMessageInView(who) {
  return who.page.evaluate(() => {
    const scroller = /** @type {HTMLElement} */ (document.getElementById('messages'));
    const items = document.querySelectorAll('#message-list > li');
    const last = items[items.length - 1];
    if (!last) return false;
    const box = scroller.getBoundingClientRect();
    const item = last.getBoundingClientRect();
    const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
    return atEnd && item.bottom <= box.bottom + 1 && item.bottom >= box.top;
  });
}

/**
 * Waits until the last message is in view; fails with the geometry if it does not get there.
 * @param {Person} who
 * @param {string} when
 */
async function staysInView(who, when) {
  // The view settles after the layout change: checked on every frame until it is in view.
  const settled = await who.page
    .waitForFunction(
      () => {
        const scroller = /** @type {HTMLElement} */ (document.getElementById('messages'));
        const items = document.querySelectorAll('#message-list > li');
        const last = items[items.length - 1];
        if (!last) return false;
        const box = scroller.getBoundingClientRect();
        const item = last.getBoundingClientRect();
        const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
        return atEnd && item.bottom <= box.bottom + 1 && item.bottom >= box.top;
      },
      undefined,
      { polling: 'raf', timeout: 5_000 },
    )
    .then(
      () => true,
      () => false,
    );
  assert.ok(settled && (await lastMessageInView(who)), `the newest message is in view ${when}`);
}

/** A calendar day some days from now, `YYYY-MM-DD`. @param {number} days */
function dayAhead(days) {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

describe('the page as people read it', { timeout: 150_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([
      Server.start({ args: ['--reminder-interval-ms', '250'] }),
      launchBrowser(),
    ]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    for (const who of opened) {
      const errors = who.errors.filter(
        (e) =>
          !/Failed to load resource: the server responded with a status of 4\d\d/.test(e) &&
          !/WebSocket connection to .* failed/.test(e),
      );
      assert.deepEqual(errors, [], `errors in ${who.person}'s page`);
    }
  });

  test('a reader at the bottom keeps the newest message in view when a call, a reminder or a narrow window takes room', async (t) => {
    const bodies = Array.from(
      { length: 40 },
      (_, i) => `Message ${i + 1} about the observation rota for next term.`,
    );
    await seedMessages(browser, server, 'marco.rossi', 'trio-1', bodies);
    const anna = await open('anna.jensen', { width: 1100, height: 700 });
    await anna.page
      .locator('#message-list .message .body', { hasText: 'Message 40 about' })
      .waitFor();
    // She reads down to the newest message.
    await anna.page.locator('#messages').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await staysInView(anna, 'when she has read to the bottom');

    // A call starts above the chat.
    await anna.page.locator('#call-button', { hasText: 'Start call' }).click();
    await anna.page.locator('#call .call-leave:not([hidden])').waitFor();
    await staysInView(anna, 'after the call panel opened');

    // A reminder appears above the chat as well.
    const booked = await server.api('POST', '/api/coachings', {
      person: 'sara.moderator',
      body: {
        room: 'trio-1',
        title: 'Observation rota',
        start: new Date(Date.now() + 5 * 60_000).toISOString(),
        duration_min: 30,
        time_zone: 'Europe/Copenhagen',
      },
    });
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    t.after(() =>
      server.api('POST', `/api/coachings/${booked.body.id}/cancel`, { person: 'sara.moderator' }),
    );
    await anna.page.locator('#coaching-notices .coaching-notice').waitFor();
    await staysInView(anna, 'after the reminder appeared');
    const dir = await screenshotDir();
    await anna.page.screenshot({ path: join(dir, 'page-call-and-reminder.png') });

    // The window gets narrower and shorter (or is zoomed).
    await anna.page.setViewportSize({ width: 760, height: 520 });
    await staysInView(anna, 'in a smaller window');

    // A reader who scrolled up is left where they were.
    await anna.page.locator('#messages').evaluate((el) => {
      el.scrollTop = 0;
    });
    await anna.page.locator('#call .call-leave').click();
    await anna.page.locator('#call .call-leave').waitFor({ state: 'hidden' });
    // A new message arrives and is rendered: that is when a reader at the bottom would be
    // pulled down to it. This one is left where she was.
    await seedMessages(browser, server, 'marco.rossi', 'trio-1', ['Message 41, while she reads back.']);
    await anna.page
      .locator('#message-list .message .body', { hasText: 'Message 41, while she reads back.' })
      .waitFor({ state: 'attached' });
    assert.equal(
      await anna.page.locator('#messages').evaluate((el) => el.scrollTop < 400),
      true,
      'not pulled down',
    );
    await anna.context.close();
  });

  test('while disconnected no one shows as online and no call can start; both come back', async () => {
    const marco = await open('marco.rossi');
    const anna = await open('anna.jensen');
    const online = anna.page.locator('#room-people [data-person="marco.rossi"][data-status="online"]');
    await online.waitFor();
    const startCall = anna.page.locator('#call-button', { hasText: 'Start call' });
    assert.equal(await startCall.isEnabled(), true);

    // The server becomes unreachable for Anna's page: the socket and every new one.
    let blocked = true;
    await anna.context.routeWebSocket(/\/ws$/, (ws) => {
      if (blocked) ws.close();
      else ws.connectToServer();
    });
    await anna.page.evaluate(() => /** @type {any} */ (window).triad.dropConnection());
    await anna.page.locator('#connection-status', { hasText: 'Reconnecting' }).waitFor();
    await online.waitFor({ state: 'detached' });
    assert.equal(
      await anna.page
        .locator('#room-people [data-person="marco.rossi"]')
        .getAttribute('data-status'),
      'offline',
    );
    assert.equal(
      await anna.page.locator('.room-entry .avatar[data-status="online"]').count(),
      0,
      'no one online in the rooms list',
    );
    assert.equal(
      await anna.page
        .locator('#room-people [data-person="anna.jensen"]')
        .getAttribute('data-status'),
      'offline',
      'the others see Anna offline, and so does she',
    );
    assert.equal(await startCall.isDisabled(), true, 'Start call is disabled');
    const dir = await screenshotDir();
    await anna.page.screenshot({ path: join(dir, 'page-disconnected.png') });

    // The server is back: presence and the call button come back.
    blocked = false;
    await anna.page.evaluate(() => window.dispatchEvent(new Event('online')));
    await anna.page.waitForFunction(() => /** @type {any} */ (window).triad.status === 'live', null, {
      timeout: 20_000,
    });
    await online.waitFor();
    await anna.page
      .locator('#room-people [data-person="anna.jensen"][data-status="online"]')
      .waitFor();
    await anna.page.locator('#call-button:not([disabled])', { hasText: 'Start call' }).waitFor();
    await Promise.all([anna, marco].map((who) => who.context.close()));
  });

  test('refusals are sentences in the viewer\'s words and zone; the session call is not offered to someone in it', async () => {
    // A token that is not one: the page says so, without the server's internals.
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/#token=not-a-token`);
    const reason = page.locator('#signed-out-reason');
    await reason.filter({ hasText: 'Your sign-in link is not valid.' }).waitFor();
    assert.equal(
      await reason.innerText(),
      'Your sign-in link is not valid. Ask for a new sign-in link.',
    );
    await context.close();

    // A booking that overlaps another: why, without UTC times.
    const anna = await open('anna.jensen');
    const day = dayAhead(6);
    const first = await server.api('POST', '/api/coachings', {
      person: 'sara.moderator',
      body: {
        room: 'trio-1',
        title: 'Peer observation debrief',
        start: `${day}T15:00`,
        duration_min: 60,
        time_zone: 'Europe/Copenhagen',
      },
    });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    await anna.page.getByRole('button', { name: 'Book a session' }).click();
    const form = anna.page.getByRole('form', { name: 'Book a coaching session' });
    await form.getByLabel('Title').fill('Exit tickets');
    await form.getByLabel('Starts').fill(`${day}T15:30`);
    await form.getByRole('button', { name: 'Book' }).click();
    const alert = form.getByRole('alert');
    await alert.filter({ hasText: 'Not booked' }).waitFor();
    assert.equal(
      await alert.innerText(),
      'Not booked: another session in this room overlaps that time.',
    );
    // In the past: said in words.
    await form.getByLabel('Starts').fill('2020-01-06T10:00');
    await form.getByRole('button', { name: 'Book' }).click();
    await alert.filter({ hasText: 'already passed' }).waitFor();
    assert.equal(await alert.innerText(), 'Not booked: that time has already passed.');
    await anna.page.screenshot({ path: join(await screenshotDir(), 'page-booking-refused.png') });

    // A session starting now: joining its call from the list, the list then says she is in
    // it instead of offering to join again; the reminder no longer offers it either.
    const now = await server.api('POST', '/api/coachings', {
      person: 'sara.moderator',
      body: {
        room: 'trio-1',
        title: 'Quick check-in',
        start: new Date(Date.now() + 2_000).toISOString(),
        duration_min: 15,
        time_zone: 'Europe/Copenhagen',
      },
    });
    assert.equal(now.status, 201, JSON.stringify(now.body));
    const entry = anna.page.locator(`#session-list .session[data-id="${now.body.id}"]`);
    const joinButton = entry.getByRole('button', { name: 'Join the session call' });
    await joinButton.waitFor({ timeout: 30_000 });
    // While disconnected the call cannot be joined, from the list or from the reminder.
    const reminderJoin = anna.page
      .locator('#coaching-notices')
      .getByRole('button', { name: 'Join the session call' });
    await reminderJoin.waitFor();
    await anna.context.setOffline(true);
    await anna.page.waitForFunction(() => /** @type {any} */ (window).triad.status !== 'live');
    await anna.page.locator('#session-list .session-join:disabled').waitFor();
    await anna.page.locator('#coaching-notices .session-join:disabled').waitFor();
    assert.equal(await joinButton.getAttribute('title'), 'Not connected: reconnecting…');
    await anna.context.setOffline(false);
    await anna.page.waitForFunction(() => /** @type {any} */ (window).triad.status === 'live');
    await anna.page.locator('#session-list .session-join:enabled').waitFor();
    await joinButton.click();
    await anna.page.locator('#call .call-leave:not([hidden])').waitFor();
    await entry.locator('.session-state', { hasText: 'you are in the call' }).waitFor();
    assert.equal(await anna.page.getByRole('button', { name: 'Join the session call' }).count(), 0);
    // Out of the call again: the way back in returns.
    await anna.page.locator('#call .call-leave').click();
    await joinButton.waitFor();
    await anna.context.close();
  });

  test('right-to-left overrides in names and messages stay inside them', async () => {
    const RLO = '\u202e';
    const renamed = await server.api('PUT', '/api/people/giulia.bianchi', {
      person: 'david.coordinator',
      body: {
        name: `Giulia${RLO}IHCNAIB`,
        role: 'head',
        region: 'tuscany',
        school: 'Istituto Leonardo',
        time_zone: 'Europe/Rome',
      },
    });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    await seedMessages(browser, server, 'giulia.bianchi', 'trio-2', [`invoice${RLO}gnp.exe`]);
    const lars = await open('lars.nielsen');
    const giuliaContext = await browser.newContext();
    const giuliaPage = await giuliaContext.newPage();
    await giuliaPage.goto(await server.signInLink('giulia.bianchi'));
    await giuliaPage.waitForFunction(() => /** @type {any} */ (window).triad?.status === 'live');
    const body = lars.page.locator('#message-list .message .body', { hasText: 'invoice' });
    await body.waitFor();

    // Plain text that holds what someone typed (tooltips, the page's title) isolates it.
    const FSI = '\u2068';
    const PDI = '\u2069';
    const tooltip = await lars.page
      .locator('#room-people [data-person="giulia.bianchi"]')
      .getAttribute('title');
    assert.equal(tooltip?.split(':')[0], `${FSI}Giulia${RLO}IHCNAIB${PDI}`, `${tooltip}`);
    const title = await lars.page.title();
    assert.ok(title.startsWith(FSI) && title.endsWith(`${PDI} · Triad`), title);

    // Every element that holds what someone typed is isolated.
    for (const [selector, what] of [
      ['#message-list .message .body', 'a message'],
      ['#message-list .message .author', 'an author'],
      ['#room-people [data-person="giulia.bianchi"] bdi', 'a name in the people list'],
      ['.room-entry .room-name', 'a room title'],
      ['#room-title', 'the open room title'],
    ]) {
      const style = await lars.page
        .locator(selector)
        .first()
        .evaluate((el) => ({ bidi: getComputedStyle(el).unicodeBidi, tag: el.tagName, dir: el.dir }));
      assert.equal(style.bidi, 'isolate', `${what} is isolated (${JSON.stringify(style)})`);
      assert.ok(style.tag === 'BDI' || style.dir === 'auto', `${what}: ${JSON.stringify(style)}`);
    }

    // The text after a name is not turned around: "is typing…" follows her name, to its
    // right, as written.
    await giuliaPage.locator('#composer-input').pressSequentially('Hello');
    const typing = lars.page.locator('#typing');
    await typing.filter({ hasText: 'is typing' }).waitFor();
    const layout = await typing.evaluate((line) => {
      const name = /** @type {HTMLElement} */ (line.querySelector('bdi'));
      const after = /** @type {Text} */ (name.nextSibling);
      const range = document.createRange();
      range.selectNodeContents(after);
      return {
        tag: name.tagName,
        nameRight: name.getBoundingClientRect().right,
        afterLeft: range.getBoundingClientRect().left,
        after: after.textContent,
      };
    });
    assert.equal(layout.tag, 'BDI');
    assert.equal(layout.after, ' is typing…');
    assert.ok(
      layout.afterLeft >= layout.nameRight - 1,
      `the words after the name stay after it: ${JSON.stringify(layout)}`,
    );
    await lars.page.screenshot({ path: join(await screenshotDir(), 'page-bidi.png') });
    assert.ok((await lars.page.locator('#signed-in-as').innerText()).includes(NAMES['lars.nielsen']));
    await Promise.all([lars.context.close(), giuliaContext.close()]);
  });
});
