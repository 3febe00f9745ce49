// Building DOM nodes without HTML strings: every piece of text goes in through textContent, so
// nothing the cloud returns (names, messages, logs) is ever parsed as markup. The portal's CSP
// forbids inline styles, so looks come from classes only.

// h('div', {class: 'x', onclick: fn, dataset: {id: 1}, for: 'f'}, child, 'text', [more]) -> Element.
// Props: `class` (string or array, falsy entries dropped), `text`, `dataset`, `on<event>`
// handlers, boolean attributes (true sets, false/null/undefined omits), anything else as an
// attribute. Children: nodes, strings, numbers, arrays of those; null/undefined/false skipped.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') {
      const names = Array.isArray(value) ? value.filter(Boolean) : String(value).split(/\s+/);
      for (const name of names) if (name) el.classList.add(name);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' && ('value' in el)) {
      el.value = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

// Appends children (as h() takes them) to `parent`.
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

// Replaces all of `parent`'s children.
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

// An SVG icon from the small set the portal uses (paths are constants, never data).
const ICONS = {
  machine: 'M3 4h18v12H3zM8 20h8M12 16v4',
  group: 'M4 5h7v6H4zM13 5h7v6h-7zM8.5 14h7v6h-7z',
  cluster: 'M12 3l8 4.5v9L12 21l-8-4.5v-9zM12 12l8-4.5M12 12v9M12 12L4 7.5',
  connection: 'M9 15l6-6M7 11l-2 2a3.5 3.5 0 005 5l2-2M17 13l2-2a3.5 3.5 0 00-5-5l-2 2',
  flow: 'M5 4h6v5H5zM13 15h6v5h-6zM8 9v3h8v3',
  run: 'M7 4l13 8-13 8z',
  lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 017 0v3',
  refresh: 'M20 12a8 8 0 11-2.3-5.7M20 4v5h-5',
  plus: 'M12 5v14M5 12h14',
  trash: 'M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13',
  signout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
  upload: 'M12 16V4M7 9l5-5 5 5M5 20h14',
  stop: 'M7 7h10v10H7z',
  back: 'M15 5l-7 7 7 7',
  share: 'M16 8a3 3 0 100-6 3 3 0 000 6zM8 15a3 3 0 100-6 3 3 0 000 6zM16 22a3 3 0 100-6 3 3 0 000 6zM10.6 13.5l2.8 1.8M13.4 6.7l-2.8 1.8',
};

export function icon(name, extraClass) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  if (extraClass) svg.classList.add(extraClass);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}
