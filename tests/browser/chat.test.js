// The web client's chat in headless Chromium, against a real server: three heads chatting,
// one of them going offline and catching up; a moderator joining a trio; history paging;
// screenshots at a laptop and a phone size.
//
// Every wait is for a condition in the page, with a timeout; nothing sleeps and hopes.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { NAMES, Server, launchBrowser, openAs, screenshotDir, seedMessages } from './harness.js';

/** @typedef {Awaited<ReturnType<typeof openAs>>} Person */

const TRIO_1 = 'Trio 1: Assessment for learning';
const TRIO_2 = 'Trio 2: Leading through change';

/** @type {Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Person[]} */
const opened = [];

/**
 * Opens the app as a person and remembers the page, so its errors are checked at the end.
 * @param {string} person
 * @param {{width: number, height: number}} [viewport]
 */
async function open(person, viewport) {
  const who = await openAs(browser, server, person, viewport);
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
 * The stored messages with this body in the page's list.
 * @param {Person} who
 * @param {string} body
 */
function messages(who, body) {
  return who.page.locator('#message-list .message').filter({
    has: who.page.locator('.body', { hasText: body }),
  });
}

/**
 * Waits until the page shows the message once, by `author`.
 * @param {Person} who
 * @param {string} body
 * @param {string} author a person id
 */
async function sees(who, body, author) {
  const item = messages(who, body);
  await item.first().waitFor();
  assert.equal(await item.count(), 1, `${who.person} sees "${body}" once`);
  assert.equal(await item.locator('.author').textContent(), NAMES[author]);
}

/**
 * A person's entry in the open room's people list, with a presence.
 * @param {Person} who
 * @param {string} person
 * @param {string} status
 */
function presence(who, person, status) {
  return who.page.locator(`#room-people [data-person="${person}"][data-status="${status}"]`);
}

/** @param {Person} who */
function roomEntry(who, /** @type {string} */ room) {
  return who.page.locator(`.room-entry[data-room="${room}"]`);
}

describe('the web client', { timeout: 120_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([Server.start(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    for (const who of opened) {
      // Reconnect attempts while a page is offline are expected to fail.
      const errors = who.errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
      assert.deepEqual(errors, [], `errors in ${who.person}'s page`);
    }
  });

  test('three heads chat, see typing and presence, and one catches up after going offline', async () => {
    const [anna, marco, rhian] = await Promise.all(
      ['anna.jensen', 'marco.rossi', 'rhian.evans'].map((p) => open(p)),
    );
    const everyone = [anna, marco, rhian];
    for (const who of everyone) {
      await who.page.locator('#room-title', { hasText: TRIO_1 }).waitFor();
      for (const other of everyone) {
        if (other !== who) await presence(who, other.person, 'online').waitFor();
      }
    }
    await roomEntry(anna, 'trio-1')
      .locator('.avatar[data-person="rhian.evans"][data-status="online"]')
      .waitFor();

    const conversation = [
      [anna, 'Good morning both! Shall we look at the attendance data on Thursday?'],
      [marco, 'Buongiorno! Thursday works for me. I will bring our numbers from the autumn term.'],
      [rhian, 'Bore da! Thursday is good. Could we also talk about exit tickets?'],
    ];
    for (const [who, body] of /** @type {[Person, string][]} */ (conversation)) {
      await say(who, body);
      for (const reader of everyone) await sees(reader, body, who.person);
    }

    // Typing: shown to the others, gone when the message is sent.
    await marco.page.locator('#composer-input').click();
    await marco.page.keyboard.type('Exit tickets work well for us');
    for (const reader of [anna, rhian]) {
      await reader.page.locator('#typing', { hasText: 'Marco is typing…' }).waitFor();
    }
    await marco.page.keyboard.press('Enter');
    for (const reader of [anna, rhian]) {
      await sees(reader, 'Exit tickets work well for us', 'marco.rossi');
      await reader.page.locator('#typing:empty').waitFor();
    }

    // Rhian's network goes away: the page says it is reconnecting.
    await rhian.context.setOffline(true);
    const banner = rhian.page.getByRole('status').getByText('Reconnecting…');
    await banner.waitFor();
    const missed = [
      [anna, 'Rhian, I will send you the notes from today.'],
      [marco, 'Here is our attendance sheet, by year group.'],
      [anna, 'Thank you Marco, that is really helpful.'],
    ];
    for (const [who, body] of /** @type {[Person, string][]} */ (missed)) await say(who, body);
    for (const [, body] of missed)
      assert.equal(await messages(rhian, /** @type {string} */ (body)).count(), 0);
    assert.ok(await banner.isVisible(), 'the banner stays while offline');
    // What she writes meanwhile waits, marked as not sent yet.
    const offline = 'I wrote this on the train, without a signal.';
    await rhian.page.locator('#composer-input').fill(offline);
    await rhian.page.locator('#composer-input').press('Enter');
    await rhian.page
      .locator('#outgoing-list .message[data-state="retrying"] .body', { hasText: offline })
      .waitFor();

    // Back online: the banner goes, and every missed message shows exactly once, in order.
    await rhian.context.setOffline(false);
    await banner.waitFor({ state: 'detached' });
    for (const [who, body] of /** @type {[Person, string][]} */ (missed)) {
      await sees(rhian, body, who.person);
    }
    for (const [, body] of conversation)
      assert.equal(await messages(rhian, /** @type {string} */ (body)).count(), 1);
    // Her waiting message went out once the connection was back, and was stored once.
    for (const reader of everyone) await sees(reader, offline, 'rhian.evans');
    await rhian.page.locator('#outgoing-list .message').waitFor({ state: 'detached' });
    const order = (/** @type {Person} */ who) =>
      who.page
        .locator('#message-list .message')
        .evaluateAll((items) =>
          items.map(
            (i) =>
              `${/** @type {HTMLElement} */ (i).dataset.seq} ${i.querySelector('.body')?.textContent}`,
          ),
        );
    assert.deepEqual(await order(rhian), await order(anna));

    // And her connection works: she is heard.
    await say(rhian, 'Thank you both, I am back.');
    await sees(anna, 'Thank you both, I am back.', 'rhian.evans');
    await presence(anna, 'rhian.evans', 'online').waitFor();
    // The open room is read: no unread count left.
    await roomEntry(anna, 'trio-1').and(anna.page.locator('[data-unread="0"]')).waitFor();

    await Promise.all(everyone.map((who) => who.context.close()));
  });

  test('a moderator sees every trio, joins one, and is seen', async () => {
    await seedMessages(browser, server, 'lars.nielsen', 'trio-2', [
      'Has anyone tried instructional rounds?',
      'We start in January.',
    ]);
    const [anna, marco] = await Promise.all(['anna.jensen', 'marco.rossi'].map((p) => open(p)));
    const sara = await open('sara.moderator');

    // Both trios, with unread counts, and a Join button each.
    const trio1 = roomEntry(sara, 'trio-1');
    const trio2 = roomEntry(sara, 'trio-2');
    await trio1.locator('.room-name', { hasText: TRIO_1 }).waitFor();
    await trio2.locator('.room-name', { hasText: TRIO_2 }).waitFor();
    assert.ok(Number(await trio1.getAttribute('data-unread')) >= 1);
    assert.equal(await trio2.getAttribute('data-unread'), '2');
    assert.match(await trio2.locator('.room-unread').innerText(), /^2\b/);
    await trio1.getByRole('button', { name: `Join ${TRIO_1}` }).waitFor();
    await trio2.getByRole('button', { name: `Join ${TRIO_2}` }).waitFor();
    // Who is online in each trio, at a glance.
    await trio1.locator('.avatar[data-person="anna.jensen"][data-status="online"]').waitFor();
    await trio2.locator('.avatar[data-person="lars.nielsen"][data-status="offline"]').waitFor();

    await trio1.getByRole('button', { name: `Join ${TRIO_1}` }).click();
    await sara.page.locator('#room-title', { hasText: TRIO_1 }).waitFor();
    await sara.page.locator('#message-list .system', { hasText: 'Sara Lind joined' }).waitFor();
    await trio1.getByRole('button', { name: `Join ${TRIO_1}` }).waitFor({ state: 'hidden' });
    await trio2.getByRole('button', { name: `Join ${TRIO_2}` }).waitFor();
    for (const head of [anna, marco]) {
      await head.page.locator('#message-list .system', { hasText: 'Sara Lind joined' }).waitFor();
      await presence(head, 'sara.moderator', 'online').waitFor();
    }

    await say(sara, 'Hello trio 1! I will mostly listen, and help you plan Thursday.');
    for (const head of [anna, marco]) {
      await sees(
        head,
        'Hello trio 1! I will mostly listen, and help you plan Thursday.',
        'sara.moderator',
      );
    }
    await Promise.all([anna, marco, sara].map((who) => who.context.close()));
  });

  test('history loads the newest page first and older pages on scrolling up', async () => {
    const bodies = Array.from(
      { length: 120 },
      (_, i) => `History message ${String(i + 1).padStart(3, '0')}`,
    );
    await seedMessages(browser, server, 'giulia.bianchi', 'trio-2', bodies);
    const owen = await open('owen.price');
    await owen.page.locator('#room-title', { hasText: TRIO_2 }).waitFor();
    const list = owen.page.locator('#message-list .message .body');
    await owen.page.locator('#message-list .body', { hasText: 'History message 120' }).waitFor();
    const firstPage = await list.allTextContents();
    assert.ok(
      firstPage.length >= 50 && firstPage.length < 120,
      `a page, not everything (${firstPage.length})`,
    );
    assert.equal(await messages(owen, 'History message 001').count(), 0);

    // Scroll up until the first message is there.
    const scroller = owen.page.locator('#messages');
    const top = owen.page.locator('#history-top', { hasText: 'This is the beginning' });
    for (let pages = 0; !(await top.isVisible()); pages++) {
      assert.ok(pages < 10, 'the beginning is reached within a few pages');
      const before = await list.count();
      await scroller.hover();
      await owen.page.mouse.wheel(0, -20_000);
      await owen.page.waitForFunction(
        ([selector, count]) =>
          document.querySelectorAll(String(selector)).length > Number(count) ||
          /beginning/.test(document.getElementById('history-top')?.textContent ?? ''),
        ['#message-list .message .body', before],
      );
    }
    const all = await list.allTextContents();
    const seeded = all.filter((b) => b.startsWith('History message'));
    assert.deepEqual(seeded, bodies, 'every message once, in order');
    await owen.context.close();
  });

  test('the sign-in link is taken from the address bar and kept for the tab; a bad one is refused', async () => {
    const anna = await open('anna.jensen');
    assert.equal(new URL(anna.page.url()).hash, '', 'the token is gone from the address bar');
    await anna.page.reload();
    await anna.page.locator('#signed-in-as', { hasText: 'Anna Jensen' }).waitFor();
    await anna.context.close();

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/#token=not-a-token`);
    await page.locator('#signed-out', { hasText: 'Your sign-in link is not valid.' }).waitFor();
    assert.equal(await page.evaluate(() => window.sessionStorage.length), 0);
    await page.goto(`${server.url}/`);
    await page
      .locator('#signed-out', { hasText: 'Open the sign-in link the coordinator sent you.' })
      .waitFor();
    await context.close();
  });

  test('each room event is taken once and in order, and a gap is filled from history', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/`);
    const taken = await page.evaluate(async () => {
      const { RoomBook } = await import('/app/rooms.js');
      /** @param {number} seq */
      const event = (seq) => ({
        room: 'trio-1',
        seq,
        ts: 1_763_900_000_000 + seq,
        author: 'marco.rossi',
        kind: /** @type {const} */ ('message'),
        client_msg_id: `m-${seq}`,
        body: `message ${seq}`,
      });
      /** @type {number[]} */
      const asked = [];
      const book = new RoomBook(async (room, after) => {
        asked.push(after);
        return { room, epoch: 7, has_more: false, events: [after + 1, after + 2].map(event) };
      });
      /** @type {number[]} */
      const seen = [];
      book.listen((change) => {
        if (change.type === 'events') seen.push(...change.events.map((e) => e.seq));
      });
      const limits = {
        max_frame_bytes: 131072,
        max_body_bytes: 16384,
        max_page_size: 200,
        send_rate_per_second: 5,
        send_burst: 30,
        typing_ttl_secs: 6,
      };
      const person = {
        id: 'anna.jensen',
        name: 'Anna Jensen',
        role: /** @type {const} */ ('head'),
        region: 'vejle',
        school: 'Rosenvang Skole',
        time_zone: 'Europe/Copenhagen',
      };
      const info = {
        id: 'trio-1',
        kind: /** @type {const} */ ('trio'),
        title: 'Trio 1',
        epoch: 7,
        last_seq: 0,
        read_seq: 0,
        unread: 0,
        joined: true,
        members: [],
      };
      book.welcome({ protocol: 'triad.v1', session: 's1', person, rooms: [info], limits, token_expires_at: 0 });
      book.push(event(1));
      book.push(event(1)); // a duplicate
      book.push(event(4)); // beyond a gap: 2 and 3 come from history
      await new Promise((done) => setTimeout(done, 0));
      book.push(event(3)); // already taken
      book.push(event(5));
      const room = book.rooms.get('trio-1');
      return { seen, asked, seq: room?.seq, resume: book.resumePoints() };
    });
    assert.deepEqual(taken.seen, [1, 2, 3, 4, 5]);
    assert.deepEqual(taken.asked, [1]);
    assert.equal(taken.seq, 5);
    assert.deepEqual(taken.resume, [{ room: 'trio-1', epoch: 7, seq: 5 }]);
    await context.close();
  });

  test('screenshots at a laptop and a phone size', async () => {
    const dir = await screenshotDir();
    const [anna, rhian, marco] = await Promise.all([
      open('anna.jensen', { width: 1366, height: 768 }),
      open('rhian.evans', { width: 390, height: 844 }),
      open('marco.rossi'),
    ]);
    for (const who of [anna, rhian]) {
      await who.page.locator('#message-list .message').first().waitFor();
      await presence(who, 'marco.rossi', 'online').waitFor();
    }
    await marco.page.locator('#composer-input').click();
    await marco.page.keyboard.type('Shall we');
    for (const who of [anna, rhian]) {
      await who.page.locator('#typing', { hasText: 'Marco is typing…' }).waitFor();
    }
    // The open room is read by now.
    await roomEntry(anna, 'trio-1').and(anna.page.locator('[data-unread="0"]')).waitFor();
    await anna.page.screenshot({ path: join(dir, 'chat-laptop.png') });
    // The rooms list is folded into a menu on a phone.
    assert.equal(await rhian.page.locator('#rooms').isVisible(), false);
    await rhian.page.screenshot({ path: join(dir, 'chat-narrow.png') });
    await rhian.page.getByRole('button', { name: /Rooms/ }).click();
    await rhian.page.locator('#rooms').waitFor();
    await rhian.page.screenshot({ path: join(dir, 'chat-narrow-rooms.png') });
    await Promise.all([marco, anna, rhian].map((who) => who.context.close()));
  });
});
