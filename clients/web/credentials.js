// @ts-check
/**
 * Signing in and staying signed in: the tokens of this tab, kept in `sessionStorage`.
 *
 * Two kinds of link sign a person in, both carrying their secret in the URL fragment (which
 * never reaches the server's logs), removed from the address bar once read:
 *
 * - `#invite=CODE`, a single-use invitation: the page redeems it (`POST /api/auth/redeem`)
 *   for a short-lived access token and a refresh token, and renews the access token before
 *   it expires (`POST /api/auth/refresh`; each refresh token works once).
 * - `#token=JWT`, a token minted by the operator (the demo prints these): used as it is
 *   until it expires, then the person asks for a new link.
 *
 * Also the REST helper: JSON in and out, the access token as bearer, and one renewal and
 * retry when the server says the access token has expired.
 */

/** @typedef {import('./protocol').ErrorCode} ErrorCode */

const ACCESS_KEY = 'triad.token';
const EXPIRES_KEY = 'triad.token-expires';
const REFRESH_KEY = 'triad.refresh';

/** Renew at most this long before the access token expires... */
const RENEW_AHEAD_MAX_MS = 5 * 60_000;
/** ...and at least this long, for very short tokens. */
const RENEW_AHEAD_MIN_MS = 2_000;
/** After a failed renewal for want of a network, try again this soon. */
const RENEW_RETRY_MS = 10_000;

/** The answer to redeem and refresh. */
/**
 * @typedef {object} Tokens
 * @property {string} person
 * @property {string} access_token
 * @property {number} access_expires_at
 * @property {string} refresh_token
 * @property {number} refresh_expires_at
 */

/** A refusal from the REST API, with its stable code. */
export class ApiError extends Error {
  /**
   * @param {ErrorCode | 'network'} code `network` when the server could not be reached
   * @param {string} message
   * @param {number} [status]
   */
  constructor(code, message, status = 0) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
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
 * @param {{token?: string, body?: unknown}} [options]
 * @returns {Promise<any>} the JSON answer (null for an empty one)
 */
async function call(method, path, { token, body } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  /** @type {Response} */
  let response;
  try {
    response = await fetch(new URL(path, window.location.origin), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError('network', 'Triad could not be reached; check the connection');
  }
  const text = await response.text();
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
    const message =
      typeof answer?.message === 'string'
        ? answer.message
        : `the server answered ${response.status}`;
    throw new ApiError(code, message, response.status);
  }
  return answer;
}

/**
 * The sign-in secret in the address bar, if any, and removes it from there.
 * @returns {{invite: string} | {token: string} | null}
 */
function takeFromLink() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const invite = fragment.get('invite');
  const token = fragment.get('token');
  if (!invite && !token) return null;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  return invite ? { invite } : { token: /** @type {string} */ (token) };
}

export class Credentials {
  constructor() {
    /** The access token (a JWT) for `hello` and the API. @type {string | null} */
    this.access = sessionStorage.getItem(ACCESS_KEY);
    /** When it expires (ms), if known. */
    this.expiresAt = Number(sessionStorage.getItem(EXPIRES_KEY)) || 0;
    /** The refresh token, for invitation sign-ins. @type {string | null} */
    this.refreshToken = sessionStorage.getItem(REFRESH_KEY);
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

  /** Whether the tokens can be renewed (an invitation sign-in). */
  get renewable() {
    return this.refreshToken !== null;
  }

  /**
   * Takes the link in the address bar: keeps a token as it is, redeems an invitation.
   * Resolves with whether the tab is signed in; throws an `ApiError` whose message is for
   * people when an invitation cannot be used.
   * @returns {Promise<boolean>}
   */
  async signIn() {
    const link = takeFromLink();
    if (link && 'token' in link) {
      this.forget();
      this.access = link.token;
      sessionStorage.setItem(ACCESS_KEY, link.token);
    } else if (link) {
      /** @type {Tokens} */
      let tokens;
      try {
        tokens = await call('POST', '/api/auth/redeem', { body: { code: link.invite } });
      } catch (err) {
        if (err instanceof ApiError && err.code in INVITATION_PROBLEMS) {
          this.forget();
          const problem = /** @type {keyof typeof INVITATION_PROBLEMS} */ (err.code);
          throw new ApiError(err.code, INVITATION_PROBLEMS[problem], err.status);
        }
        if (err instanceof ApiError && err.code === 'network') {
          // The link is still good: put it back, so reloading the page tries again.
          history.replaceState(null, '', `#invite=${encodeURIComponent(link.invite)}`);
          throw new ApiError(
            'network',
            'Triad could not be reached to sign you in. Check the connection, then reload the page.',
          );
        }
        throw err;
      }
      this.forget();
      this.keep(tokens);
    }
    return this.access !== null;
  }

  /** @param {Tokens} tokens */
  keep(tokens) {
    this.access = tokens.access_token;
    this.expiresAt = tokens.access_expires_at;
    this.refreshToken = tokens.refresh_token;
    sessionStorage.setItem(ACCESS_KEY, tokens.access_token);
    sessionStorage.setItem(EXPIRES_KEY, String(tokens.access_expires_at));
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    this.schedule();
    for (const listener of this.listeners) listener(tokens.access_token);
  }

  /** Forgets every token of this tab. */
  forget() {
    window.clearTimeout(this.renewTimer);
    this.access = null;
    this.expiresAt = 0;
    this.refreshToken = null;
    sessionStorage.removeItem(ACCESS_KEY);
    sessionStorage.removeItem(EXPIRES_KEY);
    sessionStorage.removeItem(REFRESH_KEY);
  }

  /** @param {(token: string) => void} listener told each new access token */
  listen(listener) {
    this.listeners.add(listener);
  }

  /**
   * The server said until when the session's token holds (`welcome.token_expires_at`, which
   * may include the server's clock leeway): renew by the earlier of that and what sign-in
   * said.
   * @param {number} expiresAt
   */
  expiresAtIs(expiresAt) {
    if (!expiresAt) return;
    this.expiresAt =
      this.renewable && this.expiresAt > 0 ? Math.min(this.expiresAt, expiresAt) : expiresAt;
    sessionStorage.setItem(EXPIRES_KEY, String(expiresAt));
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
        if (err instanceof ApiError && err.code === 'network') {
          this.renewTimer = window.setTimeout(() => this.schedule(), RENEW_RETRY_MS);
        }
      });
    }, Math.max(0, left - ahead));
  }

  /**
   * A new access token from the refresh token; every concurrent caller gets the same one.
   * When the refresh token is refused, the sign-in is over (`onEnded`).
   * @returns {Promise<string>}
   */
  renew() {
    if (this.renewing) return this.renewing;
    const refreshToken = this.refreshToken;
    if (!refreshToken) return Promise.reject(new ApiError('token_expired', 'no refresh token'));
    this.renewing = (async () => {
      try {
        /** @type {Tokens} */
        const tokens = await call('POST', '/api/auth/refresh', {
          body: { refresh_token: refreshToken },
        });
        this.keep(tokens);
        return tokens.access_token;
      } catch (err) {
        if (err instanceof ApiError && err.code !== 'network' && err.status !== 503) {
          this.forget();
          this.onEnded(
            err.code === 'token_revoked' && /revoked|withdrawn/i.test(err.message)
              ? 'Your access was withdrawn.'
              : 'Your sign-in has ended. Ask the coordinator for a new link.',
          );
        }
        throw err;
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }

  /** Signs out: the refresh token stops working, and the tab forgets its tokens. */
  async signOut() {
    const refreshToken = this.refreshToken;
    this.forget();
    if (refreshToken) {
      await call('POST', '/api/auth/sign-out', { body: { refresh_token: refreshToken } });
    }
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
