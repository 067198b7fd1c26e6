// @ts-check
/**
 * Messages this person sends, from the moment they press Send until the server has stored
 * them. Each gets a `client_msg_id` once (`crypto.randomUUID()`), and every retry uses the same
 * id, so the server stores it once whatever happens: a lost connection (sent again after
 * the reconnect), or `rate_limited`/`store_unavailable` (sent again after a backoff). A
 * message the server refuses for good (too long, not allowed) stays, marked failed, until
 * it is discarded.
 */

import { DisconnectedError, ProtocolError } from './connection.js';

/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./protocol').RoomEvent} RoomEvent */

/**
 * - `sending`: on its way, no answer yet.
 * - `sent`: stored (acknowledged); it shows as an event of the room once that arrives.
 * - `retrying`: not stored yet; sent again automatically (after a reconnect or a wait).
 * - `failed`: refused for good; `error` says why.
 * @typedef {'sending' | 'sent' | 'retrying' | 'failed'} SendState
 *
 * @typedef {object} Outgoing
 * @property {string} id the `client_msg_id`
 * @property {string} room
 * @property {string} body
 * @property {number} createdAt when it was written (ms)
 * @property {SendState} state
 * @property {string} [error] why it is retrying or failed, for people
 * @property {number} attempts sends that failed in a row
 * @property {number} [retryTimer]
 */

const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export class Outbox {
  /** @param {Connection} connection */
  constructor(connection) {
    this.connection = connection;
    /** In the order written. @type {Map<string, Outgoing>} */
    this.messages = new Map();
    /** @type {Set<(message: Outgoing) => void>} */
    this.listeners = new Set();
  }

  /**
   * Called with a message whenever its state changes (or it is removed: look it up).
   * @param {(message: Outgoing) => void} listener
   */
  listen(listener) {
    this.listeners.add(listener);
  }

  /** @param {Outgoing} message */
  emit(message) {
    for (const listener of this.listeners) listener(message);
  }

  /**
   * The messages of a room not yet seen as events, in the order written.
   * @param {string} room
   */
  inRoom(room) {
    return [...this.messages.values()].filter((m) => m.room === room);
  }

  /**
   * Sends a new message.
   * @param {string} room
   * @param {string} body
   */
  send(room, body) {
    /** @type {Outgoing} */
    const message = {
      id: crypto.randomUUID(),
      room,
      body,
      createdAt: Date.now(),
      state: 'sending',
      attempts: 0,
    };
    this.messages.set(message.id, message);
    this.emit(message);
    void this.transmit(message);
  }

  /**
   * The room's event for one of our messages arrived: it is stored and shown; forget it.
   * @param {RoomEvent} event
   */
  delivered(event) {
    if (event.kind !== 'message') return;
    const message = this.messages.get(event.client_msg_id);
    if (!message || message.room !== event.room) return;
    window.clearTimeout(message.retryTimer);
    this.messages.delete(message.id);
    this.emit(message);
  }

  /** The connection is back: send again everything not yet stored, in order. */
  resume() {
    for (const message of this.messages.values()) {
      if (message.state === 'retrying' && message.retryTimer === undefined) {
        void this.transmit(message);
      }
    }
  }

  /**
   * Gives up on a failed message.
   * @param {string} id
   */
  discard(id) {
    const message = this.messages.get(id);
    if (!message) return;
    window.clearTimeout(message.retryTimer);
    this.messages.delete(id);
    this.emit(message);
  }

  /** @param {Outgoing} message */
  async transmit(message) {
    message.retryTimer = undefined;
    if (!this.messages.has(message.id)) return;
    if (!this.connection.live) {
      this.set(message, 'retrying', 'Waiting for the connection');
      return;
    }
    this.set(message, 'sending');
    try {
      await this.connection.request({
        type: 'send',
        room: message.room,
        client_msg_id: message.id,
        body: message.body,
      });
      message.attempts = 0;
      if (this.messages.has(message.id)) this.set(message, 'sent');
    } catch (err) {
      if (!this.messages.has(message.id)) return;
      if (err instanceof DisconnectedError) {
        // Sent again with the same id once the connection is back.
        this.set(message, 'retrying', 'Waiting for the connection');
      } else if (err instanceof ProtocolError && err.retryable) {
        const ceiling = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** message.attempts++);
        const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
        this.set(
          message,
          'retrying',
          err.code === 'rate_limited'
            ? 'Sending too fast; trying again'
            : 'Not stored yet; trying again',
        );
        message.retryTimer = window.setTimeout(() => void this.transmit(message), delay);
      } else {
        this.set(message, 'failed', err instanceof Error ? err.message : String(err));
      }
    }
  }

  /**
   * @param {Outgoing} message
   * @param {SendState} state
   * @param {string} [error]
   */
  set(message, state, error) {
    if (message.state === state && message.error === error) return;
    message.state = state;
    message.error = error;
    this.emit(message);
  }
}
