// @ts-check
/**
 * The websocket to the server: `hello` with the token and the resume points, requests
 * matched to their answers by id, keep-alive pings, and reconnecting with exponential backoff
 * and full jitter whenever the socket is lost, until the server refuses the token.
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
  [4009, 'Your access to Triad has ended.'],
]);

/** A request the server refused, with its stable code. */
export class ProtocolError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
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
 * @property {(status: ConnectionStatus, reason?: string) => void} onStatus
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
      return;
    }
    const waiting = typeof frame.re === 'number' ? this.pending.get(frame.re) : undefined;
    if (waiting && typeof frame.re === 'number') {
      this.pending.delete(frame.re);
      window.clearTimeout(waiting.timer);
      if (frame.type === 'error') waiting.reject(new ProtocolError(frame.code, frame.message));
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
    const final = code === undefined ? undefined : FINAL_CLOSE_CODES.get(code);
    if (final) {
      this.setStatus('ended', this.refusal ? `${final} (${this.refusal})` : final);
      return;
    }
    console.info(`triad: connection lost (${code ?? reason}); reconnecting`);
    this.setStatus('reconnecting');
    this.retryTimer = window.setTimeout(() => this.open(), backoffDelay(this.attempt++));
  }

  /**
   * @param {ConnectionStatus} status
   * @param {string} [reason]
   */
  setStatus(status, reason) {
    if (this.status === status) return;
    this.status = status;
    this.handlers.onStatus(status, reason);
  }
}
