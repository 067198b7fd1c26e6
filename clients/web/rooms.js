// @ts-check
/**
 * What the client knows about the rooms: their positions in history, the events loaded so
 * far, unread counts, members and their presence, who is typing. Events of a room are taken
 * exactly once and in `seq` order: a duplicate is skipped, and a gap is filled from history
 * (`history after`) before the events beyond it are taken. Views listen for changes.
 */

/** @typedef {import('./protocol').RoomInfo} RoomInfo */
/** @typedef {import('./protocol').RoomEvent} RoomEvent */
/** @typedef {import('./protocol').MemberInfo} MemberInfo */
/** @typedef {import('./protocol').PersonInfo} PersonInfo */
/** @typedef {import('./protocol').PresenceStatus} PresenceStatus */
/** @typedef {import('./protocol').ResumePoint} ResumePoint */
/** @typedef {import('./protocol').Welcome} Welcome */
/** @typedef {import('./protocol').History} History */
/** @typedef {import('./protocol').Limits} Limits */

/**
 * What changed, for the views.
 * - `rooms`: the list of rooms or a room's position, unread count or activity.
 * - `events`: events were added to a room (`older` when a page of older history came).
 * - `loaded`: a room's newest page came: its loaded events are all new to the views.
 * - `reset`: a room's loaded history was dropped (a new epoch, or a moderator joined).
 * - `members`: a room's members or their presence.
 * - `typing`: who is typing in a room.
 * @typedef {{type: 'rooms'}
 *   | {type: 'events', room: Room, events: RoomEvent[], older: boolean}
 *   | {type: 'loaded', room: Room}
 *   | {type: 'reset', room: Room}
 *   | {type: 'members', room: Room}
 *   | {type: 'typing', room: Room}} Change
 */

/**
 * Reads history for gap filling: the events after `seq`, oldest first.
 * @typedef {(room: string, after: number) => Promise<History>} HistoryAfter
 */

export class Room {
  /** @param {RoomInfo} info */
  constructor(info) {
    this.id = info.id;
    this.kind = info.kind;
    this.title = info.title;
    this.epoch = info.epoch;
    this.joined = info.joined;
    /** The last event taken in order; the resume point. */
    this.seq = info.last_seq;
    /** The room's last event as the server last said (for rooms not joined). */
    this.lastSeq = info.last_seq;
    this.readSeq = info.read_seq;
    this.serverUnread = info.unread;
    /** @type {number | null} */
    this.lastTs = info.last_ts ?? null;
    /** @type {Map<string, MemberInfo>} */
    this.members = new Map(info.members.map((m) => [m.person, m]));
    /** Loaded events by seq. @type {Map<number, RoomEvent>} */
    this.events = new Map();
    /** Whether the newest page has been asked for (the room was opened). */
    this.loading = false;
    /** Whether the newest page has come. */
    this.loaded = false;
    /** Whether history goes further back than the oldest loaded event. */
    this.hasOlder = info.last_seq > 0;
    /** Events beyond a gap, waiting for the gap to be filled. @type {Map<number, RoomEvent>} */
    this.beyondGap = new Map();
    this.filling = false;
    /** Who is typing, with the timer that ends it. @type {Map<string, number>} */
    this.typing = new Map();
  }

  /** Events after the read marker (the server's count for rooms not joined). */
  get unread() {
    return this.joined ? Math.max(0, this.seq - this.readSeq) : this.serverUnread;
  }

  /** The lowest seq loaded, or null. */
  get oldest() {
    let oldest = null;
    for (const seq of this.events.keys()) if (oldest === null || seq < oldest) oldest = seq;
    return oldest;
  }

  /** The loaded events in seq order. */
  sorted() {
    return [...this.events.values()].sort((a, b) => a.seq - b.seq);
  }

  /** @param {RoomInfo} info */
  update(info) {
    this.title = info.title;
    this.kind = info.kind;
    this.joined = info.joined;
    this.lastSeq = info.last_seq;
    this.readSeq = Math.max(this.readSeq, info.read_seq);
    this.serverUnread = info.unread;
    this.lastTs = info.last_ts ?? this.lastTs;
    this.members = new Map(info.members.map((m) => [m.person, m]));
  }

  /** Forgets every position and loaded event: the room's history was reset. */
  reset() {
    this.events.clear();
    this.beyondGap.clear();
    this.loading = false;
    this.loaded = false;
    this.seq = this.lastSeq;
    this.hasOlder = this.lastSeq > 0;
  }
}

export class RoomBook {
  /**
   * @param {HistoryAfter} historyAfter
   */
  constructor(historyAfter) {
    this.historyAfter = historyAfter;
    /** @type {PersonInfo | null} */
    this.me = null;
    /** @type {Limits | null} */
    this.limits = null;
    /** Rooms in the order the server lists them. @type {Map<string, Room>} */
    this.rooms = new Map();
    /** Display names of everyone seen in any room. @type {Map<string, string>} */
    this.names = new Map();
    /** @type {Set<(change: Change) => void>} */
    this.listeners = new Set();
  }

  /** @param {(change: Change) => void} listener */
  listen(listener) {
    this.listeners.add(listener);
  }

  /** @param {Change} change */
  emit(change) {
    for (const listener of this.listeners) listener(change);
  }

  /**
   * A person's display name.
   * @param {string} person
   */
  name(person) {
    return this.names.get(person) ?? person;
  }

  /** @param {Iterable<MemberInfo>} members */
  learnNames(members) {
    for (const m of members) this.names.set(m.person, m.name);
  }

  /** Where each joined room is, for `hello`. @returns {ResumePoint[]} */
  resumePoints() {
    return [...this.rooms.values()]
      .filter((r) => r.joined)
      .map((r) => ({ room: r.id, epoch: r.epoch, seq: r.seq }));
  }

  /**
   * Takes a welcome (the first, or one after a reconnect). A room whose epoch changed is
   * reset; the others keep their events, and the server replays what they missed.
   * @param {Welcome} welcome
   */
  welcome(welcome) {
    this.me = welcome.person;
    this.limits = welcome.limits;
    this.names.set(welcome.person.id, welcome.person.name);
    /** @type {Map<string, Room>} */
    const rooms = new Map();
    for (const info of welcome.rooms) {
      this.learnNames(info.members);
      const known = this.rooms.get(info.id);
      if (!known) {
        rooms.set(info.id, new Room(info));
        continue;
      }
      const wasJoined = known.joined;
      known.update(info);
      if (known.epoch !== info.epoch || !wasJoined) {
        known.epoch = info.epoch;
        known.reset();
        this.emit({ type: 'reset', room: known });
      }
      for (const timer of known.typing.values()) window.clearTimeout(timer);
      known.typing.clear();
      rooms.set(info.id, known);
    }
    this.rooms = rooms;
    this.emit({ type: 'rooms' });
    for (const room of rooms.values()) this.emit({ type: 'members', room });
  }

  /**
   * A moderator joined a room: the room as they now see it.
   * @param {RoomInfo} info
   */
  joined(info) {
    this.learnNames(info.members);
    const room = this.rooms.get(info.id);
    if (!room) return;
    room.update(info);
    room.epoch = info.epoch;
    room.reset();
    this.emit({ type: 'reset', room });
    this.emit({ type: 'rooms' });
    this.emit({ type: 'members', room });
  }

  /**
   * This person (a moderator) left a room: it is no longer followed.
   * @param {string} roomId
   */
  left(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.joined = false;
    room.serverUnread = 0;
    room.lastSeq = room.seq;
    if (this.me) room.members.delete(this.me.id);
    room.reset();
    this.emit({ type: 'reset', room });
    this.emit({ type: 'rooms' });
    this.emit({ type: 'members', room });
  }

  /**
   * Takes an event pushed by the server, in order, once.
   * @param {RoomEvent} event
   */
  push(event) {
    const room = this.rooms.get(event.room);
    if (!room || !room.joined) return;
    if (event.seq <= room.seq) return;
    if (event.seq > room.seq + 1) {
      room.beyondGap.set(event.seq, event);
      void this.fillGap(room);
      return;
    }
    this.take(room, [event]);
  }

  /**
   * The room is live up to `seq`: if events are missing, fetch them.
   * @param {string} roomId
   * @param {number} epoch
   * @param {number} seq
   */
  live(roomId, epoch, seq) {
    const room = this.rooms.get(roomId);
    if (!room || epoch !== room.epoch) return;
    room.lastSeq = Math.max(room.lastSeq, seq);
    if (seq > room.seq) void this.fillGap(room);
  }

  /**
   * Takes events in order (each exactly `room.seq + 1`), then any waiting beyond a gap.
   * @param {Room} room
   * @param {RoomEvent[]} events
   */
  take(room, events) {
    /** @type {RoomEvent[]} */
    const taken = [];
    const queue = [...events];
    while (queue.length > 0) {
      const event = /** @type {RoomEvent} */ (queue.shift());
      if (event.seq !== room.seq + 1) continue;
      room.seq = event.seq;
      room.lastSeq = Math.max(room.lastSeq, event.seq);
      room.lastTs = event.ts;
      // Kept once the room is opened; before that, its newest page brings them.
      if (room.loading || room.loaded) room.events.set(event.seq, event);
      if (event.author === this.me?.id) {
        // The server moves its author's read marker to a message it stores.
        room.readSeq = Math.max(room.readSeq, event.seq);
      }
      this.stopTyping(room, event.author, false);
      taken.push(event);
      const next = room.beyondGap.get(room.seq + 1);
      if (next) {
        room.beyondGap.delete(next.seq);
        queue.push(next);
      }
    }
    for (const seq of room.beyondGap.keys()) if (seq <= room.seq) room.beyondGap.delete(seq);
    if (taken.length === 0) return;
    this.emit({ type: 'events', room, events: taken, older: false });
    this.emit({ type: 'typing', room });
    this.emit({ type: 'rooms' });
  }

  /**
   * Reads history after the room's position until the gap is closed.
   * @param {Room} room
   */
  async fillGap(room) {
    if (room.filling) return;
    room.filling = true;
    try {
      for (;;) {
        const target = Math.max(room.lastSeq, ...room.beyondGap.keys());
        if (room.seq >= target) break;
        const page = await this.historyAfter(room.id, room.seq);
        if (page.epoch !== room.epoch) break;
        this.take(room, page.events);
        if (page.events.length === 0 || !page.has_more) break;
      }
    } catch (err) {
      // The connection dropped: the resume after reconnecting brings the rest.
      console.info('triad: could not fill a gap yet', err);
    } finally {
      room.filling = false;
    }
  }

  /**
   * The newest page of a room, loaded when it is first opened.
   * @param {Room} room
   * @param {History} page
   */
  latest(room, page) {
    if (page.epoch !== room.epoch) return;
    room.loaded = true;
    room.hasOlder = page.has_more;
    for (const event of page.events) if (event.seq <= room.seq) room.events.set(event.seq, event);
    this.emit({ type: 'loaded', room });
    for (const event of page.events) if (event.seq > room.seq) this.push(event);
  }

  /**
   * An older page, from scrolling up.
   * @param {Room} room
   * @param {History} page
   */
  older(room, page) {
    if (page.epoch !== room.epoch) return;
    room.hasOlder = page.has_more;
    const events = page.events.filter((e) => !room.events.has(e.seq) && e.seq <= room.seq);
    for (const event of events) room.events.set(event.seq, event);
    this.emit({ type: 'events', room, events, older: true });
  }

  /**
   * The read marker moved (our `read`, or another session of ours).
   * @param {string} roomId
   * @param {number} seq
   * @param {number} unread
   */
  read(roomId, seq, unread) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.readSeq = Math.max(room.readSeq, seq);
    room.serverUnread = unread;
    this.emit({ type: 'rooms' });
  }

  /**
   * The connection is down: no one's presence is known until the next welcome, and the
   * others see this person go offline too, so no one shows as online (the person included)
   * and no one as typing.
   */
  disconnected() {
    for (const room of this.rooms.values()) {
      let changed = false;
      for (const member of room.members.values()) {
        if (member.status !== 'offline') {
          member.status = 'offline';
          changed = true;
        }
      }
      for (const person of [...room.typing.keys()]) this.stopTyping(room, person, true);
      if (changed) this.emit({ type: 'members', room });
    }
    this.emit({ type: 'rooms' });
  }

  /**
   * Someone's presence changed in a room (or a moderator entered or left it).
   * @param {string} roomId
   * @param {string} person
   * @param {PresenceStatus} status
   */
  presence(roomId, person, status) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    const member = room.members.get(person);
    if (member) member.status = status;
    else room.members.set(person, { person, name: this.name(person), role: 'moderator', status });
    if (status === 'offline') this.stopTyping(room, person, true);
    this.emit({ type: 'members', room });
    this.emit({ type: 'rooms' });
  }

  /**
   * Someone started or stopped typing; an indicator ends by itself after the TTL.
   * @param {string} roomId
   * @param {string} person
   * @param {boolean} active
   */
  typing(roomId, person, active) {
    const room = this.rooms.get(roomId);
    if (!room || person === this.me?.id) return;
    if (!active) {
      this.stopTyping(room, person, true);
      return;
    }
    window.clearTimeout(room.typing.get(person));
    const ttl = (this.limits?.typing_ttl_secs ?? 6) * 1000;
    room.typing.set(
      person,
      window.setTimeout(() => this.stopTyping(room, person, true), ttl),
    );
    this.emit({ type: 'typing', room });
  }

  /**
   * @param {Room} room
   * @param {string} person
   * @param {boolean} announce whether to tell the views now
   */
  stopTyping(room, person, announce) {
    const timer = room.typing.get(person);
    if (timer === undefined) return;
    window.clearTimeout(timer);
    room.typing.delete(person);
    if (announce) this.emit({ type: 'typing', room });
  }
}
