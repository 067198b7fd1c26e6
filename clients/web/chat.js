// @ts-check
/**
 * The open room: its members and their presence, its messages with day separators and an
 * unread marker, older history loaded as the person scrolls up, who is typing, and this
 * person's own messages until they are stored. It tells the app which messages have been
 * seen, so the read marker follows. Each stored message has a toggle that pins it as key
 * learning.
 */

import { dayKey, formatDay, formatFull, formatTime, isoString } from './time.js';

/** @typedef {import('./protocol').RoomEvent} RoomEvent */
/** @typedef {import('./rooms.js').Room} Room */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */
/** @typedef {import('./rooms.js').Change} Change */
/** @typedef {import('./outbox.js').Outbox} Outbox */
/** @typedef {import('./outbox.js').Outgoing} Outgoing */

/** Messages in a page of history. */
const PAGE_SIZE = 50;
/** Closer than this to the top, the next older page loads. */
const LOAD_OLDER_PX = 300;
/** Closer than this to the bottom counts as "at the bottom" (new messages keep it there). */
const BOTTOM_PX = 48;
/** Messages of one author closer together than this are shown as one group. */
const GROUP_MS = 5 * 60_000;

/**
 * @typedef {object} ChatActions
 * @property {(room: Room) => Promise<void>} loadLatest
 * @property {(room: Room, before: number) => Promise<void>} loadOlder
 * @property {(room: Room, seq: number) => void} seen messages up to `seq` were on screen
 * @property {(room: Room) => void} join
 * @property {(room: Room) => void} leave
 */

/**
 * Which messages are pinned, and pinning them (`pins.js`).
 * @typedef {object} PinToggles
 * @property {(roomId: string, seq: number) => boolean} isPinned
 * @property {(room: Room, seq: number) => Promise<void>} toggle
 */

/**
 * Makes an element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/**
 * A piece of text someone typed (a name, a title), isolated from the text around it, so
 * right-to-left or override characters in it cannot reorder the words next to it.
 * @param {string} text
 * @returns {HTMLElement}
 */
export function bdi(text) {
  return el('bdi', '', text);
}

/**
 * Text someone typed, inside plain text that is not markup (a tooltip, an `aria-label`, the
 * page's title): between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE, so an override
 * in it does not turn the words around it.
 * @param {string} text
 * @returns {string}
 */
export function isolated(text) {
  return `\u2068${text}\u2069`;
}

/**
 * An element that holds only text someone typed: its direction comes from that text, and
 * it is isolated from its surroundings.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} className
 * @param {string} text
 * @returns {HTMLElementTagNameMap[K]}
 */
export function userText(tag, className, text) {
  const element = el(tag, className, text);
  element.dir = 'auto';
  return element;
}

/** @param {string} name */
function firstName(name) {
  return name.split(/\s+/)[0] || name;
}

export class ChatView {
  /**
   * @param {HTMLElement} root the `<main>` element
   * @param {{book: RoomBook, outbox: Outbox, actions: ChatActions, pins?: PinToggles}} parts
   */
  constructor(root, { book, outbox, actions, pins }) {
    this.book = book;
    this.pins = pins ?? null;
    this.outbox = outbox;
    this.actions = actions;
    const $ = (/** @type {string} */ selector) =>
      /** @type {HTMLElement} */ (root.querySelector(selector));
    this.title = $('#room-title');
    this.people = $('#room-people');
    this.notice = $('#room-notice');
    this.leaveButton = /** @type {HTMLButtonElement} */ ($('#leave-room'));
    this.scroller = $('#messages');
    this.top = $('#history-top');
    this.list = $('#message-list');
    this.outgoing = $('#outgoing-list');
    this.typingLine = $('#typing');
    /** @type {Room | null} */
    this.room = null;
    /** The read marker when the room was opened: the unread line goes after it. */
    this.unreadAfter = 0;
    /** Whether the view follows new messages (it was at the bottom). */
    this.stuck = true;
    this.loadingOlder = false;
    /** @type {string | null} */
    this.historyError = null;
    /** What went wrong with the last join or leave, for people. */
    this.problemText = '';
    /** Seqs of messages on screen now. @type {Set<number>} */
    this.visible = new Set();

    this.observer = new IntersectionObserver((entries) => this.onIntersect(entries), {
      root: this.scroller,
      threshold: 0.5,
    });
    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    // Whatever changes the size of the view or of what it holds (a call or a reminder
    // opening above it, a narrower or zoomed window, a message growing), a reader at the
    // bottom stays at the bottom.
    this.resizes = new ResizeObserver(() => {
      if (this.stuck && this.room) this.scrollToBottom();
    });
    for (const element of [this.scroller, this.list, this.outgoing]) this.resizes.observe(element);
    this.leaveButton.addEventListener('click', () => this.room && this.actions.leave(this.room));
    document.addEventListener('visibilitychange', () => this.reportSeen());
    book.listen((change) => this.onChange(change));
    outbox.listen((message) => this.onOutgoing(message));
  }

  /**
   * Shows a room (or none).
   * @param {Room | null} room
   */
  open(room) {
    this.room = room;
    this.list.replaceChildren();
    this.outgoing.replaceChildren();
    this.visible.clear();
    this.observer.disconnect();
    this.historyError = null;
    this.problemText = '';
    this.loadingOlder = false;
    this.stuck = true;
    if (!room) {
      this.title.textContent = 'No room';
      this.title.dir = '';
      this.people.replaceChildren();
      this.notice.replaceChildren();
      this.leaveButton.hidden = true;
      this.renderTop();
      this.renderTyping();
      return;
    }
    this.title.textContent = room.title;
    this.title.dir = 'auto';
    this.unreadAfter = room.unread > 0 ? room.readSeq : Number.POSITIVE_INFINITY;
    this.renderPeople();
    this.renderNotice();
    this.renderTyping();
    if (room.joined) {
      if (room.loaded) this.renderLoaded();
      else if (!room.loading) void this.loadLatest(room);
    }
    for (const message of this.outbox.inRoom(room.id)) this.onOutgoing(message);
    this.renderTop();
  }

  /** @param {Room} room */
  async loadLatest(room) {
    this.historyError = null;
    room.loading = true;
    this.renderTop();
    try {
      await this.actions.loadLatest(room);
    } catch (err) {
      room.loading = false;
      if (room === this.room) {
        this.historyError = 'The messages could not be loaded.';
        this.renderTop();
      }
      console.info('triad: newest page not loaded', err);
    }
  }

  async loadOlder() {
    const room = this.room;
    if (!room || !room.loaded || !room.hasOlder || this.loadingOlder) return;
    const oldest = room.oldest;
    if (oldest === null || oldest <= 1) {
      room.hasOlder = false;
      this.renderTop();
      return;
    }
    this.loadingOlder = true;
    this.historyError = null;
    this.renderTop();
    try {
      await this.actions.loadOlder(room, oldest);
    } catch (err) {
      if (room === this.room) this.historyError = 'Earlier messages could not be loaded.';
      console.info('triad: older page not loaded', err);
    } finally {
      this.loadingOlder = false;
      if (room === this.room) {
        this.renderTop();
        // Still near the top (a short page): keep going.
        if (!this.historyError && this.scroller.scrollTop < LOAD_OLDER_PX) void this.loadOlder();
      }
    }
  }

  /** @param {Change} change */
  onChange(change) {
    const room = this.room;
    if (change.type === 'rooms') {
      if (room) {
        this.renderNotice();
        this.renderPeople();
      }
      return;
    }
    if (!room || change.room !== room) return;
    switch (change.type) {
      case 'members':
        this.renderPeople();
        break;
      case 'typing':
        this.renderTyping();
        break;
      case 'reset':
        this.open(room);
        break;
      case 'loaded':
        this.renderLoaded();
        break;
      case 'events':
        if (!room.loaded) break;
        if (change.older) this.prepend(change.events);
        else this.append(change.events);
        break;
    }
  }

  /** The newest page came: render every loaded event, then place the view. */
  renderLoaded() {
    const room = /** @type {Room} */ (this.room);
    this.list.setAttribute('aria-busy', 'true');
    this.list.replaceChildren(...room.sorted().map((e) => this.renderEvent(e)));
    for (const item of this.list.children) this.observer.observe(item);
    this.arrange();
    this.list.setAttribute('aria-busy', 'false');
    this.renderTop();
    const marker = this.list.querySelector('.first-unread');
    if (marker instanceof HTMLElement) {
      this.scroller.scrollTop = Math.max(0, marker.offsetTop - this.scroller.offsetTop - 24);
      this.stuck = this.atBottom();
    } else {
      this.scrollToBottom();
    }
    this.reportSeen();
  }

  /** @param {RoomEvent[]} events new events, in order */
  append(events) {
    const follow = this.stuck;
    for (const event of events) {
      const item = this.renderEvent(event);
      this.insert(item, event.seq);
      this.observer.observe(item);
    }
    this.arrange();
    if (this.list.childElementCount === events.length) this.renderTop();
    if (follow) this.scrollToBottom();
    this.reportSeen();
  }

  /** @param {RoomEvent[]} events an older page, in order */
  prepend(events) {
    if (events.length === 0) {
      this.renderTop();
      return;
    }
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    this.list.setAttribute('aria-busy', 'true');
    for (const event of events) {
      const item = this.renderEvent(event);
      this.insert(item, event.seq);
      this.observer.observe(item);
    }
    this.arrange();
    this.list.setAttribute('aria-busy', 'false');
    // Keep what the person was reading where it was.
    this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    this.renderTop();
  }

  /**
   * Puts an event's item in seq order.
   * @param {HTMLElement} item
   * @param {number} seq
   */
  insert(item, seq) {
    const items = this.list.children;
    let low = 0;
    let high = items.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (Number(/** @type {HTMLElement} */ (items[mid]).dataset.seq) < seq) low = mid + 1;
      else high = mid;
    }
    const next = items[low] ?? null;
    if (next instanceof HTMLElement && Number(next.dataset.seq) === seq) return;
    this.list.insertBefore(item, next);
  }

  /**
   * The item for one event.
   * @param {RoomEvent} event
   */
  renderEvent(event) {
    const mine = event.author === this.book.me?.id;
    const item = el('li', event.kind === 'message' ? 'message' : 'system');
    item.dataset.seq = String(event.seq);
    item.dataset.author = event.author;
    item.dataset.ts = String(event.ts);
    item.dataset.day = dayKey(event.ts);
    const day = el('p', 'day-divider');
    day.hidden = true;
    day.append(el('span', '', formatDay(event.ts)));
    const unread = el('p', 'unread-divider');
    unread.hidden = true;
    unread.append(el('span', '', 'New messages'));
    item.append(day, unread);
    const time = el('time', '', formatTime(event.ts));
    time.dateTime = isoString(event.ts);
    time.title = formatFull(event.ts);
    const who = this.book.name(event.author);
    if (event.kind === 'message') {
      if (mine) {
        item.classList.add('mine');
        item.dataset.state = 'sent';
      }
      const meta = el('p', 'meta');
      meta.append(userText('span', 'author', who), ' ', time);
      if (mine) meta.append(' ', this.renderState('sent'));
      item.append(meta, userText('p', 'body', event.body));
      if (this.pins && this.room?.joined) {
        item.append(this.pinToggle(event));
        item.classList.toggle('pinned', this.pins.isPinned(event.room, event.seq));
      }
    } else {
      const text = el('span');
      text.append(bdi(who), event.kind === 'moderator_joined' ? ' joined' : ' left');
      const line = el('p', 'system-line');
      line.append(text, ' ', time);
      item.append(line);
    }
    return item;
  }

  /**
   * The button that pins a message as key learning (pressed while it is pinned).
   * @param {RoomEvent} event
   */
  pinToggle(event) {
    const button = el('button', 'pin-toggle', 'Pin');
    button.type = 'button';
    button.setAttribute('aria-label', 'Pin as key learning');
    const pinned = this.pins?.isPinned(event.room, event.seq) ?? false;
    button.setAttribute('aria-pressed', String(pinned));
    button.title = pinned ? 'Pinned as key learning: press to unpin' : 'Pin as key learning';
    button.addEventListener('click', () => {
      const room = this.room;
      if (room && room.id === event.room) void this.pins?.toggle(room, event.seq);
    });
    return button;
  }

  /**
   * A room's pins changed: the toggles follow.
   * @param {string} roomId
   */
  showPins(roomId) {
    if (!this.pins || this.room?.id !== roomId) return;
    for (const button of this.list.querySelectorAll('.pin-toggle')) {
      const item = /** @type {HTMLElement} */ (button.closest('[data-seq]'));
      const pinned = this.pins.isPinned(roomId, Number(item.dataset.seq));
      if (button.getAttribute('aria-pressed') === String(pinned)) continue;
      button.setAttribute('aria-pressed', String(pinned));
      /** @type {HTMLElement} */ (button).title = pinned
        ? 'Pinned as key learning: press to unpin'
        : 'Pin as key learning';
      item.classList.toggle('pinned', pinned);
    }
  }

  /**
   * A message's sending state, for people.
   * @param {import('./outbox.js').SendState} state
   * @param {string} [error]
   */
  renderState(state, error) {
    const labels = {
      sending: 'Sending…',
      sent: 'Sent',
      retrying: `Not sent yet: ${error ?? 'retrying'}…`,
      failed: `Not sent: ${error ?? 'refused'}`,
    };
    const badge = el('span', `state state-${state}`, labels[state]);
    if (state === 'sent') {
      badge.textContent = '✓';
      badge.append(el('span', 'visually-hidden', ' Sent'));
    }
    return badge;
  }

  /**
   * Day dividers, the unread line and grouping of consecutive messages: set on the items
   * in place, so nothing is added to the live region but the messages themselves.
   */
  arrange() {
    /** @type {HTMLElement | null} */
    let previous = null;
    let unreadPlaced = false;
    const me = this.book.me?.id;
    for (const node of this.list.children) {
      const item = /** @type {HTMLElement} */ (node);
      const seq = Number(item.dataset.seq);
      const ts = Number(item.dataset.ts);
      const newDay = !previous || previous.dataset.day !== item.dataset.day;
      const firstUnread = !unreadPlaced && seq > this.unreadAfter && item.dataset.author !== me;
      if (firstUnread) unreadPlaced = true;
      const grouped =
        !newDay &&
        !firstUnread &&
        previous !== null &&
        item.classList.contains('message') &&
        previous.classList.contains('message') &&
        previous.dataset.author === item.dataset.author &&
        ts - Number(previous.dataset.ts) < GROUP_MS;
      setHidden(item.querySelector('.day-divider'), !newDay);
      setHidden(item.querySelector('.unread-divider'), !firstUnread);
      item.classList.toggle('first-unread', firstUnread);
      item.classList.toggle('grouped', grouped);
      previous = item;
    }
  }

  /** @param {Outgoing} message */
  onOutgoing(message) {
    if (!this.room || message.room !== this.room.id) return;
    const existing = this.outgoing.querySelector(
      `[data-client-msg-id="${CSS.escape(message.id)}"]`,
    );
    if (!this.outbox.messages.has(message.id)) {
      existing?.remove();
      return;
    }
    const item = el('li', 'message mine pending');
    item.dataset.clientMsgId = message.id;
    item.dataset.state = message.state;
    const meta = el('p', 'meta');
    meta.append(
      userText('span', 'author', this.book.me?.name ?? 'You'),
      ' ',
      this.renderState(message.state, message.error),
    );
    item.append(meta, userText('p', 'body', message.body));
    if (message.state === 'failed') {
      const discard = el('button', 'link-button', 'Discard');
      discard.type = 'button';
      discard.setAttribute('aria-label', 'Discard the message that was not sent');
      discard.addEventListener('click', () => this.outbox.discard(message.id));
      meta.append(' ', discard);
    }
    if (existing) {
      existing.replaceWith(item);
    } else {
      this.outgoing.append(item);
      this.scrollToBottom();
    }
  }

  renderPeople() {
    const room = this.room;
    if (!room) return;
    const items = [...room.members.values()]
      .sort((a, b) => rank(a.status) - rank(b.status) || a.name.localeCompare(b.name))
      .map((member) => {
        const item = el('li', `person status-${member.status}`);
        item.dataset.person = member.person;
        item.dataset.status = member.status;
        const dot = el('span', 'dot');
        dot.setAttribute('aria-hidden', 'true');
        const me = member.person === this.book.me?.id ? ' (you)' : '';
        item.append(dot, bdi(member.name), me, el('span', 'visually-hidden', `, ${member.status}`));
        item.title = `${isolated(member.name)}: ${member.status}`;
        return item;
      });
    this.people.replaceChildren(...items);
  }

  /**
   * Says what went wrong with something the person asked for in this room (a join, a leave).
   * @param {string} text
   */
  problem(text) {
    this.problemText = text;
    this.renderNotice();
  }

  /** What the room needs before chatting (a moderator's join), problems, the leave button. */
  renderNotice() {
    const room = this.room;
    if (!room) return;
    this.leaveButton.hidden = !(
      room.joined &&
      room.kind === 'trio' &&
      this.book.me?.role !== 'head'
    );
    this.leaveButton.replaceChildren('Leave ', bdi(room.title));
    const key = `${room.id} ${room.joined} ${this.problemText}`;
    if (this.notice.dataset.key === key) return;
    this.notice.dataset.key = key;
    /** @type {HTMLElement[]} */
    const content = [];
    if (this.problemText) {
      const problem = el('p', 'problem', this.problemText);
      problem.setAttribute('role', 'alert');
      content.push(problem);
    }
    if (!room.joined) {
      const text = el('p');
      text.append(
        'You have not joined ',
        bdi(room.title),
        '. Joining shows you its messages and tells its members that you are here.',
      );
      const join = el('button', 'primary');
      join.append('Join ', bdi(room.title));
      join.type = 'button';
      join.addEventListener('click', () => this.actions.join(room));
      content.push(text, join);
    }
    this.notice.replaceChildren(...content);
  }

  /** The top of the list: loading, an error, a button for older messages, or the start. */
  renderTop() {
    const room = this.room;
    /** @type {(HTMLElement | string)[]} */
    let content = [];
    if (!room || !room.joined) {
      content = [];
    } else if (this.historyError) {
      const retry = el('button', 'link-button', 'Try again');
      retry.type = 'button';
      retry.addEventListener('click', () =>
        room.loaded ? void this.loadOlder() : void this.loadLatest(room),
      );
      content = [el('span', '', this.historyError), ' ', retry];
    } else if (!room.loaded || this.loadingOlder) {
      content = [el('span', 'loading', 'Loading messages…')];
    } else if (room.hasOlder) {
      const more = el('button', 'link-button', 'Show earlier messages');
      more.type = 'button';
      more.addEventListener('click', () => void this.loadOlder());
      content = [more];
    } else if (room.events.size > 0) {
      const start = el('span', 'history-start');
      start.append('This is the beginning of ', bdi(room.title), '.');
      content = [start];
    } else {
      const start = el('span', 'history-start');
      start.append('No messages in ', bdi(room.title), ' yet. Say hello!');
      content = [start];
    }
    this.top.replaceChildren(...content);
  }

  renderTyping() {
    const room = this.room;
    const names = room ? [...room.typing.keys()].map((p) => firstName(this.book.name(p))) : [];
    /** @type {(string | HTMLElement)[]} */
    let parts = [];
    if (names.length === 1) parts = [bdi(names[0]), ' is typing…'];
    else if (names.length === 2) parts = [bdi(names[0]), ' and ', bdi(names[1]), ' are typing…'];
    else if (names.length > 2) parts = ['Several people are typing…'];
    const text = parts.map((p) => (typeof p === 'string' ? p : p.textContent)).join('');
    if (this.typingLine.textContent !== text) this.typingLine.replaceChildren(...parts);
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stuck = true;
  }

  onScroll() {
    this.stuck = this.atBottom();
    if (this.scroller.scrollTop < LOAD_OLDER_PX) void this.loadOlder();
    this.reportSeen();
  }

  /** @param {IntersectionObserverEntry[]} entries */
  onIntersect(entries) {
    for (const entry of entries) {
      const seq = Number(/** @type {HTMLElement} */ (entry.target).dataset.seq);
      if (entry.isIntersecting) this.visible.add(seq);
      else this.visible.delete(seq);
    }
    this.reportSeen();
  }

  /** Tells the app the newest message on screen, when the page is visible. */
  reportSeen() {
    const room = this.room;
    if (!room || !room.loaded || document.visibilityState !== 'visible') return;
    let seen = 0;
    for (const seq of this.visible) seen = Math.max(seen, seq);
    if (this.atBottom()) seen = Math.max(seen, room.seq);
    if (seen > room.readSeq) this.actions.seen(room, seen);
  }
}

/**
 * @param {Element | null} element
 * @param {boolean} hidden
 */
function setHidden(element, hidden) {
  if (element instanceof HTMLElement && element.hidden !== hidden) element.hidden = hidden;
}

/** @param {import('./protocol').PresenceStatus} status */
function rank(status) {
  return status === 'online' ? 0 : status === 'away' ? 1 : 2;
}

export { PAGE_SIZE };
