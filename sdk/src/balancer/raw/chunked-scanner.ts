/**
 * Incremental scanner for `Transfer-Encoding: chunked` framing. The proxy passes chunked bodies
 * through untouched; the scanner only finds where a message ends (and, for HTTP/1.0 clients,
 * reports the data ranges so the body can be de-chunked). It accepts exactly RFC 9112 §7.1:
 * every line ends with CRLF (a bare LF or CR anywhere is malformed, never a line end), chunk
 * extensions and trailer fields hold no control characters, trailer lines are `name: value`.
 * Stricter than the RFC where common parsers are (llhttp): no whitespace after the chunk size.
 */

const enum S {
  Size,
  Ext,
  ExtName,
  ExtValue,
  ExtToken,
  ExtQuoted,
  ExtEscape,
  ExtAfterQuoted,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  FinalLf,
  Done,
}

/** Largest chunk size accepted (hex digits beyond this are a protocol error). */
const MAX_SIZE_DIGITS = 12;
/** Most bytes of chunk extensions plus trailer section accepted per message. */
const MAX_META_BYTES = 16 * 1024;

/** tchar (RFC 9110 §5.6.2) by byte. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

export class ChunkedScanner {
  #state = S.Size;
  #remaining = 0;
  #digits = 0;
  #sawData = false;
  #meta = 0;

  get done(): boolean {
    return this.#state === S.Done;
  }

  /**
   * Scans `buf` from `start`. Returns the index just past the end of the message, -1 when more
   * bytes are needed, or -2 on malformed framing. `onData` gets each payload range.
   */
  scan(buf: Buffer, start = 0, onData?: (buf: Buffer, from: number, to: number) => void): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      switch (this.#state) {
        case S.Size: {
          const c = buf[i]!;
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) return -2;
            this.#remaining = this.#remaining * 16 + v;
            this.#sawData = true;
            i++;
          } else if (!this.#sawData) {
            return -2;
          } else if (c === 59 /* ; */) {
            this.#state = S.Ext;
            i++;

          } else if (c === 13) {
            this.#state = S.SizeLf;
            i++;
          } else return -2;
          break;
        }
        case S.Ext: {
          // chunk-ext = *( ";" ext-name [ "=" ext-val ] ), ext-val = token / quoted-string; no
          // whitespace (BWS is allowed by RFC 9112 but refused by llhttp, so refused here too)
          const c = buf[i]!;
          if (++this.#meta > MAX_META_BYTES) return -2;
          if (TCHAR[c] !== 1) return -2; // an extension name has at least one tchar
          this.#state = S.ExtName;
          i++;
          break;
        }
        case S.ExtName:
        case S.ExtToken: {
          const c = buf[i]!;
          if (++this.#meta > MAX_META_BYTES) return -2;
          if (TCHAR[c] === 1) {
            i++;
            break;
          }
          if (c === 13) this.#state = S.SizeLf;
          else if (c === 59 /* ; */) this.#state = S.Ext;
          else if (c === 61 /* = */ && this.#state === S.ExtName) this.#state = S.ExtValue;
          else return -2;
          i++;
          break;
        }
        case S.ExtValue: {
          const c = buf[i]!;
          if (++this.#meta > MAX_META_BYTES) return -2;
          if (c === 34 /* " */) this.#state = S.ExtQuoted;
          else if (TCHAR[c] === 1) this.#state = S.ExtToken;
          else return -2;
          i++;
          break;
        }
        case S.ExtQuoted: {
          const c = buf[i]!;
          if (++this.#meta > MAX_META_BYTES) return -2;
          if (c === 34) this.#state = S.ExtAfterQuoted;
          else if (c === 92 /* \ */) this.#state = S.ExtEscape;
          else if ((c < 32 && c !== 9) || c === 127) return -2;
          i++;
          break;
        }
        case S.ExtEscape: {
          const c = buf[i]!;
          if ((c < 32 && c !== 9) || c === 127) return -2;
          this.#state = S.ExtQuoted;
          i++;
          break;
        }
        case S.ExtAfterQuoted: {
          const c = buf[i]!;
          if (c === 13) this.#state = S.SizeLf;
          else if (c === 59) this.#state = S.Ext;
          else return -2;
          i++;
          break;
        }
        case S.SizeLf:
          if (buf[i] !== 10) return -2;
          i++;
          this.#digits = 0;
          this.#sawData = false;
          this.#state = this.#remaining === 0 ? S.TrailerStart : S.Data;
          break;
        case S.Data: {
          const take = Math.min(this.#remaining, n - i);
          if (onData) onData(buf, i, i + take);
          i += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#state = S.DataCr;
          break;
        }
        case S.DataCr:
          if (buf[i] !== 13) return -2;
          this.#state = S.DataLf;
          i++;
          break;
        case S.DataLf:
          if (buf[i] !== 10) return -2;
          this.#state = S.Size;
          i++;
          break;
        case S.TrailerStart: {
          const c = buf[i]!;
          if (c === 13) this.#state = S.FinalLf;
          else if (TCHAR[c] === 1) this.#state = S.TrailerName;
          else return -2;
          i++;
          break;
        }
        case S.TrailerName: {
          const c = buf[i]!;
          if (c === 58 /* : */) this.#state = S.TrailerValue;
          else if (TCHAR[c] !== 1) return -2;
          if (++this.#meta > MAX_META_BYTES) return -2;
          i++;
          break;
        }
        case S.TrailerValue: {
          const c = buf[i]!;
          if (c === 13) this.#state = S.TrailerLf;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#meta > MAX_META_BYTES) return -2;
          i++;
          break;
        }
        case S.TrailerLf:
          if (buf[i] !== 10) return -2;
          this.#state = S.TrailerStart;
          i++;
          break;
        case S.FinalLf:
          if (buf[i] !== 10) return -2;
          this.#state = S.Done;
          return i + 1;
        case S.Done:
          return i;
      }
    }
    return this.#state === S.Done ? i : -1;
  }
}
