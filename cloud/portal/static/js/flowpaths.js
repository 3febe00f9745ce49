// Where in the uploaded text a flow validation error points (docs/FLOWS.md, "Errors").
//
// The cloud reports two kinds of message:
//   "line 3, column 13: syntax error"           (malformed JSON: position given, column in bytes)
//   "$.actions[0].path: variable %Dir% is ..."  (a JSON path: the validator keeps no positions)
// For a path, a small scanner walks the text, recording where each value starts (for an object
// member, where its key starts), under the path the validator would print for it: ".key" for
// plain keys, `["odd key"]` (C-escaped, cut at 64 bytes) for the rest, "[i]" for array elements.
// A path that does not resolve fully (e.g. an element the text lacks) falls back to its longest
// prefix that does.

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

// absl::CEscape over the key's UTF-8 bytes, cut at 64 bytes, quoted as the validator quotes it.
function quoteKey(key) {
  const bytes = new TextEncoder().encode(key);
  const shown = bytes.slice(0, 64);
  let out = '';
  for (const b of shown) {
    if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b === 0x09) out += '\\t';
    else if (b === 0x22) out += '\\"';
    else if (b === 0x27) out += "\\'";
    else if (b === 0x5c) out += '\\\\';
    else if (b < 0x20 || b >= 0x7f) out += `\\${b.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return `"${out}"${bytes.length > 64 ? '...' : ''}`;
}

export function memberPath(base, key) {
  return PLAIN_KEY.test(key) ? `${base}.${key}` : `${base}[${quoteKey(key)}]`;
}

class Scanner {
  constructor(text) {
    this.text = text;
    this.i = 0;
    this.line = 1;
    this.lineStart = 0;
    this.positions = new Map();
  }

  where() {
    return {line: this.line, column: this.i - this.lineStart + 1, offset: this.i};
  }

  skipSpace() {
    const t = this.text;
    while (this.i < t.length) {
      const c = t[this.i];
      if (c === '\n') {
        this.i++;
        this.line++;
        this.lineStart = this.i;
      } else if (c === ' ' || c === '\t' || c === '\r') {
        this.i++;
      } else {
        break;
      }
    }
  }

  fail() {
    throw new Error('malformed');
  }

  expect(c) {
    if (this.text[this.i] !== c) this.fail();
    this.i++;
  }

  string() {
    this.expect('"');
    let out = '';
    const t = this.text;
    while (this.i < t.length) {
      const c = t[this.i++];
      if (c === '"') return out;
      if (c === '\n') this.fail();
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = t[this.i++];
      const simple = {'"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t'};
      if (e in simple) {
        out += simple[e];
      } else if (e === 'u') {
        const hex = t.slice(this.i, this.i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail();
        out += String.fromCharCode(parseInt(hex, 16));  // surrogate pairs combine in the string
        this.i += 4;
      } else {
        this.fail();
      }
    }
    this.fail();
  }

  // Scans one value; records `path` at `at` (the member's key) or at the value's own start.
  value(path, at) {
    this.skipSpace();
    if (!this.positions.has(path) || at) this.positions.set(path, at || this.where());
    const c = this.text[this.i];
    if (c === '{') {
      this.i++;
      this.skipSpace();
      if (this.text[this.i] === '}') {
        this.i++;
        return;
      }
      for (;;) {
        this.skipSpace();
        const keyAt = this.where();
        const key = this.string();
        this.skipSpace();
        this.expect(':');
        this.value(memberPath(path, key), keyAt);  // a repeated key: the last one wins, as in Boost.JSON
        this.skipSpace();
        if (this.text[this.i] === ',') {
          this.i++;
          continue;
        }
        this.expect('}');
        return;
      }
    }
    if (c === '[') {
      this.i++;
      this.skipSpace();
      if (this.text[this.i] === ']') {
        this.i++;
        return;
      }
      for (let index = 0; ; index++) {
        this.value(`${path}[${index}]`);
        this.skipSpace();
        if (this.text[this.i] === ',') {
          this.i++;
          continue;
        }
        this.expect(']');
        return;
      }
    }
    if (c === '"') {
      this.string();
      return;
    }
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(this.text.slice(this.i, this.i + 400));
    if (!m) this.fail();
    this.i += m[0].length;
  }
}

// Path -> {line, column} for every value in `text` (as far as the text is well-formed).
export function indexJsonPaths(text) {
  const scanner = new Scanner(text);
  try {
    scanner.value('$');
  } catch {
    // Keep what was indexed before the text went wrong.
  }
  return scanner.positions;
}

// Splits "$.a[0]["odd key"].b" into its prefixes, longest first: ["$.a[0]["odd key"].b", ..., "$"].
export function pathPrefixes(path) {
  const prefixes = ['$'];
  let i = 1;
  while (i < path.length) {
    if (path[i] === '.') {
      const m = /^\.[A-Za-z0-9_]+/.exec(path.slice(i));
      if (!m) break;
      i += m[0].length;
    } else if (path.startsWith('["', i)) {
      let j = i + 2;
      while (j < path.length && path[j] !== '"') j += path[j] === '\\' ? 2 : 1;
      if (j >= path.length) break;
      j++;
      if (path.startsWith('...', j)) j += 3;
      if (path[j] !== ']') break;
      i = j + 1;
    } else if (path[i] === '[') {
      const m = /^\[\d+\]/.exec(path.slice(i));
      if (!m) break;
      i += m[0].length;
    } else {
      break;
    }
    prefixes.push(path.slice(0, i));
  }
  return prefixes.reverse();
}

// The JSON path a validation message starts with ("$..." up to the ": " that ends it), or null.
export function messagePath(message) {
  if (!message.startsWith('$')) return null;
  return pathPrefixes(message)[0];
}

// Where a CreateFlow/UpdateFlow error points in `text`:
//   {line, column, path, exact, message}  (message without the "definition_json: " field prefix;
//                                          exact = false when only a prefix of the path resolved)
// or null when the message names no position (the error is then shown without a line).
export function locateFlowError(text, fullMessage) {
  // CreateFlow names the field first ("definition_json: $.actions[0]: ..."); the rest is the
  // validator's message.
  const message = String(fullMessage).replace(/^[a-z_]+: (?=\$|line \d)/, '');
  const syntax = /^line (\d+), column (\d+): /.exec(message);
  if (syntax) {
    const line = Number(syntax[1]);
    return {line, column: byteColumnToChar(text, line, Number(syntax[2])), path: null, exact: true, message};
  }
  const path = messagePath(message);
  if (!path) return null;
  const positions = indexJsonPaths(text);
  for (const prefix of pathPrefixes(path)) {
    const at = positions.get(prefix);
    if (at) return {line: at.line, column: at.column, path, exact: prefix === path, message};
  }
  return null;
}

// The cloud counts columns in bytes; the editor counts characters.
function byteColumnToChar(text, line, byteColumn) {
  const lineText = text.split('\n')[line - 1] || '';
  const encoder = new TextEncoder();
  let bytes = 0;
  let chars = 0;
  for (const ch of lineText) {
    if (bytes >= byteColumn - 1) break;
    bytes += encoder.encode(ch).length;
    chars += ch.length;
  }
  return chars + 1;
}
