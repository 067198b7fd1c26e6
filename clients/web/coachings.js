// @ts-check
/**
 * Scheduled coaching sessions: the open room's coming sessions (each in the viewer's own
 * time zone), kept current by the server's `coaching` pushes; reminders a day and ten
 * minutes before, and a way into the session's call once it starts; the form that books a
 * session (`POST /api/coachings`), and the person's calendar feed (`POST /api/me/calendar`).
 *
 * A session is booked at a wall time in the booker's zone: the form sends the time as typed
 * (`2026-12-01T16:00`) with the browser's IANA zone, and the server stores the instant.
 */

import { bdi, el, isolated, userText } from './chat.js';
import { ApiError } from './credentials.js';
import { formatInZone, formatStart, formatWhen, isoString, viewerTimeZone } from './time.js';

/** @typedef {import('./protocol').CoachingSession} CoachingSession */
/** @typedef {import('./protocol').CoachingChange} CoachingChange */
/** @typedef {import('./protocol').ServerMessage} ServerMessage */
/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./credentials.js').Credentials} Credentials */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */
/** @typedef {import('./rooms.js').Room} Room */

/** How often the list is looked at again (sessions start and end). */
const TICK_MS = 20_000;

/**
 * @typedef {object} CoachingParts
 * @property {Connection} connection
 * @property {Credentials} credentials
 * @property {RoomBook} book
 * @property {HTMLElement} section the Sessions section
 * @property {HTMLElement} notices where reminders show
 * @property {HTMLElement} announcer a polite live region
 * @property {{openRoom: (roomId: string) => void, joinCall: (roomId: string) => void,
 *   inCall: (roomId: string) => boolean}} actions `inCall`: whether this page is in the
 *   room's call now
 */

/** @param {CoachingSession} session */
function ended(session, now = Date.now()) {
  return session.start + session.duration_min * 60_000 <= now;
}

/** @param {CoachingSession} session */
function inProgress(session, now = Date.now()) {
  return session.status === 'scheduled' && session.start <= now && !ended(session, now);
}

export class CoachingView {
  /** @param {CoachingParts} parts */
  constructor({ connection, credentials, book, section, notices, announcer, actions }) {
    this.connection = connection;
    this.credentials = credentials;
    this.book = book;
    this.section = section;
    this.notices = notices;
    this.announcer = announcer;
    this.actions = actions;
    /** Every known session of the person's rooms, by id. @type {Map<string, CoachingSession>} */
    this.sessions = new Map();
    /** The reminder shown per session, with what it says. @type {Map<string, CoachingChange>} */
    this.reminders = new Map();
    /** @type {Room | null} */
    this.room = null;
    /** Whether the list has come from the server since the last (re)connection. */
    this.loaded = false;

    const $ = (/** @type {string} */ selector) =>
      /** @type {HTMLElement} */ (section.querySelector(selector));
    this.list = $('#session-list');
    this.empty = $('#session-empty');
    this.bookToggle = /** @type {HTMLButtonElement} */ ($('#book-toggle'));
    this.form = /** @type {HTMLFormElement} */ ($('#book-form'));
    this.bookError = $('#book-error');
    this.calendarButton = /** @type {HTMLButtonElement} */ ($('#calendar-button'));
    this.calendarFeed = $('#calendar-feed');
    this.calendarUrl = /** @type {HTMLInputElement} */ ($('#calendar-url'));
    this.calendarError = $('#calendar-error');
    this.copyButton = /** @type {HTMLButtonElement} */ ($('#calendar-copy'));

    this.bookToggle.addEventListener('click', () => this.toggleForm());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.submit();
    });
    this.form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        this.toggleForm(false);
        this.bookToggle.focus();
      }
    });
    this.calendarButton.addEventListener('click', () => void this.calendar());
    this.copyButton.addEventListener('click', () => void this.copy());
    window.setInterval(() => this.tick(), TICK_MS);
  }

  // ---- What the server says ----

  /** Signed in (again): the sessions may have changed meanwhile. */
  async welcome() {
    this.loaded = false;
    try {
      const answer = await this.connection.request({ type: 'coachings' });
      if (answer.type !== 'coachings') throw new Error(`expected coachings, got ${answer.type}`);
      this.sessions = new Map(answer.coachings.map((s) => [s.id, s]));
      this.loaded = true;
      // What was started while away is still worth a way in.
      for (const session of this.sessions.values()) {
        if (inProgress(session) && !this.reminders.has(session.id)) {
          this.reminders.set(session.id, 'started');
        }
      }
      for (const id of this.reminders.keys()) {
        const session = this.sessions.get(id);
        if (!session || session.status === 'cancelled' || ended(session)) this.reminders.delete(id);
      }
    } catch (err) {
      console.info('triad: coaching sessions not loaded', err);
    }
    this.render();
    this.renderNotices();
  }

  /**
   * A `coaching` push.
   * @param {CoachingChange} change
   * @param {CoachingSession} session
   */
  onPush(change, session) {
    this.sessions.set(session.id, session);
    const where = this.roomName(session.room);
    const title = `“${session.title}”`;
    switch (change) {
      case 'booked':
        this.announce(`Coaching session ${title} booked ${formatWhen(session.start)}${where}.`);
        break;
      case 'moved':
        this.announce(`Coaching session ${title} now starts ${formatWhen(session.start)}${where}.`);
        if (this.reminders.has(session.id) && !inProgress(session)) {
          this.reminders.delete(session.id);
        }
        break;
      case 'cancelled':
        this.announce(`Coaching session ${title} was cancelled${where}.`);
        this.reminders.delete(session.id);
        break;
      case 'reminder_day':
      case 'reminder_soon':
      case 'started':
        this.reminders.set(session.id, change);
        this.announce(this.reminderText(change, session));
        break;
    }
    this.render();
    this.renderNotices();
  }

  /**
   * Shows a room's sessions.
   * @param {Room | null} room
   */
  show(room) {
    this.room = room;
    if (this.form.dataset.room !== room?.id) this.toggleForm(false);
    this.render();
    this.renderNotices();
  }

  /** Shows the list and the reminders again (e.g. the page joined or left a call). */
  refresh() {
    this.render();
    this.renderNotices();
  }

  tick() {
    const now = Date.now();
    for (const [id, session] of this.sessions) {
      if (ended(session, now)) {
        this.sessions.delete(id);
        this.reminders.delete(id);
      }
    }
    this.render();
    this.renderNotices();
  }

  // ---- Showing ----

  /** ", in Trio 2" when it is not the open room. @param {string} roomId */
  roomName(roomId) {
    if (roomId === this.room?.id) return '';
    const room = this.book.rooms.get(roomId);
    return room ? `, in ${room.title}` : '';
  }

  /**
   * @param {CoachingChange} change
   * @param {CoachingSession} session
   */
  reminderText(change, session) {
    const where = this.roomName(session.room);
    if (change === 'started') return `Coaching session “${session.title}” has started${where}.`;
    return `Coaching session “${session.title}” starts ${formatWhen(session.start)}${where}.`;
  }

  /**
   * The reminder as shown, with the title and room isolated.
   * @param {CoachingChange} change
   * @param {CoachingSession} session
   * @returns {(string | HTMLElement)[]}
   */
  reminderParts(change, session) {
    const room = session.room === this.room?.id ? undefined : this.book.rooms.get(session.room);
    const where = room ? [', in ', bdi(room.title)] : [];
    const when = change === 'started' ? ' has started' : ` starts ${formatWhen(session.start)}`;
    return ['Coaching session “', bdi(session.title), `”${when}`, ...where, '.'];
  }

  /** @param {string} text */
  announce(text) {
    // A new node each time, so the same words are announced again.
    this.announcer.replaceChildren(el('p', '', text));
  }

  /** Whether the person may book sessions for the room (the server has the last word). */
  mayBook() {
    const me = this.book.me;
    const room = this.room;
    if (!me || !room) return false;
    if (me.role === 'coordinator' || me.role === 'moderator') return true;
    return room.kind === 'trio' && room.joined;
  }

  render() {
    const room = this.room;
    this.section.hidden = !room;
    if (!room) return;
    const now = Date.now();
    const sessions = [...this.sessions.values()]
      .filter((s) => s.room === room.id && !ended(s, now))
      .sort((a, b) => a.start - b.start || a.id.localeCompare(b.id));
    this.list.replaceChildren(...sessions.map((s) => this.renderSession(s, now)));
    this.empty.hidden = sessions.length > 0 || !this.loaded;
    this.bookToggle.hidden = !this.mayBook();
    if (this.bookToggle.hidden) this.toggleForm(false);
  }

  /**
   * @param {CoachingSession} session
   * @param {number} now
   */
  renderSession(session, now) {
    const cancelled = session.status === 'cancelled';
    const item = el('li', `session${cancelled ? ' cancelled' : ''}`);
    item.dataset.id = session.id;
    item.dataset.status = session.status;
    const title = userText('p', 'session-title', session.title);
    const when = el('p', 'session-when');
    const time = el('time', 'session-start', formatStart(session.start));
    time.dateTime = isoString(session.start);
    if (session.time_zone !== viewerTimeZone) {
      time.title = `Booked for ${formatInZone(session.start, session.time_zone)}`;
    }
    when.append(time, ` · ${session.duration_min} min`);
    item.append(title, when);
    if (cancelled) {
      item.append(el('p', 'session-state', 'Cancelled'));
    } else if (inProgress(session, now)) {
      if (this.actions.inCall(session.room)) {
        item.append(el('p', 'session-state live', 'In progress · you are in the call'));
      } else {
        item.append(el('p', 'session-state live', 'In progress'), this.joinButton(session));
      }
    }
    if (session.agenda) item.append(userText('p', 'session-agenda', session.agenda));
    return item;
  }

  /** @param {CoachingSession} session */
  joinButton(session) {
    const button = el('button', 'primary session-join', 'Join the session call');
    button.type = 'button';
    // Nothing can be joined while the connection is down (as the call button).
    button.disabled = !this.connection.live;
    button.title = this.connection.live ? '' : 'Not connected: reconnecting…';
    button.addEventListener('click', () => {
      this.reminders.delete(session.id);
      this.renderNotices();
      this.actions.joinCall(session.room);
    });
    return button;
  }

  /** The connection went up or down: the join buttons follow it. */
  connectionChanged() {
    this.render();
    this.renderNotices();
  }

  /** The reminders: one per session, newest notice wins, until dismissed or over. */
  renderNotices() {
    /** @type {HTMLElement[]} */
    const shown = [];
    for (const [id, change] of this.reminders) {
      const session = this.sessions.get(id);
      if (!session || session.status === 'cancelled' || ended(session)) {
        this.reminders.delete(id);
        continue;
      }
      // Already in the session's call: nothing to remind of.
      if (change === 'started' && this.actions.inCall(session.room)) continue;
      const notice = el('div', `coaching-notice ${change}`);
      notice.dataset.id = id;
      notice.dataset.change = change;
      const text = el('p');
      text.append(...this.reminderParts(change, session));
      notice.append(text);
      if (change === 'started') notice.append(this.joinButton(session));
      else if (session.room !== this.room?.id) {
        const open = el('button', 'link-button', 'Open the room');
        open.type = 'button';
        open.addEventListener('click', () => this.actions.openRoom(session.room));
        notice.append(open);
      }
      const dismiss = el('button', 'quiet-button', 'Dismiss');
      dismiss.type = 'button';
      dismiss.setAttribute('aria-label', `Dismiss the reminder of “${isolated(session.title)}”`);
      dismiss.addEventListener('click', () => {
        this.reminders.delete(id);
        this.renderNotices();
      });
      notice.append(dismiss);
      shown.push(notice);
    }
    this.notices.replaceChildren(...shown);
  }

  // ---- Booking ----

  /** @param {boolean} [open] */
  toggleForm(open = this.form.hidden === true) {
    this.form.hidden = !open;
    this.bookToggle.setAttribute('aria-expanded', String(open));
    if (open) {
      this.form.dataset.room = this.room?.id ?? '';
      this.bookError.textContent = '';
      /** @type {HTMLInputElement | null} */ (this.form.querySelector('#book-title'))?.focus();
    }
  }

  async submit() {
    const room = this.room;
    if (!room) return;
    const data = new FormData(this.form);
    const submit = /** @type {HTMLButtonElement} */ (this.form.querySelector('[type="submit"]'));
    const booking = {
      room: room.id,
      title: String(data.get('title') ?? '').trim(),
      agenda: String(data.get('agenda') ?? '').trim(),
      // The wall time as typed (`YYYY-MM-DDTHH:MM`), read in the viewer's zone.
      start: String(data.get('start') ?? ''),
      duration_min: Number(data.get('duration')),
      time_zone: viewerTimeZone,
    };
    this.bookError.textContent = '';
    submit.disabled = true;
    try {
      /** @type {CoachingSession} */
      const session = await this.credentials.api('POST', '/api/coachings', booking);
      this.sessions.set(session.id, session);
      this.form.reset();
      this.toggleForm(false);
      this.render();
      this.announce(`Coaching session “${session.title}” booked ${formatWhen(session.start)}.`);
      this.bookToggle.focus();
    } catch (err) {
      const message = err instanceof ApiError ? err.message : 'something went wrong; try again';
      this.bookError.textContent = `Not booked: ${message}.`;
    } finally {
      submit.disabled = false;
    }
  }

  // ---- The calendar feed ----

  async calendar() {
    this.calendarError.textContent = '';
    this.calendarButton.disabled = true;
    try {
      /** @type {{url: string}} */
      const answer = await this.credentials.api('POST', '/api/me/calendar');
      this.calendarUrl.value = new URL(answer.url, window.location.origin).toString();
      this.calendarFeed.hidden = false;
      this.calendarButton.textContent = 'New calendar feed address';
      this.calendarUrl.focus();
      this.calendarUrl.select();
    } catch (err) {
      const message = err instanceof ApiError ? err.message : 'something went wrong; try again';
      this.calendarError.textContent = `No calendar feed: ${message}.`;
    } finally {
      this.calendarButton.disabled = false;
    }
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.calendarUrl.value);
      this.announce('The calendar feed address is copied.');
    } catch {
      this.calendarUrl.select();
      this.announce('Copy the selected address with Ctrl+C.');
    }
  }
}
