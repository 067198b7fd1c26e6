// @ts-check
/**
 * Signing in and staying signed in.
 *
 * Two kinds of link sign a person in, both carrying their secret in the URL fragment (which
 * never reaches the server's logs), removed from the address bar once read:
 *
 * - `#invite=CODE`, a single-use invitation: the page redeems it (`POST /api/auth/redeem`)
 *   for a short-lived access token, and the server keeps the refresh token in an `HttpOnly`
 *   cookie that script on the page cannot read. The access token lives only in this page's
 *   memory; it is renewed from the cookie (`POST /api/auth/refresh`, which rotates the
 *   cookie) before it expires, and on every page load: so a new tab, or the browser opened
 *   again days later, is still signed in for the refresh token's lifetime. Renewals of every
 *   tab of the browser take turns (a Web Lock), since each refresh token works once.
 * - `#token=JWT`, a token minted by the operator (the demo prints these): kept for this tab
 *   in `sessionStorage` and used as it is until it expires, then the person asks for a new
 *   link.
 *
 * Every `/api/auth` call carries `X-Triad-CSRF: 1` (the server refuses cookie requests
 * without it) and the page's origin.
 *
 * Also the REST helper: JSON in and out, the access token as bearer, and one renewal and
 * retry when the server says the access token has expired.
 */

import { explain } from './connection.js';

/** @typedef {import('./protocol').ErrorCode} ErrorCode */

/** A token from a `#token=` link, for this tab. */
const ACCESS_KEY = 'triad.token';
const EXPIRES_KEY = 'triad.token-expires';
/** The name of the lock that lets one tab at a time use the refresh cookie. */
const RENEW_LOCK = 'triad.refresh';
/** Where the lease that stands in for the lock is kept, where Web Locks are missing. */
const LEASE_KEY = 'triad.refresh-lease';
/** A lease lasts this long (longer than a call may take), in case its tab is closed. */
const LEASE_MS = 20_000;
/** A sign-in call not answered by then counts as the server not reached. */
const CALL_TIMEOUT_MS = 15_000;

/** Renew at most this long before the access token expires... */
const RENEW_AHEAD_MAX_MS = 5 * 60_000;
/** ...and at least this long, for very short tokens. */
const RENEW_AHEAD_MIN_MS = 2_000;
/**
 * Whether a failed sign-in call says nothing about the credential itself: the server could
 * not be reached, was busy (429, 5xx) or timed out (408). The refresh cookie is kept and the
 * call tried again later; only a refusal of the credential ends the sign-in.
 * @param {ApiError} err
 * @returns {boolean}
 */
function transient(err) {
  return err.code === 'network' || err.status === 408 || err.status === 429 || err.status >= 500;
}

/** Refusals of a sign-out that mean this browser is signed out anyway. */
const SIGNED_OUT_ALREADY = ['token_revoked', 'not_authenticated'];

/** After a failed renewal for want of a network, try again this soon. */
const RENEW_RETRY_MS = 10_000;

/**
 * The answer to redeem and refresh (the refresh token stays in the cookie).
 * @typedef {object} Tokens
 * @property {string} person
 * @property {string} access_token
 * @property {number} access_expires_at
 * @property {number} refresh_expires_at
 */

/**
 * A refusal from the REST API, with its stable code. `message` is for people (from the
 * code); `detail` is what the server said, for the console.
 */
export class ApiError extends Error {
  /**
   * @param {ErrorCode | 'network'} code `network` when the server could not be reached
   * @param {string} [detail] the server's own message
   * @param {number} [status]
   * @param {string} [message] for people, when not the code's usual sentence
   */
  constructor(code, detail = '', status = 0, message = explain(code)) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.detail = detail;
    this.status = status;
  }
}

/** What an invitation that cannot be used says, for people. */
const INVITATION_PROBLEMS = {
  invitation_used: 'This link was already used — ask the coordinator for a new one.',
  invitation_expired: 'This link has expired — ask the coordinator for a new one.',
  invitation_invalid: 'This link is not valid — ask the coordinator for a new one.',
};

/**
 * Calls the REST API.
 * @param {string} method
 * @param {string} path under the site, e.g. `/api/coachings`
 * @param {{token?: string, body?: unknown, cookie?: boolean}} [options] `cookie` for the
 *   sign-in endpoints: sends and takes the refresh cookie, with the CSRF header
 * @returns {Promise<any>} the JSON answer (null for an empty one)
 */
async function call(method, path, { token, body, cookie = false } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (cookie) headers['X-Triad-CSRF'] = '1';
  /** @type {Response} */
  let response;
  try {
    response = await fetch(new URL(path, window.location.origin), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: cookie ? 'same-origin' : 'omit',
      // The page says no-referrer, which would send `Origin: null`; the server checks the
      // origin of cookie requests.
      referrerPolicy: cookie ? 'same-origin' : undefined,
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch {
    throw new ApiError('network');
  }
  /** @type {string} */
  let text;
  try {
    text = await response.text();
  } catch {
    throw new ApiError('network');
  }
  /** @type {any} */
  let answer = null;
  if (text) {
    try {
      answer = JSON.parse(text);
    } catch {
      answer = null;
    }
  }
  if (!response.ok) {
    const code = typeof answer?.code === 'string' ? answer.code : 'internal';
    const detail =
      typeof answer?.message === 'string' ? answer.message : `the server answered ${response.status}`;
    console.info(`triad: ${method} ${path}: ${code}: ${detail}`);
    throw new ApiError(code, detail, response.status);
  }
  return answer;
}

/**
 * The sign-in secret in the address bar, if any, and removes it from there (keeping the
 * rest of the fragment, e.g. `#room=…`).
 * @returns {{invite: string} | {token: string} | null}
 */
function takeFromLink() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const invite = fragment.get('invite');
  const token = fragment.get('token');
  if (!invite && !token) return null;
  fragment.delete('invite');
  fragment.delete('token');
  const rest = fragment.toString();
  history.replaceState(
    null,
    '',
    window.location.pathname + window.location.search + (rest ? `#${rest}` : ''),
  );
  return invite ? { invite } : { token: /** @type {string} */ (token) };
}

/**
 * Runs `work` while no other tab of this browser renews (where Web Locks exist).
 * @template T
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
function oneTabAtATime(work) {
  const locks = navigator.locks;
  if (!locks) return underLease(work);
  return /** @type {Promise<T>} */ (locks.request(RENEW_LOCK, work));
}

/** @param {number} ms */
const pause = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

/**
 * Where Web Locks are missing (older browsers, some embedded views): a lease in
 * `localStorage`, shared by the browser's tabs of the site. A tab writes its claim when no
 * live lease is there, waits a moment for a tab that claimed at the same time to overwrite
 * it, and goes ahead if its own claim is still there; a lease left by a closed tab runs out
 * after `LEASE_MS`.
 * @template T
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
async function underLease(work) {
  const me = `${Date.now()}-${Math.random()}`;
  const holder = () => {
    try {
      return /** @type {{owner: string, until: number} | null} */ (
        JSON.parse(localStorage.getItem(LEASE_KEY) ?? 'null')
      );
    } catch {
      return null;
    }
  };
  const giveUpAt = Date.now() + LEASE_MS;
  for (;;) {
    const held = holder();
    if (!held || held.until < Date.now() || Date.now() > giveUpAt) {
      localStorage.setItem(LEASE_KEY, JSON.stringify({ owner: me, until: Date.now() + LEASE_MS }));
      await pause(50);
      if (holder()?.owner === me) break;
    }
    await pause(50 + Math.random() * 100);
  }
  try {
    return await work();
  } finally {
    if (holder()?.owner === me) localStorage.removeItem(LEASE_KEY);
  }
}

export class Credentials {
  constructor() {
    /** The access token (a JWT) for `hello` and the API. @type {string | null} */
    this.access = sessionStorage.getItem(ACCESS_KEY);
    /** When it expires (ms), if known. */
    this.expiresAt = Number(sessionStorage.getItem(EXPIRES_KEY)) || 0;
    /** Whether the sign-in is kept in the refresh cookie (an invitation sign-in). */
    this.cookie = false;
    /** A renewal on its way: every caller waits for the same one. @type {Promise<string> | null} */
    this.renewing = null;
    /** @type {number | undefined} */
    this.renewTimer = undefined;
    /** Told each new access token. @type {Set<(token: string) => void>} */
    this.listeners = new Set();
    /**
     * Told when the sign-in cannot go on (with why, for people).
     * @type {(reason: string) => void}
     */
    this.onEnded = () => {};
  }

  /** Whether the tokens can be renewed (an invitation sign-in, kept in the cookie). */
  get renewable() {
    return this.cookie;
  }

  /**
   * Signs in: with the link in the address bar (keeps a token as it is, redeems an
   * invitation), else as this tab was (a token link), else from the browser's refresh
   * cookie. Resolves with whether the page is signed in; throws an `ApiError` whose message
   * is for people when an invitation cannot be used or the server cannot be reached.
   * @returns {Promise<boolean>}
   */
  async signIn() {
    const link = takeFromLink();
    if (link && 'token' in link) {
      this.forget();
      this.access = link.token;
      sessionStorage.setItem(ACCESS_KEY, link.token);
      return true;
    }
    if (link) {
      /** @type {Tokens} */
      let tokens;
      try {
        tokens = await call('POST', '/api/auth/redeem', {
          body: { code: link.invite },
          cookie: true,
        });
      } catch (err) {
        if (err instanceof ApiError && err.code in INVITATION_PROBLEMS) {
          const problem = /** @type {keyof typeof INVITATION_PROBLEMS} */ (err.code);
          // Signed in on this browser already (the link was used here before): go on.
          if (problem === 'invitation_used' && (await this.fromCookie())) return true;
          this.forget();
          throw new ApiError(err.code, err.detail, err.status, INVITATION_PROBLEMS[problem]);
        }
        if (err instanceof ApiError && err.code === 'network') {
          // The link is still good: put it back, so reloading the page tries again.
          history.replaceState(null, '', `#invite=${encodeURIComponent(link.invite)}`);
          throw new ApiError(
            'network',
            '',
            0,
            'Triad could not be reached to sign you in. Check the connection, then reload the page.',
          );
        }
        throw err;
      }
      this.forget();
      this.cookie = true;
      this.keep(tokens);
      return true;
    }
    if (this.access) return true;
    return this.fromCookie();
  }

  /**
   * Signs in from the browser's refresh cookie, if it has a good one.
   * @returns {Promise<boolean>}
   */
  async fromCookie() {
    try {
      const tokens = await oneTabAtATime(() =>
        call('POST', '/api/auth/refresh', { body: {}, cookie: true }),
      );
      this.forget();
      this.cookie = true;
      this.keep(tokens);
      return true;
    } catch (err) {
      if (err instanceof ApiError && transient(err)) {
        throw new ApiError(
          err.code,
          err.detail,
          err.status,
          'Triad could not be reached to sign you in. Check the connection, then reload the page.',
        );
      }
      return false;
    }
  }

  /** @param {Tokens} tokens */
  keep(tokens) {
    this.access = tokens.access_token;
    this.expiresAt = tokens.access_expires_at;
    this.schedule();
    for (const listener of this.listeners) listener(tokens.access_token);
  }

  /** Forgets every token of this page (not the cookie: see `signOut`). */
  forget() {
    window.clearTimeout(this.renewTimer);
    this.access = null;
    this.expiresAt = 0;
    this.cookie = false;
    sessionStorage.removeItem(ACCESS_KEY);
    sessionStorage.removeItem(EXPIRES_KEY);
  }

  /** @param {(token: string) => void} listener told each new access token */
  listen(listener) {
    this.listeners.add(listener);
  }

  /**
   * The server said until when the session's token holds (`welcome.token_expires_at`):
   * renew by the earlier of that and what sign-in said.
   * @param {number} expiresAt
   */
  expiresAtIs(expiresAt) {
    if (!expiresAt) return;
    this.expiresAt =
      this.renewable && this.expiresAt > 0 ? Math.min(this.expiresAt, expiresAt) : expiresAt;
    if (!this.renewable) sessionStorage.setItem(EXPIRES_KEY, String(expiresAt));
    this.schedule();
  }

  /** Whether the access token has expired, or is about to. */
  get stale() {
    return this.expiresAt > 0 && this.expiresAt - Date.now() < RENEW_AHEAD_MIN_MS;
  }

  /** Sets the timer that renews the access token before it expires. */
  schedule() {
    window.clearTimeout(this.renewTimer);
    if (!this.renewable || !this.expiresAt) return;
    const left = this.expiresAt - Date.now();
    const ahead = Math.max(RENEW_AHEAD_MIN_MS, Math.min(RENEW_AHEAD_MAX_MS, left / 3));
    this.renewTimer = window.setTimeout(() => {
      this.renew().catch((err) => {
        if (err instanceof ApiError && transient(err)) {
          this.renewTimer = window.setTimeout(() => this.schedule(), RENEW_RETRY_MS);
        }
      });
    }, Math.max(0, left - ahead));
  }

  /**
   * A new access token from the refresh cookie; every concurrent caller gets the same one.
   * When the cookie is refused, the sign-in is over (`onEnded`).
   * @returns {Promise<string>}
   */
  renew() {
    if (this.renewing) return this.renewing;
    if (!this.cookie) return Promise.reject(new ApiError('token_expired'));
    this.renewing = (async () => {
      try {
        /** @type {Tokens} */
        const tokens = await oneTabAtATime(() =>
          call('POST', '/api/auth/refresh', { body: {}, cookie: true }),
        );
        this.keep(tokens);
        return tokens.access_token;
      } catch (err) {
        if (err instanceof ApiError && !transient(err)) {
          this.forget();
          // Why, when the coordinator withdrew the access or the person signed out
          // everywhere, comes with the websocket's close (4009 and its reason).
          this.onEnded(
            err.code === 'unknown_person' ? 'Your access was withdrawn.' : 'You are signed out.',
          );
        }
        throw err;
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }

  /**
   * Signs out of this browser: the refresh cookie stops working and is cleared. Done only
   * when the server says so (or says the cookie was no good anyway); otherwise throws an
   * `ApiError` and the page stays signed in, so the person can try again.
   */
  async signOut() {
    if (this.cookie) {
      try {
        await call('POST', '/api/auth/sign-out', { body: {}, cookie: true });
      } catch (err) {
        if (!(err instanceof ApiError && SIGNED_OUT_ALREADY.includes(err.code))) throw err;
      }
    }
    this.forget();
  }

  /**
   * Signs out on every device: every token of the person stops working, their pages
   * everywhere are closed, and this browser's cookie is cleared.
   */
  async signOutEverywhere() {
    if (this.renewable && this.stale) await this.renew();
    const token = this.access ?? undefined;
    await call('POST', '/api/auth/sign-out-everywhere', { token, cookie: true });
    this.forget();
  }

  /**
   * Calls the API as the signed-in person, renewing the access token once if it expired.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async api(method, path, body) {
    if (this.renewable && this.stale) await this.renew();
    try {
      return await call(method, path, { token: this.access ?? undefined, body });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'token_expired' && this.renewable) {
        await this.renew();
        return call(method, path, { token: this.access ?? undefined, body });
      }
      throw err;
    }
  }
}
