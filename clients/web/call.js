// @ts-check
/**
 * Video calls: the button that starts or joins the open room's call, the call's tiles (a
 * video, a name and the microphone and camera state per participant) and its controls.
 *
 * A call is a full mesh: one `RTCPeerConnection` per other participant. The server keeps the
 * list of participants in the order they joined, and each participant makes the offer to
 * everyone listed before it (the later joiner offers), so two sides never offer at once.
 * Offers, answers and ICE candidates travel as `call_signal`; candidates that come before
 * the remote description wait for it.
 *
 * Peer connections do not depend on the websocket: when it drops, the page reconnects,
 * takes its place back with `call_join … resume: true`, and the offering side of a pair whose
 * connection failed or went quiet restarts ICE.
 *
 * A peer without media (the `triad-call` agent, which only opens a data channel) is
 * accepted: its tile shows its name and no picture. The `triad` data channel answers the
 * agent's `ping N` with `pong N`.
 */

import { bdi, el, isolated, userText } from './chat.js';
import { DisconnectedError, ProtocolError } from './connection.js';

/** @typedef {import('./protocol').ServerFrame} ServerFrame */
/** @typedef {import('./protocol').CallState} CallState */
/** @typedef {import('./protocol').CallParticipant} CallParticipant */
/** @typedef {import('./protocol').IceServers} IceServers */
/** @typedef {import('./protocol').Signal} Signal */
/** @typedef {import('./protocol').Welcome} Welcome */
/** @typedef {import('./protocol').RoomInfo} RoomInfo */
/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./rooms.js').RoomBook} RoomBook */
/** @typedef {import('./rooms.js').Room} Room */

/** The data channel every offer carries (the call agent's ping and pong go over it). */
const CHANNEL_LABEL = 'triad';
/** A connection `disconnected` this long is restarted (it may also recover by itself). */
const DISCONNECTED_RESTART_MS = 2_500;

/**
 * One other participant and the peer connection to them.
 * @typedef {object} Peer
 * @property {string} person
 * @property {string} session the session signals go to (it changes when they resume)
 * @property {number} joinedAt tells a resumed participant from one who joined again
 * @property {boolean} offerer whether this page makes the offers to them
 * @property {RTCPeerConnection} pc
 * @property {RTCIceCandidateInit[]} pending candidates waiting for the remote description
 * @property {MediaStream} stream what they send
 * @property {RTCDataChannel | null} channel
 * @property {number | undefined} restartTimer
 * @property {HTMLElement} tile
 */

/**
 * The call this page is in.
 * @typedef {object} ActiveCall
 * @property {string} id
 * @property {string} room
 * @property {string} session this page's participant session
 * @property {CallState} state
 * @property {RTCIceServer[]} iceServers
 * @property {Map<string, Peer>} peers by person
 * @property {MediaStream | null} local
 * @property {boolean} mic
 * @property {boolean} camera
 */

/**
 * @param {IceServers} servers
 * @returns {RTCIceServer[]}
 */
function iceServers(servers) {
  return servers.servers.map((s) => {
    /** @type {RTCIceServer} */
    const server = { urls: s.urls };
    if (s.username) server.username = s.username;
    if (s.credential) server.credential = s.credential;
    return server;
  });
}

export class CallView {
  /**
   * @param {{connection: Connection, book: RoomBook, button: HTMLButtonElement, panel: HTMLElement}} parts
   */
  constructor({ connection, book, button, panel }) {
    this.connection = connection;
    this.book = book;
    this.button = button;
    this.panel = panel;
    /** The call in progress in each room, as the server last said. @type {Map<string, CallState>} */
    this.calls = new Map();
    /** @type {ActiveCall | null} */
    this.active = null;
    /** The room shown. @type {Room | null} */
    this.room = null;
    /** Whether a start or join is on its way. */
    this.busy = false;
    /** Whether the websocket was lost since the call was joined (a rejoin is due). */
    this.lostSocket = false;
    /** Whether a rejoin is on its way: call states until its answer name the old session. */
    this.resuming = false;
    /** Told after each render (the page's sessions follow whether it is in a call). */
    this.onRender = () => {};

    this.status = el('p', 'call-status');
    this.status.setAttribute('role', 'status');
    this.tiles = el('ul', 'call-tiles');
    this.tiles.setAttribute('aria-label', 'People in the call');
    this.micButton = this.toggleButton('Microphone', 'call-mic');
    this.cameraButton = this.toggleButton('Camera', 'call-camera');
    this.leaveButton = el('button', 'call-leave', 'Leave call');
    this.leaveButton.type = 'button';
    const controls = el('div', 'call-controls');
    controls.setAttribute('role', 'group');
    controls.setAttribute('aria-label', 'Call controls');
    controls.append(this.micButton, this.cameraButton, this.leaveButton);
    const heading = el('div', 'call-heading');
    heading.append(this.status, controls);
    this.panel.replaceChildren(heading, this.tiles);
    this.panel.hidden = true;

    this.button.addEventListener('click', () => void this.startOrJoin());
    this.micButton.addEventListener('click', () => this.setMedia('mic'));
    this.cameraButton.addEventListener('click', () => this.setMedia('camera'));
    this.leaveButton.addEventListener('click', () => void this.leave());
  }

  /**
   * @param {string} label
   * @param {string} className
   */
  toggleButton(label, className) {
    const button = el('button', `call-toggle ${className}`, label);
    button.type = 'button';
    button.setAttribute('aria-pressed', 'true');
    return button;
  }

  // ---- What the server says ----

  /**
   * The welcome (also after a reconnect): each room's call; rejoin ours if the socket dropped.
   * @param {Welcome} welcome
   */
  welcome(welcome) {
    this.calls.clear();
    for (const room of welcome.rooms) this.roomInfo(room, false);
    const active = this.active;
    if (active && this.lostSocket) {
      this.lostSocket = false;
      void this.resume(active);
    }
    this.render();
  }

  /**
   * A room as the server describes it (welcome, `joined`).
   * @param {RoomInfo} info
   * @param {boolean} [render]
   */
  roomInfo(info, render = true) {
    if (info.call) this.calls.set(info.id, info.call);
    else this.calls.delete(info.id);
    if (render) this.render();
  }

  /** The websocket is down: the call goes on; a rejoin follows the next welcome. */
  socketLost() {
    if (this.active) this.lostSocket = true;
  }

  /**
   * A pushed frame; returns whether it was about calls.
   * @param {ServerFrame} frame
   */
  onPush(frame) {
    switch (frame.type) {
      case 'call_state':
        this.calls.set(frame.call.room, frame.call);
        if (this.active?.id === frame.call.id && !this.resuming) void this.sync(frame.call);
        this.render();
        return true;
      case 'call_ended':
        if (this.calls.get(frame.room)?.id === frame.call) this.calls.delete(frame.room);
        if (this.active?.id === frame.call) {
          this.stop(
            frame.reason === 'ended'
              ? 'The call was ended.'
              : frame.reason === 'server_lost'
                ? 'The call was interrupted by a server restart; start it again.'
                : '',
          );
        }
        this.render();
        return true;
      case 'call_signal':
        if (this.active?.id === frame.call) void this.onSignal(frame.from, frame.person, frame.signal);
        return true;
      case 'ice_servers':
        this.useIceServers(frame);
        return true;
      default:
        return false;
    }
  }

  /**
   * New ICE servers (TURN credentials before the old ones expire).
   * @param {IceServers} servers
   */
  useIceServers(servers) {
    const active = this.active;
    if (!active || active.id !== servers.call) return;
    active.iceServers = iceServers(servers);
    for (const peer of active.peers.values()) {
      try {
        peer.pc.setConfiguration({ ...peer.pc.getConfiguration(), iceServers: active.iceServers });
      } catch (err) {
        console.info('triad: ICE servers not updated', err);
      }
    }
  }

  // ---- Starting, joining, leaving ----

  /**
   * Shows a room: its call button follows the room's call.
   * @param {Room | null} room
   */
  show(room) {
    this.room = room;
    this.render();
  }

  async startOrJoin() {
    const room = this.room;
    if (!room || this.active || this.busy) return;
    this.busy = true;
    this.render();
    /** @type {MediaStream | null} */
    let local = null;
    try {
      local = await this.localMedia();
      const current = this.calls.get(room.id);
      const answer = await this.connection.request(
        current ? { type: 'call_join', call: current.id } : { type: 'call_start', room: room.id },
      );
      if (answer.type !== 'call_joined') throw new Error(`expected call_joined, got ${answer.type}`);
      this.active = {
        id: answer.call.id,
        room: answer.call.room,
        session: answer.session,
        state: answer.call,
        iceServers: iceServers(answer.ice_servers),
        peers: new Map(),
        local,
        mic: true,
        camera: true,
      };
      local = null;
      this.lostSocket = false;
      this.calls.set(answer.call.room, answer.call);
      this.panel.hidden = false;
      await this.sync(answer.call);
    } catch (err) {
      for (const track of local?.getTracks() ?? []) track.stop();
      const message =
        err instanceof ProtocolError
          ? err.message
          : err instanceof DisconnectedError
            ? 'the connection was lost'
            : 'something went wrong; try again';
      this.status.textContent = `Could not join the call: ${message}.`;
      this.panel.hidden = false;
      console.info('triad: call not joined', err);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  /** The camera and microphone, or whatever of them there is (or nothing: receive only). */
  async localMedia() {
    const media = navigator.mediaDevices;
    if (!media?.getUserMedia) return null;
    for (const constraints of [
      { audio: true, video: { width: { ideal: 640 }, height: { ideal: 360 } } },
      { audio: true },
    ]) {
      try {
        return await media.getUserMedia(constraints);
      } catch (err) {
        console.info('triad: media not available', constraints, err);
      }
    }
    return null;
  }

  /**
   * After a reconnect: take this page's place in the call back.
   * @param {ActiveCall} active
   */
  async resume(active) {
    this.resuming = true;
    try {
      const answer = await this.connection.request({
        type: 'call_join',
        call: active.id,
        resume: true,
      });
      this.resuming = false;
      if (answer.type !== 'call_joined' || this.active !== active) return;
      active.session = answer.session;
      // Call states that came before the answer are no newer than it.
      active.iceServers = iceServers(answer.ice_servers);
      this.useIceServers(answer.ice_servers);
      this.calls.set(answer.call.room, answer.call);
      await this.sync(answer.call);
      // Connections that failed or went quiet while the socket was down start over.
      for (const peer of active.peers.values()) {
        const state = peer.pc.connectionState;
        if (peer.offerer && (state === 'failed' || state === 'disconnected')) {
          void this.offer(peer, true);
        }
      }
      // If the media changed while away, say so again.
      this.sendMedia();
    } catch (err) {
      this.resuming = false;
      if (this.active !== active) return;
      console.info('triad: call not resumed', err);
      // Unless the socket dropped again (a rejoin follows), the call is gone for this page.
      if (this.connection.live) this.stop('You were disconnected from the call.');
    }
  }

  async leave() {
    const active = this.active;
    if (!active) return;
    this.stop('');
    try {
      await this.connection.request({ type: 'call_leave', call: active.id });
    } catch (err) {
      // Leaving while the socket is down: the grace period removes this page.
      console.info('triad: call_leave not sent', err);
    }
  }

  /**
   * Ends this page's part: every peer connection closes, the camera goes off.
   * @param {string} message what to tell the person
   */
  stop(message) {
    const active = this.active;
    if (!active) return;
    this.active = null;
    this.lostSocket = false;
    for (const peer of active.peers.values()) this.close(peer);
    for (const track of active.local?.getTracks() ?? []) track.stop();
    this.tiles.replaceChildren();
    this.status.textContent = message;
    this.panel.hidden = !message;
    this.panel.classList.toggle('call-over', Boolean(message));
    this.render();
  }

  // ---- The mesh ----

  /**
   * Brings the peers in line with the call's participants.
   * @param {CallState} state
   */
  async sync(state) {
    const active = this.active;
    if (!active || active.id !== state.id) return;
    active.state = state;
    const mine = state.participants.findIndex((p) => p.session === active.session);
    if (mine < 0) {
      // This page is no longer in the call (removed after a long drop, or left elsewhere).
      this.stop('You are no longer in the call.');
      return;
    }
    const me = state.participants[mine];
    active.mic = me.mic;
    active.camera = me.camera;
    this.applyMedia();
    const present = new Set(state.participants.map((p) => p.person));
    for (const [person, peer] of active.peers) {
      if (!present.has(person)) {
        this.close(peer);
        active.peers.delete(person);
      }
    }
    for (const [position, participant] of state.participants.entries()) {
      if (position === mine) continue;
      const offerer = mine > position;
      const known = active.peers.get(participant.person);
      if (known && known.joinedAt === participant.joined_at) {
        const moved = known.session !== participant.session;
        known.session = participant.session;
        // They came back on a new session: their side may have missed a restart.
        const state = known.pc.connectionState;
        if (moved && known.offerer && state !== 'connected' && state !== 'new') {
          void this.offer(known, true);
        }
        continue;
      }
      if (known) {
        this.close(known);
        active.peers.delete(participant.person);
      }
      const peer = this.addPeer(active, participant, offerer);
      if (offerer) void this.offer(peer, false);
    }
    this.renderTiles();
  }

  /**
   * @param {ActiveCall} active
   * @param {CallParticipant} participant
   * @param {boolean} offerer
   * @returns {Peer}
   */
  addPeer(active, participant, offerer) {
    const pc = new RTCPeerConnection({ iceServers: active.iceServers });
    /** @type {Peer} */
    const peer = {
      person: participant.person,
      session: participant.session,
      joinedAt: participant.joined_at,
      offerer,
      pc,
      pending: [],
      stream: new MediaStream(),
      channel: null,
      restartTimer: undefined,
      tile: this.makeTile(participant.person, false),
    };
    active.peers.set(participant.person, peer);
    pc.onicecandidate = (event) => {
      if (!event.candidate || !event.candidate.candidate) return;
      const c = event.candidate;
      /** @type {Signal} */
      const signal = { kind: 'candidate', candidate: c.candidate };
      if (c.sdpMid !== null) signal.sdp_mid = c.sdpMid;
      if (c.sdpMLineIndex !== null) signal.sdp_mline_index = c.sdpMLineIndex;
      this.signal(active, peer, signal, false);
    };
    pc.ontrack = (event) => {
      peer.stream.addTrack(event.track);
      const video = peer.tile.querySelector('video');
      if (video && video.srcObject !== peer.stream) video.srcObject = peer.stream;
      this.renderTiles();
    };
    pc.onconnectionstatechange = () => this.onConnectionState(active, peer);
    pc.ondatachannel = (event) => this.watchChannel(peer, event.channel);
    if (offerer) {
      for (const kind of /** @type {const} */ (['audio', 'video'])) {
        const track = active.local?.getTracks().find((t) => t.kind === kind);
        if (track && active.local) {
          pc.addTransceiver(track, { direction: 'sendrecv', streams: [active.local] });
        } else {
          pc.addTransceiver(kind, { direction: 'recvonly' });
        }
      }
      this.watchChannel(peer, pc.createDataChannel(CHANNEL_LABEL));
    }
    return peer;
  }

  /**
   * @param {Peer} peer
   * @param {RTCDataChannel} channel
   */
  watchChannel(peer, channel) {
    peer.channel = channel;
    channel.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      const ping = /^ping (\d+)$/.exec(event.data);
      if (ping && channel.readyState === 'open') channel.send(`pong ${ping[1]}`);
    };
  }

  /**
   * @param {ActiveCall} active
   * @param {Peer} peer
   */
  onConnectionState(active, peer) {
    const state = peer.pc.connectionState;
    window.clearTimeout(peer.restartTimer);
    peer.restartTimer = undefined;
    if (peer.offerer && this.active === active && this.connection.live) {
      if (state === 'failed') void this.offer(peer, true);
      if (state === 'disconnected') {
        peer.restartTimer = window.setTimeout(() => {
          if (peer.pc.connectionState === 'disconnected' && this.active === active) {
            void this.offer(peer, true);
          }
        }, DISCONNECTED_RESTART_MS);
      }
    }
    this.renderTiles();
  }

  /** @param {Peer} peer */
  close(peer) {
    window.clearTimeout(peer.restartTimer);
    peer.pc.onicecandidate = peer.pc.ontrack = peer.pc.onconnectionstatechange = null;
    peer.pc.close();
    peer.tile.remove();
  }

  /**
   * Makes (or remakes, with `restart`) the offer to a peer.
   * @param {Peer} peer
   * @param {boolean} restart
   */
  async offer(peer, restart) {
    const active = this.active;
    if (!active || peer.pc.signalingState === 'closed') return;
    // An offer already waits for its answer: a restart comes with the next round.
    if (restart && peer.pc.signalingState !== 'stable') return;
    try {
      const offer = await peer.pc.createOffer(restart ? { iceRestart: true } : undefined);
      await peer.pc.setLocalDescription(offer);
      /** @type {Signal} */
      const signal = { kind: 'offer', sdp: offer.sdp ?? '' };
      if (restart) signal.ice_restart = true;
      this.signal(active, peer, signal, true);
    } catch (err) {
      console.info('triad: offer not made', err);
    }
  }

  /**
   * A signal from another participant.
   * @param {string} from their session
   * @param {string} person
   * @param {Signal} signal
   */
  async onSignal(from, person, signal) {
    const active = this.active;
    if (!active) return;
    let peer = active.peers.get(person);
    if (peer) peer.session = from;
    if (!peer) {
      // Their offer came before the call state that lists them: they joined after us.
      const participant = active.state.participants.find((p) => p.session === from) ?? {
        session: from,
        person,
        mic: true,
        camera: true,
        joined_at: 0,
        connected: true,
      };
      peer = this.addPeer(active, participant, false);
      this.renderTiles();
    }
    const pc = peer.pc;
    try {
      switch (signal.kind) {
        case 'offer': {
          await pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp });
          this.sendOnOffered(active, pc);
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          this.signal(active, peer, { kind: 'answer', sdp: answer.sdp ?? '' }, true);
          await this.flushCandidates(peer);
          break;
        }
        case 'answer':
          if (pc.signalingState !== 'have-local-offer') return;
          await pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp });
          await this.flushCandidates(peer);
          break;
        case 'candidate': {
          /** @type {RTCIceCandidateInit} */
          const candidate = {
            candidate: signal.candidate,
            sdpMid: signal.sdp_mid ?? null,
            sdpMLineIndex: signal.sdp_mline_index ?? null,
          };
          if (pc.remoteDescription) await pc.addIceCandidate(candidate);
          else peer.pending.push(candidate);
          break;
        }
      }
    } catch (err) {
      console.info(`triad: ${signal.kind} from ${person} not applied`, err);
    }
  }

  /**
   * The answering side sends its camera and microphone on the media sections the offer has
   * (none when the offer has none, as the call agent's).
   * @param {ActiveCall} active
   * @param {RTCPeerConnection} pc
   */
  sendOnOffered(active, pc) {
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.mid === null || transceiver.sender.track) continue;
      const kind = transceiver.receiver.track.kind;
      const track = active.local?.getTracks().find((t) => t.kind === kind);
      if (!track || !active.local) continue;
      void transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams(active.local);
      transceiver.direction = 'sendrecv';
    }
  }

  /** @param {Peer} peer */
  async flushCandidates(peer) {
    const pending = peer.pending.splice(0);
    for (const candidate of pending) {
      try {
        await peer.pc.addIceCandidate(candidate);
      } catch (err) {
        console.info('triad: candidate not applied', err);
      }
    }
  }

  /**
   * Sends a signal to a peer: offers and answers as requests (refusals are logged),
   * candidates without waiting for an answer.
   * @param {ActiveCall} active
   * @param {Peer} peer
   * @param {Signal} signal
   * @param {boolean} answered
   */
  signal(active, peer, signal, answered) {
    /** @type {import('./protocol').Request} */
    const request = { type: 'call_signal', call: active.id, to: peer.session, signal };
    if (!answered) {
      this.connection.notify(request);
      return;
    }
    this.connection.request(request).catch((err) => {
      console.info(`triad: ${signal.kind} to ${peer.person} not relayed`, err);
    });
  }

  // ---- Microphone and camera ----

  /** @param {'mic' | 'camera'} which */
  setMedia(which) {
    const active = this.active;
    if (!active) return;
    if (which === 'mic') active.mic = !active.mic;
    else active.camera = !active.camera;
    this.applyMedia();
    this.sendMedia();
    this.renderTiles();
  }

  /** The local tracks follow the flags (a disabled track sends silence or black). */
  applyMedia() {
    const active = this.active;
    if (!active) return;
    for (const track of active.local?.getAudioTracks() ?? []) track.enabled = active.mic;
    for (const track of active.local?.getVideoTracks() ?? []) track.enabled = active.camera;
    this.micButton.setAttribute('aria-pressed', String(active.mic));
    this.cameraButton.setAttribute('aria-pressed', String(active.camera));
    this.micButton.title = active.mic ? 'Turn your microphone off' : 'Turn your microphone on';
    this.cameraButton.title = active.camera ? 'Turn your camera off' : 'Turn your camera on';
  }

  sendMedia() {
    const active = this.active;
    if (!active) return;
    this.connection
      .request({ type: 'call_media', call: active.id, mic: active.mic, camera: active.camera })
      .catch((err) => console.info('triad: media state not sent', err));
  }

  // ---- Rendering ----

  /** The call button of the room shown, and the panel's heading. */
  render() {
    const room = this.room;
    const call = room ? this.calls.get(room.id) : undefined;
    const inThis = Boolean(this.active && room && this.active.room === room.id);
    // Whoever may speak in the room may start or join its call (a moderator after joining).
    this.button.hidden = !room || !room.joined || inThis;
    // Nothing can be started or joined while the connection is down.
    this.button.disabled = this.busy || Boolean(this.active) || !this.connection.live;
    this.button.title = this.connection.live ? '' : 'Not connected: reconnecting…';
    if (call) {
      const count = call.participants.length;
      this.button.textContent = `Join call (${count})`;
      this.button.setAttribute(
        'aria-label',
        `Join the call, ${count} ${count === 1 ? 'person' : 'people'} in it`,
      );
    } else {
      this.button.textContent = 'Start call';
      this.button.setAttribute('aria-label', 'Start a video call');
    }
    if (this.active) {
      const title = this.book.rooms.get(this.active.room)?.title ?? this.active.room;
      const count = this.active.state.participants.length;
      this.status.replaceChildren(
        'Call in ',
        bdi(title),
        ` · ${count} ${count === 1 ? 'person' : 'people'}`,
      );
      this.panel.hidden = false;
      this.panel.classList.remove('call-over');
    }
    this.micButton.hidden = this.cameraButton.hidden = this.leaveButton.hidden = !this.active;
    this.onRender();
  }

  /**
   * @param {string} person
   * @param {boolean} self
   */
  makeTile(person, self) {
    const tile = el('li', 'call-tile');
    tile.dataset.person = person;
    const video = el('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = self;
    const name = self ? el('span', 'call-name', 'You') : userText('span', 'call-name', this.book.name(person));
    const state = el('span', 'call-state');
    const placeholder = el('span', 'call-placeholder', this.book.name(person).slice(0, 1));
    placeholder.setAttribute('aria-hidden', 'true');
    const caption = el('p', 'call-caption');
    caption.append(name, state);
    tile.append(placeholder, video, caption);
    return tile;
  }

  renderTiles() {
    const active = this.active;
    if (!active) return;
    let own = /** @type {HTMLElement | null} */ (this.tiles.querySelector('.call-tile.self'));
    if (!own && this.book.me) {
      own = this.makeTile(this.book.me.id, true);
      own.classList.add('self');
      const video = own.querySelector('video');
      if (video && active.local) video.srcObject = active.local;
    }
    const hasVideo = (/** @type {MediaStream | null} */ s) =>
      Boolean(s?.getVideoTracks().length);
    /** @type {HTMLElement[]} */
    const order = [];
    for (const participant of active.state.participants) {
      if (participant.session === active.session) {
        if (own) {
          this.describe(own, active.mic, active.camera && hasVideo(active.local), true, '');
          order.push(own);
        }
        continue;
      }
      const peer = active.peers.get(participant.person);
      if (!peer) continue;
      const pcState = peer.pc.connectionState;
      const note = !participant.connected
        ? 'Reconnecting…'
        : pcState === 'connected'
          ? ''
          : pcState === 'failed'
            ? 'Connection failed'
            : pcState === 'disconnected'
              ? 'Connection lost, retrying…'
              : 'Connecting…';
      peer.tile.dataset.connection = pcState;
      this.describe(peer.tile, participant.mic, participant.camera && hasVideo(peer.stream), false, note);
      order.push(peer.tile);
    }
    order.forEach((tile, i) => {
      if (this.tiles.children[i] !== tile) this.tiles.insertBefore(tile, this.tiles.children[i] ?? null);
    });
    while (this.tiles.children.length > order.length) this.tiles.lastElementChild?.remove();
    this.tiles.dataset.count = String(order.length);
  }

  /**
   * @param {HTMLElement} tile
   * @param {boolean} mic
   * @param {boolean} picture whether there is a picture to show
   * @param {boolean} self
   * @param {string} note
   */
  describe(tile, mic, picture, self, note) {
    tile.classList.toggle('no-picture', !picture);
    tile.classList.toggle('muted', !mic);
    const flags = [];
    if (!mic) flags.push('muted');
    if (!picture) flags.push('camera off');
    if (note) flags.push(note);
    const state = tile.querySelector('.call-state');
    if (state) state.textContent = flags.join(' · ');
    const name = tile.querySelector('.call-name')?.textContent ?? '';
    tile.setAttribute('aria-label', [self ? 'You' : isolated(name), ...flags].join(', '));
  }

  // ---- For the browser tests ----

  /** Per peer: its connection state, data channel state and video frames decoded. */
  async stats() {
    const active = this.active;
    if (!active) return [];
    return Promise.all(
      [...active.peers.values()].map(async (peer) => {
        let framesDecoded = 0;
        const report = await peer.pc.getStats();
        report.forEach((entry) => {
          if (entry.type === 'inbound-rtp' && entry.kind === 'video') {
            framesDecoded += entry.framesDecoded ?? 0;
          }
        });
        return {
          person: peer.person,
          session: peer.session,
          offerer: peer.offerer,
          connectionState: peer.pc.connectionState,
          channel: peer.channel?.readyState ?? null,
          framesDecoded,
        };
      }),
    );
  }
}
