// @ts-check
/**
 * Triad's web client: signs in with the sign-in link (`credentials.js`), keeps one websocket
 * to the server, and wires the parts together: the rooms (`rooms.js`), the rooms list
 * (`roomlist.js`), the open room (`chat.js`), the message form (`composer.js`), the
 * messages on their way (`outbox.js`), the room's video call (`call.js`), its coaching
 * sessions (`coachings.js`) and its key learning (`pins.js`).
 *
 * The sign-in link carries an invitation (`/#invite=…`) or a token (`/#token=…`) in the URL
 * fragment, which never reaches the server's logs. An invitation keeps the browser signed in
 * (the refresh token in an `HttpOnly` cookie); every page renews its access token from it
 * on load. A `#room=<id>` link (from the calendar feed and e-mails) opens that room, on load
 * and in an open page.
 */

import { CallView } from './call.js';
import { ChatView, PAGE_SIZE, bdi, isolated } from './chat.js';
import { CoachingView } from './coachings.js';
import { Composer } from './composer.js';
import {
  Connection,
  ProtocolError,
  REVOKED,
  SIGNED_OUT_EVERYWHERE_TEXT,
} from './connection.js';
import { ApiError, Credentials } from './credentials.js';
import { Outbox } from './outbox.js';
import { PinBoard } from './pins.js';
import { RoomList } from './roomlist.js';
import { RoomBook } from './rooms.js';
import { viewerTimeZone } from './time.js';

/** @typedef {import('./protocol').ServerFrame} ServerFrame */
/** @typedef {import('./protocol').ServerMessage} ServerMessage */
/** @typedef {import('./protocol').History} History */
/** @typedef {import('./rooms.js').Room} Room */

const ROOM_KEY = 'triad.room';
/** The channel on which a tab tells the browser's other tabs that it signed out. */
const SIGN_OUT_CHANNEL = 'triad.sign-out';
/** How long a page whose renewal was refused waits for the server's close to say why. */
const REVOCATION_CLOSE_WAIT_MS = 3_000;
/** What the page says after "Sign out". */
const SIGNED_OUT_TEXT = 'You are signed out on this device.';
/** Below this width the rooms list folds into a menu (as in style.css). */
const NARROW = window.matchMedia('(max-width: 700px)');
/** Below this width sessions and key learning fold behind a button (as in style.css). */
const SIDE_FOLDS = window.matchMedia('(max-width: 1000px)');

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

/** The websocket endpoint next to this page (`wss:` under https). */
function socketUrl() {
  const url = new URL('ws', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  return url.toString();
}

/** The room a `#room=<id>` link asks for, if any. */
function roomInLink() {
  return new URLSearchParams(window.location.hash.slice(1)).get('room');
}

/** Takes the `#room=` link out of the address bar (so the same link works again). */
function clearRoomLink() {
  if (roomInLink() === null) return;
  history.replaceState(null, '', window.location.pathname + window.location.search);
}

/**
 * @param {ServerMessage} message
 * @returns {History}
 */
function expectHistory(message) {
  if (message.type !== 'history') throw new Error(`expected history, got ${message.type}`);
  return message;
}

/**
 * @param {string} reason
 * @param {string} [title]
 */
function showSignedOut(reason, title = 'Sign in to Triad') {
  document.body.classList.add('is-signed-out');
  byId('signed-out').hidden = false;
  byId('signed-out-title').textContent = title;
  byId('signed-out-reason').textContent = reason;
  byId('composer').hidden = true;
  byId('messages').hidden = true;
  byId('typing').hidden = true;
  byId('room-side').hidden = true;
  byId('side-toggle').hidden = true;
  byId('sign-out').hidden = true;
  byId('sign-out-everywhere').hidden = true;
  byId('call-button').hidden = true;
  byId('coaching-notices').replaceChildren();
  byId('room-notice').replaceChildren();
  byId('room-people').replaceChildren();
  byId('room-groups').replaceChildren();
  byId('signed-in-as').replaceChildren();
  byId('room-title').textContent = 'Triad';
  document.title = 'Triad';
}

async function main() {
  const credentials = new Credentials();
  let signedIn = false;
  try {
    signedIn = await credentials.signIn();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'network') {
      showSignedOut(err.message, 'Triad cannot be reached');
    } else {
      const reason = err instanceof ApiError ? err.message : 'The sign-in failed.';
      showSignedOut(reason, 'This sign-in link cannot be used');
    }
    return;
  }
  const token = credentials.access;
  if (!signedIn || !token) {
    showSignedOut(
      'Open the sign-in link the coordinator sent you. It keeps you signed in on this device.',
    );
    return;
  }
  /** Set while this page signs out on every device: its own close is expected. */
  let signingOutEverywhere = false;

  const status = byId('connection-status');
  /** How many times this page was signed in on a websocket (for the tests). */
  let welcomes = 0;
  /** @type {Connection} */
  const connection = new Connection(socketUrl(), token, {
    resumePoints: () => book.resumePoints(),
    onWelcome: (welcome) => {
      welcomes += 1;
      credentials.expiresAtIs(welcome.token_expires_at);
      book.welcome(welcome);
      byId('signed-in-as').replaceChildren('Signed in as ', bdi(welcome.person.name));
      byId('sign-out').hidden = !credentials.renewable;
      byId('sign-out-everywhere').hidden = !credentials.renewable;
      pins.welcome();
      openRoom(pickRoom());
      calls.welcome(welcome);
      void coachings.welcome();
      outbox.resume();
      sayPresence();
    },
    onPush: (frame) => onPush(frame),
    onStatus: (state, reason, code) => {
      document.body.dataset.connection = state;
      if (state !== 'live') {
        // Who is online is not known while disconnected.
        book.disconnected();
      }
      calls.render();
      coachings.connectionChanged();
      if (state === 'reconnecting') {
        calls.socketLost();
        if (!status.firstChild) status.append(bannerText('Reconnecting…'));
      } else if (state === 'ended') {
        credentials.forget();
        status.replaceChildren();
        calls.stop('');
        if (signingOutEverywhere || reason === SIGNED_OUT_EVERYWHERE_TEXT) {
          showSignedOut(
            `${SIGNED_OUT_EVERYWHERE_TEXT} Open a new sign-in link from the coordinator to sign in again.`,
            'You are signed out',
          );
        } else if (code === REVOKED) {
          const why = reason ?? 'Your access was withdrawn.';
          showSignedOut(
            `${why} Ask the coordinator if you think this is a mistake.`,
            'Your access was withdrawn',
          );
        } else if (code === undefined) {
          showSignedOut(reason ?? 'You are signed out.', 'You are signed out');
        } else {
          showSignedOut(`${reason ?? 'You are signed out.'} Ask for a new sign-in link.`);
        }
      } else {
        status.replaceChildren();
      }
    },
    // Only an invitation sign-in can be renewed; a token from a link is used until it expires.
    renewToken: !credentials.renewable ? undefined : async () => {
      try {
        return await credentials.renew();
      } catch (err) {
        if (err instanceof ApiError && (err.code === 'network' || err.status === 503)) throw err;
        return null;
      }
    },
    tokenStale: () => credentials.renewable && credentials.stale,
  });
  // A renewed access token goes to the open session at once.
  credentials.listen((fresh) => void connection.useToken(fresh));
  credentials.onEnded = (reason) => {
    if (connection.status === 'ended') return;
    if (connection.status !== 'live') {
      connection.stop(reason);
      return;
    }
    // A revocation or "sign out everywhere" also closes the open session, with a reason
    // that says which (4009): give that close a moment to arrive and say why.
    window.setTimeout(() => {
      if (connection.status !== 'ended') connection.stop(reason);
    }, REVOCATION_CLOSE_WAIT_MS);
  };

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

  const pins = new PinBoard({ connection, book, section: byId('pins') });
  const chat = new ChatView(byId('chat'), {
    book,
    outbox,
    pins,
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
  const coachings = new CoachingView({
    connection,
    credentials,
    book,
    section: byId('sessions'),
    notices: byId('coaching-notices'),
    announcer: byId('announcer'),
    actions: {
      openRoom: (roomId) => {
        const room = book.rooms.get(roomId);
        if (room) openRoom(room);
      },
      joinCall: (roomId) => {
        const room = book.rooms.get(roomId);
        if (!room) return;
        if (chat.room !== room) openRoom(room);
        void calls.startOrJoin();
      },
      inCall: (roomId) => calls.active?.room === roomId,
    },
  });
  // Joining or leaving a call changes what the sessions offer.
  calls.onRender = () => coachings.refresh();
  pins.listen((roomId) => chat.showPins(roomId));
  byId('book-zone').textContent = `In your time zone, ${viewerTimeZone.replace(/_/g, ' ')}.`;
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
    // A room joined or left: its key learning can be read, or not.
    if (change.type === 'reset' && change.room === chat.room) pins.show(change.room);
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
      case 'coaching':
        coachings.onPush(frame.change, frame.coaching);
        break;
      case 'pinned':
        pins.onPinned(frame.pin, frame.pinned);
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

  /**
   * The room to show: the one a `#room=` link asks for, else the one open before, else the
   * person's trio, else the first.
   */
  function pickRoom() {
    const rooms = [...book.rooms.values()];
    const linked = roomInLink();
    clearRoomLink();
    const wanted =
      (linked !== null && book.rooms.has(linked) ? linked : null) ??
      chat.room?.id ??
      sessionStorage.getItem(ROOM_KEY);
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
    coachings.show(room);
    pins.show(room);
    byId('room-side').hidden = !room || (SIDE_FOLDS.matches && !sideOpen);
    byId('side-toggle').hidden = !room || !SIDE_FOLDS.matches;
    document.title = room ? `${isolated(room.title)} · Triad` : 'Triad';
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

  // Sessions and key learning fold behind a button on narrow screens.
  let sideOpen = false;
  const sideToggle = byId('side-toggle');
  sideToggle.addEventListener('click', () => {
    sideOpen = !sideOpen;
    sideToggle.setAttribute('aria-expanded', String(sideOpen));
    byId('room-side').hidden = !sideOpen;
    if (sideOpen) byId('room-side').querySelector('h2')?.scrollIntoView({ block: 'nearest' });
  });
  SIDE_FOLDS.addEventListener('change', () => {
    if (chat.room) openRoom(chat.room);
  });

  // The other tabs of this browser share its sign-in: when one signs out, they stop too.
  const signOuts = 'BroadcastChannel' in window ? new BroadcastChannel(SIGN_OUT_CHANNEL) : null;
  signOuts?.addEventListener('message', (event) => {
    credentials.forget();
    const everywhere = event.data === 'everywhere';
    if (everywhere) signingOutEverywhere = true;
    if (connection.status !== 'ended') {
      connection.stop(everywhere ? SIGNED_OUT_EVERYWHERE_TEXT : SIGNED_OUT_TEXT);
    }
  });
  byId('sign-out').addEventListener('click', async () => {
    const button = /** @type {HTMLButtonElement} */ (byId('sign-out'));
    button.disabled = true;
    try {
      await credentials.signOut();
    } catch (err) {
      // Still signed in: say so, and keep the page.
      const message = err instanceof ApiError ? err.message : 'something went wrong; try again';
      status.replaceChildren(bannerText(`Not signed out: ${message}.`));
      console.info('triad: sign-out failed', err);
      return;
    } finally {
      button.disabled = false;
    }
    signOuts?.postMessage('this-device');
    connection.stop(SIGNED_OUT_TEXT);
  });
  byId('sign-out-everywhere').addEventListener('click', async () => {
    const button = /** @type {HTMLButtonElement} */ (byId('sign-out-everywhere'));
    button.disabled = true;
    signingOutEverywhere = true;
    try {
      await credentials.signOutEverywhere();
      signOuts?.postMessage('everywhere');
      if (connection.status !== 'ended') connection.stop(SIGNED_OUT_EVERYWHERE_TEXT);
    } catch (err) {
      signingOutEverywhere = false;
      const message = err instanceof ApiError ? err.message : 'something went wrong; try again';
      status.replaceChildren(bannerText(`Not signed out everywhere: ${message}.`));
      console.info('triad: sign-out everywhere failed', err);
    } finally {
      button.disabled = false;
    }
  });

  // A `#room=` link followed in an open page.
  window.addEventListener('hashchange', () => {
    const linked = roomInLink();
    if (linked === null || !book.me) return;
    const room = book.rooms.get(linked);
    clearRoomLink();
    if (room) {
      openRoom(room);
      closeMenu();
    }
  });

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
  const hooks = {
    dropConnection: () => connection.drop(),
    get status() {
      return connection.status;
    },
    get welcomes() {
      return welcomes;
    },
    call: {
      stats: () => calls.stats(),
      get session() {
        return calls.active?.session ?? null;
      },
    },
  };
  // The access token only where the browser tests ask for it (they set the flag before the
  // page's scripts run): anywhere else, any script on the page could read it here.
  if (/** @type {any} */ (window).__TRIAD_TEST__ === true) {
    Object.defineProperty(hooks, 'accessToken', { get: () => credentials.access });
  }
  Object.assign(window, { triad: hooks });

  connection.start();
}

void main();
