// Signing in by invitation, coaching sessions and key learning in headless Chromium, against
// a real server: an invitation link works once and its access is renewed before it expires;
// a session booked in Rome shows at 16:00 in Rome and 15:00 in London, is cancelled live,
// reminds, starts and leads into the call; booking from the page; the calendar feed; a
// pinned message in the others' key learning; withdrawn access; a screenshot.
//
// Every wait is for a condition in the page, with a timeout; nothing sleeps and hopes.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { NAMES, Server, launchBrowser, openAs, screenshotDir } from './harness.js';

/** @typedef {Awaited<ReturnType<typeof openAs>>} Person */

/** Access tokens from an invitation last this long here, so the renewal is seen. */
const ACCESS_TTL_SECS = 20;

/** @type {Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Person[]} */
const opened = [];

/**
 * Opens the app as a person, in a time zone, and remembers the page for the error check.
 * @param {string} person
 * @param {{link?: string, timezoneId?: string}} [options]
 */
async function open(person, { link, timezoneId = 'Europe/Copenhagen' } = {}) {
  const who = await openAs(browser, server, person, undefined, {
    link,
    timezoneId,
    locale: 'en-GB',
  });
  opened.push(who);
  return who;
}

/**
 * Types a message in the open room and sends it with Enter.
 * @param {Person} who
 * @param {string} body
 */
async function say(who, body) {
  const input = who.page.locator('#composer-input');
  await input.fill(body);
  await input.press('Enter');
  await who.page
    .locator('#message-list .message.mine[data-state="sent"] .body', { hasText: body })
    .waitFor();
}

/**
 * The open room's entry for a coaching session.
 * @param {Person} who
 * @param {string} id
 */
function session(who, id) {
  return who.page.locator(`#session-list .session[data-id="${id}"]`);
}

/**
 * The time of day of `ts` in a zone, as a page in that zone shows it (en-GB).
 * @param {number} ts
 * @param {string} timeZone
 */
function clock(ts, timeZone) {
  return new Intl.DateTimeFormat('en-GB', { hour: 'numeric', minute: '2-digit', timeZone }).format(
    ts,
  );
}

/** A calendar day some days from now, `YYYY-MM-DD`. @param {number} days */
function dayAhead(days) {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

describe('sign-in by invitation, coaching sessions and key learning', { timeout: 150_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([
      Server.start({
        invitations: ['anna.jensen'],
        args: [
          '--access-ttl-secs',
          String(ACCESS_TTL_SECS),
          // The server ends a session whose token is not refreshed at its expiry plus this.
          '--jwt-leeway-secs',
          '1',
          '--reminder-interval-ms',
          '250',
        ],
      }),
      launchBrowser(),
    ]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    for (const who of opened) {
      const errors = who.errors.filter(
        (e) =>
          // Refusals the page shows to the person (a used link, a booking in the past), and
          // the reconnect after withdrawn access, are expected.
          !/Failed to load resource: the server responded with a status of 4\d\d/.test(e) &&
          !/WebSocket connection to .* failed/.test(e),
      );
      assert.deepEqual(errors, [], `errors in ${who.person}'s page`);
    }
  });

  test('an invitation link signs in once, and the access is renewed before it expires', async () => {
    const code = server.invitations['anna.jensen'];
    const link = `${server.url}/#invite=${code}`;
    const anna = await open('anna.jensen', { link });
    await anna.page.locator('#room-title', { hasText: 'Trio 1' }).waitFor();
    assert.equal(new URL(anna.page.url()).hash, '', 'the code is gone from the address bar');
    await anna.page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    const first = await anna.page.evaluate(() => /** @type {any} */ (window).triad.accessToken);
    const signedInAt = Date.now();

    // The same link again, in another browser: refused, with what to do.
    const other = await browser.newContext();
    const page = await other.newPage();
    await page.goto(link);
    await page
      .locator('#signed-out', {
        hasText: 'This link was already used — ask the coordinator for a new one.',
      })
      .waitFor();
    assert.equal(await page.evaluate(() => window.sessionStorage.length), 0);
    await other.close();

    // Before the access token expires the page gets a new one, and the open connection
    // takes it: it is still live, and heard, after the first token's expiry.
    await anna.page.waitForFunction(
      (old) => {
        const token = /** @type {any} */ (window).triad.accessToken;
        return token && token !== old;
      },
      first,
      { timeout: ACCESS_TTL_SECS * 1000 },
    );
    const pastExpiry = signedInAt + (ACCESS_TTL_SECS + 1) * 1000 + 2_000 - Date.now();
    if (pastExpiry > 0) await anna.page.waitForTimeout(pastExpiry);
    const state = await anna.page.evaluate(() => {
      const triad = /** @type {any} */ (window).triad;
      return { status: triad.status, welcomes: triad.welcomes };
    });
    assert.deepEqual(state, { status: 'live', welcomes: 1 }, 'the first connection goes on');
    await say(anna, 'Still here after the first token expired.');

    // A reload keeps the sign-in (from the refresh cookie).
    await anna.page.reload();
    await anna.page.locator('#signed-in-as', { hasText: NAMES['anna.jensen'] }).waitFor();
    await anna.context.close();
  });

  test('a session shows in each viewer\'s time zone, is cancelled live, reminds and starts', async () => {
    const anna = await open('anna.jensen', { timezoneId: 'Europe/Rome' });
    const rhian = await open('rhian.evans', { timezoneId: 'Europe/London' });
    for (const who of [anna, rhian]) {
      await who.page.locator('#room-title', { hasText: 'Trio 1' }).waitFor();
      await who.page.locator('#session-empty').waitFor();
    }

    // The moderator books it at 16:00 in Rome.
    const booked = await server.api('POST', '/api/coachings', {
      person: 'sara.moderator',
      body: {
        room: 'trio-1',
        title: 'Feedback that moves learning',
        agenda: 'Bring two examples of written feedback.',
        start: `${dayAhead(3)}T16:00`,
        duration_min: 60,
        time_zone: 'Europe/Rome',
      },
    });
    assert.equal(booked.status, 201, JSON.stringify(booked.body));
    const id = booked.body.id;
    for (const [who, shown, not] of /** @type {[Person, string, string][]} */ ([
      [anna, '16:00', '15:00'],
      [rhian, '15:00', '16:00'],
    ])) {
      const start = session(who, id).locator('.session-start');
      await start.filter({ hasText: shown }).waitFor();
      assert.ok(!(await start.innerText()).includes(not), `${who.person} sees ${shown}`);
      assert.match(await session(who, id).innerText(), /Feedback that moves learning[\s\S]*60 min/);
      await who.page.locator('#announcer', { hasText: 'Feedback that moves learning' }).waitFor();
    }

    const cancelled = await server.api('POST', `/api/coachings/${id}/cancel`, {
      person: 'sara.moderator',
    });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    for (const who of [anna, rhian]) {
      await session(who, id)
        .and(who.page.locator('[data-status="cancelled"]'))
        .locator('.session-state', { hasText: 'Cancelled' })
        .waitFor();
    }

    // A session a few seconds away: the ten-minute reminder, then the way into its call.
    const soon = Date.now() + 5_000;
    const quick = await server.api('POST', '/api/coachings', {
      person: 'sara.moderator',
      body: {
        room: 'trio-1',
        title: 'Quick check-in',
        start: new Date(soon).toISOString(),
        duration_min: 15,
        time_zone: 'Europe/Copenhagen',
      },
    });
    assert.equal(quick.status, 201, JSON.stringify(quick.body));
    const start = quick.body.start;
    for (const [who, zone] of /** @type {[Person, string][]} */ ([
      [anna, 'Europe/Rome'],
      [rhian, 'Europe/London'],
    ])) {
      const text = `Coaching session “Quick check-in” starts at ${clock(start, zone)}`;
      await who.page.locator('#coaching-notices .coaching-notice', { hasText: text }).waitFor();
      await who.page.locator('#announcer', { hasText: text }).waitFor();
    }
    const join = anna.page
      .locator('#coaching-notices')
      .getByRole('button', { name: 'Join the session call' });
    await join.waitFor({ timeout: 20_000 });
    await anna.page
      .locator('#coaching-notices', { hasText: 'Coaching session “Quick check-in” has started' })
      .waitFor();
    await join.click();
    await anna.page.locator('#call .call-leave:not([hidden])').waitFor();
    await rhian.page.locator('#call-button', { hasText: 'Join call (1)' }).waitFor();
    await session(rhian, quick.body.id)
      .getByRole('button', { name: 'Join the session call' })
      .waitFor();
    await anna.page.locator('#call .call-leave').click();
    await anna.page.locator('#call-button', { hasText: 'Start call' }).waitFor();

    // Rhian books one from the page, in her own zone: first in the past (refused, and
    // told why), then for real.
    await rhian.page.getByRole('button', { name: 'Book a session' }).click();
    const form = rhian.page.getByRole('form', { name: 'Book a coaching session' });
    await form.getByLabel('Title').fill('Exit tickets, a term on');
    await form.getByLabel('Starts').fill('2020-01-06T10:00');
    await form.getByLabel('Duration').selectOption('45');
    await form.getByRole('button', { name: 'Book' }).click();
    await form
      .getByRole('alert')
      .filter({ hasText: 'Not booked: that time has already passed.' })
      .waitFor();
    await form.getByLabel('Starts').fill(`${dayAhead(4)}T10:00`);
    await form.getByRole('button', { name: 'Book' }).click();
    await form.waitFor({ state: 'hidden' });
    for (const [who, shown] of /** @type {[Person, string][]} */ ([
      [rhian, '10:00'],
      [anna, '11:00'],
    ])) {
      await who.page
        .locator('#session-list .session', { hasText: 'Exit tickets, a term on' })
        .locator('.session-start', { hasText: shown })
        .waitFor();
    }
    await rhian.page
      .locator('#session-list .session', { hasText: 'Exit tickets, a term on' })
      .filter({ hasText: '45 min' })
      .waitFor();

    // The calendar feed: a private address that serves the person's sessions.
    await anna.page.getByRole('button', { name: 'Calendar feed' }).click();
    const address = anna.page.getByLabel('Your calendar feed address');
    await address.waitFor();
    const url = await address.inputValue();
    assert.match(url, /^http:\/\/.+\/calendar\/.+\.ics$/);
    const feed = await fetch(url);
    assert.equal(feed.status, 200);
    const ics = await feed.text();
    assert.match(ics, /BEGIN:VCALENDAR/);
    assert.match(ics, /SUMMARY:Exit tickets\\, a term on/);

    await Promise.all([anna, rhian].map((who) => who.context.close()));
  });

  test('a pinned message shows in the others\' key learning', async () => {
    const [anna, marco] = await Promise.all(['anna.jensen', 'marco.rossi'].map((p) => open(p)));
    for (const who of [anna, marco]) {
      await who.page.locator('#room-title', { hasText: 'Trio 1' }).waitFor();
      await who.page.locator('#pin-empty').waitFor();
    }
    const body = 'Exit tickets: three questions, two minutes, at the end of every lesson.';
    await say(anna, body);
    const message = (/** @type {Person} */ who) =>
      who.page.locator('#message-list .message').filter({
        has: who.page.locator('.body', { hasText: body }),
      });
    await message(marco).waitFor();

    const toggle = message(anna).getByRole('button', { name: 'Pin as key learning' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    await message(anna).hover();
    await toggle.click();
    for (const who of [anna, marco]) {
      const pin = who.page.locator('#pin-list .pin', { hasText: body });
      await pin.waitFor();
      await pin.filter({ hasText: `Pinned by ${NAMES['anna.jensen']}` }).waitFor();
      await message(who)
        .locator('.pin-toggle[aria-pressed="true"]')
        .waitFor();
    }

    const dir = await screenshotDir();
    await anna.page.screenshot({ path: join(dir, 'sessions-laptop.png') });

    // Marco takes it away from the list; it goes for Anna too.
    await marco.page.locator('#pin-list').getByRole('button', { name: /^Unpin/ }).click();
    await anna.page.locator('#pin-list .pin').waitFor({ state: 'detached' });
    await anna.page.locator('#pin-empty').waitFor();
    await message(anna).locator('.pin-toggle[aria-pressed="false"]').waitFor();
    await Promise.all([anna, marco].map((who) => who.context.close()));
  });

  test('withdrawn access ends the session and does not reconnect', async () => {
    const owen = await open('owen.price');
    await owen.page.locator('#room-title', { hasText: 'Trio 2' }).waitFor();
    const revoked = await server.api('POST', '/api/people/owen.price/revoke', {
      person: 'david.coordinator',
    });
    assert.equal(revoked.status, 204, JSON.stringify(revoked.body));
    await owen.page.locator('#signed-out', { hasText: 'Your access was withdrawn' }).waitFor();
    await owen.page.waitForTimeout(1_500);
    assert.equal(await owen.page.evaluate(() => /** @type {any} */ (window).triad.status), 'ended');
    assert.equal(await owen.page.locator('#connection-status').innerText(), '');
    await owen.context.close();
  });
});
