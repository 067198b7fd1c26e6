// @ts-check
/**
 * The rooms list (the page's `<nav>`): every room the person can see, with its unread count,
 * when it was last active and who is online in it; for a moderator, a Join button on each
 * trio room not joined yet. Entries are updated in place, so focus stays where it is.
 */

import { el, isolated, userText } from './chat.js';
import { formatActivity, formatFull, isoString } from './time.js';

/** @typedef {import('./rooms.js').Room} Room */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */

/**
 * @typedef {object} RoomListActions
 * @property {(room: Room) => void} open
 * @property {(room: Room) => void} join
 */

/**
 * @typedef {object} Entry
 * @property {HTMLLIElement} item
 * @property {HTMLButtonElement} button
 * @property {HTMLElement} activity
 * @property {HTMLElement} unread
 * @property {HTMLElement} people
 * @property {HTMLButtonElement} join
 */

/** @param {string} name */
function initials(name) {
  const parts = name.split(/\s+/).filter(Boolean);
  return (
    (parts[0]?.[0] ?? '') + (parts.length > 1 ? parts[parts.length - 1][0] : '')
  ).toUpperCase();
}

export class RoomList {
  /**
   * @param {HTMLElement} container where the groups of rooms go
   * @param {{book: RoomBook, actions: RoomListActions}} parts
   */
  constructor(container, { book, actions }) {
    this.container = container;
    this.book = book;
    this.actions = actions;
    /** @type {Map<string, Entry>} */
    this.entries = new Map();
    /** The ids in the order shown, to notice a new list. */
    this.shape = '';
    /** @type {string | null} */
    this.current = null;
    book.listen((change) => {
      if (change.type === 'rooms' || change.type === 'members') this.render();
    });
    // "Yesterday" becomes true at midnight.
    window.setInterval(() => this.render(), 60_000);
  }

  /**
   * Marks the open room.
   * @param {string | null} roomId
   */
  select(roomId) {
    this.current = roomId;
    this.render();
  }

  /** The sum of unread counts, for the menu button on narrow screens. */
  totalUnread() {
    let total = 0;
    for (const room of this.book.rooms.values()) total += room.unread;
    return total;
  }

  render() {
    const rooms = [...this.book.rooms.values()];
    const shape = rooms.map((r) => r.id).join(' ');
    if (shape !== this.shape) this.build(rooms);
    for (const room of rooms) this.update(room, /** @type {Entry} */ (this.entries.get(room.id)));
  }

  /** @param {Room[]} rooms */
  build(rooms) {
    this.shape = rooms.map((r) => r.id).join(' ');
    this.entries.clear();
    const trios = rooms.filter((r) => r.kind === 'trio');
    const others = rooms.filter((r) => r.kind !== 'trio');
    const head = this.book.me?.role === 'head';
    /** @type {HTMLElement[]} */
    const groups = [];
    for (const [label, members] of /** @type {[string, Room[]][]} */ ([
      [head ? 'Your trio' : 'Trios', trios],
      ['Programme', others],
    ])) {
      if (members.length === 0) continue;
      const id = `rooms-${label.toLowerCase().replace(/\W+/g, '-')}`;
      const heading = el('h2', 'group-heading', label);
      heading.id = id;
      const list = el('ul', 'room-group');
      list.setAttribute('aria-labelledby', id);
      for (const room of members) list.append(this.entry(room).item);
      groups.push(heading, list);
    }
    this.container.replaceChildren(...groups);
  }

  /** @param {Room} room */
  entry(room) {
    const item = el('li', 'room-entry');
    item.dataset.room = room.id;
    const button = el('button', 'room-button');
    button.type = 'button';
    button.addEventListener('click', () => this.actions.open(room));
    const name = userText('span', 'room-name', room.title);
    const activity = el('span', 'room-activity');
    const unread = el('span', 'room-unread');
    const people = el('span', 'room-people');
    button.append(name, activity, unread, people);
    const join = el('button', 'join-button', 'Join');
    join.type = 'button';
    join.setAttribute('aria-label', `Join ${room.title}`);
    join.addEventListener('click', () => this.actions.join(room));
    item.append(button, join);
    /** @type {Entry} */
    const entry = { item, button, activity, unread, people, join };
    this.entries.set(room.id, entry);
    return entry;
  }

  /**
   * @param {Room} room
   * @param {Entry} entry
   */
  update(room, entry) {
    const current = room.id === this.current;
    if (current) entry.button.setAttribute('aria-current', 'page');
    else entry.button.removeAttribute('aria-current');
    entry.item.classList.toggle('current', current);
    entry.item.classList.toggle('not-joined', !room.joined);
    entry.join.hidden = room.joined || room.kind !== 'trio';

    const unread = room.unread;
    entry.item.dataset.unread = String(unread);
    const unreadText = unread > 0 ? String(unread) : '';
    if (entry.unread.firstChild?.textContent !== unreadText) {
      entry.unread.replaceChildren();
      if (unread > 0) {
        entry.unread.append(unreadText, el('span', 'visually-hidden', ' unread'));
      }
    }
    entry.unread.hidden = unread === 0;

    if (room.lastTs === null) {
      entry.activity.replaceChildren();
    } else {
      const time = el('time', '', formatActivity(room.lastTs));
      time.dateTime = isoString(room.lastTs);
      time.title = `Last activity: ${formatFull(room.lastTs)}`;
      if (entry.activity.textContent !== time.textContent) entry.activity.replaceChildren(time);
    }

    const members = [...room.members.values()].filter((m) => m.person !== this.book.me?.id);
    const online = members.filter((m) => m.status !== 'offline');
    const said =
      online.length === 0
        ? 'No one else online'
        : `Online: ${online.map((m) => `${m.name}${m.status === 'away' ? ' (away)' : ''}`).join(', ')}`;
    /** @type {(HTMLElement | string)[]} */
    let shown;
    if (members.length <= 5) {
      shown = members.map((m) => {
        const badge = el('span', `avatar status-${m.status}`, initials(m.name));
        badge.dataset.person = m.person;
        badge.dataset.status = m.status;
        badge.setAttribute('aria-hidden', 'true');
        badge.title = `${isolated(m.name)}: ${m.status}`;
        return badge;
      });
    } else {
      const count = el('span', 'online-count', `${online.length} online`);
      count.setAttribute('aria-hidden', 'true');
      shown = [count];
    }
    shown.push(el('span', 'visually-hidden', `. ${said}.`));
    const signature = `${said}|${members.map((m) => m.person + m.status).join(',')}`;
    if (entry.people.dataset.signature !== signature) {
      entry.people.dataset.signature = signature;
      entry.people.replaceChildren(...shown);
    }
  }
}
