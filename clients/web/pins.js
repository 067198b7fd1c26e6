// @ts-check
/**
 * Key learning: the messages of a room its members pinned (they go into the cycle report).
 * Each room's pins are read once it is opened (`pins`) and kept current by the `pinned`
 * pushes; a pinned message older than the loaded history is read on its own.
 */

import { bdi, el, isolated, userText } from './chat.js';
import { ProtocolError } from './connection.js';
import { formatFull, formatStart, isoString } from './time.js';

/** @typedef {import('./protocol').Pin} Pin */
/** @typedef {import('./protocol').RoomEvent} RoomEvent */
/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */
/** @typedef {import('./rooms.js').Room} Room */

/** Shown of a long message in the list. */
const EXCERPT_CHARS = 280;

export class PinBoard {
  /**
   * @param {{connection: Connection, book: RoomBook, section: HTMLElement}} parts
   */
  constructor({ connection, book, section }) {
    this.connection = connection;
    this.book = book;
    this.section = section;
    this.list = /** @type {HTMLElement} */ (section.querySelector('#pin-list'));
    this.empty = /** @type {HTMLElement} */ (section.querySelector('#pin-empty'));
    this.problem = /** @type {HTMLElement} */ (section.querySelector('#pin-problem'));
    /**
     * Pins per room, by seq; a room is here once its pins were read.
     * @type {Map<string, Map<number, Pin>>}
     */
    this.pins = new Map();
    /** Rooms whose pins are being read. @type {Set<string>} */
    this.loading = new Set();
    /** Pinned messages read on their own. @type {Map<string, RoomEvent>} */
    this.messages = new Map();
    /** @type {Room | null} */
    this.room = null;
    /** Told when a room's pins change. @type {Set<(roomId: string) => void>} */
    this.listeners = new Set();
  }

  /** @param {(roomId: string) => void} listener */
  listen(listener) {
    this.listeners.add(listener);
  }

  /** @param {string} roomId */
  emit(roomId) {
    for (const listener of this.listeners) listener(roomId);
  }

  /**
   * Whether a message is pinned.
   * @param {string} roomId
   * @param {number} seq
   */
  isPinned(roomId, seq) {
    return this.pins.get(roomId)?.has(seq) ?? false;
  }

  /** Signed in (again): pins may have changed meanwhile; they are read again when shown. */
  welcome() {
    this.pins.clear();
    this.messages.clear();
  }

  /**
   * Shows a room's key learning, reading it first if need be.
   * @param {Room | null} room
   */
  show(room) {
    if (room !== this.room) this.problem.textContent = '';
    this.room = room;
    this.section.hidden = !room || !room.joined;
    if (!room || !room.joined) return;
    if (!this.pins.has(room.id)) void this.load(room);
    this.render();
  }

  /** @param {Room} room */
  async load(room) {
    if (this.loading.has(room.id) || !this.connection.live) return;
    this.loading.add(room.id);
    try {
      const answer = await this.connection.request({ type: 'pins', room: room.id });
      if (answer.type !== 'pins') throw new Error(`expected pins, got ${answer.type}`);
      this.pins.set(room.id, new Map(answer.pins.map((p) => [p.seq, p])));
      this.emit(room.id);
      if (room === this.room) this.render();
    } catch (err) {
      console.info('triad: pins not loaded', err);
    } finally {
      this.loading.delete(room.id);
    }
  }

  /**
   * A `pinned` push.
   * @param {Pin} pin
   * @param {boolean} pinned
   */
  onPinned(pin, pinned) {
    const pins = this.pins.get(pin.room);
    if (!pins) return; // Read in full when the room is opened.
    if (pinned) pins.set(pin.seq, pin);
    else pins.delete(pin.seq);
    this.emit(pin.room);
    if (pin.room === this.room?.id) this.render();
  }

  /**
   * Pins or unpins a message.
   * @param {Room} room
   * @param {number} seq
   */
  async toggle(room, seq) {
    const pinned = this.isPinned(room.id, seq);
    this.problem.textContent = '';
    try {
      await this.connection.request({ type: pinned ? 'unpin' : 'pin', room: room.id, seq });
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : 'the connection was lost';
      this.problem.textContent = pinned
        ? `Could not unpin the message: ${message}.`
        : `Could not pin the message: ${message}.`;
    }
  }

  /**
   * A pinned message: loaded with the room, or read on its own.
   * @param {Room} room
   * @param {number} seq
   * @returns {RoomEvent | undefined}
   */
  message(room, seq) {
    const loaded = room.events.get(seq);
    if (loaded) return loaded;
    const key = `${room.id} ${seq}`;
    const read = this.messages.get(key);
    if (read) return read;
    if (this.connection.live && !this.loading.has(key)) {
      this.loading.add(key);
      this.connection
        .request({ type: 'history', room: room.id, after: seq - 1, limit: 1 })
        .then((answer) => {
          if (answer.type !== 'history') return;
          const event = answer.events.find((e) => e.seq === seq);
          if (event) this.messages.set(key, event);
          if (room === this.room) this.render();
        })
        .catch((err) => console.info('triad: pinned message not read', err))
        .finally(() => this.loading.delete(key));
    }
    return undefined;
  }

  render() {
    const room = this.room;
    if (!room) return;
    const pins = this.pins.get(room.id);
    const sorted = pins ? [...pins.values()].sort((a, b) => a.seq - b.seq) : [];
    this.list.replaceChildren(...sorted.map((pin) => this.renderPin(room, pin)));
    this.empty.hidden = !pins || sorted.length > 0;
  }

  /**
   * @param {Room} room
   * @param {Pin} pin
   */
  renderPin(room, pin) {
    const item = el('li', 'pin');
    item.dataset.seq = String(pin.seq);
    const event = this.message(room, pin.seq);
    const body = event?.kind === 'message' ? event.body : '';
    const excerpt = body.length > EXCERPT_CHARS ? `${body.slice(0, EXCERPT_CHARS)}…` : body;
    const text = event
      ? userText('blockquote', 'pin-body', excerpt)
      : el('blockquote', 'pin-body', 'Loading the message…');
    item.append(text);
    const meta = el('p', 'pin-meta');
    if (event) {
      const time = el('time', '', formatStart(event.ts));
      time.dateTime = isoString(event.ts);
      time.title = formatFull(event.ts);
      meta.append(bdi(this.book.name(event.author)), ', ', time, '. ');
    }
    meta.append('Pinned by ', bdi(this.book.name(pin.pinned_by)), '.');
    const unpin = el('button', 'link-button pin-remove', 'Unpin');
    unpin.type = 'button';
    const short = excerpt.length > 60 ? `${excerpt.slice(0, 60)}…` : excerpt;
    const about = excerpt ? `“${isolated(short)}”` : 'the message';
    unpin.setAttribute('aria-label', `Unpin ${about}`);
    unpin.addEventListener('click', () => void this.toggle(room, pin.seq));
    meta.append(' ', unpin);
    item.append(meta);
    return item;
  }
}
