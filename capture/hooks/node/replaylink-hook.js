/*
 * replaylink runtime hook for Node backends.
 *
 * Preloaded by `replaylink run` with NODE_OPTIONS=--require <this file>. It
 * keeps, per async context, the request being served and marks every line the
 * process writes to stdout (fd 1) or stderr (fd 2) while there is one, so
 * replaylink attributes the line to that request exactly. The protocol is
 * described in capture/hooks/doc.go:
 *
 *   ESC "_" "rl1;" NONCE ";" KIND SPAN ESC "\"        (42 bytes)
 *
 * at the start of each line (the first byte after a '\n' written to the same
 * fd, or the fd's first byte), in the same write as the line's first bytes.
 *
 * - NONCE: REPLAYLINK_HOOK_NONCE, or the file named by
 *   REPLAYLINK_HOOK_NONCE_FILE; 16 lower-case hex digits. Without a valid
 *   nonce this module does nothing at all.
 * - SPAN: the parent-id of the request's `traceparent` header
 *   (00-<32 hex>-<16 hex>-<2 hex>); a request without a valid one has no
 *   context and its lines stay unmarked.
 * - KIND: 'r' (serving the request) or 'd' (a worker_thread created while
 *   serving it).
 *
 * Where the context comes from: the `emit` of every net.Server (so http,
 * https, http2 and anything built on them) runs the listeners of 'request',
 * 'checkContinue', 'checkExpectation', 'upgrade', 'connect' (req.headers) and
 * http2 'stream' (headers) inside AsyncLocalStorage.run. Body chunks and
 * 'finish' reach req/res from the socket, outside that context, so req, res
 * and http2 streams are tagged with the request's store and the `emit` of
 * their prototypes re-enters it: body parsers and res.on('finish') loggers
 * run in context, and listeners are never wrapped, so removeListener/off
 * keep working.
 *
 * Where the lines are marked: process.stdout.write / process.stderr.write
 * (console uses them), fs.write / fs.writeSync / fs.writev / fs.writevSync on
 * fd 1 and 2, sharing one line-start state per fd; and SonicBoom#write
 * (pino.destination(), which buffers lines and flushes them later) with a
 * state per SonicBoom. A line already starting with a mark of this nonce
 * gets no second one. The fs functions keep their contract: an error before
 * any byte is thrown (or passed to the callback), a short write reports the
 * caller's bytes written, never cutting a mark from its line. The callback
 * of a complete fs.write made in a request's context runs outside it: what
 * a buffered logger flushes from there belongs to no one request.
 *
 * A worker_thread created while serving a request runs (and its output is
 * forwarded) in the request's derived context: kind 'd'.
 *
 * CommonJS, no dependencies, Node 18+. It never throws into the app and prints
 * nothing: every failure inside the hook falls back to the original call.
 */
'use strict';

(function replaylinkHook() {
  const GUARD = Symbol.for('replaylink.hook.v1');
  if (globalThis[GUARD] !== undefined) return; // loaded twice
  let nonce;
  try {
    nonce = readNonce();
  } catch (_) {
    nonce = undefined;
  }
  try {
    Object.defineProperty(globalThis, GUARD, { value: nonce ? 'active' : 'inert' });
  } catch (_) { /* ignore */ }
  if (!nonce) return; // inert: no valid nonce, no patch at all
  try {
    install(nonce);
  } catch (_) {
    // A partial install is still consistent: each patch stands alone.
  }

  function readNonce() {
    const env = process.env;
    let v = env.REPLAYLINK_HOOK_NONCE;
    if (v === undefined || v === '') {
      const file = env.REPLAYLINK_HOOK_NONCE_FILE;
      if (!file) return undefined;
      v = require('fs').readFileSync(file, 'latin1').trim();
    }
    return /^[0-9a-f]{16}$/.test(v) ? v : undefined;
  }

  function install(nonce) {
    const { AsyncLocalStorage } = require('async_hooks');
    const fs = require('fs');
    const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
    const kStore = Symbol('replaylink.store');
    const kPatched = Symbol('replaylink.patched');
    const kLineStart = Symbol('replaylink.lineStart');

    const als = new AsyncLocalStorage();
    const PREFIX = '\x1b_rl1;' + nonce + ';'; // 25 bytes, then KIND SPAN ESC \
    const PREFIX_BUF = Buffer.from(PREFIX, 'latin1');
    const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
    const MARK_LEN = 42;
    const ZERO16 = '0000000000000000';
    const ZERO32 = ZERO16 + ZERO16;

    // Line-start state of fd 1 and fd 2 (index = fd), shared by the stream
    // and the fs patches: true when the fd's next byte begins a line.
    const atStart = [false, true, true];
    const wseq = [0, 0, 0]; // counts the updates of atStart[fd]
    function setStart(fd, v) {
      atStart[fd] = v;
      wseq[fd]++;
    }
    // > 0 while process.stdout/stderr.write runs: a stream that writes
    // through fs itself (stdout redirected to a file: SyncWriteStream) was
    // already marked and tracked one level up.
    let inStream = 0;

    function Store(span, kind) {
      this.span = span;
      this.kind = kind;
      this.m = PREFIX + kind + span + '\x1b\\';
      this.mb = null; // Buffer of m, made on first use
      this.derived = null; // the 'd' store for threads started from this one
    }
    function markBytes(st) {
      return st.mb || (st.mb = Buffer.from(st.m, 'latin1'));
    }
    function derivedOf(st) {
      if (st.kind === 'd') return st;
      return st.derived || (st.derived = new Store(st.span, 'd'));
    }

    // storeFor returns the context for a request with these headers, or
    // undefined when it has no valid traceparent.
    function storeFor(headers) {
      if (headers === null || typeof headers !== 'object') return undefined;
      const tp = headers.traceparent;
      if (typeof tp !== 'string' || tp.length !== 55 || !TRACEPARENT.test(tp)) return undefined;
      // test(), then slices: no match array to allocate for every request
      if (tp.startsWith(ZERO32, 3) || tp.startsWith(ZERO16, 36)) return undefined;
      const span = tp.slice(36, 52);
      const cur = als.getStore();
      if (cur !== undefined && cur.span === span && cur.kind === 'r') return cur;
      return new Store(span, 'r');
    }

    // ---- marking ------------------------------------------------------

    // markStr inserts the mark of st at every line start of s, given
    // whether s begins a line. A line that already starts with a mark of
    // this nonce (a forwarded, already marked line) gets no second one.
    function markStr(s, start, st) {
      const n = s.length;
      const m = st.m;
      // The usual chunk, one whole line (console.log), takes one concatenation.
      const first = s.indexOf('\n');
      if (first === -1 || first === n - 1) {
        return start && !s.startsWith(PREFIX) ? m + s : s;
      }
      let out = '';
      let from = 0;
      let pos = 0; // next line start to consider
      let add = start;
      for (;;) {
        if (add && !s.startsWith(PREFIX, pos)) {
          out += s.slice(from, pos) + m;
          from = pos;
        }
        const nl = s.indexOf('\n', pos);
        if (nl === -1 || nl === n - 1) break;
        pos = nl + 1;
        add = true;
      }
      return from === 0 && out === '' ? s : out + s.slice(from);
    }

    function hasPrefixAt(b, i) {
      const p = PREFIX_BUF;
      if (b.length - i < p.length) return false;
      for (let k = 0; k < p.length; k++) if (b[i + k] !== p[k]) return false;
      return true;
    }

    // markBuf is markStr for bytes. When ins is an array, it receives the
    // offsets in b where marks went in.
    function markBuf(b, start, st, ins) {
      const n = b.length;
      let parts = null;
      let from = 0;
      let pos = 0;
      let add = start;
      for (;;) {
        if (add && !hasPrefixAt(b, pos)) {
          if (parts === null) parts = [];
          if (pos > from) parts.push(b.subarray(from, pos));
          parts.push(markBytes(st));
          if (ins) ins.push(pos);
          from = pos;
        }
        const nl = b.indexOf(10, pos);
        if (nl === -1 || nl === n - 1) break;
        pos = nl + 1;
        add = true;
      }
      if (parts === null) return b;
      parts.push(from === 0 ? b : b.subarray(from));
      return Buffer.concat(parts);
    }

    // isUtf8 says whether a string written with encoding enc is written as
    // UTF-8, where '\n' is the only source of a 0x0a byte: the string can
    // be marked as a string. Other encodings are marked as the bytes they
    // make.
    function isUtf8(enc) {
      if (enc === undefined || enc === null || typeof enc === 'function') return true;
      if (enc === 'utf8' || enc === 'utf-8') return true;
      const e = String(enc).toLowerCase();
      return e === 'utf8' || e === 'utf-8';
    }

    function isBytes(x) {
      return x instanceof Uint8Array;
    }
    function toBuffer(u8) {
      return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    }

    // ---- process.stdout / process.stderr ------------------------------

    // streamChunk returns what process.std{out,err}.write should write for
    // chunk (chunk itself when unchanged) and updates the fd's line state.
    function streamChunk(fd, chunk, encoding, st) {
      if (typeof chunk === 'string') {
        if (chunk.length === 0) return chunk;
        if (isUtf8(encoding)) {
          const out = st === undefined ? chunk : markStr(chunk, atStart[fd], st);
          setStart(fd, chunk.charCodeAt(chunk.length - 1) === 10);
          return out;
        }
        const b = Buffer.from(chunk, encoding); // latin1, hex, base64, utf16le...
        if (b.length === 0) return chunk;
        const out = st === undefined ? b : markBuf(b, atStart[fd], st);
        setStart(fd, b[b.length - 1] === 10);
        return out === b ? chunk : out;
      }
      if (isBytes(chunk)) {
        if (chunk.byteLength === 0) return chunk;
        const b = toBuffer(chunk);
        const out = st === undefined ? b : markBuf(b, atStart[fd], st);
        setStart(fd, b[b.length - 1] === 10);
        return out === b ? chunk : out;
      }
      return chunk; // not ours to judge: the stream reports the error
    }

    function patchStdStream(stream, fd) {
      if (stream === null || typeof stream !== 'object' || hasOwn(stream, kPatched)) return;
      const orig = stream.write;
      if (typeof orig !== 'function') return;
      Object.defineProperty(stream, kPatched, { value: true });
      stream.write = function write(chunk, encoding, cb) {
        let out = chunk;
        try {
          out = streamChunk(fd, chunk, encoding, als.getStore());
        } catch (_) {
          out = chunk;
        }
        if (out !== chunk) arguments[0] = out;
        inStream++;
        try {
          return Reflect.apply(orig, this, arguments);
        } finally {
          inStream--;
        }
      };
    }

    function hookStdio(name, fd) {
      const d = Object.getOwnPropertyDescriptor(process, name);
      if (d && typeof d.get === 'function' && d.configurable) {
        // process.stdout is created lazily on first use; keep it so.
        const get = d.get;
        Object.defineProperty(process, name, {
          configurable: true,
          enumerable: d.enumerable,
          get: function () {
            const s = Reflect.apply(get, this, []);
            try { patchStdStream(s, fd); } catch (_) { /* ignore */ }
            return s;
          },
          set: d.set,
        });
      } else {
        patchStdStream(process[name], fd);
      }
    }
    hookStdio('stdout', 1);
    hookStdio('stderr', 2);

    // ---- fs.write* on fd 1 and 2 -------------------------------------

    // fsBytes returns the bytes a write of (data, a, b) would write, as a
    // Buffer, and its position, or undefined for arguments the original
    // would reject (it then reports them itself).
    //   Buffer forms: (buf, offset?, length?, position?) | (buf, {offset,length,position})
    //   string forms: (str, position?, encoding?)
    function fsBytes(data, a, b, c, isAsync) {
      if (typeof data === 'string') {
        let position = a;
        let encoding = b;
        if (isAsync && typeof c !== 'function') encoding = 'utf8'; // write(fd, s, pos?, cb)
        if (typeof encoding !== 'string') encoding = 'utf8';
        if (!Buffer.isEncoding(encoding)) return undefined;
        if (data.length % 2 === 1 && encoding.toLowerCase() === 'hex') return undefined;
        if (typeof position !== 'number') position = null;
        return { bytes: Buffer.from(data, encoding), position };
      }
      if (!ArrayBuffer.isView(data)) return undefined;
      const whole = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      let offset = a;
      let length = b;
      let position = c;
      if (offset !== null && typeof offset === 'object') {
        offset = a.offset === undefined ? 0 : a.offset;
        length = a.length === undefined ? whole.length - offset : a.length;
        position = a.position === undefined ? null : a.position;
      }
      if (offset == null || typeof offset === 'function') offset = 0;
      if (typeof length !== 'number') length = whole.length - offset;
      if (typeof position !== 'number') position = null;
      if (!Number.isInteger(offset) || !Number.isInteger(length) ||
          offset < 0 || length < 0 || offset + length > whole.length) return undefined;
      return { bytes: whole.subarray(offset, offset + length), position };
    }

    // noteWritten updates the fd's line state after n of bytes were written.
    function noteWritten(fd, bytes, n) {
      if (typeof n === 'number' && n > 0 && n <= bytes.length) setStart(fd, bytes[n - 1] === 10);
    }

    // originalCount maps n bytes written of a marked buffer back to the
    // number of the caller's bytes written (ins: where marks went in). A
    // write cut inside a mark counts up to the mark's line only.
    function originalCount(ins, n) {
      for (let k = 0; k < ins.length; k++) {
        const at = ins[k] + MARK_LEN * k; // where mark k starts in out
        if (n < at + MARK_LEN) return n <= at ? n - MARK_LEN * k : ins[k];
      }
      return n - MARK_LEN * ins.length;
    }

    const sleepBuf = typeof SharedArrayBuffer === 'function' ? new Int32Array(new SharedArrayBuffer(4)) : null;
    function sleepMs(ms) {
      if (sleepBuf !== null) Atomics.wait(sleepBuf, 0, 0, ms);
    }

    const origWriteSync = fs.writeSync;
    const origWrite = fs.write;
    const origWritevSync = fs.writevSync;
    const origWritev = fs.writev;

    // cutInMark says whether off, a position in out, falls inside a
    // mark we inserted or right after one, before its line's first byte.
    function cutInMark(ins, off) {
      for (let k = 0; k < ins.length; k++) {
        const at = ins[k] + MARK_LEN * k;
        if (off <= at) return false;
        if (off <= at + MARK_LEN) return true;
      }
      return false;
    }

    function isAgain(e) {
      return e !== null && typeof e === 'object' && (e.code === 'EAGAIN' || e.code === 'EWOULDBLOCK');
    }

    // writeOutSync writes out (bytes with marks inserted at ins) with the
    // semantics of fs.writeSync(fd, bytes): an error before any byte is
    // thrown, a short write returns the count of bytes written. A pipe that
    // libuv made non-blocking takes writes in parts or says EAGAIN; a write
    // cut inside one of our marks, or between it and its line, is carried
    // on (waiting out EAGAIN, up to 10 s without progress) until a byte of
    // the line is out, so that the caller, sending the rest, never gets a
    // second mark nor half of one.
    function writeOutSync(fd, out, ins, position, bytes, prevStart, off) {
      let stalledSince = 0;
      if (typeof position === 'number') position += off;
      for (;;) {
        if (off >= out.length) return bytes.length;
        if (off > 0 && !cutInMark(ins, off)) break;
        let n;
        try {
          n = Reflect.apply(origWriteSync, fs, [fd, out, off, out.length - off, position]);
        } catch (e) {
          if (off === 0) {
            setStart(fd, prevStart);
            throw e;
          }
          const now = Date.now();
          if (stalledSince === 0) stalledSince = now;
          if (isAgain(e) && now - stalledSince < 10000) {
            sleepMs(1);
            continue;
          }
          break; // give up: report what is out
        }
        if (!(n > 0)) break;
        stalledSince = 0;
        off += n;
        if (typeof position === 'number') position += n;
      }
      const k = originalCount(ins, off);
      if (k === 0) setStart(fd, prevStart);
      else noteWritten(fd, bytes, k);
      return k;
    }

    // writeOutAsync is writeOutSync for fs.write: cb gets (err, count,
    // userData) as fs.write's callback would.
    function writeOutAsync(fd, out, ins, position, bytes, userData, cb, prevStart) {
      let off = 0;
      let stalledSince = 0;
      const mine = wseq[fd];
      const done = function (err) {
        const k = off >= out.length ? bytes.length : originalCount(ins, off);
        if (k < bytes.length && wseq[fd] === mine) {
          if (k === 0) setStart(fd, prevStart);
          else noteWritten(fd, bytes, k);
        }
        cb(k === 0 ? err || null : null, k, userData);
      };
      const step = function (err, n) {
        if (err) {
          if (off === 0) return done(err);
          const now = Date.now();
          if (stalledSince === 0) stalledSince = now;
          if (isAgain(err) && now - stalledSince < 10000) {
            setTimeout(again, 1);
            return undefined;
          }
          return done(err);
        }
        off += n;
        if (typeof position === 'number') position += n;
        if (n > 0) stalledSince = 0;
        if (off >= out.length || n === 0 || !cutInMark(ins, off)) return done(null);
        return again();
      };
      const again = function () {
        Reflect.apply(origWrite, fs, [fd, out, off, out.length - off, position, step]);
      };
      again();
    }

    function writeSync(fd, data, a, b, c) {
      if ((fd !== 1 && fd !== 2) || inStream > 0) return Reflect.apply(origWriteSync, this, arguments);
      const st = als.getStore();
      if (typeof data === 'string' && (b === undefined || b === null || b === 'utf8' || b === 'utf-8')) {
        return st === undefined ? plainStrSync(this, arguments, fd, data) : markedStrSync(this, arguments, fd, data, a, st);
      }
      let w;
      try {
        w = fsBytes(data, a, b, c, false);
      } catch (_) {
        w = undefined;
      }
      if (w === undefined || w.bytes.length === 0) return Reflect.apply(origWriteSync, this, arguments);
      return syncOut(this, arguments, origWriteSync, fd, w.bytes, w.position, st);
    }

    // plainStrSync is fs.writeSync(fd, data: a utf-8 string) as asked, with
    // the line state kept.
    function plainStrSync(self, args, fd, data) {
      const n = Reflect.apply(origWriteSync, self, args);
      if (data.length !== 0 && n > 0) {
        if (n === Buffer.byteLength(data)) setStart(fd, data.charCodeAt(data.length - 1) === 10);
        else noteWritten(fd, Buffer.from(data), n);
      }
      return n;
    }

    // markedStrSync is fs.writeSync(fd, data: a utf-8 string, position)
    // marked for st: one write of the marked string; only a short write
    // takes the Buffer path.
    function markedStrSync(self, args, fd, data, position, st) {
      const prevStart = atStart[fd];
      let out = data;
      try {
        out = markStr(data, prevStart, st);
      } catch (_) {
        out = data;
      }
      if (out === data) return plainStrSync(self, args, fd, data);
      if (typeof position !== 'number') position = null;
      setStart(fd, data.charCodeAt(data.length - 1) === 10);
      let n;
      try {
        n = Reflect.apply(origWriteSync, fs, [fd, out, position, 'utf8']);
      } catch (e) {
        setStart(fd, prevStart);
        throw e;
      }
      const added = out.length - data.length; // mark bytes: ASCII
      const total = Buffer.byteLength(data) + added;
      if (n >= total) return total - added;
      const bytes = Buffer.from(data);
      const ins = [];
      return writeOutSync(fd, markBuf(bytes, prevStart, st, ins), ins, position, bytes, prevStart, n);
    }

    // syncOut writes bytes (what the original call of fn with args would
    // write) marked for st, to fd.
    function syncOut(self, args, fn, fd, bytes, position, st) {
      const prevStart = atStart[fd];
      const ins = [];
      let out = bytes;
      try {
        if (st !== undefined) out = markBuf(bytes, prevStart, st, ins);
      } catch (_) {
        out = bytes;
      }
      if (out === bytes) {
        const n = Reflect.apply(fn, self, args);
        noteWritten(fd, bytes, n);
        return n;
      }
      setStart(fd, bytes[bytes.length - 1] === 10);
      return writeOutSync(fd, out, ins, position, bytes, prevStart, 0);
    }

    // The callback of a complete write made in a request's context runs
    // outside it: a buffered logger (sonic-boom with sync: false, when its
    // write is not patched) flushes the lines of other requests from that
    // callback, and must not mark them as this one. After an error or a
    // short write the caller sends the same data again, or its rest: that
    // callback keeps the context.
    function writeCb(cb, st, len) {
      if (st === undefined) return cb;
      return function (err, n, buf) {
        if (err || n < len) return cb(err, n, buf);
        // run(undefined), not exit(): on Node < 22 (no AsyncContextFrame)
        // exit() disables the storage, which turns the async hooks (and
        // V8's promise hooks) off and on again around every such callback.
        return als.run(undefined, cb, err, n, buf);
      };
    }

    // asyncOut is syncOut for fs.write/fs.writev: args[cbIndex] is the
    // callback, userData what it gets back.
    function asyncOut(self, args, fn, cbIndex, fd, bytes, position, userData, st) {
      const prevStart = atStart[fd];
      const ins = [];
      let out = bytes;
      try {
        if (st !== undefined) out = markBuf(bytes, prevStart, st, ins);
      } catch (_) {
        out = bytes;
      }
      setStart(fd, bytes[bytes.length - 1] === 10);
      const cb = writeCb(args[cbIndex], st, bytes.length);
      if (out === bytes) {
        // as the caller asked; the line state assumed a complete write
        const mine = wseq[fd];
        args[cbIndex] = function (err, n, buf) {
          if (wseq[fd] === mine && (err || n < bytes.length)) {
            if (n > 0) noteWritten(fd, bytes, n);
            else setStart(fd, prevStart);
          }
          return cb(err, n, buf);
        };
        return Reflect.apply(fn, self, args);
      }
      writeOutAsync(fd, out, ins, position, bytes, userData, cb, prevStart);
      return undefined;
    }

    function write(fd, data, a, b, c) {
      if ((fd !== 1 && fd !== 2) || inStream > 0) return Reflect.apply(origWrite, this, arguments);
      let st;
      let w;
      let cbIndex = -1;
      try {
        st = als.getStore();
        for (let i = arguments.length - 1; i >= 2; i--) {
          if (typeof arguments[i] === 'function') { cbIndex = i; break; }
        }
        if (cbIndex !== -1) w = fsBytes(data, a, b, c, true);
      } catch (_) {
        w = undefined;
      }
      if (w === undefined || w.bytes.length === 0) return Reflect.apply(origWrite, this, arguments);
      return asyncOut(this, arguments, origWrite, cbIndex, fd, w.bytes, w.position, data, st);
    }

    function vecBytes(buffers) {
      if (!Array.isArray(buffers) || buffers.length === 0) return undefined;
      const list = new Array(buffers.length);
      for (let i = 0; i < buffers.length; i++) {
        const x = buffers[i];
        if (!ArrayBuffer.isView(x)) return undefined;
        list[i] = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
      }
      return list.length === 1 ? list[0] : Buffer.concat(list);
    }

    function writevSync(fd, buffers, position) {
      if ((fd !== 1 && fd !== 2) || inStream > 0) return Reflect.apply(origWritevSync, this, arguments);
      let st;
      let bytes;
      try {
        st = als.getStore();
        bytes = vecBytes(buffers);
      } catch (_) {
        bytes = undefined;
      }
      if (bytes === undefined || bytes.length === 0) return Reflect.apply(origWritevSync, this, arguments);
      return syncOut(this, arguments, origWritevSync, fd, bytes, typeof position === 'number' ? position : null, st);
    }

    function writev(fd, buffers, position, cb) {
      if ((fd !== 1 && fd !== 2) || inStream > 0) return Reflect.apply(origWritev, this, arguments);
      let st;
      let bytes;
      const cbIndex = typeof cb === 'function' ? 3 : typeof position === 'function' ? 2 : -1;
      try {
        st = als.getStore();
        bytes = cbIndex === -1 ? undefined : vecBytes(buffers);
      } catch (_) {
        bytes = undefined;
      }
      if (bytes === undefined || bytes.length === 0) return Reflect.apply(origWritev, this, arguments);
      return asyncOut(this, arguments, origWritev, cbIndex, fd, bytes, typeof position === 'number' ? position : null, buffers, st);
    }

    function replace(obj, name, fn, orig) {
      if (typeof orig !== 'function') return;
      // keep util.promisify's custom arguments (fs.write resolves to
      // { bytesWritten, buffer }) and the name/length of the original
      for (const k of Reflect.ownKeys(orig)) {
        if (k === 'prototype' || k === 'caller' || k === 'arguments') continue;
        try {
          const desc = Object.getOwnPropertyDescriptor(orig, k);
          if (k === 'name' || k === 'length') Object.defineProperty(fn, k, desc);
          else if (!hasOwn(fn, k) || Object.getOwnPropertyDescriptor(fn, k).configurable) Object.defineProperty(fn, k, desc);
        } catch (_) { /* ignore */ }
      }
      obj[name] = fn;
    }
    replace(fs, 'writeSync', writeSync, origWriteSync);
    replace(fs, 'write', write, origWrite);
    replace(fs, 'writevSync', writevSync, origWritevSync);
    replace(fs, 'writev', writev, origWritev);

    // ---- request context ----------------------------------------------

    // patchEmit makes the emit of proto (IncomingMessage, ServerResponse,
    // http2 streams and their compat req/res, found on the first tagged
    // object) re-enter the store tagged on the emitting object. Shared
    // prototypes of every stream are left alone.
    const notEmitters = new Set();
    try {
      const EE = require('events');
      const stream = require('stream');
      for (const p of [Object.prototype, EE.prototype, stream.Stream.prototype, stream.Readable.prototype,
        stream.Writable.prototype, stream.Duplex.prototype, stream.Transform.prototype]) notEmitters.add(p);
    } catch (_) { /* ignore */ }

    function patchEmit(proto) {
      if (proto === null || typeof proto !== 'object' || hasOwn(proto, kPatched) || notEmitters.has(proto)) return;
      const own = hasOwn(proto, 'emit') ? proto.emit : undefined;
      const parent = Object.getPrototypeOf(proto);
      const emit = function emit() {
        const f = own !== undefined ? own : parent.emit;
        const st = this[kStore];
        if (st === undefined || als.getStore() === st) return Reflect.apply(f, this, arguments);
        return als.run(st, Reflect.apply, f, this, arguments);
      };
      Object.defineProperty(proto, kPatched, { value: true });
      proto.emit = emit;
    }

    function tag(obj, st) {
      if (obj === null || typeof obj !== 'object') return;
      try {
        obj[kStore] = st;
        patchEmit(Object.getPrototypeOf(obj));
      } catch (_) { /* frozen or exotic: context stays synchronous only */ }
    }

    function patchServerEmit(proto) {
      if (hasOwn(proto, kPatched)) return;
      const own = hasOwn(proto, 'emit') ? proto.emit : undefined;
      const parent = Object.getPrototypeOf(proto);
      Object.defineProperty(proto, kPatched, { value: true });
      proto.emit = function emit(event, a, b) {
        const f = own !== undefined ? own : parent.emit;
        let st;
        try {
          switch (event) {
            case 'request':
            case 'checkContinue':
            case 'checkExpectation':
              if (a !== null && typeof a === 'object') st = storeFor(a.headers);
              if (st !== undefined) { tag(a, st); tag(b, st); }
              break;
            case 'upgrade':
            case 'connect':
              if (a !== null && typeof a === 'object') st = storeFor(a.headers);
              if (st !== undefined) tag(a, st);
              break;
            case 'stream': // http2: (stream, headers, flags, rawHeaders)
              st = storeFor(b);
              if (st !== undefined) tag(a, st);
              break;
          }
        } catch (_) {
          st = undefined;
        }
        if (st === undefined) return Reflect.apply(f, this, arguments);
        return als.run(st, Reflect.apply, f, this, arguments);
      };
    }
    // Every http, https, http2 (and tls) server is a net.Server; none of
    // their prototypes defines its own emit.
    patchServerEmit(require('net').Server.prototype);

    // ---- worker_threads: 'd' ------------------------------------------

    // A Worker made while serving a request runs its callbacks (and the
    // forwarding of its stdout/stderr to ours) in the request's derived
    // context: its output is marked 'd'.
    try {
      const wt = require('worker_threads');
      const Orig = wt.Worker;
      if (typeof Orig === 'function' && !hasOwn(Orig, kPatched)) {
        const Worker = class Worker extends Orig {
          constructor(...args) {
            const st = als.getStore();
            if (st === undefined) {
              super(...args);
            } else {
              als.enterWith(derivedOf(st));
              try {
                super(...args);
              } finally {
                als.enterWith(st);
              }
            }
          }
        };
        Object.defineProperty(Worker, kPatched, { value: true });
        wt.Worker = Worker;
      }
    } catch (_) { /* ignore */ }

    // ---- sonic-boom (pino's destination) --------------------------------

    // SonicBoom (pino.destination()) buffers what pino hands its write while
    // an fs.write is in flight, and flushes it later in one fs.write: mark
    // each line when pino hands it over instead, with a line state per
    // SonicBoom (each writes whole lines in its own order). fs.write* then
    // sees lines already marked and adds nothing.
    function wrapSonicWrite(orig) {
      return function write(data) {
        try {
          const fd = this.fd;
          if (fd === 1 || fd === 2) {
            const st = als.getStore();
            if (typeof data === 'string') {
              if (data.length !== 0) {
                if (st !== undefined) arguments[0] = markStr(data, this[kLineStart] !== false, st);
                this[kLineStart] = data.charCodeAt(data.length - 1) === 10;
              }
            } else if (isBytes(data) && data.byteLength !== 0) {
              const b = toBuffer(data);
              if (st !== undefined) arguments[0] = markBuf(b, this[kLineStart] !== false, st, null);
              this[kLineStart] = b[b.length - 1] === 10;
            }
          }
        } catch (_) { /* ignore */ }
        return Reflect.apply(orig, this, arguments);
      };
    }
    function patchSonicBoom(SB) {
      if (typeof SB !== 'function' || SB.prototype === null || typeof SB.prototype !== 'object') return;
      const proto = SB.prototype;
      if (hasOwn(proto, kPatched)) return;
      Object.defineProperty(proto, kPatched, { value: true });
      const d = Object.getOwnPropertyDescriptor(proto, 'write');
      if (d !== undefined && typeof d.value === 'function') {
        proto.write = wrapSonicWrite(d.value); // sonic-boom < 4
        return;
      }
      if (d !== undefined) return;
      // sonic-boom 4 sets this.write in its constructor: an accessor on the
      // prototype receives that assignment and keeps the wrapped function as
      // the instance's own property (later assignments replace it as usual).
      Object.defineProperty(proto, 'write', {
        configurable: true,
        enumerable: false,
        get: function () { return undefined; },
        set: function (fn) {
          Object.defineProperty(this, 'write', {
            configurable: true,
            enumerable: true,
            writable: true,
            value: typeof fn === 'function' ? wrapSonicWrite(fn) : fn,
          });
        },
      });
    }
    const SONIC_PATH = /[\\/]sonic-boom[\\/]index\.js$/;
    try {
      const Module = require('module');
      const load = Module._load;
      if (typeof load === 'function') {
        Module._load = function _load(request) {
          const exp = Reflect.apply(load, this, arguments);
          if (request === 'sonic-boom' || (typeof request === 'string' && SONIC_PATH.test(request))) {
            try { patchSonicBoom(exp); } catch (_) { /* ignore */ }
          }
          return exp;
        };
      }
    } catch (_) { /* ignore */ }
  }
})();
