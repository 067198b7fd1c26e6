// Staying signed in, against a real server and headless Chromium: an invitation redeemed
// once keeps the browser signed in (the refresh token in an HttpOnly cookie) across new tabs
// and a browser closed and opened again after the access token expired; "Sign out
// everywhere" and a revocation by the coordinator sign out every page of the person; the
// cookie endpoints refuse requests without the CSRF header or from another origin, while the
// JSON body API goes on working for programs; `#room=` links open the room.
//
// Every wait is for a condition in the page or on the server, with a timeout.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { NAMES, Server, launchBrowser, launchPersistent, screenshotDir } from './harness.js';

/** Access tokens last this long here, so a reopened browser finds its token expired. */
const ACCESS_TTL_SECS = 3;
/** The server's clock leeway for `exp`. */
const LEEWAY_SECS = 1;

/** @type {Server} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** Profile folders to remove at the end. @type {string[]} */
const profiles = [];
/** Browsers with a profile, closed at the end if a test left them open. @type {import('playwright-core').BrowserContext[]} */
const laptops = [];
/** Errors of every page, checked at the end. @type {string[]} */
const errors = [];

/**
 * @param {import('playwright-core').Page} page
 * @param {RegExp} [expected] console errors this test causes on purpose
 */
function watch(page, expected) {
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (message) => {
    const text = message.text();
    // Refusals the page handles (no cookie yet, a refused cookie) and a socket closed by the
    // server are expected.
    if (
      message.type() === 'error' &&
      !/Failed to load resource: the server responded with a status of 4\d\d/.test(text) &&
      !/WebSocket connection to .* failed/.test(text) &&
      !expected?.test(text)
    ) {
      errors.push(text);
    }
  });
  return page;
}

/**
 * A new single-use invitation for a person, made by the coordinator.
 * @param {string} person
 */
async function invite(person) {
  const made = await server.api('POST', '/api/invitations', {
    person: 'david.coordinator',
    body: { person },
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  return `${server.url}/#invite=${made.body.code}`;
}

/**
 * Waits until the page is signed in as `person` and live.
 * @param {import('playwright-core').Page} page
 * @param {string} person
 */
async function signedIn(page, person) {
  await page.locator('#signed-in-as', { hasText: NAMES[person] }).waitFor({ state: 'attached' });
  await page.waitForFunction(() => /** @type {any} */ (window).triad?.status === 'live');
}

/** @param {import('playwright-core').Page} page */
function accessToken(page) {
  return page.evaluate(() => /** @type {string} */ (/** @type {any} */ (window).triad.accessToken));
}

/**
 * The API's answer to a bearer token.
 * @param {string} token
 */
async function programmeWith(token) {
  const response = await fetch(`${server.url}/api/me/preferences`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A new profile folder, as a laptop's browser has. */
async function profile() {
  const dir = await mkdtemp(join(tmpdir(), 'triad-profile-'));
  profiles.push(dir);
  return dir;
}

/**
 * The `Set-Cookie` of an answer, parsed: the value and the attributes (lower case).
 * @param {Response} response
 */
function setCookie(response) {
  const header = response.headers.get('set-cookie');
  assert.ok(header, 'the answer sets the cookie');
  const [pair, ...attributes] = header.split(';').map((p) => p.trim());
  const [name, value] = pair.split('=');
  return { name, value, attributes: attributes.map((a) => a.toLowerCase()) };
}

describe('staying signed in', { timeout: 180_000 }, () => {
  before(async () => {
    [server, browser] = await Promise.all([
      Server.start({
        invitations: ['anna.jensen'],
        args: [
          '--access-ttl-secs',
          String(ACCESS_TTL_SECS),
          '--jwt-leeway-secs',
          String(LEEWAY_SECS),
        ],
      }),
      launchBrowser(),
    ]);
  });

  after(async () => {
    for (const laptop of laptops) await laptop.close().catch(() => {});
    await browser?.close();
    await server?.stop();
    for (const dir of profiles) await rm(dir, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'errors in the pages');
  });

  test('an invited head stays signed in after the browser is closed, until she signs out everywhere', async () => {
    const dir = await profile();
    const link = `${server.url}/#invite=${server.invitations['anna.jensen']}`;

    // Monday: Anna opens her invitation.
    let laptop = await launchPersistent(dir, { timezoneId: 'Europe/Copenhagen' });
    laptops.push(laptop);
    let page = watch(laptop.pages()[0] ?? (await laptop.newPage()));
    await page.goto(link);
    await signedIn(page, 'anna.jensen');
    assert.equal(new URL(page.url()).hash, '', 'the code is gone from the address bar');
    const first = await accessToken(page);

    // The refresh token is in a cookie that script cannot read, sent to /api/auth only.
    const [cookie] = (await laptop.cookies()).filter((c) => c.name === 'triad_refresh');
    assert.ok(cookie, 'the refresh cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/api/auth');
    assert.ok(cookie.expires > Date.now() / 1000 + 86_400, 'it outlives the browser session');
    assert.equal(await page.evaluate(() => document.cookie), '');
    const stored = await page.evaluate(() =>
      JSON.stringify({ ...sessionStorage, ...localStorage }),
    );
    assert.ok(!stored.includes(cookie.value), 'the refresh token is not in storage');
    assert.ok(!stored.includes(first), 'the access token is not in storage');

    // A new tab is signed in too, from the cookie, and opens the room of a #room= link.
    const tab = watch(await laptop.newPage());
    await tab.goto(`${server.url}/#room=commons`);
    await signedIn(tab, 'anna.jensen');
    await tab.locator('#room-title', { hasText: 'Commons' }).waitFor();
    assert.equal(new URL(tab.url()).hash, '', 'the room link is taken from the address bar');
    // ...and a #room= link followed in the open page opens that room.
    await tab.evaluate(() => {
      window.location.hash = 'room=trio-1';
    });
    await tab.locator('#room-title', { hasText: 'Trio 1' }).waitFor();
    await tab.evaluate(() => {
      window.location.hash = 'room=commons';
    });
    await tab.locator('#room-title', { hasText: 'Commons' }).waitFor();

    // She closes the browser.
    await laptop.close();

    // "A day later": every access token she had has expired.
    await assert.doesNotReject(async () => {
      for (;;) {
        const answer = await programmeWith(first);
        if (answer.status === 401) {
          assert.equal(answer.body.code, 'token_expired');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    });

    // She opens the browser again, on Triad's address: still signed in, without the link.
    laptop = await launchPersistent(dir, { timezoneId: 'Europe/Copenhagen' });
    laptops.push(laptop);
    page = watch(laptop.pages()[0] ?? (await laptop.newPage()));
    await page.goto(`${server.url}/`);
    await signedIn(page, 'anna.jensen');
    const second = await accessToken(page);
    assert.notEqual(second, first, 'a new access token, from the cookie');
    assert.equal((await programmeWith(second)).status, 200);
    await page.getByRole('button', { name: 'Sign out everywhere' }).waitFor();
    const dir2 = await screenshotDir();
    await page.screenshot({ path: join(dir2, 'signin-reopened.png') });

    // The invitation link, opened again on this browser, does not sign her out: she is
    // signed in already.
    const again = watch(await laptop.newPage());
    await again.goto(link);
    await signedIn(again, 'anna.jensen');
    await again.close();

    // She is signed in on a second device too (a new invitation).
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const phonePage = watch(await phone.newPage());
    await phonePage.goto(await invite('anna.jensen'));
    await signedIn(phonePage, 'anna.jensen');
    const phoneToken = await accessToken(phonePage);

    // "Sign out everywhere" on the laptop: every page of hers, on both devices, is signed
    // out, and neither device can come back without a new invitation.
    await page.getByRole('button', { name: 'Sign out everywhere' }).click();
    for (const p of [page, phonePage]) {
      await p
        .locator('#signed-out', { hasText: 'You signed out on every device.' })
        .waitFor();
    }
    await page.screenshot({ path: join(dir2, 'signin-signed-out-everywhere.png') });
    await phonePage.screenshot({ path: join(dir2, 'signin-signed-out-phone.png') });
    assert.equal((await programmeWith(phoneToken)).status, 401, 'the phone token is void');
    assert.deepEqual(
      (await laptop.cookies()).filter((c) => c.name === 'triad_refresh'),
      [],
      'the laptop cookie is cleared',
    );
    for (const p of [page, phonePage]) {
      await p.goto(`${server.url}/`);
      await p.locator('#signed-out', { hasText: 'Open the sign-in link' }).waitFor();
    }
    await phonePage.screenshot({ path: join(dir2, 'signin-page-phone.png') });
    await phone.close();
    await laptop.close();
  });

  test('sign out signs this device out only', async () => {
    const laptop = await browser.newContext();
    const page = watch(await laptop.newPage());
    await page.goto(await invite('lars.nielsen'));
    await signedIn(page, 'lars.nielsen');
    const phone = await browser.newContext();
    const phonePage = watch(await phone.newPage());
    await phonePage.goto(await invite('lars.nielsen'));
    await signedIn(phonePage, 'lars.nielsen');

    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.locator('#signed-out', { hasText: 'You are signed out on this device.' }).waitFor();
    await page.reload();
    await page.locator('#signed-out', { hasText: 'Open the sign-in link' }).waitFor();
    // The other device goes on, and renews its access from its own cookie.
    await phonePage.reload();
    await signedIn(phonePage, 'lars.nielsen');
    await Promise.all([laptop.close(), phone.close()]);
  });

  test('a revocation by the coordinator signs out every device of the person', async () => {
    const dir = await profile();
    const laptop = await launchPersistent(dir);
    laptops.push(laptop);
    const page = watch(laptop.pages()[0] ?? (await laptop.newPage()));
    await page.goto(await invite('marco.rossi'));
    await signedIn(page, 'marco.rossi');
    const phone = await browser.newContext();
    const phonePage = watch(await phone.newPage());
    await phonePage.goto(await invite('marco.rossi'));
    await signedIn(phonePage, 'marco.rossi');

    const revoked = await server.api('POST', '/api/people/marco.rossi/revoke', {
      person: 'david.coordinator',
    });
    assert.equal(revoked.status, 204, JSON.stringify(revoked.body));
    for (const p of [page, phonePage]) {
      await p.locator('#signed-out', { hasText: 'Your access was withdrawn' }).waitFor();
    }
    // The cookie no longer signs in, on either device.
    for (const p of [page, phonePage]) {
      await p.goto(`${server.url}/`);
      await p.locator('#signed-out', { hasText: 'Open the sign-in link' }).waitFor();
    }
    await Promise.all([laptop.close(), phone.close()]);
  });

  test('the cookie endpoints refuse other origins and requests without the CSRF header; the JSON API goes on', async () => {
    const origin = server.url;
    const redeem = (/** @type {string} */ code, /** @type {Record<string, string>} */ headers) =>
      fetch(`${server.url}/api/auth/redeem`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ code }),
      });
    const code = new URL(await invite('rhian.evans')).hash.slice('#invite='.length);

    // Another site cannot redeem into the cookie (and the invitation is not used up).
    const foreign = await redeem(code, { 'X-Triad-CSRF': '1', Origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    assert.equal((await foreign.json()).code, 'forbidden');
    assert.equal(foreign.headers.get('set-cookie'), null);

    // The site itself can: the tokens without the refresh token, which is in the cookie.
    const signed = await redeem(code, { 'X-Triad-CSRF': '1', Origin: origin });
    assert.equal(signed.status, 200);
    const body = await signed.json();
    assert.equal(body.person, 'rhian.evans');
    assert.equal(body.refresh_token, undefined, 'no refresh token where script could read it');
    const cookie = setCookie(signed);
    assert.equal(cookie.name, 'triad_refresh');
    for (const attribute of ['path=/api/auth', 'httponly', 'samesite=strict']) {
      assert.ok(cookie.attributes.includes(attribute), `${attribute} in ${cookie.attributes}`);
    }
    assert.ok(
      !cookie.attributes.includes('secure'),
      'plain http on loopback (the demo): not Secure, or the browser would drop it',
    );

    const refresh = (/** @type {Record<string, string>} */ headers) =>
      fetch(`${server.url}/api/auth/refresh`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Cookie: `triad_refresh=${cookie.value}`,
          ...headers,
        },
        body: '{}',
      });
    for (const [headers, why] of /** @type {[Record<string, string>, string][]} */ ([
      [{ Origin: origin }, 'without the CSRF header'],
      [{ 'X-Triad-CSRF': '1', Origin: 'https://evil.example' }, 'from another origin'],
      [{ 'X-Triad-CSRF': '1', Origin: 'null' }, 'from an opaque origin'],
      [{ 'X-Triad-CSRF': '1' }, 'without an origin'],
    ])) {
      const refused = await refresh(headers);
      assert.equal(refused.status, 403, why);
      assert.equal((await refused.json()).code, 'forbidden', why);
      assert.equal(refused.headers.get('set-cookie'), null, why);
    }
    // The refusals did not use the cookie up: the site's own request rotates it.
    const renewed = await refresh({ 'X-Triad-CSRF': '1', Origin: origin });
    assert.equal(renewed.status, 200);
    assert.equal((await renewed.json()).refresh_token, undefined);
    const next = setCookie(renewed);
    assert.notEqual(next.value, cookie.value, 'the cookie is rotated');
    // Sign-out with the cookie needs the header too; then the cookie is cleared and dead.
    const noHeader = await fetch(`${server.url}/api/auth/sign-out`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: `triad_refresh=${next.value}`, Origin: origin },
      body: '{}',
    });
    assert.equal(noHeader.status, 403);
    const out = await fetch(`${server.url}/api/auth/sign-out`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Cookie: `triad_refresh=${next.value}`,
        Origin: origin,
        'X-Triad-CSRF': '1',
      },
      body: '{}',
    });
    assert.equal(out.status, 204);
    assert.ok(setCookie(out).attributes.includes('max-age=0'), 'the cookie is cleared');
    const dead = await refresh({ Cookie: `triad_refresh=${next.value}`, 'X-Triad-CSRF': '1', Origin: origin });
    assert.equal(dead.status, 401);
    assert.equal((await dead.json()).code, 'token_revoked');

    // Programs keep the JSON body API: tokens in the answer, no cookie.
    const json = await redeem(new URL(await invite('rhian.evans')).hash.slice('#invite='.length), {});
    assert.equal(json.status, 200);
    assert.equal(json.headers.get('set-cookie'), null);
    const tokens = await json.json();
    assert.equal(typeof tokens.refresh_token, 'string');
    const rotated = await fetch(`${server.url}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    });
    assert.equal(rotated.status, 200);
    const fresh = await rotated.json();
    assert.equal(typeof fresh.refresh_token, 'string');
    assert.notEqual(fresh.refresh_token, tokens.refresh_token);
  });

  test('a refresh whose answer was lost can be retried; presenting the lost answer revokes the person', async () => {
    const exchange = async (/** @type {string} */ token) => {
      const response = await fetch(`${server.url}/api/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: token }),
      });
      return { status: response.status, body: await response.json() };
    };
    const code = new URL(await invite('giulia.bianchi')).hash.slice('#invite='.length);
    const signed = await fetch(`${server.url}/api/auth/redeem`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    const a = (await signed.json()).refresh_token;
    // The answer to this exchange never reaches the client (the laptop closed, say)...
    const lost = await exchange(a);
    assert.equal(lost.status, 200);
    // ...so it tries again with the same token, moments later: new tokens, and the lost
    // ones are void.
    const retried = await exchange(a);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    const next = await exchange(retried.body.refresh_token);
    assert.equal(next.status, 200, 'the retried answer is the one that works');

    // The client that retried never had the lost answer: whoever presents it holds a copy,
    // and the person is revoked.
    const voided = await exchange(lost.body.refresh_token);
    assert.equal(voided.status, 401);
    assert.equal(voided.body.code, 'token_revoked');
    const after = await exchange(next.body.refresh_token);
    assert.equal(after.status, 401, 'every token of the person is void');
    assert.equal((await programmeWith(next.body.access_token)).status, 401);
  });

  test('a sign-out that fails says so and keeps the page signed in; one that works signs out the other tabs too', async () => {
    const laptop = await browser.newContext();
    // The sign-out calls made to fail here.
    const page = watch(await laptop.newPage(), /ERR_INTERNET_DISCONNECTED|status of 503/);
    await page.goto(await invite('owen.price'));
    await signedIn(page, 'owen.price');
    const other = watch(await laptop.newPage());
    await other.goto(server.url);
    await signedIn(other, 'owen.price');
    const signOut = page.getByRole('button', { name: 'Sign out', exact: true });

    // The network drops the call...
    await page.route('**/api/auth/sign-out', (route) => route.abort('internetdisconnected'));
    await signOut.click();
    await page.locator('#connection-status', { hasText: 'Not signed out: Triad could not be reached' }).waitFor();
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).triad.status), 'live');
    // ...or the server is busy.
    await page.unroute('**/api/auth/sign-out');
    await page.route('**/api/auth/sign-out', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ code: 'store_unavailable', message: 'the store is not answering' }),
      }),
    );
    await signOut.click();
    await page.locator('#connection-status', { hasText: 'Not signed out: Triad cannot save anything just now' }).waitFor();
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).triad.status), 'live');

    // Then it works: this tab and the other one are signed out, and the cookie is gone.
    await page.unroute('**/api/auth/sign-out');
    await signOut.click();
    await page.locator('#signed-out', { hasText: 'You are signed out on this device.' }).waitFor();
    await other.locator('#signed-out', { hasText: 'You are signed out on this device.' }).waitFor();
    await other.reload();
    await other.locator('#signed-out', { hasText: 'Open the sign-in link' }).waitFor();
    await laptop.close();
  });

  test('the access token is not on the page for other scripts, unless a test asks for it', async () => {
    // A context without the tests' flag, as every real browser is.
    const plain = await Object.getPrototypeOf(browser).newContext.call(browser);
    const page = watch(await plain.newPage());
    await page.goto(await invite('owen.price'));
    await signedIn(page, 'owen.price');
    assert.equal(await page.evaluate(() => 'accessToken' in /** @type {any} */ (window).triad), false);
    await plain.close();
  });

  test('without Web Locks the tabs still take turns with the refresh cookie', async () => {
    const laptop = await browser.newContext();
    await laptop.addInitScript(() => {
      // As in a browser without Web Locks.
      Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined });
    });
    const page = watch(await laptop.newPage());
    await page.goto(await invite('lars.nielsen'));
    await signedIn(page, 'lars.nielsen');
    // Three tabs load at once, each renewing from the one cookie: none of them presents a
    // token another one already used (which would sign the person out everywhere).
    const tabs = await Promise.all([1, 2, 3].map(async () => watch(await laptop.newPage())));
    await Promise.all(tabs.map((tab) => tab.goto(server.url)));
    await Promise.all(tabs.map((tab) => signedIn(tab, 'lars.nielsen')));
    await Promise.all(tabs.map((tab) => tab.reload()));
    await Promise.all(tabs.map((tab) => signedIn(tab, 'lars.nielsen')));
    await page.reload();
    await signedIn(page, 'lars.nielsen');
    await laptop.close();
  });
});
