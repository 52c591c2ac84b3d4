/*
 * pushgate.js - browser client for the pushgate native protocol (ws(s)://host/v1/{app}).
 *
 * The surface is ScaleDrone's, so pages written for it run with only the script URL changed:
 *
 *   var drone = new ScaleDrone('demo');            // or new Pushgate('demo', {url: 'ws://...'})
 *   drone.on('open', function (err) {
 *       var room = drone.subscribe('main');
 *       room.on('data', function (message, meta) { ... });
 *       drone.publish({room: 'main', message: 'hey!'});
 *   });
 *
 * Drone events: open(err), authenticate(err), error(err), disconnect(ev), reconnect, close(ev),
 * broadcast(event, message, meta) for app-wide events (POST /api/apps/{app}/events with topic "#general"),
 * gap({room, channel}) when messages were lost before the next one (fetch what you missed).
 * Room events:  open(err), data(message, meta), message({data, room, clientId, timestamp}), error(err), gap(info).
 *
 * Plain ES5, no dependencies. Also loads under node (module.exports) when a WebSocket implementation is passed
 * as options.WebSocket.
 */
(function (root, factory) {
    'use strict';
    var Pushgate = factory(root);
    if (typeof module === 'object' && module && module.exports) {
        module.exports = Pushgate;
    }
    if (root) {
        root.Pushgate = Pushgate;
        root.ScaleDrone = Pushgate;
    }
}(typeof window !== 'undefined' ? window : (typeof self !== 'undefined' ? self : null), function (root) {
    'use strict';

    var VERSION = '0.1.0';
    var BACKOFF_BASE_MS = 500;
    var BACKOFF_MAX_MS = 15000;
    var CONNECT_TIMEOUT_MS = 10000;
    var STABLE_SESSION_MS = 10000;
    var MAX_QUEUE = 1000;
    var OPEN = 1; // WebSocket.OPEN; not read from the constructor because injected implementations may lack it

    /* ---- small EventEmitter ------------------------------------------------------------------------------- */

    function Emitter() {}

    Emitter.prototype.on = function (event, fn) {
        var all = this._events || (this._events = Object.create(null));
        if (typeof fn !== 'function') {
            throw new TypeError('listener must be a function');
        }
        (all[event] || (all[event] = [])).push(fn);
        return this;
    };
    Emitter.prototype.addListener = Emitter.prototype.on;

    Emitter.prototype.once = function (event, fn) {
        var self = this;
        function wrapper() {
            self.off(event, wrapper);
            fn.apply(self, arguments);
        }
        wrapper.listener = fn;
        return this.on(event, wrapper);
    };

    Emitter.prototype.off = function (event, fn) {
        var all = this._events, list, i;
        if (!all) {
            return this;
        }
        if (event === undefined) {
            this._events = Object.create(null);
            return this;
        }
        if (fn === undefined) {
            delete all[event];
            return this;
        }
        list = all[event];
        if (!list) {
            return this;
        }
        for (i = list.length - 1; i >= 0; i--) {
            if (list[i] === fn || list[i].listener === fn) {
                list.splice(i, 1);
                break;
            }
        }
        return this;
    };
    Emitter.prototype.removeListener = Emitter.prototype.off;
    Emitter.prototype.removeAllListeners = function (event) {
        return this.off(event);
    };

    Emitter.prototype.emit = function (event) {
        var list = this._events && this._events[event], args, i;
        if (!list || list.length === 0) {
            return false;
        }
        args = Array.prototype.slice.call(arguments, 1);
        // A copy, because listeners may add or remove listeners (once) while we iterate.
        list = list.slice();
        for (i = 0; i < list.length; i++) {
            callListener(this, list[i], args);
        }
        return true;
    };

    /* A throwing listener must not leave the protocol state half-updated (e.g. skip the other rooms of a message),
     * so its exception is rethrown on a fresh stack where the page still sees it. */
    function callListener(ctx, fn, args) {
        try {
            fn.apply(ctx, args);
        } catch (e) {
            setTimeout(function () {
                throw e;
            }, 0);
        }
    }

    function inherit(Ctor) {
        Ctor.prototype = Object.create(Emitter.prototype);
        Ctor.prototype.constructor = Ctor;
    }

    /* ---- helpers -------------------------------------------------------------------------------------------- */

    function makeError(code, message) {
        var err = new Error(message || 'error');
        err.code = code;
        return err;
    }

    function toError(obj) {
        if (obj && typeof obj === 'object') {
            return makeError(obj.code, typeof obj.message === 'string' ? obj.message : 'error');
        }
        return makeError(0, typeof obj === 'string' ? obj : 'error');
    }

    /* MQTT filter semantics (as mosquitto_topic_matches_sub): '+' is exactly one level, '#' as the last level is
     * the rest of the topic including its parent ('a/#' matches 'a'). */
    function roomMatches(filter, channel) {
        var f, t, i;
        if (filter === channel) {
            return true;
        }
        if (filter.indexOf('+') < 0 && filter.indexOf('#') < 0) {
            return false;
        }
        f = filter.split('/');
        t = channel.split('/');
        for (i = 0; i < f.length; i++) {
            if (f[i] === '#') {
                return i === f.length - 1;
            }
            if (i >= t.length) {
                return false;
            }
            if (f[i] !== '+' && f[i] !== t[i]) {
                return false;
            }
        }
        return f.length === t.length;
    }

    function defaultUrl(appId) {
        var loc = root && root.location;
        if (!loc || !loc.host) {
            throw new Error('Pushgate: options.url is required outside a web page');
        }
        return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/v1/' + encodeURIComponent(appId);
    }

    function addQuery(url, params) {
        var parts = [], k;
        for (k in params) {
            if (Object.prototype.hasOwnProperty.call(params, k)) {
                parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
            }
        }
        return url + (url.indexOf('?') < 0 ? '?' : '&') + parts.join('&');
    }

    /* Refusals that would only repeat on a retry: policy (1008), our 4000-4099 range, oversize frame (1009) and
     * invalid UTF-8 (1007). Everything else - including a server going away or restarting - is retried. */
    function isFatalClose(code) {
        return code === 1007 || code === 1008 || code === 1009 || (code >= 4000 && code <= 4099);
    }

    function describeClose(code) {
        switch (code) {
        case 1007:
            return 'connection closed: invalid frame data';
        case 1008:
            return 'connection closed: policy violation';
        case 1009:
            return 'connection closed: message too big';
        default:
            return 'connection closed by the server (' + code + ')';
        }
    }

    /* ---- Room ------------------------------------------------------------------------------------------------ */

    function Room(drone, name) {
        this.name = name;
        this._drone = drone;
        this._opened = false;
    }
    inherit(Room);

    Room.prototype.unsubscribe = function (callback) {
        this._drone.unsubscribe(this.name, callback);
    };

    /* ---- Pushgate --------------------------------------------------------------------------------------------- */

    function Pushgate(appId, options) {
        if (!(this instanceof Pushgate)) {
            return new Pushgate(appId, options);
        }
        if (typeof appId !== 'string' || appId === '') {
            throw new TypeError('Pushgate: the app id must be a non-empty string');
        }
        options = options || {};
        this.appId = appId;
        this.clientId = null;
        // Accepted for ScaleDrone compatibility (member data); the native protocol does not carry it yet.
        this.data = options.data;
        this.url = options.url || defaultUrl(appId);
        this._WebSocket = options.WebSocket || (root && root.WebSocket);
        if (typeof this._WebSocket !== 'function') {
            throw new Error('Pushgate: no WebSocket implementation (pass options.WebSocket)');
        }
        this._backoffBase = options.reconnectBaseMs > 0 ? options.reconnectBaseMs : BACKOFF_BASE_MS;
        this._backoffMax = options.reconnectMaxMs > 0 ? options.reconnectMaxMs : BACKOFF_MAX_MS;
        this._connectTimeout = options.connectTimeoutMs > 0 ? options.connectTimeoutMs : CONNECT_TIMEOUT_MS;
        this._maxQueue = options.maxQueue > 0 ? options.maxQueue : MAX_QUEUE;

        this._rooms = Object.create(null);   // name -> Room, every room to (re)subscribe
        this._pending = Object.create(null); // cb -> {reply(err, frame), lost()} for requests in flight
        this._queue = [];                    // publishes made while no session is open
        this._pendingTokens = [];            // authenticate() calls not yet answered by any session
        this._seq = 0;
        this._socket = null;
        this._sessionOpen = false;           // true once the current socket delivered its open frame
        this._everOpened = false;
        this._closed = false;                // close() called or fatal refusal: never reconnect
        this._attempt = 0;
        this._openedAt = 0;
        this._token = null;                  // last token the server accepted, re-sent after a reconnect
        this._resume = null;
        this._reconnectTimer = null;
        this._connectTimer = null;
        this._connect();
    }
    inherit(Pushgate);

    Pushgate.version = VERSION;
    Pushgate.roomMatches = roomMatches;

    Pushgate.prototype._connect = function () {
        var self = this, url = this.url, ws;
        if (this._everOpened && this.clientId !== null && this._resume) {
            url = addQuery(url, {client_id: this.clientId, resume: this._resume});
        }
        try {
            ws = new this._WebSocket(url);
        } catch (e) {
            // A malformed URL or a blocked scheme (ws: from an https page) will not fix itself. Reported on a later
            // turn, because this may run inside the constructor, before the page attached its listeners.
            this._closed = true;
            setTimeout(function () {
                self._fail(makeError(0, 'cannot open ' + url + ': ' + (e && e.message)), {code: 1006, reason: ''});
            }, 0);
            return;
        }
        this._socket = ws;
        this._sessionOpen = false;
        ws.onmessage = function (ev) {
            if (self._socket === ws) {
                self._onFrame(ev.data);
            }
        };
        ws.onclose = function (ev) {
            if (self._socket === ws) {
                self._onSocketClose(ev || {});
            }
        };
        // Browsers give no detail here and a close event always follows; handled there.
        ws.onerror = function () {};
        this._connectTimer = setTimeout(function () {
            self._connectTimer = null;
            if (self._socket === ws && !self._sessionOpen) {
                try {
                    ws.close();
                } catch (e) {
                    // ignore: the close event (or the lack of one) is handled below
                }
                if (self._socket === ws) {
                    self._onSocketClose({code: 1006, reason: 'connect timeout', wasClean: false});
                }
            }
        }, this._connectTimeout);
    };

    Pushgate.prototype._sendRaw = function (frame) {
        var ws = this._socket;
        if (ws && ws.readyState === OPEN) {
            ws.send(JSON.stringify(frame));
        }
    };

    Pushgate.prototype._request = function (frame, reply, lost) {
        frame.cb = ++this._seq;
        this._pending[frame.cb] = {reply: reply, lost: lost};
        this._sendRaw(frame);
    };

    Pushgate.prototype._onFrame = function (data) {
        var frame, entry;
        if (typeof data !== 'string') {
            return; // the native protocol is text-only
        }
        try {
            frame = JSON.parse(data);
        } catch (e) {
            this.emit('error', makeError(0, 'malformed frame from the server'));
            return;
        }
        if (!frame || typeof frame !== 'object') {
            return;
        }
        if (frame.type === 'open') {
            if (!this._sessionOpen) {
                this._onOpenFrame(frame);
            }
            return;
        }
        if (frame.cb !== undefined && this._pending[frame.cb]) {
            entry = this._pending[frame.cb];
            delete this._pending[frame.cb];
            entry.reply(frame.error ? toError(frame.error) : null, frame);
            return;
        }
        if (frame.type === 'message') {
            this._dispatch(frame);
        } else if (frame.type === 'broadcast') {
            // app-wide ("#general") events reach every session, whatever its rooms
            this.emit('broadcast', frame.event, frame.message, {timestamp: frame.timestamp});
        } else if (frame.type === 'error') {
            this.emit('error', toError(frame.error));
        } else if (frame.type === 'gap') {
            this._gap(frame);
        }
    };

    /*
     * The server lost messages of a room before the next one (its broker dropped them): the room and the drone
     * emit 'gap' ({room, channel}) so the application can fetch the state it missed (e.g. from its backend).
     */
    Pushgate.prototype._gap = function (frame) {
        var info = {room: frame.room, channel: frame.channel}, room;
        if (typeof frame.room === 'string' && Object.prototype.hasOwnProperty.call(this._rooms, frame.room)) {
            room = this._rooms[frame.room];
            room.emit('gap', info);
        }
        this.emit('gap', info);
    };

    Pushgate.prototype._dispatch = function (frame) {
        var channel = frame.room, name, room, clientId;
        if (typeof channel !== 'string') {
            return;
        }
        clientId = frame.client_id === undefined ? null : frame.client_id;
        for (name in this._rooms) {
            room = this._rooms[name];
            if (roomMatches(name, channel)) {
                room.emit('data', frame.message, {room: channel, client_id: clientId, timestamp: frame.timestamp,
                    event: frame.event || 'message'});
                room.emit('message', {data: frame.message, room: channel, clientId: clientId,
                    timestamp: frame.timestamp, event: frame.event || 'message'});
            }
        }
    };

    /*
     * A session is ready: restore what the application expects it to have, in the order the server must see it -
     * token first (rooms of a locked-down app need it), then every room, then what was published while offline.
     * After a reconnect, 'reconnect' fires only once the server answered all of it, so the page can rely on its
     * rooms being live again.
     */
    Pushgate.prototype._onOpenFrame = function (frame) {
        var self = this, first = !this._everOpened, ws = this._socket, outstanding = 1;
        var tokens = this._pendingTokens, queue = this._queue, name, i;

        if (this._connectTimer) {
            clearTimeout(this._connectTimer);
            this._connectTimer = null;
        }
        this._sessionOpen = true;
        this._everOpened = true;
        this._openedAt = Date.now();
        this.clientId = frame.client_id === undefined || frame.client_id === null ? null : String(frame.client_id);
        this._resume = typeof frame.resume === 'string' && frame.resume !== '' ? frame.resume : null;
        this._pendingTokens = [];
        this._queue = [];

        function done() {
            outstanding--;
            if (outstanding === 0 && !first && self._socket === ws && !self._closed) {
                self.emit('reconnect');
            }
        }

        // A token the application handed over more recently supersedes the remembered one.
        if (!first && this._token !== null && tokens.length === 0) {
            outstanding++;
            this._request({type: 'authenticate', token: this._token}, function (err) {
                if (err) {
                    // Typically the server gave a new client id (resume refused), so the old token no longer fits.
                    self._token = null;
                    err.message = 're-authentication failed: ' + err.message;
                    self.emit('error', err);
                }
                done();
            }, null);
        }
        for (i = 0; i < tokens.length; i++) {
            outstanding++;
            this._sendAuthenticate(tokens[i], done);
        }
        for (name in this._rooms) {
            outstanding++;
            this._subscribeRoom(this._rooms[name], done);
        }
        for (i = 0; i < queue.length; i++) {
            this._sendPublish(queue[i].frame, queue[i].callback);
        }
        if (first) {
            this.emit('open', null);
        }
        done();
    };

    Pushgate.prototype._onSocketClose = function (ev) {
        var code = typeof ev.code === 'number' ? ev.code : 1006, wasOpen = this._sessionOpen, pending, k;

        if (this._connectTimer) {
            clearTimeout(this._connectTimer);
            this._connectTimer = null;
        }
        this._socket = null;
        this._sessionOpen = false;
        pending = this._pending;
        this._pending = Object.create(null);
        for (k in pending) {
            if (pending[k].lost) {
                pending[k].lost();
            }
        }
        if (this._closed) {
            this.emit('close', ev);
            return;
        }
        if (isFatalClose(code)) {
            this._fail(makeError(code, ev.reason ? String(ev.reason) : describeClose(code)), ev);
            return;
        }
        // The backoff restarts only after a session that lasted: a server that accepts and then drops at once
        // (overloaded, closing slow consumers with 1013) must see the clients back off, not return in a tight loop.
        if (wasOpen && Date.now() - this._openedAt >= STABLE_SESSION_MS) {
            this._attempt = 0;
        }
        if (wasOpen) {
            this.emit('disconnect', ev);
        } else if (!this._everOpened && this._attempt === 0) {
            // Reported once; the client keeps trying (a 404 for an unknown app looks the same as a server that is
            // down to a browser).
            this.emit('error', makeError(code, 'could not connect to ' + this.url + ', retrying'));
        }
        this._scheduleReconnect();
    };

    /* Full jitter (AWS "exponential backoff and jitter"): spreads a crowd of clients that lost the same server. */
    Pushgate.prototype._scheduleReconnect = function () {
        var self = this;
        var ceiling = Math.min(this._backoffMax, this._backoffBase * Math.pow(2, Math.min(this._attempt, 30)));
        var delay = Math.floor(Math.random() * ceiling);
        this._attempt++;
        this._reconnectTimer = setTimeout(function () {
            self._reconnectTimer = null;
            if (!self._closed) {
                self._connect();
            }
        }, delay);
    };

    Pushgate.prototype._fail = function (err, ev) {
        this._closed = true;
        this._dropQueue(err);
        if (!this._everOpened) {
            this.emit('open', err);
        }
        this.emit('error', err);
        this.emit('close', ev);
    };

    Pushgate.prototype._dropQueue = function (err) {
        var queue = this._queue, i;
        this._queue = [];
        this._pendingTokens = [];
        for (i = 0; i < queue.length; i++) {
            if (queue[i].callback) {
                queue[i].callback(err);
            }
        }
    };

    Pushgate.prototype._sendAuthenticate = function (token, done) {
        var self = this;
        this._request({type: 'authenticate', token: token}, function (err) {
            if (!err) {
                self._token = token;
            }
            self.emit('authenticate', err || null);
            if (done) {
                done();
            }
        }, function () {
            // Unanswered: whether the server took it is unknown, so the next session gets it again.
            self._pendingTokens.push(token);
        });
    };

    Pushgate.prototype._subscribeRoom = function (room, done) {
        var self = this;
        this._request({type: 'subscribe', room: room.name}, function (err) {
            if (err) {
                // A refused room is forgotten so that it is not retried on every reconnect.
                if (self._rooms[room.name] === room) {
                    delete self._rooms[room.name];
                }
                if (!room._opened) {
                    room.emit('open', err);
                } else {
                    room.emit('error', err);
                    self.emit('error', err);
                }
            } else if (!room._opened) {
                room._opened = true;
                room.emit('open', null);
            }
            if (done) {
                done();
            }
        }, null);
    };

    Pushgate.prototype._sendPublish = function (frame, callback) {
        var self = this;
        this._request(frame, function (err) {
            if (callback) {
                callback(err || null);
            } else if (err) {
                self.emit('error', err);
            }
        }, function () {
            if (callback) {
                callback(makeError(0, 'connection lost before the publish was acknowledged'));
            }
        });
    };

    /* ---- public API ------------------------------------------------------------------------------------------- */

    Pushgate.prototype.authenticate = function (token) {
        if (typeof token !== 'string' || token === '') {
            throw new TypeError('Pushgate.authenticate: the token must be a non-empty string');
        }
        if (this._closed) {
            return;
        }
        if (this._sessionOpen) {
            this._sendAuthenticate(token, null);
        } else {
            this._pendingTokens.push(token);
        }
    };

    Pushgate.prototype.subscribe = function (name) {
        var room;
        if (typeof name !== 'string' || name === '') {
            throw new TypeError('Pushgate.subscribe: the room name must be a non-empty string');
        }
        room = this._rooms[name];
        if (room) {
            return room;
        }
        room = new Room(this, name);
        if (this._closed) {
            setTimeout(function () {
                room.emit('open', makeError(0, 'connection is closed'));
            }, 0);
            return room;
        }
        this._rooms[name] = room;
        if (this._sessionOpen) {
            this._subscribeRoom(room, null);
        }
        // Otherwise the next open frame subscribes every room.
        return room;
    };

    Pushgate.prototype.unsubscribe = function (name, callback) {
        var room = this._rooms[name];
        if (!room) {
            if (callback) {
                setTimeout(function () {
                    callback(makeError(404, 'not subscribed to ' + name));
                }, 0);
            }
            return;
        }
        delete this._rooms[name];
        if (this._sessionOpen) {
            this._request({type: 'unsubscribe', room: name}, function (err) {
                if (callback) {
                    callback(err || null);
                }
            }, function () {
                // The next session will not subscribe it, which is what was asked.
                if (callback) {
                    callback(null);
                }
            });
        } else if (callback) {
            setTimeout(function () {
                callback(null);
            }, 0);
        }
    };

    Pushgate.prototype.publish = function (options, callback) {
        var frame, err;
        if (!options || typeof options.room !== 'string' || options.room === '') {
            throw new TypeError('Pushgate.publish: {room, message} with a non-empty room name is required');
        }
        if (callback !== undefined && typeof callback !== 'function') {
            throw new TypeError('Pushgate.publish: the callback must be a function');
        }
        frame = {type: 'publish', room: options.room, message: options.message === undefined ? null : options.message};
        if (this._closed) {
            err = makeError(0, 'connection is closed');
        } else if (this._sessionOpen) {
            this._sendPublish(frame, callback);
            return;
        } else if (this._queue.length >= this._maxQueue) {
            err = makeError(413, 'too many messages waiting for the connection');
        } else {
            this._queue.push({frame: frame, callback: callback});
            return;
        }
        if (callback) {
            setTimeout(function () {
                callback(err);
            }, 0);
        } else {
            this.emit('error', err);
        }
    };

    Pushgate.prototype.close = function () {
        var self = this, ws = this._socket;
        if (this._closed) {
            return;
        }
        this._closed = true;
        if (this._reconnectTimer) {
            clearTimeout(this._reconnectTimer);
            this._reconnectTimer = null;
        }
        this._dropQueue(makeError(0, 'connection is closed'));
        if (ws) {
            // 'close' is emitted from the socket's close event, once it is really gone.
            try {
                ws.close(1000);
            } catch (e) {
                this._onSocketClose({code: 1000, reason: '', wasClean: false});
            }
        } else {
            setTimeout(function () {
                self.emit('close', {code: 1000, reason: '', wasClean: true});
            }, 0);
        }
    };

    return Pushgate;
}));
