// @ts-check
/**
 * The message form: a labelled textarea and a Send button. Enter sends, Shift+Enter starts a
 * new line. While the person types, the room hears `typing` at most every 3 seconds; it hears
 * that they stopped when the message goes or the text is cleared.
 */

import { bdi } from './chat.js';

/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./outbox.js').Outbox} Outbox */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */

/** Typing is said again at most this often while it goes on. */
const TYPING_REPEAT_MS = 3_000;

export class Composer {
  /**
   * @param {HTMLFormElement} form
   * @param {{connection: Connection, outbox: Outbox, book: RoomBook}} parts
   */
  constructor(form, { connection, outbox, book }) {
    this.form = form;
    this.connection = connection;
    this.outbox = outbox;
    this.book = book;
    this.input = /** @type {HTMLTextAreaElement} */ (form.querySelector('textarea'));
    this.label = /** @type {HTMLLabelElement} */ (form.querySelector('label'));
    this.button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'));
    this.hint = /** @type {HTMLElement} */ (form.querySelector('.composer-hint'));
    /** @type {string | null} */
    this.room = null;
    /** When `typing: true` was last said, or 0 if not typing. */
    this.typingSince = 0;
    this.lastTypingSent = 0;
    /** Drafts per room, so switching rooms keeps what was written. @type {Map<string, string>} */
    this.drafts = new Map();

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => {
      this.fit();
      this.checkLength();
      if (this.input.value.trim() === '') this.stopTyping();
      else this.typing();
    });
    this.input.addEventListener('blur', () => this.stopTyping());
  }

  /**
   * Points the form at a room (or at none: disabled).
   * @param {import('./rooms.js').Room | null} room
   */
  show(room) {
    if (this.room && this.room !== room?.id) {
      this.stopTyping();
      this.drafts.set(this.room, this.input.value);
    }
    const changed = this.room !== (room?.id ?? null);
    this.room = room?.id ?? null;
    const usable = room !== null && room.joined;
    this.form.hidden = !usable;
    if (room) this.label.replaceChildren('Message to ', bdi(room.title));
    else this.label.textContent = 'Message';
    if (changed) {
      this.input.value = (room && this.drafts.get(room.id)) ?? '';
      this.fit();
      this.checkLength();
    }
  }

  submit() {
    const body = this.input.value;
    if (!this.room || body.trim() === '' || !this.checkLength()) return;
    this.outbox.send(this.room, body);
    this.input.value = '';
    this.drafts.delete(this.room);
    this.fit();
    this.stopTyping();
    this.input.focus();
  }

  /** Whether the text fits the body limit; says so when it does not. */
  checkLength() {
    const limit = this.book.limits?.max_body_bytes ?? 16 * 1024;
    const bytes = new TextEncoder().encode(this.input.value).length;
    const fits = bytes <= limit;
    this.hint.textContent = fits ? '' : `This message is too long by ${bytes - limit} bytes.`;
    this.input.setAttribute('aria-invalid', String(!fits));
    this.button.disabled = !fits;
    return fits;
  }

  /** Grows the textarea with its text, up to a few lines. */
  fit() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  typing() {
    const now = Date.now();
    if (!this.room || now - this.lastTypingSent < TYPING_REPEAT_MS) return;
    if (this.connection.notify({ type: 'typing', room: this.room, active: true })) {
      this.lastTypingSent = now;
      this.typingSince = now;
    }
  }

  stopTyping() {
    if (!this.room || this.typingSince === 0) return;
    this.typingSince = 0;
    this.lastTypingSent = 0;
    this.connection.notify({ type: 'typing', room: this.room, active: false });
  }
}
