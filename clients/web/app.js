// @ts-check
/**
 * Triad's web client: signs in with the token from the sign-in link, keeps one websocket to
 * the server, and wires the parts together: the rooms (`rooms.js`), the rooms list
 * (`roomlist.js`), the open room (`chat.js`), the message form (`composer.js`), the
 * messages on their way (`outbox.js`) and the room's video call (`call.js`).
 *
 * The sign-in link carries the token in the URL fragment (`/#token=…`), which never reaches
 * the server's logs. The page keeps it in `sessionStorage` for this tab and removes it from the
 * address bar.
 */

import { CallView } from './call.js';
import { ChatView, PAGE_SIZE } from './chat.js';
import { Composer } from './composer.js';
import { Connection, ProtocolError } from './connection.js';
import { Outbox } from './outbox.js';
import { RoomList } from './roomlist.js';
import { RoomBook } from './rooms.js';

/** @typedef {import('./protocol').ServerFrame} ServerFrame */
/** @typedef {import('./protocol').ServerMessage} ServerMessage */
/** @typedef {import('./protocol').History} History */
/** @typedef {import('./rooms.js').Room} Room */

const TOKEN_KEY = 'triad.token';
const ROOM_KEY = 'triad.room';
/** Below this width the rooms list folds into a menu (as in style.css). */
const NARROW = window.matchMedia('(max-width: 700px)');

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return /** @type {T} */ (element);
}

/** Takes the token from the sign-in link (then hides it), or from this tab's storage. */
function takeToken() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = fragment.get('token');
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, '', window.location.pathname + window.location.search);
    return fromLink;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The websocket endpoint next to this page (`wss:` under https). */
function socketUrl() {
  const url = new URL('ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  return url.toString();
}

/**
 * @param {ServerMessage} message
 * @returns {History}
 */
function expectHistory(message) {
  if (message.type !== 'history') throw new Error(`expected history, got ${message.type}`);
  return message;
}

/** @param {string} reason */
function showSignedOut(reason) {
  byId('signed-out').hidden = false;
  byId('signed-out-reason').textContent = reason;
  byId('composer').hidden = true;
  byId('messages').hidden = true;
  byId('room-title').textContent = 'Triad';
}

function main() {
  const token = takeToken();
  if (!token) {
    showSignedOut('Open the sign-in link you were given. It signs you in on this tab.');
    return;
  }

  const status = byId('connection-status');
  /** @type {Connection} */
  const connection = new Connection(socketUrl(), token, {
    resumePoints: () => book.resumePoints(),
    onWelcome: (welcome) => {
      book.welcome(welcome);
      byId('signed-in-as').textContent = `Signed in as ${welcome.person.name}`;
      openRoom(pickRoom());
      calls.welcome(welcome);
      outbox.resume();
      sayPresence();
    },
    onPush: (frame) => onPush(frame),
    onStatus: (state, reason) => {
      document.body.dataset.connection = state;
      if (state === 'reconnecting') {
        calls.socketLost();
        if (!status.firstChild) status.append(bannerText('Reconnecting…'));
      } else if (state === 'ended') {
        sessionStorage.removeItem(TOKEN_KEY);
        status.replaceChildren();
        showSignedOut(`${reason ?? 'You are signed out.'} Ask for a new sign-in link.`);
      } else {
        status.replaceChildren();
      }
    },
  });

  const book = new RoomBook(async (room, after) =>
    expectHistory(
      await connection.request({
        type: 'history',
        room,
        after,
        limit: book.limits?.max_page_size ?? 200,
      }),
    ),
  );
  const outbox = new Outbox(connection);
  /** The read marker asked for per room, so each is asked once. @type {Map<string, number>} */
  const readAsked = new Map();
  /** Per room, the short wait that gathers a scroll's worth of reads. @type {Map<string, number>} */
  const readTimers = new Map();

  const chat = new ChatView(byId('chat'), {
    book,
    outbox,
    actions: {
      loadLatest: async (room) => {
        const page = expectHistory(
          await connection.request({ type: 'history', room: room.id, limit: PAGE_SIZE }),
        );
        book.latest(room, page);
      },
      loadOlder: async (room, before) => {
        const page = expectHistory(
          await connection.request({ type: 'history', room: room.id, before, limit: PAGE_SIZE }),
        );
        book.older(room, page);
      },
      seen: (room, seq) => {
        if ((readAsked.get(room.id) ?? 0) >= seq) return;
        readAsked.set(room.id, seq);
        if (readTimers.has(room.id)) return;
        readTimers.set(
          room.id,
          window.setTimeout(() => {
            readTimers.delete(room.id);
            void markRead(room);
          }, 300),
        );
      },
      join: (room) => void join(room),
      leave: (room) => void leave(room),
    },
  });
  const list = new RoomList(byId('room-groups'), {
    book,
    actions: {
      open: (room) => {
        openRoom(room);
        closeMenu();
        byId('composer-input').focus();
      },
      join: (room) => {
        openRoom(room);
        closeMenu();
        void join(room);
      },
    },
  });
  const calls = new CallView({
    connection,
    book,
    button: /** @type {HTMLButtonElement} */ (byId('call-button')),
    panel: byId('call'),
  });
  const composer = new Composer(/** @type {HTMLFormElement} */ (byId('composer')), {
    connection,
    outbox,
    book,
  });

  book.listen((change) => {
    if (change.type === 'events' && !change.older) {
      for (const event of change.events) outbox.delivered(event);
    }
    if (change.type === 'rooms') showTotalUnread();
  });

  /** @param {string} text */
  function bannerText(text) {
    const banner = document.createElement('p');
    banner.className = 'banner';
    banner.textContent = text;
    return banner;
  }

  /** @param {ServerFrame} frame */
  function onPush(frame) {
    switch (frame.type) {
      case 'event':
        book.push(frame.event);
        break;
      case 'live':
        book.live(frame.room, frame.epoch, frame.seq);
        break;
      case 'typing':
        book.typing(frame.room, frame.person, frame.active);
        break;
      case 'presence':
        book.presence(frame.room, frame.person, frame.status);
        break;
      case 'read':
        book.read(frame.room, frame.seq, frame.unread);
        break;
      case 'error':
        console.warn(`triad: ${frame.code}: ${frame.message}`);
        break;
      default:
        // Calls: call_state, call_signal, call_ended, ice_servers.
        calls.onPush(frame);
        break;
    }
  }

  /** The room to show: the one open before, else the person's trio, else the first. */
  function pickRoom() {
    const rooms = [...book.rooms.values()];
    const wanted = chat.room?.id ?? sessionStorage.getItem(ROOM_KEY);
    return (
      rooms.find((r) => r.id === wanted) ??
      rooms.find((r) => r.kind === 'trio' && r.joined) ??
      rooms.find((r) => r.joined) ??
      rooms[0] ??
      null
    );
  }

  /** @param {Room | null} room */
  function openRoom(room) {
    if (room) sessionStorage.setItem(ROOM_KEY, room.id);
    if (chat.room !== room || !room?.loaded) chat.open(room);
    composer.show(room);
    list.select(room?.id ?? null);
    calls.show(room);
    document.title = room ? `${room.title} · Triad` : 'Triad';
  }

  /** @param {Room} room */
  async function markRead(room) {
    const seq = readAsked.get(room.id) ?? 0;
    if (seq <= room.readSeq) return;
    if (!connection.live) {
      readAsked.delete(room.id);
      return;
    }
    try {
      const answer = await connection.request({ type: 'read', room: room.id, seq });
      if (answer.type === 'read') book.read(answer.room, answer.seq, answer.unread);
    } catch (err) {
      // Asked again when the messages are next seen.
      readAsked.delete(room.id);
      console.info('triad: read marker not moved', err);
    }
  }

  /** @param {Room} room */
  async function join(room) {
    try {
      const answer = await connection.request({ type: 'join', room: room.id });
      if (answer.type === 'joined') {
        book.joined(answer.room);
        calls.roomInfo(answer.room);
      }
      if (chat.room === room) openRoom(room);
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : 'the connection was lost';
      if (chat.room === room) chat.problem(`Could not join ${room.title}: ${message}.`);
    }
  }

  /** @param {Room} room */
  async function leave(room) {
    try {
      await connection.request({ type: 'leave', room: room.id });
      book.left(room.id);
      openRoom(room);
    } catch (err) {
      const message = err instanceof ProtocolError ? err.message : 'the connection was lost';
      if (chat.room === room) chat.problem(`Could not leave ${room.title}: ${message}.`);
    }
  }

  /** Online while the tab is visible, away while it is hidden. */
  function sayPresence() {
    if (!connection.live) return;
    const status = document.visibilityState === 'visible' ? 'online' : 'away';
    connection.request({ type: 'presence', status }).catch((err) => {
      console.info('triad: presence not set', err);
    });
  }

  function showTotalUnread() {
    const badge = byId('rooms-toggle-unread');
    const total = list.totalUnread();
    badge.hidden = total === 0;
    badge.textContent = total > 0 ? `${total} unread` : '';
  }

  // The rooms list folds into a menu on narrow screens.
  const toggle = byId('rooms-toggle');
  const nav = byId('rooms');
  function closeMenu() {
    if (!NARROW.matches) return;
    toggle.setAttribute('aria-expanded', 'false');
    document.body.classList.remove('menu-open');
  }
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    document.body.classList.toggle('menu-open', open);
    if (open) nav.querySelector('button')?.focus();
  });
  nav.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && NARROW.matches) {
      closeMenu();
      toggle.focus();
    }
  });

  document.addEventListener('visibilitychange', () => {
    sayPresence();
    if (document.visibilityState === 'visible') connection.retryNow();
  });
  window.addEventListener('online', () => connection.retryNow());
  // The browser knows the network is gone: the socket cannot work, so do not wait for the
  // keep-alive to notice; show that the page is reconnecting now.
  window.addEventListener('offline', () => connection.drop());

  // Hooks for the browser tests: cut the websocket as a network failure would.
  Object.assign(window, {
    triad: {
      dropConnection: () => connection.drop(),
      get status() {
        return connection.status;
      },
      call: {
        stats: () => calls.stats(),
        get session() {
          return calls.active?.session ?? null;
        },
      },
    },
  });

  connection.start();
}

main();
