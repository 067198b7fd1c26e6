// @ts-check
/**
 * The websocket to the server: `hello` with the token and the resume points, requests
 * matched to their answers by id, keep-alive pings, and reconnecting with exponential backoff
 * and full jitter whenever the socket is lost, until the server refuses the token.
 *
 * A token that expired (the tab slept past it, say) is renewed through `renewToken` when the
 * sign-in allows it, and the connection goes on; the server's `refresh` is sent with each new
 * token while connected.
 *
 * Also what each refusal code means for people ([`explain`]), for every part of the page.
 */

/** @typedef {import('./protocol').Request} Request */
/** @typedef {import('./protocol').ServerFrame} ServerFrame */
/** @typedef {import('./protocol').ServerMessage} ServerMessage */
/** @typedef {import('./protocol').ResumePoint} ResumePoint */
/** @typedef {import('./protocol').Welcome} Welcome */
/** @typedef {import('./protocol').ErrorCode} ErrorCode */
/** @typedef {import('./protocol').ProtocolVersion} ProtocolVersion */

/** @type {ProtocolVersion} */
const PROTOCOL = 'triad.v1';

/*
 * What a refusal means, for people. The server's error messages are written for developers
 * (they may name fields, internal states or times in UTC); the page never shows them. It
 * shows the sentence for the error's stable code instead, and logs the server's text to the
 * console. Each text is a clause without a final full stop, to follow "Not sent: …" or
 * "Could not join the call: …".
 */

/** @type {Record<ErrorCode | 'network', string>} */
const TEXTS = {
  network: 'Triad could not be reached; check the connection',
  bad_json: 'the page sent something the server did not understand; reload the page',
  unknown_type: 'the page sent something the server did not understand; reload the page',
  invalid_request: 'some of the details were not accepted; check them and try again',
  binary_frame: 'the page sent something the server did not understand; reload the page',
  not_authenticated: 'you are not signed in',
  already_authenticated: 'you are already signed in',
  token_expired: 'your sign-in has expired',
  token_invalid: 'your sign-in link is not valid',
  token_revoked: 'your access was withdrawn',
  unknown_person: 'you are no longer in the programme',
  unknown_room: 'that room no longer exists',
  not_a_member: 'you are not a member of that room',
  join_required: 'join the room first',
  forbidden: 'you are not allowed to do that',
  body_too_long: 'the message is too long',
  empty_body: 'the message is empty',
  bad_client_msg_id: 'the page sent something the server did not understand; reload the page',
  rate_limited: 'too much at once; wait a moment and try again',
  page_too_large: 'too many messages were asked for at once',
  store_unavailable: 'Triad cannot save anything just now; try again in a moment',
  internal: 'something went wrong on the server; try again',
  no_call: 'the call has ended',
  not_in_call: 'you are not in that call',
  call_full: 'the call is full',
  already_in_call: 'you are already in this call',
  signal_too_large: 'the call could not be set up',
  coaching_in_past: 'that time has already passed',
  coaching_overlap: 'another session in this room overlaps that time',
  unknown_time_zone: 'your time zone is not known to the server',
  no_coaching: 'that session no longer exists',
  coaching_cancelled: 'that session was cancelled',
  no_message: 'that message no longer exists',
  invitation_invalid: 'this link is not valid',
  invitation_used: 'this link was already used',
  invitation_expired: 'this link has expired',
  roster_invalid: 'the roster has problems',
  not_found: 'it no longer exists',
  conflict: 'it was changed at the same moment elsewhere; try again',
  request_timeout: 'the connection was too slow; try again',
  request_too_large: 'that is too large to send',
  too_many_coachings: 'this room already has as many upcoming sessions as it may hold',
  not_bookable: 'coaching sessions can be booked in a trio room or the commons only',
};

/**
 * The sentence for a refusal's code (a generic one for a code this page does not know).
 * @param {string} code
 * @returns {string}
 */
export function explain(code) {
  return Object.hasOwn(TEXTS, code)
    ? TEXTS[/** @type {ErrorCode | 'network'} */ (code)]
    : 'something went wrong; try again';
}

/** The first reconnect waits up to this long (full jitter below it), then it doubles. */
const BACKOFF_INITIAL_MS = 250;
/** The longest wait between two attempts. */
const BACKOFF_MAX_MS = 5_000;
/** A ping this often while connected. */
const PING_INTERVAL_MS = 20_000;
/** A connection silent this long is taken for dead. */
const SILENCE_LIMIT_MS = 45_000;
/** A request unanswered this long fails (the connection stays). */
const REQUEST_TIMEOUT_MS = 15_000;

/** Close codes after which reconnecting with the same token is pointless. */
const FINAL_CLOSE_CODES = new Map([
  [4001, 'Your sign-in link is not valid.'],
  [4003, 'Your sign-in link has expired.'],
  [4009, 'Your access was withdrawn.'],
]);
/** The close code of a withdrawn access (the person was revoked or removed). */
export const REVOKED = 4009;
/** The reason that comes with 4009 when the person signed out on every device. */
const SIGNED_OUT_EVERYWHERE = 'signed out everywhere';
/** What the page says then. */
export const SIGNED_OUT_EVERYWHERE_TEXT = 'You signed out on every device.';

/**
 * A request the server refused, with its stable code. `message` is for people (from the
 * code, [`explain`]); `detail` is what the server said, for the console.
 */
export class ProtocolError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} [detail]
   */
  constructor(code, detail = '') {
    super(explain(code));
    this.name = 'ProtocolError';
    this.code = code;
    this.detail = detail;
  }

  /** Whether the same request may succeed later, unchanged. */
  get retryable() {
    return (
      this.code === 'rate_limited' || this.code === 'store_unavailable' || this.code === 'internal'
    );
  }
}

/** The connection was lost before the answer came; the request may or may not have run. */
export class DisconnectedError extends Error {
  constructor() {
    super('the connection was lost');
    this.name = 'DisconnectedError';
  }
}

/**
 * @typedef {'connecting' | 'live' | 'reconnecting' | 'ended'} ConnectionStatus
 *
 * @typedef {object} ConnectionHandlers
 * @property {() => ResumePoint[]} resumePoints where each room is, for `hello`
 * @property {(welcome: Welcome) => void} onWelcome the session is signed in (again)
 * @property {(frame: ServerFrame) => void} onPush a frame the server pushed (no `re`)
 * @property {(status: ConnectionStatus, reason?: string, code?: number) => void} onStatus
 *   `ended` comes with why (for people) and the close code
 * @property {() => Promise<string | null>} [renewToken] a new token for one that expired:
 *   null when the sign-in cannot be renewed; rejects when it cannot be renewed yet (offline)
 * @property {() => boolean} [tokenStale] whether the token must be renewed before use
 */

/**
 * Full jitter: a random wait between 0 and the ceiling for this attempt.
 * @param {number} attempt 0 for the first retry
 */
function backoffDelay(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** Math.min(attempt, 16));
  return Math.random() * ceiling;
}

export class Connection {
  /**
   * @param {string} url the websocket URL (`ws(s)://host/ws`)
   * @param {string} token the JWT
   * @param {ConnectionHandlers} handlers
   */
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.handlers = handlers;
    /** @type {ConnectionStatus} */
    this.status = 'connecting';
    /** @type {WebSocket | null} */
    this.socket = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: (m: ServerMessage) => void, reject: (e: Error) => void, timer: number}>} */
    this.pending = new Map();
    this.attempt = 0;
    /** @type {number | undefined} */
    this.retryTimer = undefined;
    /** @type {number | undefined} */
    this.pingTimer = undefined;
    this.lastHeard = 0;
    this.signedIn = false;
    /** Why the server refused the last `hello`, if it did. @type {string | undefined} */
    this.refusal = undefined;
    /** The code of that refusal. @type {ErrorCode | undefined} */
    this.refusalCode = undefined;
  }

  /**
   * Uses a new token: for the next `hello`, and at once for this session (`refresh`), so the
   * server does not close it when the old one expires.
   * @param {string} token
   */
  async useToken(token) {
    this.token = token;
    if (!this.live) return;
    try {
      await this.request({ type: 'refresh', token });
    } catch (err) {
      // Lost meanwhile: the next hello carries the new token anyway.
      console.info('triad: token not refreshed on this connection', err);
    }
  }

  /**
   * Ends the connection for good (signed out, or the sign-in cannot go on).
   * @param {string} reason for people
   */
  stop(reason) {
    window.clearTimeout(this.retryTimer);
    window.clearInterval(this.pingTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000);
    }
    this.signedIn = false;
    for (const { reject, timer } of this.pending.values()) {
      window.clearTimeout(timer);
      reject(new DisconnectedError());
    }
    this.pending.clear();
    this.setStatus('ended', reason);
  }

  /** Opens the first connection. */
  start() {
    this.open();
  }

  /** Whether requests can be sent now (signed in). */
  get live() {
    return this.status === 'live';
  }

  /**
   * Sends a request and resolves with the server's answer; rejects with a `ProtocolError`
   * when the server refuses it, or a `DisconnectedError` when the connection is lost first.
   * @param {Request} request
   * @returns {Promise<ServerMessage>}
   */
  request(request) {
    if (!this.live || !this.socket) return Promise.reject(new DisconnectedError());
    const id = this.nextId++;
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new ProtocolError('internal', 'no answer from the server in time'));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      socket.send(JSON.stringify({ id, ...request }));
    });
  }

  /**
   * Sends a request whose answer does not matter (typing). Returns whether it was sent.
   * @param {Request} request
   */
  notify(request) {
    if (!this.live || !this.socket) return false;
    this.socket.send(JSON.stringify(request));
    return true;
  }

  /** Reconnects at once if the connection is down and waiting (e.g. the network is back). */
  retryNow() {
    if (this.status !== 'reconnecting' || this.socket) return;
    window.clearTimeout(this.retryTimer);
    this.open();
  }

  /** Drops the connection as a network failure would; it reconnects as usual. */
  drop() {
    if (this.socket) this.lost(this.socket, 'dropped');
  }

  open() {
    this.retryTimer = undefined;
    if (this.status === 'ended') return;
    if (this.handlers.tokenStale?.() && this.handlers.renewToken) {
      this.renewThenOpen(FINAL_CLOSE_CODES.get(4003) ?? '');
      return;
    }
    this.refusal = undefined;
    this.refusalCode = undefined;
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    this.lastHeard = Date.now();
    socket.onopen = () => {
      /** @type {Request} */
      const hello = { type: 'hello', token: this.token, resume: this.handlers.resumePoints() };
      socket.send(JSON.stringify({ id: 0, ...hello }));
    };
    socket.onmessage = (message) => {
      this.lastHeard = Date.now();
      if (typeof message.data !== 'string') return;
      /** @type {ServerFrame} */
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        console.warn('triad: unreadable frame from the server');
        return;
      }
      this.receive(socket, frame);
    };
    socket.onclose = (event) => this.lost(socket, event.reason, event.code);
    socket.onerror = () => {
      // A close event follows; it decides what happens next.
    };
  }

  /**
   * @param {WebSocket} socket
   * @param {ServerFrame} frame
   */
  receive(socket, frame) {
    if (frame.type === 'welcome') {
      this.signedIn = true;
      this.attempt = 0;
      this.setStatus('live');
      this.startPings(socket);
      this.handlers.onWelcome(frame);
      return;
    }
    if (frame.type === 'error' && !this.signedIn && frame.re === 0) {
      // The hello was refused; the close that follows says whether to try again.
      this.refusal = frame.message;
      this.refusalCode = frame.code;
      return;
    }
    const waiting = typeof frame.re === 'number' ? this.pending.get(frame.re) : undefined;
    if (waiting && typeof frame.re === 'number') {
      this.pending.delete(frame.re);
      window.clearTimeout(waiting.timer);
      if (frame.type === 'error') {
        console.info(`triad: request refused: ${frame.code}: ${frame.message}`);
        waiting.reject(new ProtocolError(frame.code, frame.message));
      }
      else waiting.resolve(frame);
      return;
    }
    if (frame.type === 'pong') return;
    this.handlers.onPush(frame);
  }

  /** @param {WebSocket} socket */
  startPings(socket) {
    window.clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => {
      if (socket !== this.socket) return;
      if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
        this.lost(socket, 'silent');
        return;
      }
      socket.send(JSON.stringify({ type: 'ping' }));
    }, PING_INTERVAL_MS);
  }

  /**
   * The socket is gone (closed, failed, silent or dropped): fail what waits on it, then
   * reconnect unless the server refused the token.
   * @param {WebSocket} socket
   * @param {string} reason
   * @param {number} [code]
   */
  lost(socket, reason, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) {
      socket.close();
    }
    window.clearInterval(this.pingTimer);
    this.signedIn = false;
    for (const { reject, timer } of this.pending.values()) {
      window.clearTimeout(timer);
      reject(new DisconnectedError());
    }
    this.pending.clear();
    const refusedAs = this.refusalCode;
    if (code === REVOKED || (code === 4001 && refusedAs === 'token_revoked')) {
      const why =
        code === REVOKED && reason === SIGNED_OUT_EVERYWHERE
          ? SIGNED_OUT_EVERYWHERE_TEXT
          : FINAL_CLOSE_CODES.get(REVOKED);
      this.setStatus('ended', why, REVOKED);
      return;
    }
    const final = code === undefined ? undefined : FINAL_CLOSE_CODES.get(code);
    const expired = code === 4003 || (code === 4001 && refusedAs === 'token_expired');
    if (final && expired && this.handlers.renewToken) {
      this.renewThenOpen(final);
      return;
    }
    if (final) {
      if (this.refusal) console.info(`triad: sign-in refused: ${this.refusal}`);
      this.setStatus('ended', final, code);
      return;
    }
    console.info(`triad: connection lost (${code ?? reason}); reconnecting`);
    this.setStatus('reconnecting');
    this.retryTimer = window.setTimeout(() => this.open(), backoffDelay(this.attempt++));
  }

  /**
   * The token expired: renews it, then connects again; ends when it cannot be renewed.
   * @param {string} final what to say if it cannot
   */
  renewThenOpen(final) {
    const renew = this.handlers.renewToken;
    if (!renew) return;
    this.setStatus('reconnecting');
    renew().then(
      (token) => {
        if (this.status === 'ended') return;
        if (token === null) {
          this.setStatus('ended', final, 4003);
          return;
        }
        this.token = token;
        this.open();
      },
      (err) => {
        if (this.status === 'ended') return;
        console.info('triad: token not renewed yet; trying again', err);
        this.retryTimer = window.setTimeout(
          () => this.renewThenOpen(final),
          Math.max(1_000, backoffDelay(this.attempt++)),
        );
      },
    );
  }

  /**
   * @param {ConnectionStatus} status
   * @param {string} [reason]
   * @param {number} [code]
   */
  setStatus(status, reason, code) {
    if (this.status === status) return;
    this.status = status;
    this.handlers.onStatus(status, reason, code);
  }
}
